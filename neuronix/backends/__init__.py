"""``nx.backends``: torch.backends' flags (issue 14: housekeeping helper)."""

from __future__ import annotations

__all__: list[str] = []
