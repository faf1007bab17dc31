"""Mirrors for issue 14 (nn.utils/housekeeping helper)."""

from __future__ import annotations
