"""Convolutions (1-d, 2-d, transposed) as one primitive plus its two backward ops.

``convolution`` is bilinear in (input, weight), so its VJPs are two more bilinear ops,
``convolution_backward_input`` and ``convolution_backward_weight`` (torch's fused
``convolution_backward`` kernel, one gradient each). The three ops close under
differentiation: by <h, B_in(g, w)> = <conv(h, w), g> and <k, B_w(g, x)> = <conv(x, k), g>,
every VJP of a backward op is again one of the three, so double backward costs no
extra rules and the first backward runs torch's fastest kernels.
"""

from __future__ import annotations

import torch

from neuronix.ops.registry import apply, defop
from neuronix.ops.spatial import composed_rule
from neuronix.tensor import Tensor

_aten = torch.ops.aten


def _params(attrs: dict) -> tuple:
    return (attrs["stride"], attrs["padding"], attrs["dilation"], attrs["transposed"], attrs["output_padding"],
            attrs["groups"])


def _conv_forward(x, w, b, **attrs):
    return _aten.convolution(x, w, b, *_params(attrs))


def _backward_input_forward(g, w, x_ref, **attrs):
    return _aten.convolution_backward(g, x_ref, w, None, *_params(attrs), [True, False, False])[0]


def _backward_weight_forward(g, x, w_ref, **attrs):
    return _aten.convolution_backward(g, x, w_ref, None, *_params(attrs), [False, True, False])[1]


def _bias_kernel(g, out, x, w, b, needs, **attrs):
    """The bias gradient as torch's ``convolution_backward`` sums it (its order, bit for bit). The
    input and weight gradients are already one kernel each through their rules (the two backward
    ops above), so the kernel leaves them to the rules (``None``)."""
    if not needs[2]:
        return (None, None, None)
    size = [w.shape[1] * attrs["groups"] if attrs["transposed"] else w.shape[0]]
    return (None, None, _aten.convolution_backward(g, x, w, size, *_params(attrs), [False, False, True])[2])


CONVOLUTION = defop(
    "convolution",
    _conv_forward,
    lambda g, out, x, w, b, **a: apply(BACKWARD_INPUT, g, w, x.data, **a),
    lambda g, out, x, w, b, **a: apply(BACKWARD_WEIGHT, g, x, w.data, **a),
    lambda g, out, x, w, b, **a: g.sum((0, *range(2, g.ndim))),
    saves=(0, 1),
    fused=_bias_kernel,
)
# d/dg of B_in(g, w) is conv(h, w); d/dw is the weight gradient of conv(h, w) under g.
BACKWARD_INPUT = defop(
    "convolution_backward_input",
    _backward_input_forward,
    lambda h, out, g, w, x_ref, **a: apply(CONVOLUTION, h, w, None, **a),
    lambda h, out, g, w, x_ref, **a: apply(BACKWARD_WEIGHT, g, h, w.data, **a),
    None,
    saves=(0, 1),
)
# d/dg of B_w(g, x) is conv(x, k); d/dx is the input gradient of conv(x, k) under g.
BACKWARD_WEIGHT = defop(
    "convolution_backward_weight",
    _backward_weight_forward,
    lambda k, out, g, x, w_ref, **a: apply(CONVOLUTION, x, k, None, **a),
    lambda k, out, g, x, w_ref, **a: apply(BACKWARD_INPUT, g, k, x.data, **a),
    None,
    saves=(0, 1),
)


def convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups) -> Tensor:
    """``aten.convolution`` with all parameters as tuples (the checks live in ``nn.functional``)."""
    return apply(CONVOLUTION, x, w, b, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
                 transposed=transposed, output_padding=tuple(output_padding), groups=groups)


# ----- conv_tbc: a (time, batch, channels) 1-d convolution -------------------------------------------------
# torch's own kernels (a sum of matrix products per kernel tap) give its values, and their rounding and NaN
# pattern differ from a conv1d's; torch differentiates conv_tbc_backward too, so the rules record conv1d on the
# permuted tensors, the same map, for the higher derivatives.
def _tbc_composed(x, w, b, pad):
    out = convolution(x.permute(1, 2, 0), w.permute(2, 1, 0), b, (1,), (pad,), (1,), False, (0,), 1)
    return out.permute(2, 0, 1)


def _tbc_kernel(g, out, x, w, b, needs, pad):
    return _aten.conv_tbc_backward(g, x, w, b, pad)


CONV_TBC = defop(
    "conv_tbc",
    lambda x, w, b, pad: torch.conv_tbc(x, w, b, pad),
    *(composed_rule(_tbc_composed, i) for i in range(3)),
    saves=(0, 1, 2),
    fused=_tbc_kernel,
)


def conv_tbc(x, w, b, pad: int) -> Tensor:
    return apply(CONV_TBC, x, w, b, pad=pad)
