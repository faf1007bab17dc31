"""Shape, stacking, splitting, diagonals, scatter/index variants and products over index sets."""

from __future__ import annotations
