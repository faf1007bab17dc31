"""``nx.compile`` and ``nx.compiler`` (issue 14: housekeeping helper)."""

from __future__ import annotations


def compile(model=None, **kwargs):  # noqa: A001  (torch's name)
    """Placeholder until the housekeeping helper lands: returns ``model`` unchanged."""
    return model
