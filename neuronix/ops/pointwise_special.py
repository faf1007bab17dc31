"""torch.special's own functions, logit, nan_to_num, frexp, the sign tests and the special.* aliases.

The differentiable ones are torch's kernel with one rule in neuronix ops (grouped as torch's). The
Bessel functions of ``bessel_*``/``modified_bessel_*``/``airy_ai`` and the orthogonal polynomials have no
derivative in torch (their results never require grad): here too, as ``compare.nondiff`` ops.
"""

from __future__ import annotations

import math
from collections import namedtuple

import torch

from neuronix.ops import compare
from neuronix.ops import pointwise_binary as binary
from neuronix.ops import pointwise_unary as unary
from neuronix.ops.compare import nondiff
from neuronix.ops.elementwise import abs as abs_
from neuronix.ops.elementwise import erf, expm1, log1p, round, select, sigmoid, trunc
from neuronix.ops.pointwise_unary import special_op
from neuronix.ops.reduce import logsumexp
from neuronix.ops.registry import apply, defop, public
from neuronix.ops.softmax import log_softmax, softmax
from neuronix.tensor import Tensor

_SQRT_2PI = math.sqrt(2 * math.pi)


# ----- torch.special's own unary functions -------------------------------------------------------
entr = special_op("entr", torch.special.entr, lambda g, out, x: g * (-(1 + x.log())))
erfcx = special_op("erfcx", torch.special.erfcx,
                   lambda g, out, x: (2.0 * x * out - 2.0 / math.sqrt(math.pi)) * g, saves_out=True)
log_ndtr = special_op("log_ndtr", torch.special.log_ndtr,
                      lambda g, out, x: g / _SQRT_2PI * (out + x.pow(2) / 2).neg().exp(), saves_out=True)
ndtri = special_op("ndtri", torch.special.ndtri,
                   lambda g, out, x: g * _SQRT_2PI * (out.square() / 2).exp(), saves=(), saves_out=True)


@public(namespace="special")
def ndtr(input):
    """The standard normal CDF, ``(1 + erf(x / sqrt 2)) / 2``: torch composes it so, and so does neuronix
    (values and every derivative are erf's)."""
    return (1 + erf(input * math.sqrt(0.5))) * 0.5


# ----- logit ------------------------------------------------------------------------------------
# torch differentiates logit two ways (derivatives.yaml): a plain backward runs its kernel
# (aten.logit_backward: NaN outside [0, 1], inf at the ends, 0 outside [eps, 1 - eps]); under
# create_graph a composite: g / (x (1 - x)) on the interval, and 0 (with eps) or NaN outside it. The
# two differ at the ends (-0.0, 1) and in float32 rounding, so neuronix does the same: the kernel is the
# fused backward of the plain pass and the rule (the composite) alone runs under create_graph.
def _logit_rule(g, out, x, eps):
    lo, hi = (0.0, 1.0) if eps is None else (eps, 1.0 - eps)
    inside = (x.data >= lo) & (x.data <= hi)
    return select(inside, g / (x * (1.0 - x)), math.nan if eps is None else 0.0, x)


def _logit_kernel(g, out, x, needs, eps):
    return (torch.ops.aten.logit_backward(g, x, eps),)


_LOGIT = defop("logit_eps", lambda x, eps: torch.logit(x, eps), _logit_rule, fused=_logit_kernel,
               fused_values_recorded=False)


@public
def logit(input, eps=None):
    """``log(p / (1 - p))`` of ``p = clamp(input, eps, 1 - eps)`` (no clamp when ``eps`` is None)."""
    return apply(_LOGIT, input, eps=eps)


# ----- nan_to_num -------------------------------------------------------------------------------
def _nan_to_num_grad(g, out, x, nan, posinf, neginf):
    # torch: g * isfinite(x), a product (an inf or NaN upstream gradient at a replaced element gives NaN)
    return g * torch.isfinite(x.data).to(x.dtype)


_NAN_TO_NUM = defop("nan_to_num", lambda x, nan, posinf, neginf: torch.nan_to_num(x, nan, posinf, neginf),
                    _nan_to_num_grad)


