"""A short summary of a report (optionally against a baseline) for a pull request or CI step summary.

Owner: issue 15, diff helper.
"""

from __future__ import annotations


def main(args) -> int:
    """``python -m conformance summary [REPORT] [--baseline B] [--format md|text]``."""
    raise NotImplementedError("conformance summary")
