"""Elementwise ops: forward by torch kernel, one VJP per input written in neuronix ops.

Inputs are broadcast by torch in the forward; VJPs return full-size gradients and
the engine reduces them to each input's shape, so no rule here handles broadcasting.
"""

from __future__ import annotations

import math
import operator

import torch

from neuronix.ops.conventions import convention
from neuronix.ops.registry import ALL, apply, defop, public
from neuronix.tensor import Tensor, unwrap


def zero_gradient(g, *_, **__):
    """The gradient of a piecewise-constant op (floor, sign, ...): exactly 0, as torch's.

    Not ``g * 0``: an infinite or NaN upstream gradient would turn that into NaN.
    """
    return torch.zeros_like(g.data)


def _unary(name: str, forward, vjp, *, saves_out: bool = False, fused=None, reads_input: bool | None = None,
           doc: str = ""):
    if reads_input is None:
        reads_input = not saves_out and vjp is not zero_gradient
    spec = defop(name, forward, vjp, saves=ALL if reads_input else (), saves_out=saves_out, fused=fused)

    def fn(input):
        return apply(spec, input)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc or f"Elementwise ``torch.{name}`` (differentiable)."
    return public(fn)


def kernel_valued(rule: Tensor, kernel: torch.Tensor, g: Tensor) -> Tensor:
    """The recorded gradient ``rule`` carrying the value of torch's fused backward ``kernel``.

    A plain backward runs torch's fused kernel; under create_graph a VJP records its formula in
    neuronix ops instead. Both must give the same first derivative, but where torch's kernels do not
    even agree with themselves (a NaN input lands on one side of a branch in the vectorised lanes
    and on the other in the scalar tail of the same call) no formula can: only the kernel's value
    matches torch. So the result is the kernel's value everywhere: exactly (the rounding difference
    added back as a constant) where the formula agrees with it, as a constant (derivative 0 at that
    element) where it does not. Selected, not ``rule + (kernel - rule)``: inf - inf would be NaN.
    Agreement is judged against the scale of the upstream gradient ``g`` (the local derivatives are
    O(1)): rounding differs by a few ulps of it (of the dtype's), a different branch by the order of it.
    """
    r = rule.data
    # a few ulps of the dtype (1e-4 at least): float16/bfloat16 formulas round 1e-3 .. 1e-2 away from the kernel, and a
    # fixed 1e-4 would call that a different branch, making the element a constant and its second derivative 0
    scale = max(1e-4, 8 * torch.finfo(r.dtype).eps) if r.dtype.is_floating_point else 1e-4
    close = (r == kernel) | (r.isnan() & kernel.isnan()) | ((r - kernel).abs() <= (kernel.abs() + g.data.abs()) * scale)
    exact = rule + Tensor._make(torch.where(close & r.isfinite(), kernel - r, 0.0), None)
    return select(close, exact, Tensor._make(kernel, None))


def _from_output(kernel):
    """A fused backward kernel ``kernel(g, out)`` of a unary op that saves its output: torch's own
    (one kernel, as torch's autograd runs; under create_graph it values the rule, ``kernel_valued``)."""

    def fused(g, out, x, needs):
        return (kernel(g, out),)

    return fused


_aten = torch.ops.aten


# ----- unary math ------------------------------------------------------------------
exp = _unary("exp", torch.exp, lambda g, out, x: g * out, saves_out=True)
expm1 = _unary("expm1", torch.expm1, lambda g, out, x: g * (out + 1), saves_out=True)
log = _unary("log", torch.log, lambda g, out, x: g / x)
log1p = _unary("log1p", torch.log1p, lambda g, out, x: g / (x + 1))
log2 = _unary("log2", torch.log2, lambda g, out, x: g / (x * math.log(2.0)))
log10 = _unary("log10", torch.log10, lambda g, out, x: g / (x * math.log(10.0)))
sqrt = _unary("sqrt", torch.sqrt, lambda g, out, x: g / (out * 2), saves_out=True)
rsqrt = _unary("rsqrt", torch.rsqrt, lambda g, out, x: g * out.pow(3) * -0.5, saves_out=True)


def _abs_grad(g, out, x):
    if x.dtype.is_complex:  # torch's g * sgn(x); complex rules live in ops/complex.py
        from neuronix.ops.complex import abs_complex_grad

        return abs_complex_grad(g, out, x)
    return g * x.sign()


