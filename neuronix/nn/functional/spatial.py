"""nn.functional: conv3d, transposed 1-d/3-d convolutions, 1-d/3-d pools, unpooling, interpolate, grid_sample,
affine_grid, fold/unfold, pixel (un)shuffle.
"""

from __future__ import annotations
