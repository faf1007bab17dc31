"""Upsampling, pixel/channel shuffles, Fold/Unfold (issue 14: spatial helper)."""

from __future__ import annotations

__all__: list[str] = []