abs = _unary("abs", torch.abs, _abs_grad)
sign = _unary("sign", torch.sign, zero_gradient)
neg = _unary("neg", torch.neg, lambda g, out, x: -g, reads_input=False)
sin = _unary("sin", torch.sin, lambda g, out, x: g * x.cos())
cos = _unary("cos", torch.cos, lambda g, out, x: -(g * x.sin()))
tan = _unary("tan", torch.tan, lambda g, out, x: g * (out * out + 1), saves_out=True)
sinh = _unary("sinh", torch.sinh, lambda g, out, x: g * x.cosh())
cosh = _unary("cosh", torch.cosh, lambda g, out, x: g * x.sinh())
tanh = _unary("tanh", torch.tanh, lambda g, out, x: g * (1 - out * out), saves_out=True,
              fused=_from_output(_aten.tanh_backward.default))
sigmoid = _unary("sigmoid", torch.sigmoid, lambda g, out, x: g * out * (1 - out), saves_out=True,
                 fused=_from_output(_aten.sigmoid_backward.default))
relu = _unary("relu", torch.relu, lambda g, out, x: masked(g, ~(out.data <= 0), anchor=out), saves_out=True,
              fused=_from_output(lambda g, y: _aten.threshold_backward.default(g, y, 0)))
reciprocal = _unary("reciprocal", torch.reciprocal, lambda g, out, x: -(g * out * out), saves_out=True)
square = _unary("square", torch.square, lambda g, out, x: g * x * 2)
erf = _unary("erf", torch.erf, lambda g, out, x: g * (2 / math.sqrt(math.pi)) * (-(x * x)).exp())
floor = _unary("floor", torch.floor, zero_gradient)
ceil = _unary("ceil", torch.ceil, zero_gradient)
trunc = _unary("trunc", torch.trunc, zero_gradient)
frac = _unary("frac", torch.frac, lambda g, out, x: g, reads_input=False)

_ROUND = defop("round", torch.round, zero_gradient, saves=())


@public
def round(input, *, decimals: int = 0):
    """``torch.round`` (zero gradient, as torch)."""
    return apply(_ROUND, input, decimals=decimals)


# ----- binary arithmetic -------------------------------------------------------------
_ADD = defop("add", operator.add, lambda g, out, x, y: g, lambda g, out, x, y: g, saves=())
_SUB = defop("sub", operator.sub, lambda g, out, x, y: g, lambda g, out, x, y: -g, saves=())
_MUL = defop("mul", operator.mul, lambda g, out, x, y: g * y, lambda g, out, x, y: g * x, reads=((1,), (0,)))
# -g * ((x / y) / y), grouped as torch groups it: where a factor is 0 or inf the grouping decides
# between inf and NaN, and the conformance contract includes those patterns
_DIV = defop("div", operator.truediv, lambda g, out, x, y: g / y, lambda g, out, x, y: -g * ((x / y) / y),
              reads=((1,), (0, 1)))


def _scaled(other, alpha):
    return other if alpha == 1 else other * alpha


@public
def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting and torch's type promotion."""
    return apply(_ADD, input, _scaled(other, alpha))


@public
def sub(input, other, *, alpha=1):
    """``input - alpha * other`` with broadcasting and torch's type promotion."""
    return apply(_SUB, input, _scaled(other, alpha))


@public
def mul(input, other):
    """Elementwise product with broadcasting."""
    return apply(_MUL, input, other)


_FLOOR_DIVIDE = defop("floor_divide", torch.floor_divide, zero_gradient, zero_gradient, saves=())
_TRUNC_DIVIDE = defop(
    "trunc_divide", lambda x, y: torch.div(x, y, rounding_mode="trunc"), zero_gradient, zero_gradient, saves=(),
)


@public
def div(input, other, *, rounding_mode: str | None = None):
    """True division, or ``rounding_mode='floor'``/``'trunc'`` (zero gradient, as torch)."""
    if rounding_mode is None:
        return apply(_DIV, input, other)
    if rounding_mode == "floor":
        return apply(_FLOOR_DIVIDE, input, other)
    if rounding_mode == "trunc":
        return apply(_TRUNC_DIVIDE, input, other)
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


@public
def floor_divide(input, other):
    """``input // other`` (zero gradient, as torch)."""
    return apply(_FLOOR_DIVIDE, input, other)


_REMAINDER = defop(
    "remainder", operator.mod, lambda g, out, x, y: g, lambda g, out, x, y: -(g * floor_divide(x, y)))


