"""``pad`` in every torch mode: constant, reflect, replicate, circular.

Constant padding's adjoint is constant padding by the negated amounts (a crop), so it is
its own backward. The other modes gather each padded dim through an index map (for each
output position, the input position it copies); their backward scatter-adds through the
same map (``pad_backward``), whose adjoint is the padding again. Negative amounts crop, in
every mode and in any mix with positive ones, so the index maps are written for both signs.

torch's backward of reflect and replicate padding reads the input, so under create_graph
their gradient is in the input's graph (with derivative 0); ``pad_backward`` takes the input
as an anchor for the same reason, and a gradient penalty through them gets zeros, not an error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor


def _source_index(mode: str, size: int, left: int, right: int, device) -> torch.Tensor:
    """For each position of the padded dim, the input position it copies."""
    j = torch.arange(-left, size + right, device=device)  # output positions, in input coordinates
    if mode == "reflect":  # mirrored at the input's own ends, whatever is cropped
        return torch.where(j < 0, -j, torch.where(j >= size, 2 * (size - 1) - j, j))
    if mode == "replicate":
        return j.clamp(0, size - 1)
    # circular: torch crops first (negative amounts), then wraps around what is left of the input
    start, stop = max(-left, 0), size - max(-right, 0)
    return start + (j - start).remainder(stop - start)


def _pad_backward_forward(g, x, pad, mode, shape):
    for k in range(len(pad) // 2):
        dim = len(shape) - 1 - k
        index = _source_index(mode, shape[dim], pad[2 * k], pad[2 * k + 1], g.device)
        target = list(g.shape)
        target[dim] = shape[dim]
        g = g.new_zeros(target).index_add_(dim, index, g)
    return g


def _pad_grad(g, out, x, pad, mode, value, shape):
    if mode == "constant":
        return padded(g, tuple(-p for p in pad), "constant", 0.0)
    return apply(PAD_BACKWARD, g, x, pad=pad, mode=mode, shape=shape)


def _forward(x, pad, mode, value, shape):
    return F.pad(x, pad, mode, value)


PAD = defop("pad", _forward, _pad_grad, saves=())  # constant: its backward reads nothing
PAD_INDEXED = defop("pad_indexed", _forward, _pad_grad, saves=(0,))  # reflect/replicate
# circular: torch's is a composition of slices and cat, which keeps no input (so it may change in place
# afterwards); the backward's input is then no anchor either, as in torch
PAD_CIRCULAR = defop("pad_circular", _forward, _pad_grad, saves=())
PAD_BACKWARD = defop(
    "pad_backward",
    _pad_backward_forward,
    lambda h, out, g, x, pad, mode, shape: padded(h, pad, mode, None),
    zero_gradient,  # the input is only an anchor: the map does not depend on its values
    saves=(),
)


def padded(x, pad: tuple, mode: str, value) -> Tensor:
    """``F.pad`` on a neuronix tensor (arguments already checked)."""
    spec = PAD if mode == "constant" else PAD_CIRCULAR if mode == "circular" else PAD_INDEXED
    return apply(spec, x, pad=tuple(pad), mode=mode, value=value, shape=tuple(x.shape))
