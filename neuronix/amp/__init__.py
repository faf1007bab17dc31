"""``nx.amp``: autocast and GradScaler (issue 14: amp helper)."""

from __future__ import annotations

__all__: list[str] = []