@public
def remainder(input, other):
    """Python-style modulus ``input % other``."""
    return apply(_REMAINDER, input, other)


true_divide = public(div, name="true_divide")
multiply = public(mul, name="multiply")
subtract = public(sub, name="subtract")
divide = public(div, name="divide")
negative = public(neg, name="negative")


def _pow_base_grad(g, out, x, y):
    # grouped as torch: g * (y * x^(y-1)); an exponent of exactly 0 gives exactly 0 (the constant 1)
    if isinstance(y, (int, float)):
        return zero_gradient(g) if y == 0 else g * (x.pow(y - 1) * y)
    return where(y.data == 0, 0.0, g * (y * x.pow(y - 1)))


def _pow_exponent_grad(g, out, x, y):
    # d/dy x^y = x^y log x. At x == 0 with y >= 0 the limit is 0 (0^y is constant there), not
    # 0 * -inf; with y < 0, 0^y = inf and the gradient is inf * -inf = -inf, as torch's.
    if isinstance(x, (Tensor, torch.Tensor)):
        return g * where((x.data == 0) & (y.data >= 0), 0.0, out * x.log())
    log_x = math.log(x) if x > 0 else -math.inf if x == 0 else math.nan
    if x == 0:
        return g * where(y.data >= 0, 0.0, out * log_x)
    return g * (out * log_x)


_POW = defop("pow", operator.pow, _pow_base_grad, _pow_exponent_grad, saves_out=True)
# A number exponent: only the base's rule runs, and it reads the base alone; as torch's, the output is
# not kept, so changing it in place afterwards is no error.
_POW_NUMBER_EXPONENT = defop("pow_number_exponent", operator.pow, _pow_base_grad, saves=(0, 1))


@public
def pow(input, exponent):
    """``input ** exponent``; either side may be a tensor or a Python number."""
    return apply(_POW_NUMBER_EXPONENT if isinstance(exponent, (int, float)) else _POW, input, exponent)


def _extremum_grad(g, x, y, loses):
    """Gradient of ``maximum``/``minimum`` for input ``x``: 0 where ``loses(x, y)``, half at a tie.

    A NaN in either input wins both comparisons' negation: both inputs get the whole gradient there,
    as torch's. The half is ``g * 0.5`` (exact); the zero comes from ``masked``, never ``g * 0``.
    """
    xd, yd = x.data, y.data
    half = torch.where(xd == yd, 0.5, 1.0).to(torch.promote_types(xd.dtype, yd.dtype))
    return masked(g * half, ~loses(xd, yd))


_MAXIMUM = defop(
    "maximum",
    torch.maximum,
    lambda g, out, x, y: _extremum_grad(g, x, y, torch.lt),
    lambda g, out, x, y: _extremum_grad(g, y, x, torch.lt),
)
_MINIMUM = defop(
    "minimum",
    torch.minimum,
    lambda g, out, x, y: _extremum_grad(g, x, y, torch.gt),
    lambda g, out, x, y: _extremum_grad(g, y, x, torch.gt),
)


@public
def maximum(input, other):
    """Elementwise maximum; equal inputs share the gradient, as torch."""
    return apply(_MAXIMUM, input, other)


@public
def minimum(input, other):
    """Elementwise minimum; equal inputs share the gradient, as torch."""
    return apply(_MINIMUM, input, other)


# ----- selection and clamping ---------------------------------------------------------

# One primitive selects elementwise, and every rule that drops part of a gradient goes through it
# (``masked``): a selection, unlike ``g * mask``, leaves exactly 0 where the mask is off even when g
# holds inf or NaN there, as torch's rules do. Its VJPs are selections again, so it closes under
# differentiation. ``anchor`` (optional, not selected from) is a tensor the selection is taken to
# depend on with derivative 0: torch's backward of relu, leaky_relu, hardtanh, ... reads the input,
# so under create_graph its gradient is in the input's graph even where it is piecewise constant,
# and a gradient penalty or a third derivative gets zeros instead of an error. Anchoring gives
# Neuronix's rules the same property.
def _select_forward(condition, input, other, anchor):
    return torch.where(condition, input, other)


def _no_gradient_to_anchor(g, out, *inputs, **attrs):
    """The anchor's gradient (the last input): exactly 0, shaped as the anchor, which may be larger than ``g``."""
    return torch.zeros_like(inputs[-1].data)


