"""Binary pointwise math: atan2, hypot, copysign, logaddexp, xlogy, fmax/fmin, fmod, ldexp, nextafter, ...

torch's kernel forward, one rule per input in neuronix ops, grouped and masked as torch's
``derivatives.yaml`` (``masked``/``select`` where torch uses ``masked_fill``/``where``, so a masked
gradient is exactly 0 even under an infinite upstream gradient, and a product where torch multiplies,
so NaN stays NaN). ``reads`` keeps each input only when a rule that will run reads it, as torch saves.
"""

from __future__ import annotations

import math

import torch

from neuronix.ops.elementwise import convert, div, masked, pow, select, sub, zero_gradient
from neuronix.ops.pointwise_unary import lgamma
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap

_LN2 = math.log(2.0)


def _raw(v):
    """The raw value of an input a rule reads: a torch tensor, or a number as a 0-d tensor (for masks)."""
    v = unwrap(v)
    return v if isinstance(v, torch.Tensor) else torch.tensor(v)


# ----- atan2, hypot ---------------------------------------------------------------------------
def _atan2_reciprocal(x, y):
    # torch's atan2_backward: 1 / (x^2 + y^2), and 0 where that denominator is 0 (the origin, or underflow)
    denominator = x * x + y * y
    return select(denominator.data == 0, 0.0, denominator.reciprocal())


_ATAN2 = defop(
    "atan2", torch.atan2,
    lambda g, out, x, y: g * y * _atan2_reciprocal(x, y),
    lambda g, out, x, y: g * -x * _atan2_reciprocal(x, y),
    reads=((0, 1), (0, 1)),
)


@public
def atan2(input, other):
    """``torch.atan2(input, other)``: the angle of (other, input); gradient 0 at the origin, as torch."""
    return apply(_ATAN2, input, other)


_HYPOT = defop("hypot", torch.hypot, lambda g, out, x, y: g * x / out, lambda g, out, x, y: g * y / out,
               saves_out=True, reads=((0,), (1,)))


@public
def hypot(input, other):
    """``sqrt(input^2 + other^2)`` without overflow; its gradient is NaN at the origin (0/0), as torch's."""
    return apply(_HYPOT, input, other)


# ----- copysign, nextafter, heaviside -----------------------------------------------------------
def _copysign_grad(g, out, x, y):
    # torch's copysign_tensor_self_backward: g * (out / x), the ratio 0 where x == 0 (a product: NaN g stays NaN)
    return g * select(x.data == 0, 0.0, out / x)


# other: torch's zeros_like(other), the sign's influence is piecewise constant (zero_gradient: exactly 0)
_COPYSIGN = defop("copysign", torch.copysign, _copysign_grad, zero_gradient, saves_out=True, reads=((0,), ()))


@public
def copysign(input, other):
    """``|input|`` with the sign of ``other`` (a tensor or number); ``other`` gets a zero gradient, as torch."""
    return apply(_COPYSIGN, input, other)


_NEXTAFTER = defop("nextafter", torch.nextafter, lambda g, out, x, y: masked(g, x.data != y.data),
                   zero_gradient, reads=((0, 1), ()))


@public
def nextafter(input, other):
    """The next float after ``input`` towards ``other``; gradient 1 to ``input`` except where they are equal."""
    return apply(_NEXTAFTER, input, other)


# torch has no derivative for heaviside (backward raises): neuronix refuses an input that requires grad
_HEAVISIDE = defop("heaviside", torch.heaviside, None, None, saves=())


@public
def heaviside(input, values):
    """``torch.heaviside``: 0 below 0, ``values`` at 0, 1 above (not differentiable, as torch)."""
    return apply(_HEAVISIDE, input, values)


# ----- logaddexp, logaddexp2 -------------------------------------------------------------------
_LOGADDEXP = defop(
    "logaddexp", torch.logaddexp,
    lambda g, out, x, y: g / (1 + (y - x).exp()),
    lambda g, out, x, y: g / (1 + (x - y).exp()),
    reads=((0, 1), (0, 1)),
)
_LOGADDEXP2 = defop(
    "logaddexp2", torch.logaddexp2,
    lambda g, out, x, y: g / (1 + pow(2, y - x)),
    lambda g, out, x, y: g / (1 + pow(2, x - y)),
    reads=((0, 1), (0, 1)),
)


@public
def logaddexp(input, other):
    """``log(exp(input) + exp(other))`` computed stably."""
    return apply(_LOGADDEXP, input, other)


