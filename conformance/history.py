"""The run history: one compact JSON line per run (commit, torch, devices, per-case worst headroom and
seconds); trends for the HTML report, durations for balanced shards, and the ``history`` command.

Owner: issue 15, history helper.
"""

from __future__ import annotations

from pathlib import Path


def append(data: dict, path: str | Path) -> dict:
    """Append the compact record of report ``data`` to the JSON Lines file ``path``; returns the record."""
    raise NotImplementedError("conformance.history.append")


def load(path: str | Path) -> list[dict]:
    """The recorded runs, oldest first; ``[]`` when the file does not exist."""
    return []


def case_seconds(history: list[dict]) -> dict[str, float]:
    """``{case_id: seconds}`` from the recorded runs (the latest measurement of each case)."""
    return {}


def entry_trends(history: list[dict]) -> dict[str, list[dict]]:
    """``{entry: [{"commit", "time", "torch", "headroom"}, ...]}``: each entry's worst headroom per run, oldest first."""
    return {}


def main(args) -> int:
    """``python -m conformance history [--file F] [--top N] [--last K]``."""
    raise NotImplementedError("conformance history")
