"""Pooling over 2 or 3 spatial dims: max (with indices), average, adaptive max and adaptive average;
max unpooling. (1-d pooling is the 2-d op on a height of 1, as torch computes it: ``nn/functional/pooling.py``.)

Forwards and first backwards are torch's fused kernels. Each backward op is linear in
the upstream gradient, so its VJP is the adjoint of a linear map:

* average pooling's backward is the adjoint of the pooling itself: VJP = pool again;
* max pooling's backward scatters into the argmax positions; its adjoint gathers from
  them (``max_pool_gather``), and the gather's adjoint is a plain scatter-add
  (``max_pool_scatter``). Gather and scatter close the set, so double backward works;
* max unpooling writes its input at the indices: its VJP is the same gather.

Each backward op also takes the pooled input, as torch's backward kernels do: it only reads its
shape (and the indices), so its derivative there is 0 (``zero_gradient``), but under create_graph
the gradient is then in the input's graph, and a gradient penalty or third derivative through a
pooling layer gets zeros instead of an error, as in torch.

The ops of each rank are made by one factory per kind (``_max_pool_ops``, ...), named as torch's
kernels are (``max_pool2d``, ``max_pool3d_backward``, ...), so a new rank is one more call.
"""

from __future__ import annotations

import torch

from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

_aten = torch.ops.aten


def _shape_ref(t: torch.Tensor, shape) -> torch.Tensor:
    """A zero-storage tensor with ``shape`` for kernels that only read the input's size."""
    return t.new_empty(()).expand(shape)


# ----- max pooling -------------------------------------------------------------------
# The indices of a ``rank``-d max pooling count positions in each flattened (D,) H, W plane.
def _gather_forward(h, indices, shape, rank=2):
    flat = h.flatten(-rank).gather(-1, indices.flatten(-rank))
    return flat.view(indices.shape)


def _scatter_forward(g, indices, shape, rank=2):
    out = g.new_zeros(shape)
    out.flatten(-rank).scatter_add_(-1, indices.flatten(-rank), g.flatten(-rank))
    return out


MAX_POOL_GATHER = defop(
    "max_pool_gather",
    _gather_forward,
    # h's shape travels as an attribute: saving h itself would refuse an in-place write to it that torch's gather allows
    lambda g, out, h, indices, shape, rank=2: apply(MAX_POOL_SCATTER, g, indices=indices, shape=shape, rank=rank),
    saves=(),
)
MAX_POOL_SCATTER = defop(
    "max_pool_scatter",
    _scatter_forward,
    lambda h, out, g, indices, shape, rank=2: apply(MAX_POOL_GATHER, h, indices=indices, shape=shape, rank=rank),
    saves=(),
)


def _gather_rule(rank: int):
    """The VJP of a max-pooling backward (or an unpooling) in its upstream gradient: a gather at the indices."""
    return lambda h, out, g, *_, indices, **__: apply(MAX_POOL_GATHER, h, indices=indices, shape=tuple(h.shape),
                                                      rank=rank)


def _unbatched_contiguous(g: torch.Tensor, rank: int) -> torch.Tensor:
    """torch 2.13's CPU max_pool3d backward refuses an unbatched (4-D) upstream gradient laid out channels-last
    ("Unsupported memory format", tests/test_spatial.py); a copy in the plain layout has the same values."""
    return g.contiguous() if rank == 3 and g.dim() == 4 else g


def _max_pool_ops(rank: int):
    """``max_pool{rank}d`` (output, raw indices) and its backward op, torch's with-indices kernels."""
    forward = getattr(_aten, f"max_pool{rank}d_with_indices")
    kernel = getattr(_aten, f"max_pool{rank}d_with_indices_backward")
    backward = defop(
        f"max_pool{rank}d_backward",
        lambda g, x, kernel_size, stride, padding, dilation, ceil_mode, indices: kernel(
            _unbatched_contiguous(g, rank), x, kernel_size, stride, padding, dilation, ceil_mode, indices),
        _gather_rule(rank),
        zero_gradient,
        saves=(),
    )
    pool = defop(
        f"max_pool{rank}d",
        lambda x, kernel_size, stride, padding, dilation, ceil_mode: forward(
            x, kernel_size, stride, padding, dilation, ceil_mode),
        lambda g, out, x, aux, **a: apply(backward, g, x, indices=aux, **a),
        saves=(0,),
        aux=True,
    )
    return pool, backward


def _adaptive_max_pool_ops(rank: int):
    forward = getattr(_aten, f"adaptive_max_pool{rank}d")
    kernel = getattr(_aten, f"adaptive_max_pool{rank}d_backward")
    backward = defop(
        f"adaptive_max_pool{rank}d_backward",
        lambda g, x, indices: kernel(g, x, indices),
        _gather_rule(rank),
        zero_gradient,
        saves=(),
    )
    pool = defop(
        f"adaptive_max_pool{rank}d",
        lambda x, output_size: forward(x, output_size),
        lambda g, out, x, aux, output_size: apply(backward, g, x, indices=aux),
        saves=(0,),
        aux=True,
    )
    return pool, backward