@public
def logaddexp2(input, other):
    """``log2(2^input + 2^other)`` computed stably."""
    return apply(_LOGADDEXP2, input, other)


# ----- xlogy, xlog1py ---------------------------------------------------------------------------
def _x_log_grad(op, pole: float):
    """The rule for x of ``x * log(y)`` (``pole`` 0) or ``x * log1p(y)`` (``pole`` -1): ``op(g, y)``, exactly 0
    where x == 0 and y is at or beyond the pole (the value is 0 there whatever x does near 0), as torch."""

    def rule(g, out, x, y):
        return masked(op(g, y), ~((_raw(x) == 0) & (_raw(y) <= pole)))

    return rule


def _xlogy_forward(x, y):
    return torch.xlogy(x, y)


def _xlog1py_forward(x, y):
    return torch.special.xlog1py(x, y)


# the x rules are xlogy / xlog1py of the upstream gradient again: linear in g, so they record
_XLOGY = defop("xlogy", _xlogy_forward, _x_log_grad(lambda g, y: xlogy(g, y), 0.0),
               lambda g, out, x, y: g * x / y, reads=((0, 1), (0, 1)))
_XLOG1PY = defop("xlog1py", _xlog1py_forward, _x_log_grad(lambda g, y: xlog1py(g, y), -1.0),
                 lambda g, out, x, y: g * x / (y + 1), reads=((0, 1), (0, 1)))


@public
def xlogy(input, other):
    """``input * log(other)``, 0 where ``input`` is 0 (also where ``other`` is 0; NaN where ``other`` is NaN)."""
    return apply(_XLOGY, input, other)


@public(namespace="special")
def xlog1py(input, other):
    """``input * log1p(other)``, 0 where ``input`` is 0, as ``torch.special.xlog1py``."""
    return apply(_XLOG1PY, input, other)


# ----- fmax, fmin: NaN-ignoring extrema --------------------------------------------------------
def _splits_ties(fn) -> bool:
    """Whether the installed torch's ``fn`` (fmax/fmin) gives each input half the gradient at a tie.

    torch up to 2.13: the whole gradient goes to ``input`` where it is the result (>= / <= other, or
    other NaN), else to ``other`` (one input gets it, never both). torch 2.14 reuses maximum/minimum's
    rule: half to each at a tie, 0 only to the strict loser, so a NaN on either side (no comparison
    holds) sends the whole gradient to both. Probed once here rather than keyed on the version number.
    """
    with torch.enable_grad(), torch.inference_mode(False):
        x = torch.ones(1, dtype=torch.float64, requires_grad=True)
        (gx,) = torch.autograd.grad(fn(x, torch.ones(1, dtype=torch.float64)), x, torch.ones(1, dtype=torch.float64))
    return gx.item() == 0.5


_FMAX_SPLITS_TIES = _splits_ties(torch.fmax)
_FMIN_SPLITS_TIES = _splits_ties(torch.fmin)


def _split_grad(g, x, y, loses):
    """torch 2.14's rule for input ``x``: ``where(x == y, g / 2, g)``, exactly 0 where ``loses(x, y)``."""
    xd, yd = _raw(x), _raw(y)
    half = torch.where(xd == yd, 0.5, 1.0).to(torch.promote_types(xd.dtype, yd.dtype))
    return masked(g * half, ~loses(xd, yd))


def _fmax_wins(x, y):
    """Where ``input`` is the result of fmax (torch 2.13's rule): it is >= other, or other is NaN."""
    return (_raw(x) >= _raw(y)) | _raw(y).isnan()


def _fmin_wins(x, y):
    return (_raw(x) <= _raw(y)) | _raw(y).isnan()


if _FMAX_SPLITS_TIES:
    _FMAX = defop("fmax", torch.fmax, lambda g, out, x, y: _split_grad(g, x, y, torch.lt),
                  lambda g, out, x, y: _split_grad(g, y, x, torch.lt))
else:
    _FMAX = defop("fmax", torch.fmax, lambda g, out, x, y: masked(g, _fmax_wins(x, y)),
                  lambda g, out, x, y: masked(g, ~_fmax_wins(x, y)))
if _FMIN_SPLITS_TIES:
    _FMIN = defop("fmin", torch.fmin, lambda g, out, x, y: _split_grad(g, x, y, torch.gt),
                  lambda g, out, x, y: _split_grad(g, y, x, torch.gt))
else:
    _FMIN = defop("fmin", torch.fmin, lambda g, out, x, y: masked(g, _fmin_wins(x, y)),
                  lambda g, out, x, y: masked(g, ~_fmin_wins(x, y)))


