"""Pointwise activation primitives of ``nn.functional``: torch kernels forward, VJPs in neuronix ops.

Each op is a plain differentiable rule plus, as ``fused=``, torch's aten ``*_backward`` kernel (one
kernel instead of a chain of elementwise ops). The engine alone chooses: the kernel on a plain
backward, the rule, valued by the kernel, under ``create_graph`` (so higher derivatives are recorded
and first derivatives agree bit for bit). The rule takes each branch exactly where the kernel does
(``x <= 0`` or ``x < 0`` at a kink, which side a NaN input falls on); branches are chosen with
``select`` (never a product with a 0/1 mask, which turns an infinite upstream gradient into NaN), on
masks computed from the raw values: they are piecewise constant, so they carry no derivative, exactly
as in torch's formulas. The selection is anchored to the input, as torch's backward reads it: under
create_graph the gradient of a piecewise-linear activation is in the input's graph (its derivative
there is 0, not an error). ``relu``, ``tanh`` and ``sigmoid`` are core elementwise ops; the public
functions, with torch's signatures and argument checks, are in ``nn/functional/activations.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neuronix.ops.elementwise import cosh, erf, exp, masked, select, sigmoid, tanh
from neuronix.ops.registry import apply, defop
from neuronix.tensor import unwrap

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _gelu_grad(g, out, x, approximate):
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        inner = (x + x * x * x * 0.044715) * k
        d_inner = (x * x * (3 * 0.044715) + 1) * k
        # sech^2 as 1 / cosh^2 rather than 1 - tanh^2: no cancellation in the tails, so the recorded
        # second derivative keeps float32 accuracy too. Past |inner| = 40 (sech^2 < 1e-34) it is 0,
        # computed on a clamped copy so that cosh never overflows into the recorded graph; an
        # infinite input still meets 0 * inf = NaN there, as in torch's kernel.
        sech2 = masked(cosh(inner.clamp(-40.0, 40.0)).square().reciprocal(), inner.data.abs() <= 40.0)
        # (tanh(inner) + 1) / 2 as sigmoid(2 inner): the sum cancels in the negative tail (float32 lost
        # a quarter of the derivative at x = -5, found by the forward-mode check)
        return g * (sigmoid(inner * 2) + x * 0.5 * sech2 * d_inner)
    cdf = (erf(x * (1 / math.sqrt(2.0))) + 1) * 0.5
    pdf = exp(x * x * -0.5) * (1 / math.sqrt(2.0 * math.pi))
    return g * (cdf + x * pdf)


def _silu_grad(g, out, x):
    s = sigmoid(x)
    return g * s * (x * (1 - s) + 1)


def _elu_grad(g, out, x, alpha, scale=1.0):
    # torch's kernel takes the exponential branch, scale * alpha * exp(x), for x <= 0 (never for NaN),
    # but torch's second derivative is 0 at x == 0: so the branch reads x only where x < 0 (exp(0)
    # elsewhere: the same value at 0, no derivative there, no overflow for large x in the graph)
    negative = exp(select(x.data < 0, x, 0.0))
    return select(x.data <= 0, g * (alpha * scale) * negative, g * scale, anchor=x)


def _leaky_relu_grad(g, out, x, negative_slope):
    # g * slope, not masked: torch's kernel multiplies too, so a slope of 0 meets inf * 0 = NaN as there
    return select(x.data > 0, g, g * negative_slope, anchor=x)


def _softplus_grad(g, out, x, beta, threshold):
    # sigmoid(beta x) up to the threshold, 1 past it, as torch's kernel; torch's second derivative is
    # already 0 at beta x == threshold, so there the sigmoid reads a constant of the same value
    bx = x * beta
    below = select(bx.data >= threshold, float(threshold), bx)
    return select(bx.data > threshold, g, g * sigmoid(below), anchor=x)


def _hardtanh_grad(g, out, x, min_val, max_val):
    # 0 on and outside the bounds (relu's convention at its kink); a NaN input passes the gradient
    return masked(g, ~((x.data <= min_val) | (x.data >= max_val)), anchor=x)


def _hardswish_grad(g, out, x):
    # torch's kernel: 0 for x <= -3, the slope x/3 + 1/2 for -3 < x < 3, 1 from 3 on (and for NaN)
    middle = g * (x / 3 + 0.5)
    return select(x.data <= -3, 0.0, select(x.data < 3, middle, g, anchor=x), anchor=x)


def _mish_grad(g, out, x):
    t = tanh(apply(SOFTPLUS, x, beta=1.0, threshold=20.0))
    return g * (t + x * sigmoid(x) * (1 - t * t))


_aten = torch.ops.aten


def _aten_backward(kernel):
    """``fused=``: torch's aten backward ``kernel(g, x, **attrs)`` for a one-input activation, the one
    kernel torch's own autograd runs on a plain backward (the rules are a chain of elementwise ops)."""

    def fused(g, out, x, *, needs, **attrs):
        return (kernel(unwrap(g), unwrap(x), **attrs) if needs[0] else None,)

    return fused


GELU = defop("gelu", lambda x, approximate: F.gelu(x, approximate=approximate), _gelu_grad,
             fused=_aten_backward(lambda g, x, approximate: _aten.gelu_backward(g, x, approximate=approximate)))
SILU = defop("silu", F.silu, _silu_grad, fused=_aten_backward(_aten.silu_backward))
ELU = defop("elu", lambda x, alpha: F.elu(x, alpha), _elu_grad,
            fused=_aten_backward(lambda g, x, alpha: _aten.elu_backward(g, alpha, 1.0, 1.0, False, x)))
LEAKY_RELU = defop("leaky_relu", lambda x, negative_slope: F.leaky_relu(x, negative_slope), _leaky_relu_grad,
                   fused=_aten_backward(lambda g, x, negative_slope: _aten.leaky_relu_backward(g, x, negative_slope,
                                                                                                False)))
SOFTPLUS = defop("softplus", lambda x, beta, threshold: F.softplus(x, beta, threshold), _softplus_grad,
                 fused=_aten_backward(_aten.softplus_backward))
HARDTANH = defop("hardtanh", lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val), _hardtanh_grad,
                 fused=_aten_backward(_aten.hardtanh_backward))
HARDSWISH = defop("hardswish", F.hardswish, _hardswish_grad, fused=_aten_backward(_aten.hardswish_backward))
MISH = defop("mish", F.mish, _mish_grad, fused=_aten_backward(_aten.mish_backward))
SELU = defop("selu", F.selu, lambda g, out, x: _elu_grad(g, out, x, SELU_ALPHA, SELU_SCALE),
             fused=_aten_backward(lambda g, x: _aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, False, x)))


# log(sigmoid(x)), smooth everywhere: its derivative sigmoid(-x) has no kink to choose a side of
# (a composition through min(x, 0) and |x| does, and gets 1 - 0 instead of 1/2 at x = 0); the
# gradient of binary_cross_entropy_with_logits with respect to its target reads it
LOG_SIGMOID = defop("log_sigmoid", F.logsigmoid, lambda g, out, x: g * sigmoid(-x))