_WHERE = defop(
    "where",
    _select_forward,
    None,
    lambda g, out, c, x, y, anchor: select(c, g, 0.0, anchor),
    lambda g, out, c, x, y, anchor: select(c, 0.0, g, anchor),
    _no_gradient_to_anchor,
    saves=(0, 3),
)


def select(condition, input, other, anchor=None) -> Tensor:
    """``torch.where(condition, input, other)`` for rules; ``anchor`` joins the graph with derivative 0."""
    return apply(_WHERE, condition, input, other, anchor)


# ``value`` itself, recorded as depending on ``anchor`` with derivative 0: a backward node's every
# gradient is in the graph when one of its inputs is (as torch's), whatever its formula reads.
_ANCHORED = defop("anchored", lambda value, anchor: value, lambda g, out, value, anchor: g, _no_gradient_to_anchor,
                  saves=(1,))


def anchored(value, anchor) -> Tensor:
    """``value``, in the graph of ``anchor`` with a zero derivative (see ``_ANCHORED``)."""
    return apply(_ANCHORED, value, anchor)


def masked(g, mask, anchor=None) -> Tensor:
    """``g`` where ``mask``, exactly 0 elsewhere (even where ``g`` is inf or NaN): the one way a rule
    drops part of a gradient. Differentiable in ``g``; see ``select`` for ``anchor``."""
    return apply(_WHERE, mask, g, 0.0, anchor)


@public
def where(condition, input=None, other=None):
    """``input`` where ``condition`` else ``other``; with one argument, ``nonzero(as_tuple=True)``."""
    if input is None and other is None:
        return tuple(Tensor._make(t, None) for t in torch.where(unwrap(condition)))
    cond = unwrap(condition)
    if not isinstance(cond, torch.Tensor) or cond.dtype != torch.bool:
        raise TypeError(f"where: condition must be a bool tensor, got {getattr(cond, 'dtype', type(cond).__name__)}")
    if not isinstance(unwrap(input), torch.Tensor) and not isinstance(unwrap(other), torch.Tensor):
        input = torch.as_tensor(input, device=cond.device)
    return apply(_WHERE, cond, input, other, None)


@public(function=False, name="where")
def _where_method(self, condition, other):
    """``Tensor.where(condition, other)``: ``self`` where ``condition`` else ``other`` (as torch)."""
    return where(condition, self, other)


# Number bounds: whether an input exactly on a bound gets the gradient depends on the torch version
# (see ``conventions``); tensor bounds keep the closed interval [min, max].
_SCALAR_BOUNDS_CLOSED = convention("clamp_scalar_bounds_closed")


def _inside(x, bound, closed_op, open_op):
    b = unwrap(bound)
    op = closed_op if isinstance(b, torch.Tensor) or _SCALAR_BOUNDS_CLOSED else open_op
    return op(x, b)


_TENSOR_BOUNDS_SPLIT = convention("clamp_tensor_bounds_split_ties")


def _split_weights(x, lo, hi) -> tuple:
    """Torch >= 2.14's share of the gradient for ``(x, min, max)`` of a clamp with both bounds tensors.

    The input keeps the gradient unless it is strictly outside (NaN compares false, so a NaN keeps
    it); the bound that is the result gets it (max also wherever min > max); ties split 1/2.
    """
    half = torch.tensor(0.5, dtype=x.dtype, device=x.device)
    one, zero = torch.ones_like(half), torch.zeros_like(half)
    ordered, valid = lo < hi, lo <= hi
    tie = ordered & ((x == lo) | (x == hi))
    wx = torch.where(tie, half, torch.where(~(x < lo) & ~(x > hi), one, zero))
    wlo = torch.where(ordered & (x == lo), half, torch.where((x < lo) & valid, one, zero))
    whi = torch.where(ordered & (x == hi), half, torch.where(((x > hi) & valid) | (hi < lo), one, zero))
    return wx, wlo, whi


def _split_grad(g, x, lo, hi, which: int):
    if lo is None or hi is None:  # one tensor bound: torch >= 2.14 differentiates it as maximum/minimum
        bound, loses = (lo, torch.lt) if hi is None else (hi, torch.gt)
        return _extremum_grad(g, x, bound, loses) if which == 0 else _extremum_grad(g, bound, x, loses)
    weight = _split_weights(x.data, lo.data, hi.data)[which]
    return masked(g, weight != 0) * weight


