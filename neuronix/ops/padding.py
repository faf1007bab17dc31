"""``pad`` in every torch mode: constant, reflect, replicate, circular.

Constant padding's adjoint is constant padding by the negated amounts (a crop), so it is
its own backward. The other modes gather each padded dim through an index map; their
backward scatter-adds through the same map (``pad_backward``), whose adjoint is the
padding again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor


def _source_index(mode: str, size: int, left: int, right: int, device) -> torch.Tensor:
    """For each position of the padded dim, the input position it copies."""
    j = torch.arange(-left, size + right, device=device)
    if mode == "reflect":
        return torch.where(j < 0, -j, torch.where(j >= size, 2 * (size - 1) - j, j))
    if mode == "replicate":
        return j.clamp(0, size - 1)
    return j.remainder(size)  # circular


def _pad_backward_forward(g, pad, mode, shape):
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
    return apply(PAD_BACKWARD, g, pad=pad, mode=mode, shape=shape)


PAD = defop("pad", lambda x, pad, mode, value, shape: F.pad(x, pad, mode, value), _pad_grad, saves=(), torch_ref=F.pad)
PAD_BACKWARD = defop(
    "pad_backward",
    _pad_backward_forward,
    lambda h, out, g, pad, mode, shape: padded(h, pad, mode, None),
    saves=(),
)


def padded(x, pad: tuple, mode: str, value) -> Tensor:
    """``F.pad`` on a neuronix tensor (arguments already checked)."""
    return apply(PAD, x, pad=tuple(pad), mode=mode, value=value, shape=tuple(x.shape))
