"""Sharding a conformance run across CI jobs (``run --shard K/N``) and merging the slices (``merge``).

Owner: issue 15, shard helper.
"""

from __future__ import annotations


def select(cases: list[str], spec: str, history: str | None = None) -> list[str]:
    """The case ids of slice ``spec`` ("K/N", 1-based) of ``cases``: deterministic, balanced by the
    recorded durations of ``history`` when it exists."""
    raise NotImplementedError("conformance.shard.select")


def describe(spec: str, history: str | None = None) -> dict:
    """``run["shard"]`` of a slice's report."""
    raise NotImplementedError("conformance.shard.describe")


def report_problems(data: dict) -> list[tuple[str, list[str]]]:
    """The gate's section for a report that is one slice of a sharded run (merge first)."""
    return []


def merge_main(args) -> int:
    """``python -m conformance merge shard*.json [--report-dir DIR] [--history FILE]``."""
    raise NotImplementedError("conformance merge")