@public
def fmax(input, other):
    """Elementwise maximum ignoring NaN; the gradient at a tie or NaN is the installed torch's (see ``_splits_ties``)."""
    return apply(_FMAX, input, other)


@public
def fmin(input, other):
    """Elementwise minimum ignoring NaN; the gradient at a tie or NaN is the installed torch's (see ``_splits_ties``)."""
    return apply(_FMIN, input, other)


# ----- fmod -------------------------------------------------------------------------------------
_FMOD = defop("fmod", torch.fmod, lambda g, out, x, y: g,
              lambda g, out, x, y: -g * div(x, y, rounding_mode="trunc"), reads=((), (0, 1)))


@public
def fmod(input, other):
    """C-style remainder (the sign of ``input``); ``other`` may be a number."""
    return apply(_FMOD, input, other)


# ----- ldexp, float_power -------------------------------------------------------------------------
# The input's gradient is g * 2^other in floating point. torch computes 2^other in the exponent's
# dtype, so an integer exponent below 0 gives it 2^-k == 0 (a torch defect: the derivative of x * 2^-k
# is 2^-k); neuronix gives the true 2^-k. The exponent's rule reads the output, which is kept only when
# that rule can run (as torch saves it only then): two specs, chosen by whether the exponent requires grad.
def _ldexp_input_grad(g, out, x, y):
    return g * pow(2.0, y)


_LDEXP = defop("ldexp", torch.ldexp, _ldexp_input_grad, None, reads=((1,), ()))
_LDEXP_EXPONENT = defop("ldexp_exponent", torch.ldexp, _ldexp_input_grad, lambda g, out, x, y: g * out * _LN2,
                        saves_out=True, reads=((1,), ()))


@public
def ldexp(input, other):
    """``input * 2^other`` (``other`` an integer or floating tensor)."""
    exponent_grad = isinstance(other, Tensor) and other.requires_grad
    return apply(_LDEXP_EXPONENT if exponent_grad else _LDEXP, input, other)


def _to_double(v):
    if isinstance(v, Tensor):
        return convert(v, torch.complex128 if v.dtype.is_complex else torch.float64)
    if isinstance(v, torch.Tensor):
        return v.to(torch.complex128 if v.dtype.is_complex else torch.float64)
    return v


@public
def float_power(input, exponent):
    """``input ** exponent`` in double precision (float64 result), as ``torch.float_power``; the gradient
    flows back through the casts, so it arrives in each input's own dtype."""
    if not isinstance(unwrap(input), torch.Tensor) and not isinstance(unwrap(exponent), torch.Tensor):
        raise TypeError("float_power(): at least one of 'input' and 'exponent' must be a tensor")
    return pow(_to_double(input), float(exponent) if isinstance(exponent, int) else _to_double(exponent))


# ----- rsub ---------------------------------------------------------------------------------------
@public(method=False)
def rsub(input, other, *, alpha=1):
    """``other - alpha * input`` (torch.rsub: sub with the operands swapped)."""
    return sub(other, input, alpha=alpha) if alpha != 1 else sub(other, input)


# ----- incomplete gamma (torch.igamma = special.gammainc) and Hurwitz zeta ---------------------------
def _igamma_other_grad(sign: float):
    def rule(g, out, a, x):
        density = ((a - 1) * x.log() - x - lgamma(a)).exp()
        return g * density if sign > 0 else -g * density

    return rule


_IGAMMA = defop("igamma", torch.igamma, None, _igamma_other_grad(1.0))
_IGAMMAC = defop("igammac", torch.igammac, None, _igamma_other_grad(-1.0))


@public
def igamma(input, other):
    """The regularized lower incomplete gamma P(input, other); differentiable in ``other`` only, as torch."""
    return apply(_IGAMMA, input, other)


@public
def igammac(input, other):
    """The regularized upper incomplete gamma Q(input, other); differentiable in ``other`` only, as torch."""
    return apply(_IGAMMAC, input, other)


gammainc = public(igamma, namespace="special", name="gammainc")
gammaincc = public(igammac, namespace="special", name="gammaincc")


def _zeta_forward(x, q):
    return torch.special.zeta(x, q)


_ZETA = defop("zeta", _zeta_forward, None, lambda g, out, x, q: g * -x * zeta(x + 1.0, q), reads=((), (0, 1)))


@public(namespace="special")
def zeta(input, other):
    """The Hurwitz zeta function; differentiable in ``other`` (the shift) only, as torch."""
    return apply(_ZETA, input, other)
