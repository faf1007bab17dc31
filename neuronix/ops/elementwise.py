"""Elementwise ops: forward by torch kernel, one VJP per input written in neuronix ops.

Inputs are broadcast by torch in the forward; VJPs return full-size gradients and
the engine reduces them to each input's shape, so no rule here handles broadcasting.
"""

from __future__ import annotations

import math
import operator

import torch

from neuronix.autograd import mode
from neuronix.ops.registry import ALL, apply, defop, public
from neuronix.tensor import Tensor


def _zero(g, *_, **__):
    return g * 0


def _unary(name: str, forward, vjp, *, saves_out: bool = False, doc: str = ""):
    spec = defop(name, forward, vjp, saves=() if saves_out else ALL, saves_out=saves_out, torch_ref=getattr(torch, name))

    def fn(input):
        return apply(spec, input)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc or f"Elementwise ``torch.{name}`` (differentiable)."
    return public(fn)


def _fused(kernel, composite):
    """A VJP from the saved output: torch's fused backward kernel for a plain backward (one
    kernel, as torch's own autograd runs), the composite formula when recording (create_graph)."""

    def vjp(g, out, x):
        if mode.grad_enabled:
            return composite(g, out, x)
        return Tensor._make(kernel(g.data, out.data), None)

    return vjp


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
abs = _unary("abs", torch.abs, lambda g, out, x: g * x.sign())
sign = _unary("sign", torch.sign, _zero)
neg = _unary("neg", torch.neg, lambda g, out, x: -g)
sin = _unary("sin", torch.sin, lambda g, out, x: g * x.cos())
cos = _unary("cos", torch.cos, lambda g, out, x: -(g * x.sin()))
tan = _unary("tan", torch.tan, lambda g, out, x: g * (out * out + 1), saves_out=True)
sinh = _unary("sinh", torch.sinh, lambda g, out, x: g * x.cosh())
cosh = _unary("cosh", torch.cosh, lambda g, out, x: g * x.sinh())
tanh = _unary("tanh", torch.tanh, _fused(_aten.tanh_backward.default, lambda g, out, x: g * (1 - out * out)),
              saves_out=True)
sigmoid = _unary("sigmoid", torch.sigmoid, _fused(_aten.sigmoid_backward.default, lambda g, out, x: g * out * (1 - out)),
                 saves_out=True)
relu = _unary("relu", torch.relu, _fused(lambda g, y: _aten.threshold_backward.default(g, y, 0),
                                         lambda g, out, x: g * (out > 0)), saves_out=True)
reciprocal = _unary("reciprocal", torch.reciprocal, lambda g, out, x: -(g * out * out), saves_out=True)
square = _unary("square", torch.square, lambda g, out, x: g * x * 2)
erf = _unary("erf", torch.erf, lambda g, out, x: g * (2 / math.sqrt(math.pi)) * (-(x * x)).exp())
floor = _unary("floor", torch.floor, _zero)
ceil = _unary("ceil", torch.ceil, _zero)
trunc = _unary("trunc", torch.trunc, _zero)
frac = _unary("frac", torch.frac, lambda g, out, x: g)

_ROUND = defop("round", torch.round, _zero, saves=())


@public
def round(input, *, decimals: int = 0):
    """``torch.round`` (zero gradient, as torch)."""
    return apply(_ROUND, input, decimals=decimals)


# ----- binary arithmetic -------------------------------------------------------------
_ADD = defop("add", operator.add, lambda g, out, x, y: g, lambda g, out, x, y: g, saves=(), torch_ref=torch.add)
_SUB = defop("sub", operator.sub, lambda g, out, x, y: g, lambda g, out, x, y: -g, saves=(), torch_ref=torch.sub)
_MUL = defop("mul", operator.mul, lambda g, out, x, y: g * y, lambda g, out, x, y: g * x, torch_ref=torch.mul)
_DIV = defop("div", operator.truediv, lambda g, out, x, y: g / y, lambda g, out, x, y: -(g * x) / (y * y), torch_ref=torch.div)


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


_FLOOR_DIVIDE = defop("floor_divide", torch.floor_divide, _zero, _zero, saves=())
_TRUNC_DIVIDE = defop(
    "trunc_divide", lambda x, y: torch.div(x, y, rounding_mode="trunc"), _zero, _zero, saves=(), torch_ref=torch.div
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
    "remainder", operator.mod, lambda g, out, x, y: g, lambda g, out, x, y: -(g * floor_divide(x, y)), torch_ref=torch.remainder
)


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
    if isinstance(y, (int, float)):
        return g * 0 if y == 0 else g * y * x.pow(y - 1)
    return where(y == 0, 0.0, g * y * x.pow(y - 1))


