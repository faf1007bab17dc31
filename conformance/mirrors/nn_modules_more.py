"""Mirrors for issue 14 (modules helper)."""

from __future__ import annotations
