"""Unary pointwise math: inverse trigonometric and hyperbolic, gamma, error-function and Bessel families.

Each op is torch's kernel forward with one rule written in neuronix ops, grouped as torch's
``derivatives.yaml`` groups it: at 0, inf and NaN the grouping decides between 0, inf and NaN, and
the conformance contract includes those patterns. The rules call the ops defined here (digamma's
rule is polygamma, i0's is i1, ...), so every derivative order records.
"""

from __future__ import annotations

import math

import torch

from neuronix.ops.elementwise import _unary, select, zero_gradient
from neuronix.ops.registry import apply, defop, public

_SQRT_PI = math.sqrt(math.pi)
_LN2 = math.log(2.0)


# ----- inverse trigonometric and hyperbolic -------------------------------------------------
acos = _unary("acos", torch.acos, lambda g, out, x: g * -((-x * x + 1).rsqrt()))
asin = _unary("asin", torch.asin, lambda g, out, x: g * (-x * x + 1).rsqrt())
atan = _unary("atan", torch.atan, lambda g, out, x: g / (x * x + 1))
acosh = _unary("acosh", torch.acosh, lambda g, out, x: g * (x * x - 1).rsqrt())
asinh = _unary("asinh", torch.asinh, lambda g, out, x: g * (x.pow(2) + 1).rsqrt())
atanh = _unary("atanh", torch.atanh, lambda g, out, x: g * 1 / (1 - x.pow(2)))
# torch multiplies the gradient by the constant (deg2rad_backward), whatever the input's values
deg2rad = _unary("deg2rad", torch.deg2rad, lambda g, out, x: g * (math.pi / 180), reads_input=False)
rad2deg = _unary("rad2deg", torch.rad2deg, lambda g, out, x: g * (180 / math.pi), reads_input=False)

# ----- exponentials, error functions ----------------------------------------------------------
exp2 = _unary("exp2", torch.exp2, lambda g, out, x: g * out * _LN2, saves_out=True)
erfc = _unary("erfc", torch.erfc, lambda g, out, x: -2.0 / _SQRT_PI * (-(x.pow(2))).exp() * g)
# erfinv(x) again, not the output: torch keeps the input only (writing the output in place is allowed)
erfinv = _unary("erfinv", torch.erfinv, lambda g, out, x: 0.5 * _SQRT_PI * (x.erfinv().pow(2)).exp() * g)
# the sign function on reals (torch's sgn differs from sign only on complex inputs): zero gradient
sgn = _unary("sgn", torch.sgn, zero_gradient)


def _sinc_grad(g, out, x):
    # torch's sinc_backward: exactly 0 where x * x * pi is 0 (at 0 and where x * x underflows)
    x_pi = x * math.pi
    x_squared_pi = x * x * math.pi
    slope = g * ((x_pi * x_pi.cos() - x_pi.sin()) / x_squared_pi)
    return select(x_squared_pi.data == 0, 0.0, slope, x)


sinc = _unary("sinc", torch.sinc, _sinc_grad)


# ----- gamma family ---------------------------------------------------------------------------
_POLYGAMMA = defop("polygamma", lambda x, n: torch.polygamma(n, x), lambda g, out, x, n: g * _polygamma(n + 1, x))


def _polygamma(n: int, x):
    return apply(_POLYGAMMA, x, n=n)


@public(method=False)
def polygamma(n, input):
    """``torch.polygamma(n, input)``: the n-th derivative of digamma (differentiable in ``input``)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"polygamma(): argument 'n' must be int, not {type(n).__name__}")
    return _polygamma(n, input)


@public(function=False, name="polygamma")
def _polygamma_method(self, n):
    """``Tensor.polygamma(n)``: as ``torch.polygamma(n, self)`` (the method takes n after self)."""
    return polygamma(n, self)


digamma = _unary("digamma", torch.digamma, lambda g, out, x: g * _polygamma(1, x))
lgamma = _unary("lgamma", torch.lgamma, lambda g, out, x: g * digamma(x))


def _mvlgamma_grad(g, out, x, p):
    # torch's mvlgamma_backward: sum_j digamma(x - j/2), summed along a new last dim
    shifts = torch.arange(-p / 2.0 + 0.5, 0.5, 0.5, dtype=x.dtype, device=x.device)
    return g * digamma(x.unsqueeze(-1) + shifts).sum(-1)


_MVLGAMMA = defop("mvlgamma", lambda x, p: torch.mvlgamma(x, p), _mvlgamma_grad)


@public
def mvlgamma(input, p):
    """``torch.mvlgamma(input, p)``: the multivariate log-gamma of dimension ``p`` (all input > (p - 1) / 2)."""
    return apply(_MVLGAMMA, input, p=p)


# ----- modified Bessel functions of the first kind (torch.i0 and torch.special.i0e/i1/i1e) ---------
def special_op(name: str, forward, vjp, **kw):
    """A unary ``torch.special.<name>`` (no Tensor method): torch's kernel, one rule."""
    spec = defop(f"special_{name}", forward, vjp, **kw)

    def fn(input):
        return apply(spec, input)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.special.{name}`` (differentiable)."
    return public(fn, namespace="special")


def _divided_by_x_grad(g, out, x, lead, shift):
    """torch's i1/i1e backward: ``lead(x) - out * shift(x)`` with 1/x, and the limit 1/2 where |x| <= eps."""
    eps = torch.finfo(x.dtype).eps
    not_tiny = x.data.abs() > eps
    safe = select(not_tiny, x, eps)
    return g * select(not_tiny, lead(safe) - out * shift(safe), 0.5)


i1 = special_op("i1", torch.special.i1,
              lambda g, out, x: _divided_by_x_grad(g, out, x, i0, lambda s: s.reciprocal()), saves_out=True)
i1e = special_op("i1e", torch.special.i1e,
               lambda g, out, x: _divided_by_x_grad(g, out, x, i0e, lambda s: s.sgn() + s.reciprocal()),
               saves_out=True)
i0e = special_op("i0e", torch.special.i0e, lambda g, out, x: g * (i1e(x) - x.sgn() * out), saves_out=True)
i0 = _unary("i0", torch.i0, lambda g, out, x: g * i1(x))
