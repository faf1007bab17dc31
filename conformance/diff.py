"""Compare two reports: new failures, fixed cases, coverage and override changes, headroom regressions.

Owner: issue 15, diff helper. ``baseline_problems`` is what ``gate --baseline`` calls.
"""

from __future__ import annotations


def baseline_problems(base: dict, new: dict, base_name: str = "baseline") -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``(sections, notes)``: the gate's failing sections for regressions of ``new`` against ``base``, and
    the lines that say what was compared (different torch, devices, profile: stated, not hidden)."""
    raise NotImplementedError("conformance.diff.baseline_problems")


def main(args) -> int:
    """``python -m conformance diff BASE NEW [--format text|md]``."""
    raise NotImplementedError("conformance diff")
