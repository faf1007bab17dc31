"""Mirrors for issue 14 (spatial helper)."""

from __future__ import annotations
