"""grid_sample: torch's grid sampler kernels for the values and first derivatives, a composition for the rest.

``GRID_SAMPLE``'s forward is ``torch.grid_sampler`` and its fused backward torch's ``grid_sampler_{2,3}d_backward``
kernel, so the output and both first derivatives are torch's to the bit, on a plain backward and under
create_graph alike. torch also differentiates that backward (``gradgradcheck`` passes for every mode), so under
create_graph each rule must record a graph of the right derivative: it differentiates ``sample``, the sampler
written in neuronix ops (the same taps, weights and padding rules as torch's kernel), with the engine
(``spatial.composed_rule``).
The engine keeps the kernel's values and takes the graph from the rules, so a second derivative through
grid_sample is the composition's, while every first derivative stays the kernel's.
"""

from __future__ import annotations

import torch

from neuronix.ops.registry import apply, defop
from neuronix.ops.spatial import composed_rule
from neuronix.tensor import Tensor

MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}
_CUBIC_A = -0.75  # the cubic convolution coefficient torch's bicubic sampling uses


# ----- the sampler in neuronix ops -----------------------------------------------------------------------
def _unnormalize(coord, size: int, align_corners: bool):
    """[-1, 1] to pixel units: -1 and 1 are the corner pixels' centres (``align_corners``) or their outer edges."""
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord, twice_low: int, twice_high: int):
    """``coord`` folded back and forth into [low, high] (the bounds doubled, so they stay integers)."""
    if twice_low == twice_high:
        return coord * 0
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    coord = (coord - low).abs()
    raw = coord.data if isinstance(coord, Tensor) else coord
    even = torch.floor(raw / span).remainder(2) == 0  # how many folds: an even count runs forwards
    extra = coord.remainder(span)
    return _where(even, extra + low, span - extra + low)


