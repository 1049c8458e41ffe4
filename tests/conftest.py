"""Run the suite from a scratch directory.

Trial's ``mktemp()`` makes paths relative to the working directory (trial
itself runs in ``_trial_temp``); under pytest that would litter the checkout.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scratch_working_directory() -> Iterator[None]:
    before = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="skydns-tests-"))
    try:
        yield
    finally:
        os.chdir(before)
