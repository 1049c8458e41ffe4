"""The server process raises the young-generation GC threshold."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from skydns.gctune import THRESHOLDS, _freeze_survivors, long_lived, thaw, tune_gc


class TuneGCTests(SynchronousTestCase):
    def test_sets_the_thresholds(self) -> None:
        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(self.forget_callback)
        gc.set_threshold(700, 10, 10)
        tune_gc()
        self.assertEqual(gc.get_threshold(), THRESHOLDS)
        self.assertGreater(THRESHOLDS[0], 700)

    def forget_callback(self) -> None:
        while _freeze_survivors in gc.callbacks:
            gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()

    def test_survivors_of_a_full_collection_are_frozen_until_thawed(self) -> None:
        """What a full collection leaves (all live) is frozen, so the next one
        walks only what came since; `thaw` lets one walk everything again.
        A young collection freezes nothing."""
        self.addCleanup(self.forget_callback)
        gc.unfreeze()
        tune_gc()
        tune_gc()  # once only
        self.assertEqual(gc.callbacks.count(_freeze_survivors), 1)
        gc.collect(0)
        self.assertEqual(gc.get_freeze_count(), 0)
        kept = [[n] for n in range(1000)]
        gc.collect()
        self.assertGreaterEqual(gc.get_freeze_count(), len(kept))
        thaw()
        self.assertEqual(gc.get_freeze_count(), 0)


class LongLivedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.addCleanup(gc.unfreeze)  # the test process must not keep what the tests froze
        self.addCleanup(gc.enable)

    def test_no_collection_while_building_then_frozen(self) -> None:
        """Inside, the cyclic collector is off (a full pass over a big
        registry would stop every thread); afterwards what was built is
        frozen, out of every later pass, and the collector is back on."""
        gc.enable()
        with long_lived():
            self.assertFalse(gc.isenabled())
            built = [[i] for i in range(1000)]
            with long_lived():  # nested (start-up also decodes a snapshot)
                self.assertFalse(gc.isenabled())
            self.assertFalse(gc.isenabled())
        self.assertTrue(gc.isenabled())
        self.assertGreaterEqual(gc.get_freeze_count(), len(built))
        oldest = {id(o) for o in gc.get_objects(2)}
        self.assertFalse([x for x in built[:3] if id(x) in oldest])  # in no generation now

    def test_leaves_a_disabled_collector_disabled(self) -> None:
        gc.disable()
        with long_lived():
            pass
        self.assertFalse(gc.isenabled())

    def test_collector_back_on_after_an_error(self) -> None:
        gc.enable()
        with self.assertRaises(ValueError), long_lived():
            raise ValueError("undecodable snapshot")
        self.assertTrue(gc.isenabled())
