"""Lazy modules: shapes inferred at the first forward; ``UninitializedParameter``/``UninitializedBuffer``.

(issue 14: spatial helper)"""

from __future__ import annotations

__all__: list[str] = []