def _where(mask: torch.Tensor, a, b):
    """torch.where, recorded when a branch is a neuronix tensor (tap positions stay raw)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return torch.where(mask, a, b)
    from neuronix.ops.elementwise import where  # elementwise imports the registry this module does

    return where(mask, a, b)


def _padded(coord, size: int, padding: int, align_corners: bool):
    """A source coordinate under ``padding``: as is (zeros), clipped to the image (border), or reflected at its
    edges and then clipped (reflection)."""
    if padding == PADDINGS["reflection"]:
        coord = _reflect(coord, 0, 2 * (size - 1)) if align_corners else _reflect(coord, -1, 2 * size - 1)
    if padding != PADDINGS["zeros"]:
        coord = _clip(coord, size - 1)
    return coord


def _clip(coord, high: int):
    """``coord`` clipped to [0, high] as torch's kernel's ``clip_coordinates_set_grad``: its derivative is 0 on the
    bounds themselves (``clamp``'s is 1 there), 1 strictly inside and at NaN (which passes through)."""
    raw = coord.data if isinstance(coord, Tensor) else coord
    clipped = (raw <= 0) | (raw >= high)
    return _where(clipped, raw.clamp(0, high), coord)


def _taps(x, positions: list[torch.Tensor]):
    """x (N, C, *S) at integer ``positions`` (one (N, *out) tensor per spatial dim, x first), 0 out of bounds."""
    sizes = x.shape[2:]
    k = len(sizes)
    inside = torch.ones_like(positions[0], dtype=torch.bool)
    flat = torch.zeros_like(positions[0], dtype=torch.long)
    stride = 1
    for d in range(k):  # dim d of the grid's last axis is spatial dim -(d + 1) of x
        size = sizes[k - 1 - d]
        p = torch.nan_to_num(positions[d], nan=-1.0, posinf=-1.0, neginf=-1.0)
        inside &= (p >= 0) & (p <= size - 1)
        flat += p.clamp(0, size - 1).long() * stride
        stride *= size
    n, c = x.shape[0], x.shape[1]
    index = flat.reshape(n, 1, -1).expand(n, c, flat[0].numel())
    values = x.reshape(n, c, -1).gather(2, index).reshape((n, c) + tuple(flat.shape[1:]))
    return values * inside.unsqueeze(1).to(values.dtype)


def _cubic_weights(t):
    """torch's cubic convolution weights of the taps at -1, 0, 1, 2 for a fraction ``t``."""
    a = _CUBIC_A

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def sample(x, grid, interpolation: int, padding: int, align_corners: bool):
    """grid_sample of neuronix tensors x (N, C, *S) and grid (N, *out, k), in neuronix ops."""
    sizes = x.shape[2:]
    k = len(sizes)
    coords = [_unnormalize(grid[..., d], sizes[k - 1 - d], align_corners) for d in range(k)]
    if interpolation == MODES["bicubic"]:  # 4 x 4 taps around floor(coord); padding applies to each tap
        base = [torch.floor(c.data) for c in coords]
        weights = [_cubic_weights(c - b) for c, b in zip(coords, base)]
        out = 0
        for i in range(4):
            for j in range(4):
                tap = [_padded(base[0] + i - 1, sizes[1], padding, align_corners),
                       _padded(base[1] + j - 1, sizes[0], padding, align_corners)]
                out = out + _taps(x, tap) * (weights[0][i] * weights[1][j]).unsqueeze(1)
        return out
    coords = [_padded(c, sizes[k - 1 - d], padding, align_corners) for d, c in enumerate(coords)]
    if interpolation == MODES["nearest"]:  # the nearest pixel, ties to even (torch's nearbyint)
        return _taps(x, [torch.round(c.data) for c in coords])
    base = [torch.floor(c.data) for c in coords]
    fractions = [c - b for c, b in zip(coords, base)]
    out = 0
    for corner in range(2 ** k):  # each corner of the cell: weight prod(t or 1 - t)
        weight, tap = 1, []
        for d in range(k):
            upper = corner >> d & 1
            weight = weight * (fractions[d] if upper else 1 - fractions[d])
            tap.append(base[d] + upper)
        out = out + _taps(x, tap) * weight.unsqueeze(1)
    return out


# ----- the op ------------------------------------------------------------------------------------------------
def _forward(x, grid, interpolation, padding, align_corners):
    return torch.grid_sampler(x, grid, interpolation, padding, align_corners)


def _kernel_crashes(x, grid, interpolation, padding) -> bool:
    """torch 2.13's CPU bilinear 2-d backward kernel (float32/float64) dies with a segmentation fault on a grid
    holding inf with reflection padding or NaN with border or reflection padding (tests/test_spatial.py):
    there the rules, the composed sampler, give the gradients instead."""
    return (x.dim() == 4 and interpolation == MODES["bilinear"] and padding != PADDINGS["zeros"]
            and x.dtype in (torch.float32, torch.float64) and not bool(torch.isfinite(grid).all()))


def _kernel(g, out, x, grid, needs, interpolation, padding, align_corners):
    """torch's fused backward: both first derivatives in one pass."""
    if _kernel_crashes(x, grid, interpolation, padding):
        return (None, None)
    backward = torch.ops.aten.grid_sampler_2d_backward if x.dim() == 4 else torch.ops.aten.grid_sampler_3d_backward
    gx, ggrid = backward(g, x, grid, interpolation, padding, align_corners, [bool(needs[0]), bool(needs[1])])
    return (gx if needs[0] else None, ggrid if needs[1] else None)


GRID_SAMPLE = defop("grid_sample", _forward, composed_rule(sample, 0), composed_rule(sample, 1), saves=(0, 1),
                    fused=_kernel)


def grid_sample(x, grid, interpolation: int, padding: int, align_corners: bool) -> Tensor:
    return apply(GRID_SAMPLE, x, grid, interpolation=interpolation, padding=padding, align_corners=bool(align_corners))
