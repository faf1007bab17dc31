"""``CosineSimilarity`` and ``PairwiseDistance`` (issue 14: modules helper)."""

from __future__ import annotations

__all__: list[str] = []
