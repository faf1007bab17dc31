"""Spatial ops of nn.functional: 1-d/3-d convolutions and pools, unpooling, interpolation, grid sampling,
fold/unfold, pixel shuffle.
"""

from __future__ import annotations
