"""Placeholder: ``python -m conformance mutate`` is filled in by its own change (issue 12)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    print("conformance mutate: not implemented yet")
    return 2