@public
def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (default: 0 and the dtype's extremes);
    the gradient passes where the input is finite and is 0 where it was replaced."""
    return apply(_NAN_TO_NUM, input, nan=nan, posinf=posinf, neginf=neginf)


# ----- frexp ------------------------------------------------------------------------------------
FrexpResult = namedtuple("frexp", ("mantissa", "exponent"))

# the mantissa is input / 2^exponent with the (integer, non-differentiable) exponent held fixed; torch
# computes 2^exponent from the int32 exponent in the default float dtype, as here
_FREXP = defop("frexp", lambda x: tuple(torch.frexp(x)),
               lambda g, out, x, aux: g / torch.exp2(aux), saves=(), aux=True)


@public
def frexp(input):
    """``(mantissa, exponent)`` with ``input = mantissa * 2^exponent``, as torch's namedtuple."""
    mantissa, exponent = apply(_FREXP, input)
    return FrexpResult(mantissa, Tensor._make(exponent, None))


# ----- positive, the sign tests -------------------------------------------------------------------
@public
def positive(input):
    """``+input``: the input itself (torch returns the very tensor); refused for bool tensors, as torch."""
    if not isinstance(input, (Tensor, torch.Tensor)):
        raise TypeError(f"positive(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.dtype == torch.bool:
        raise RuntimeError("positive: the `+` operator, on a bool tensor is not supported.")
    return input


signbit = nondiff("signbit", torch.signbit)
isposinf = nondiff("isposinf", torch.isposinf)
isneginf = nondiff("isneginf", torch.isneginf)
isreal = nondiff("isreal", torch.isreal)


# integer arithmetic (integer results, no gradient in torch)
gcd = nondiff("gcd", torch.gcd)
lcm = nondiff("lcm", torch.lcm)
bitwise_left_shift = nondiff("bitwise_left_shift", torch.bitwise_left_shift)
bitwise_right_shift = nondiff("bitwise_right_shift", torch.bitwise_right_shift)


# ----- Bessel functions and orthogonal polynomials: no derivative in torch -------------------------
BESSEL = ("airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "modified_bessel_i0",
          "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1", "scaled_modified_bessel_k0",
          "scaled_modified_bessel_k1", "spherical_bessel_j0")
POLYNOMIALS = ("chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v",
               "chebyshev_polynomial_w", "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u",
               "shifted_chebyshev_polynomial_v", "shifted_chebyshev_polynomial_w", "hermite_polynomial_h",
               "hermite_polynomial_he", "laguerre_polynomial_l", "legendre_polynomial_p")
for _name in BESSEL + POLYNOMIALS:
    globals()[_name] = nondiff(_name, getattr(torch.special, _name), namespace="special")


# ----- aliases ------------------------------------------------------------------------------------
ALIASES = {  # torch name: neuronix function
    "arccos": unary.acos, "arcsin": unary.asin, "arctan": unary.atan, "arccosh": unary.acosh,
    "arcsinh": unary.asinh, "arctanh": unary.atanh, "arctan2": binary.atan2, "absolute": abs_, "fix": trunc,
    "greater": compare.gt, "greater_equal": compare.ge, "less": compare.lt, "less_equal": compare.le,
    "not_equal": compare.ne,
}
for _alias, _fn in ALIASES.items():
    public(_fn, name=_alias)

SPECIAL_ALIASES = {  # torch.special name: neuronix function
    "expit": sigmoid, "exp2": unary.exp2, "expm1": expm1, "erf": erf, "erfc": unary.erfc, "erfinv": unary.erfinv,
    "gammaln": unary.lgamma, "digamma": unary.digamma, "psi": unary.digamma, "polygamma": unary.polygamma,
    "multigammaln": unary.mvlgamma, "logit": logit, "xlogy": binary.xlogy, "sinc": unary.sinc, "round": round,
    "log1p": log1p, "i0": unary.i0, "logsumexp": logsumexp,
}
for _alias, _fn in SPECIAL_ALIASES.items():
    public(_fn, namespace="special", name=_alias)




@public(namespace="special", name="softmax")
def special_softmax(input, dim, *, dtype=None):
    """``torch.special.softmax``: ``softmax`` with ``dtype`` keyword-only."""
    return softmax(input, dim, dtype)


@public(namespace="special", name="log_softmax")
def special_log_softmax(input, dim, *, dtype=None):
    """``torch.special.log_softmax``: ``log_softmax`` with ``dtype`` keyword-only."""
    return log_softmax(input, dim, dtype)