def _pow_exponent_grad(g, out, x, y):
    log_x = x.log() if isinstance(x, Tensor) else math.log(x) if x > 0 else float("nan")
    grad = g * out * log_x
    if isinstance(x, Tensor):
        return where((x == 0) & (y >= 0), 0.0, grad)
    return grad if x != 0 else g * 0


_POW = defop("pow", operator.pow, _pow_base_grad, _pow_exponent_grad, saves_out=True, torch_ref=torch.pow)


@public
def pow(input, exponent):
    """``input ** exponent``; either side may be a tensor or a Python number."""
    return apply(_POW, input, exponent)


def _tie_mask(x, y, strict_op):
    # torch splits the gradient evenly between equal inputs of maximum/minimum.
    return strict_op(x, y).to(_dtype_of(x, y)) + (x == y).to(_dtype_of(x, y)) * 0.5


def _dtype_of(x, y):
    return torch.promote_types(x.dtype, y.dtype)


_MAXIMUM = defop(
    "maximum",
    torch.maximum,
    lambda g, out, x, y: g * _tie_mask(x.data, y.data, torch.gt),
    lambda g, out, x, y: g * _tie_mask(y.data, x.data, torch.gt),
)
_MINIMUM = defop(
    "minimum",
    torch.minimum,
    lambda g, out, x, y: g * _tie_mask(x.data, y.data, torch.lt),
    lambda g, out, x, y: g * _tie_mask(y.data, x.data, torch.lt),
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
def _raw(x):
    return x.data if isinstance(x, Tensor) else x


_WHERE = defop(
    "where",
    torch.where,
    None,
    lambda g, out, c, x, y: g * c,
    lambda g, out, c, x, y: g * ~c.data,
    saves=(0,),
)


@public
def where(condition, input=None, other=None):
    """``input`` where ``condition`` else ``other``; with one argument, ``nonzero(as_tuple=True)``."""
    if input is None and other is None:
        return tuple(Tensor._make(t, None) for t in torch.where(_raw(condition)))
    cond = _raw(condition)
    if not isinstance(cond, torch.Tensor) or cond.dtype != torch.bool:
        raise TypeError(f"where: condition must be a bool tensor, got {getattr(cond, 'dtype', type(cond).__name__)}")
    if not isinstance(_raw(input), torch.Tensor) and not isinstance(_raw(other), torch.Tensor):
        input = torch.as_tensor(input, device=cond.device)
    return apply(_WHERE, cond, input, other)


@public(function=False, name="where")
def _where_method(self, condition, other):
    """``Tensor.where(condition, other)``: ``self`` where ``condition`` else ``other`` (as torch)."""
    return where(condition, self, other)


def _clamp_input_grad(g, out, x, lo, hi):
    mask = torch.ones_like(x.data, dtype=torch.bool)
    if lo is not None:
        mask = mask & (x.data >= _raw(lo))
    if hi is not None:
        mask = mask & (x.data <= _raw(hi))
    return g * mask


def _clamp_min_grad(g, out, x, lo, hi):
    # torch: where min > max the result is max, so min gets no gradient there
    below = x.data < lo.data
    return g * (below if hi is None else below & (lo.data <= _raw(hi)))


def _clamp_max_grad(g, out, x, lo, hi):
    above = x.data > hi.data
    return g * (above if lo is None else above | (_raw(lo) > hi.data))


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
)


@public
def lerp(input, end, weight):
    """``input + weight * (end - input)``."""
    if not isinstance(_raw(end), torch.Tensor):
        raise TypeError(f"lerp: end must be a tensor, got {type(end).__name__}")
    return apply(_LERP, input, end, weight)


_ADDCMUL = defop(
    "addcmul",
    lambda x, a, b, value: torch.addcmul(x, a, b, value=value),
    lambda g, out, x, a, b, value: g,
    lambda g, out, x, a, b, value: g * b * value,
    lambda g, out, x, a, b, value: g * a * value,
    saves=(1, 2),
    torch_ref=torch.addcmul,
)
_ADDCDIV = defop(
    "addcdiv",
    lambda x, a, b, value: torch.addcdiv(x, a, b, value=value),
    lambda g, out, x, a, b, value: g,
    lambda g, out, x, a, b, value: g * value / b,
    lambda g, out, x, a, b, value: -(g * value * a) / (b * b),
    saves=(1, 2),
    torch_ref=torch.addcdiv,
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
    torch_ref=torch.Tensor.to,
)


def convert(input: Tensor, dtype=None, device=None) -> Tensor:
    """Differentiable dtype/device conversion; returns ``input`` itself when nothing changes."""
    src = input.data
    if (dtype is None or dtype == src.dtype) and (device is None or torch.device(device) == src.device):
        return input
    if input.requires_grad and dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
        return Tensor._make(src.to(device=device, dtype=dtype), None)
    return apply(_TO, input, dtype=dtype, device=device, src_dtype=src.dtype, src_device=src.device)
