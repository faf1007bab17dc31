"""Mirrors for issue 14 (amp helper)."""

from __future__ import annotations