def _tensor_bounds(lo, hi) -> bool:
    return _TENSOR_BOUNDS_SPLIT and isinstance(unwrap(lo if lo is not None else hi), torch.Tensor)


def _clamp_input_grad(g, out, x, lo, hi):
    if _tensor_bounds(lo, hi):
        return _split_grad(g, x, lo, hi, 0)
    # NaN compares false both ways: a NaN input gets no gradient, as torch's
    keep = None
    if lo is not None:
        keep = _inside(x.data, lo, torch.ge, torch.gt)
    if hi is not None:
        above = _inside(x.data, hi, torch.le, torch.lt)
        keep = above if keep is None else keep & above
    return masked(g, keep)


def _clamp_min_grad(g, out, x, lo, hi):
    if _tensor_bounds(lo, hi):
        return _split_grad(g, x, lo, hi, 1)
    # torch: where min >= max the result is max, so min gets no gradient there (at min == max neither does)
    below = x.data < lo.data
    return masked(g, below if hi is None else below & (lo.data < unwrap(hi)))


def _clamp_max_grad(g, out, x, lo, hi):
    if _tensor_bounds(lo, hi):
        return _split_grad(g, x, lo, hi, 2)
    above = x.data > hi.data
    return masked(g, above if lo is None else above | (unwrap(lo) > hi.data))


_CLAMP = defop("clamp", torch.clamp, _clamp_input_grad, _clamp_min_grad, _clamp_max_grad)


@public
def clamp(input, min=None, max=None):
    """Clamp to ``[min, max]``; bounds are numbers or tensors (then differentiable too)."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    return apply(_CLAMP, input, min, max)


clip = public(clamp, name="clip")


@public
def clamp_min(input, min):
    """``clamp(input, min=min)``."""
    return clamp(input, min, None)


@public
def clamp_max(input, max):
    """``clamp(input, max=max)``."""
    return clamp(input, None, max)


# ----- interpolation and fused multiply-add -------------------------------------------
_LERP = defop(
    "lerp",
    torch.lerp,
    lambda g, out, a, b, w: g * (1 - w),
    lambda g, out, a, b, w: g * w,
    lambda g, out, a, b, w: g * (b - a),
    reads=((2,), (2,), (0, 1)),  # as torch's: start and end are kept only when the weight's rule will run
)


@public
def lerp(input, end, weight):
    """``input + weight * (end - input)``."""
    if not isinstance(unwrap(end), torch.Tensor):
        raise TypeError(f"lerp: end must be a tensor, got {type(end).__name__}")
    return apply(_LERP, input, end, weight)


# grouped as torch's rules (g * (value / b), ...): at 0 and inf the grouping decides inf or NaN
_ADDCMUL = defop(
    "addcmul",
    lambda x, a, b, value: torch.addcmul(x, a, b, value=value),
    lambda g, out, x, a, b, value: g,
    lambda g, out, x, a, b, value: g * (b * value),
    lambda g, out, x, a, b, value: g * (a * value),
    saves=(1, 2),
)
_ADDCDIV = defop(
    "addcdiv",
    lambda x, a, b, value: torch.addcdiv(x, a, b, value=value),
    lambda g, out, x, a, b, value: g,
    lambda g, out, x, a, b, value: g * (value / b),
    lambda g, out, x, a, b, value: -g * ((a * value) / (b * b)),
    saves=(1, 2),
)


@public
def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``."""
    return apply(_ADDCMUL, input, tensor1, tensor2, value=value)


@public
def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``."""
    return apply(_ADDCDIV, input, tensor1, tensor2, value=value)


# ----- dtype / device conversion -------------------------------------------------------
_TO = defop(
    "to_copy",
    lambda x, dtype, device, src_dtype, src_device: x.to(device=device, dtype=dtype),
    lambda g, out, x, dtype, device, src_dtype, src_device: convert(g, src_dtype, src_device),
    saves=(),
)


def convert(input: Tensor, dtype=None, device=None) -> Tensor:
    """Differentiable dtype/device conversion; returns ``input`` itself when nothing changes."""
    src = input.data
    if (dtype is None or dtype == src.dtype) and (device is None or torch.device(device) == src.device):
        return input
    if input.requires_grad and dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
        return Tensor._make(src.to(device=device, dtype=dtype), None)
    return apply(_TO, input, dtype=dtype, device=device, src_dtype=src.dtype, src_device=src.device)
