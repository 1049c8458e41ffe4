"""The server process raises the young-generation GC threshold."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from skydns.gctune import THRESHOLDS, tune_gc


class TuneGCTests(SynchronousTestCase):
    def test_sets_the_thresholds(self) -> None:
        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        gc.set_threshold(700, 10, 10)
        tune_gc()
        self.assertEqual(gc.get_threshold(), THRESHOLDS)
        self.assertGreater(THRESHOLDS[0], 700)
