"""Mirrors for issue 14 (recurrent helper)."""

from __future__ import annotations
