"""Padding layers: Reflection/Replication/Zero/Constant/Circular pads 1/2/3d (issue 14: spatial helper)."""

from __future__ import annotations

__all__: list[str] = []
