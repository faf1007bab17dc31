"""Fixtures every test shares."""

from __future__ import annotations

import pytest
from planting import remove_planted


@pytest.fixture(autouse=True)
def _remove_planted_faults():
    """Registry ops and mirrors a test planted (``tests/planting.py``) are gone after it."""
    yield
    remove_planted()
