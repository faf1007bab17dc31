"""Mirrors for issue 14 (optimizers helper)."""

from __future__ import annotations