MAX_POOL2D, MAX_POOL2D_BACKWARD = _max_pool_ops(2)
MAX_POOL3D, MAX_POOL3D_BACKWARD = _max_pool_ops(3)
ADAPTIVE_MAX_POOL2D, ADAPTIVE_MAX_POOL2D_BACKWARD = _adaptive_max_pool_ops(2)
ADAPTIVE_MAX_POOL3D, ADAPTIVE_MAX_POOL3D_BACKWARD = _adaptive_max_pool_ops(3)

# Unpooling writes x at the indices of a zero output (torch's kernels, which also check the indices);
# linear in x, its VJP gathers there (torch: max_pool_double_backward), and the gather's own VJP scatters back.
MAX_UNPOOL2D = defop(
    "max_unpool2d",
    lambda x, indices, output_size: _aten.max_unpool2d(x, indices, output_size),
    _gather_rule(2),
    saves=(),
)
MAX_UNPOOL3D = defop(
    "max_unpool3d",
    lambda x, indices, output_size, stride, padding: _aten.max_unpool3d(x, indices, output_size, stride, padding),
    _gather_rule(3),
    saves=(),
)


# ----- average pooling -----------------------------------------------------------------
def _avg_params(a: dict) -> tuple:
    return (a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"], a["divisor_override"])


def _avg_pool_ops(rank: int):
    """avg_pool is linear, so its backward's adjoint is avg_pool itself."""
    forward = getattr(_aten, f"avg_pool{rank}d")
    kernel = getattr(_aten, f"avg_pool{rank}d_backward")
    pool = defop(
        f"avg_pool{rank}d",
        lambda x, **a: forward(x, *_avg_params(a)),
        lambda g, out, x, **a: apply(backward, g, x, **a),
        saves=(0,),
    )
    backward = defop(
        f"avg_pool{rank}d_backward",
        lambda g, x, **a: kernel(g, x, *_avg_params(a)),
        lambda h, out, g, x, **a: apply(pool, h, **a),
        zero_gradient,
        saves=(),
    )
    return pool, backward


def _adaptive_avg_pool_ops(rank: int):
    forward = getattr(_aten, f"_adaptive_avg_pool{rank}d")
    kernel = getattr(_aten, f"_adaptive_avg_pool{rank}d_backward")
    pool = defop(
        f"adaptive_avg_pool{rank}d",
        lambda x, output_size, in_shape: forward(x, output_size),
        lambda g, out, x, **a: apply(backward, g, x, **a),
        saves=(0,),
    )
    backward = defop(
        f"adaptive_avg_pool{rank}d_backward",
        lambda g, x, output_size, in_shape: kernel(g, _shape_ref(g, in_shape)),
        lambda h, out, g, x, **a: apply(pool, h, **a),
        zero_gradient,
        saves=(),
    )
    return pool, backward


AVG_POOL2D, AVG_POOL2D_BACKWARD = _avg_pool_ops(2)
AVG_POOL3D, AVG_POOL3D_BACKWARD = _avg_pool_ops(3)
ADAPTIVE_AVG_POOL2D, ADAPTIVE_AVG_POOL2D_BACKWARD = _adaptive_avg_pool_ops(2)
ADAPTIVE_AVG_POOL3D, ADAPTIVE_AVG_POOL3D_BACKWARD = _adaptive_avg_pool_ops(3)
_MAX = {2: MAX_POOL2D, 3: MAX_POOL3D}
_ADAPTIVE_MAX = {2: ADAPTIVE_MAX_POOL2D, 3: ADAPTIVE_MAX_POOL3D}
_AVG = {2: AVG_POOL2D, 3: AVG_POOL3D}
_ADAPTIVE_AVG = {2: ADAPTIVE_AVG_POOL2D, 3: ADAPTIVE_AVG_POOL3D}


def max_pool(x, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[Tensor, torch.Tensor]:
    """Max pooling over ``len(kernel_size)`` (2 or 3) dims with normalised tuples; returns ``(output, raw indices)``."""
    return apply(_MAX[len(kernel_size)], x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                 ceil_mode=ceil_mode)


def adaptive_max_pool(x, output_size) -> tuple[Tensor, torch.Tensor]:
    return apply(_ADAPTIVE_MAX[len(output_size)], x, output_size=output_size)


def avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override) -> Tensor:
    return apply(_AVG[len(kernel_size)], x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool(x, output_size) -> Tensor:
    rank = len(output_size)
    if all(s == 1 for s in output_size):  # as torch: a mean over the plane, which keeps no input (only its shape)
        from neuronix.ops.reduce import mean  # reduce imports the elementwise ops this module does

        out = mean(x, tuple(range(-rank, 0)), keepdim=True)
        if rank == 2 and x.dim() == 4 and x.data.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        elif rank == 3 and x.dim() == 5 and x.data.is_contiguous(memory_format=torch.channels_last_3d):
            out = out.contiguous(memory_format=torch.channels_last_3d)
        return out
    return apply(_ADAPTIVE_AVG[rank], x, output_size=output_size, in_shape=tuple(x.shape))


def max_unpool(x, indices, output_size, stride, padding) -> Tensor:
    """Unpooling over ``len(output_size)`` (2 or 3) dims; ``indices`` raw."""
    if len(output_size) == 2:
        return apply(MAX_UNPOOL2D, x, indices=indices, output_size=output_size)
    return apply(MAX_UNPOOL3D, x, indices=indices, output_size=output_size, stride=stride, padding=padding)
