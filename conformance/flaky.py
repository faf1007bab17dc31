"""Flakiness: every failing case of a run is rerun with its own seed and with fresh seeds, so the report
says whether the failure reproduces.

Owner: issue 15, flakiness helper.
"""

from __future__ import annotations


def rerun_failures(records, opts: dict) -> dict:
    """``{case_id: {"same_seed": {...}, "fresh": [...], "verdict": ..., "text": ...}}`` for the failing cases."""
    return {}
