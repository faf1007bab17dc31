"""2-d pooling: max (with indices), average, adaptive max and adaptive average.

Forwards and first backwards are torch's fused kernels. Each backward op is linear in
the upstream gradient, so its VJP is the adjoint of a linear map:

* average pooling's backward is the adjoint of the pooling itself: VJP = pool again;
* max pooling's backward scatters into the argmax positions; its adjoint gathers from
  them (``max_pool_gather``), and the gather's adjoint is a plain scatter-add
  (``max_pool_scatter``). Gather and scatter close the set, so double backward works.

Each backward op also takes the pooled input, as torch's backward kernels do: it only reads its
shape (and the indices), so its derivative there is 0 (``zero_gradient``), but under create_graph
the gradient is then in the input's graph, and a gradient penalty or third derivative through a
pooling layer gets zeros instead of an error, as in torch.
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
def _gather_forward(h, indices, shape):
    flat = h.flatten(-2).gather(-1, indices.flatten(-2))
    return flat.view(indices.shape)


def _scatter_forward(g, indices, shape):
    out = g.new_zeros(shape)
    out.flatten(-2).scatter_add_(-1, indices.flatten(-2), g.flatten(-2))
    return out


MAX_POOL_GATHER = defop(
    "max_pool_gather",
    _gather_forward,
    # h's shape travels as an attribute: saving h itself would refuse an in-place write to it that torch's gather allows
    lambda g, out, h, indices, shape: apply(MAX_POOL_SCATTER, g, indices=indices, shape=shape),
    saves=(),
)
MAX_POOL_SCATTER = defop(
    "max_pool_scatter",
    _scatter_forward,
    lambda h, out, g, indices, shape: apply(MAX_POOL_GATHER, h, indices=indices, shape=shape),
    saves=(),
)


def _max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    return _aten.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode)


MAX_POOL2D_BACKWARD = defop(
    "max_pool2d_backward",
    lambda g, x, kernel_size, stride, padding, dilation, ceil_mode, indices: _aten.max_pool2d_with_indices_backward(
        g, x, kernel_size, stride, padding, dilation, ceil_mode, indices
    ),
    lambda h, out, g, x, indices, **_: apply(MAX_POOL_GATHER, h, indices=indices, shape=h.shape),
    zero_gradient,
    saves=(),
)
MAX_POOL2D = defop(
    "max_pool2d",
    _max_pool2d_forward,
    lambda g, out, x, aux, **a: apply(MAX_POOL2D_BACKWARD, g, x, indices=aux, **a),
    saves=(0,),
    aux=True,
)

ADAPTIVE_MAX_POOL2D_BACKWARD = defop(
    "adaptive_max_pool2d_backward",
    lambda g, x, indices: _aten.adaptive_max_pool2d_backward(g, x, indices),
    lambda h, out, g, x, indices: apply(MAX_POOL_GATHER, h, indices=indices, shape=h.shape),
    zero_gradient,
    saves=(),
)
ADAPTIVE_MAX_POOL2D = defop(
    "adaptive_max_pool2d",
    lambda x, output_size: _aten.adaptive_max_pool2d(x, output_size),
    lambda g, out, x, aux, output_size: apply(ADAPTIVE_MAX_POOL2D_BACKWARD, g, x, indices=aux),
    saves=(0,),
    aux=True,
)


# ----- average pooling -----------------------------------------------------------------
def _avg_params(a: dict) -> tuple:
    return (a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"], a["divisor_override"])


AVG_POOL2D = defop(
    "avg_pool2d",
    lambda x, **a: _aten.avg_pool2d(x, *_avg_params(a)),
    lambda g, out, x, **a: apply(AVG_POOL2D_BACKWARD, g, x, **a),
    saves=(0,),
)
# avg_pool2d is linear, so its backward's adjoint is avg_pool2d itself.
AVG_POOL2D_BACKWARD = defop(
    "avg_pool2d_backward",
    lambda g, x, **a: _aten.avg_pool2d_backward(g, x, *_avg_params(a)),
    lambda h, out, g, x, **a: apply(AVG_POOL2D, h, **a),
    zero_gradient,
    saves=(),
)

ADAPTIVE_AVG_POOL2D = defop(
    "adaptive_avg_pool2d",
    lambda x, output_size, in_shape: _aten._adaptive_avg_pool2d(x, output_size),
    lambda g, out, x, **a: apply(ADAPTIVE_AVG_POOL2D_BACKWARD, g, x, **a),
    saves=(0,),
)
ADAPTIVE_AVG_POOL2D_BACKWARD = defop(
    "adaptive_avg_pool2d_backward",
    lambda g, x, output_size, in_shape: _aten._adaptive_avg_pool2d_backward(g, _shape_ref(g, in_shape)),
    lambda h, out, g, x, **a: apply(ADAPTIVE_AVG_POOL2D, h, **a),
    zero_gradient,
    saves=(),
)


def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[Tensor, torch.Tensor]:
    """Max pooling with normalised 2-tuples; returns ``(output, raw indices)``."""
    return apply(MAX_POOL2D, x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                 ceil_mode=ceil_mode)


def adaptive_max_pool2d(x, output_size) -> tuple[Tensor, torch.Tensor]:
    return apply(ADAPTIVE_MAX_POOL2D, x, output_size=output_size)


def avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override) -> Tensor:
    return apply(AVG_POOL2D, x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    if tuple(output_size) == (1, 1):  # as torch: a mean over the plane, which keeps no input (only its shape)
        from neuronix.ops.reduce import mean  # reduce imports the elementwise ops this module does

        out = mean(x, (-1, -2), keepdim=True)
        if x.dim() == 4 and x.data.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out
    return apply(ADAPTIVE_AVG_POOL2D, x, output_size=output_size, in_shape=tuple(x.shape))
