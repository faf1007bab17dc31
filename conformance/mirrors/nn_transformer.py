"""Mirrors for issue 14 (attention helper)."""

from __future__ import annotations
