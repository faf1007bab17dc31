"""Mirrors of the pointwise family of issue 13 (``neuronix/ops/pointwise*.py``): inverse trigonometric,
gamma, error-function and Bessel functions, the binary ones (atan2 ... ldexp), torch.special, the aliases.

Domains keep the smooth draws off poles and kinks (the finite-difference oracle needs a neighbourhood);
the special-value check then probes 0, +-1, +-inf and NaN, where torch's conventions live.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors.compare import _specials
from conformance.mirrors.reduce import _softmax, reduction
from conformance.strategies import (
    NONZERO,
    POSITIVE,
    PROB,
    REAL,
    Domain,
    binary,
    broadcast_shapes,
    index_tensor,
    method,
    shape,
    tensor,
    unary,
)

# fmod's x / y off its jumps, and |divisor| >= 1: half's finite-difference steps (up to 0.08) then move x / y by
# less than the 0.3 it keeps from the jumps
QUOTIENT = Domain(-2.5, 2.5, kinks=(-2.0, -1.0, 0.0, 1.0, 2.0), away=0.3)
DIVISOR = Domain(-2.5, 2.5, kinks=(0.0,), away=1.0)
UNIT = Domain(-0.9, 0.9)  # acos, asin, atanh, erfinv: inside (-1, 1), where they are smooth
GAMMA = Domain(0.3, 4.0)  # digamma, lgamma: right of their poles at 0, -1, -2, ...
BESSEL = Domain(-3.0, 3.0)
# sinc, i1, i1e, i0e: off 0, where their float32 second derivatives are cancellation ((x cos x - sin x) / x^2,
# I1(x) / x, e^-|x|'s kink): torch's rounding and neuronix's differ there and neither is the reference (the
# special-value check still meets 0 itself, where the rules take their exact limit branch)
OFF_ZERO = Domain(-3.0, 3.0, kinks=(0.0,), away=0.25)


def _both(name: str, sample, **kw) -> list[OpMirror]:
    """``nx.<name>`` vs ``torch.<name>`` and ``Tensor.<name>`` on the same samples."""
    return [OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw),
            OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw)]


def _special(name: str, sample, **kw) -> OpMirror:
    """``nx.special.<name>`` vs ``torch.special.<name>``."""
    return OpMirror(f"special.{name}", getattr(nx.special, name), getattr(torch.special, name), sample, **kw)


def _inplace_copy(name: str):
    """``x.clone().<name>_()``: the in-place method on a copy (the sample's tensor stays as drawn)."""

    def call(x):
        return getattr(x.clone(), name + "_")()

    call.__name__ = f"{name}_"
    return call


# ----- unary: function and method -------------------------------------------------------------
UNARY = {
    "acos": UNIT, "asin": UNIT, "atan": REAL, "acosh": Domain(1.2, 3.0), "asinh": REAL, "atanh": UNIT,
    "arccos": UNIT, "arcsin": UNIT, "arctan": REAL, "arccosh": Domain(1.2, 3.0), "arcsinh": REAL, "arctanh": UNIT,
    "deg2rad": REAL, "rad2deg": REAL, "exp2": REAL, "erfc": REAL, "erfinv": UNIT, "sinc": OFF_ZERO,
    "digamma": GAMMA, "lgamma": GAMMA, "i0": BESSEL, "positive": REAL, "absolute": NONZERO,
    "fix": Domain(-2.0, 2.0, kinks=(-2.0, -1.0, 0.0, 1.0, 2.0), away=0.1),
    "sgn": NONZERO,
}
for _name, _domain in UNARY.items():
    register(*_both(_name, unary(_domain)))

# torch's in-place acosh_, asinh_ and atanh_ have no derivative (derivatives.yaml: not_implemented("inplace
# version of acosh")): their mirrors compare values only (neuronix records the out-of-place rule for them)
_INPLACE_NO_DERIVATIVE = "torch's in-place version has no derivative (not_implemented): values only"
for _name in ("acosh", "asinh", "atanh", "arccosh", "arcsinh", "arctanh"):
    _call = _inplace_copy(_name)
    register(OpMirror(f"Tensor.{_name}_", _call, _call, unary(UNARY[_name]), grad=False, note=_INPLACE_NO_DERIVATIVE))

SPECIAL_UNARY = {
    "entr": POSITIVE, "erfcx": REAL, "log_ndtr": REAL, "ndtr": REAL, "ndtri": PROB, "i0e": OFF_ZERO, "i1": OFF_ZERO,
    "i1e": OFF_ZERO, "expit": REAL, "exp2": REAL, "expm1": REAL, "erf": REAL, "erfc": REAL, "erfinv": UNIT,
    "gammaln": GAMMA, "digamma": GAMMA, "psi": GAMMA, "sinc": OFF_ZERO, "log1p": POSITIVE, "i0": BESSEL,
    "round": Domain(-2.0, 2.0, kinks=(-1.5, -0.5, 0.5, 1.5), away=0.1),
}
# torch's CPU kernels lack half for these (forward "not implemented for 'Half'", or i1/i1e's backward)
NO_HALF = {"erfcx": "forward", "log_ndtr": "forward", "ndtri": "forward", "i1": "backward", "i1e": "backward"}
for _name, _domain in SPECIAL_UNARY.items():
    _kw = {"dtypes": FLOATS, "note": f"torch's CPU {NO_HALF[_name]} kernel has no float16/bfloat16"} if _name in NO_HALF else {}
    register(_special(_name, unary(_domain), **_kw))


# ----- gamma family with an integer argument ------------------------------------------------------
def _polygamma(draw, dtype, device):
    n = draw(st.integers(0, 3))
    return Sample((n, tensor(draw, shape(draw), dtype, device, Domain(0.5, 4.0))))


def _polygamma_method(draw, dtype, device):
    n, x = _polygamma(draw, dtype, device).args
    return Sample((x, n))


def _mvlgamma(draw, dtype, device):
    p = draw(st.integers(1, 4))
    # every element > (p - 1) / 2: the smooth domain (below it lgamma's poles; torch 2.13 no longer rejects it)
    x = tensor(draw, shape(draw), dtype, device, Domain((p - 1) / 2 + 0.3, (p - 1) / 2 + 4.0))
    return Sample((x,), {"p": p})


register(
    OpMirror("polygamma", nx.polygamma, torch.polygamma, _polygamma),
    OpMirror("Tensor.polygamma", method("polygamma"), method("polygamma"), _polygamma_method),
    _special("polygamma", _polygamma),
    *_both("mvlgamma", _mvlgamma),
    _special("multigammaln", _mvlgamma),
)


# ----- logit, nan_to_num, frexp -----------------------------------------------------------------------
def _logit(draw, dtype, device):
    eps = draw(st.sampled_from([None, 0.2, 1e-6]))
    # inside (0.15, 0.85) where differentiable: nearer 0 and 1 the slope 1 / (x (1 - x)) curves too fast for
    # half's finite-difference steps
    if eps is None:
        return Sample((tensor(draw, shape(draw), dtype, device, Domain(0.15, 0.85)),))
    # both sides of the clamp, kept off its corners eps and 1 - eps (and off 0 and 1)
    x = tensor(draw, shape(draw), dtype, device, Domain(-0.3, 1.3, kinks=(0.0, eps, 1 - eps, 1.0), away=0.15))
    return Sample((x,), {"eps": eps})


def _nan_to_num(draw, dtype, device):
    # finite draws (finite differences need a neighbourhood); the special-value check brings NaN and +-inf
    kwargs = draw(st.sampled_from([{}, {"nan": 1.5}, {"nan": 0.5, "posinf": 3.0, "neginf": -2.0}, {"posinf": 1e3}]))
    return Sample((tensor(draw, shape(draw), dtype, device),), kwargs)


def _frexp(draw, dtype, device):
    # magnitudes off the powers of two, where the mantissa jumps (half's finite differences would straddle them)
    magnitude = tensor(draw, shape(draw), dtype, device, Domain(0.3, 7.5, kinks=(0.5, 1.0, 2.0, 4.0), away=0.1))
    return Sample((magnitude * torch.where(tensor(draw, magnitude.shape, dtype, device) > 0, 1.0, -1.0).to(dtype),))


register(
    *_both("logit", _logit),
    _special("logit", _logit),
    *_both("nan_to_num", _nan_to_num),
    *_both("frexp", _frexp),
)

# ----- sign tests (bool results) ----------------------------------------------------------------------
for _name in ("signbit", "isposinf", "isneginf", "isreal"):
    register(*_both(_name, _specials, grad=False))


# ----- binary -------------------------------------------------------------------------------------
def _apart(draw, dtype, device):
    """``(x, y)`` broadcastable with |x - y| >= 0.2 (fmax/fmin: ties only in the special-value check)."""
    (sa, sb), _ = broadcast_shapes(draw, 2)
    x = tensor(draw, sa, dtype, device)
    y = x + tensor(draw, sb, dtype, device, NONZERO)
    return Sample((y, x) if draw(st.booleans()) else (x, y))


def _off_multiples(draw, dtype, device):
    """``(x, y)`` with x / y off the integers, where fmod jumps (finite differences must not straddle a jump)."""
    (sa, sb), _ = broadcast_shapes(draw, 2)
    y = tensor(draw, sb, dtype, device, DIVISOR)
    quotient = tensor(draw, sa, dtype, device, QUOTIENT)
    return Sample((quotient * y, y))


BINARY = {
    "atan2": binary(NONZERO, NONZERO), "arctan2": binary(NONZERO, NONZERO), "hypot": binary(NONZERO, NONZERO),
    "copysign": binary(NONZERO, NONZERO), "logaddexp": binary(), "logaddexp2": binary(),
    "xlogy": binary(REAL, POSITIVE), "fmax": _apart, "fmin": _apart, "fmod": _off_multiples,
    "nextafter": binary(), "float_power": binary(POSITIVE, REAL),
}
for _name, _sample in BINARY.items():
    register(*_both(_name, _sample))


def _scalar_other(a: Domain, values):
    def sample(draw, dtype, device):
        return Sample((tensor(draw, shape(draw), dtype, device, a), draw(st.sampled_from(values))))

    return sample


def _scalar_self(b: Domain, values):
    def sample(draw, dtype, device):
        return Sample((draw(st.sampled_from(values)), tensor(draw, shape(draw), dtype, device, b)), raw_args=(0,))

    return sample


def _fmod_scalar(draw, dtype, device):
    divisor = draw(st.sampled_from([1.5, -1.25]))
    quotient = tensor(draw, shape(draw), dtype, device, QUOTIENT)
    return Sample((quotient * divisor, divisor))


# Number ``other``s > 0 (xlogy) and > -1 (xlog1py) only: at or beyond the pole torch's forward AD (its explicit
# formula) and its double backward (through the mask at a zero upstream gradient) differ; tests/test_pointwise.py
# checks both backward modes there.
register(
    OpMirror("copysign[scalar]", nx.copysign, torch.copysign, _scalar_other(NONZERO, [1.0, -2.0, 0.0, -0.0])),
    OpMirror("fmod[scalar]", nx.fmod, torch.fmod, _fmod_scalar),
    OpMirror("xlogy[scalar other]", nx.xlogy, torch.xlogy, _scalar_other(REAL, [2.0, 0.5])),
    OpMirror("xlogy[scalar self]", nx.xlogy, torch.xlogy, _scalar_self(POSITIVE, [2.0, 0.0, -1.5])),
    OpMirror("float_power[scalar exponent]", nx.float_power, torch.float_power,
             _scalar_other(POSITIVE, [2, 3, -1, 0.5, -1.5, 0])),
    OpMirror("float_power[scalar base]", nx.float_power, torch.float_power, _scalar_self(REAL, [2.0, 0.5, 3])),
    _special("xlogy", binary(REAL, POSITIVE)),
    _special("xlog1py", binary(REAL, Domain(-0.8, 2.0))),
    OpMirror("special.xlog1py[scalar other]", nx.special.xlog1py, torch.special.xlog1py,
             _scalar_other(REAL, [1.0, 0.0, -0.5])),
)


def _ldexp(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    x = tensor(draw, sa, dtype, device)
    if draw(st.booleans()):
        # integer exponents >= 0: below 0 torch's gradient for x is wrong (2^-k computed in integers is 0)
        return Sample((x, index_tensor(draw, sb, 5, device)))
    return Sample((x, tensor(draw, sb, dtype, device, Domain(-3.0, 3.0))))


def _rsub(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    x = tensor(draw, sa, dtype, device)
    other = draw(st.sampled_from(["tensor", 2.5]))
    other = tensor(draw, sb, dtype, device) if other == "tensor" else other
    kwargs = draw(st.sampled_from([{}, {"alpha": 2}, {"alpha": -0.5}]))
    return Sample((x, other), kwargs)


def _heaviside(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    x = (tensor(draw, sa, dtype, device) * 2).round() / 2  # zeros occur: there the values argument is taken
    return Sample((x, tensor(draw, sb, dtype, device)))


def _incomplete_gamma(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((tensor(draw, sa, dtype, device, Domain(0.5, 3.0)), tensor(draw, sb, dtype, device, Domain(0.2, 3.0))),
                  grad_args=(1,))


def _zeta(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((tensor(draw, sa, dtype, device, Domain(1.5, 4.0)), tensor(draw, sb, dtype, device, Domain(0.5, 3.0))),
                  grad_args=(1,))


_NO_INPUT_GRAD = "torch differentiates only the second argument ('the derivative for ... input is not implemented')"


def _float_power_(x, exponent):
    return x.clone().float_power_(exponent)


register(
    # in place, the result (float64) must fit the tensor: torch refuses float_power_ on any other dtype
    OpMirror("Tensor.float_power_", _float_power_, _float_power_, binary(POSITIVE, REAL), dtypes=(torch.float64,),
             note="torch refuses float_power_ unless the tensor is float64 (the result's dtype)"),
    *_both("ldexp", _ldexp),
    OpMirror("rsub", nx.rsub, torch.rsub, _rsub),
    *_both("heaviside", _heaviside, grad=False),
    *_both("igamma", _incomplete_gamma, note=_NO_INPUT_GRAD),
    *_both("igammac", _incomplete_gamma, note=_NO_INPUT_GRAD),
    _special("gammainc", _incomplete_gamma, note=_NO_INPUT_GRAD),
    _special("gammaincc", _incomplete_gamma, note=_NO_INPUT_GRAD),
    _special("zeta", _zeta, dtypes=FLOATS, note=_NO_INPUT_GRAD + "; torch's CPU zeta has no float16/bfloat16"),
)


# ----- comparison aliases ---------------------------------------------------------------------------
def _halves_pair(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample(tuple((tensor(draw, s, dtype, device) * 2).round() / 2 for s in (sa, sb)))


for _name in ("greater", "greater_equal", "less", "less_equal", "not_equal"):
    register(*_both(_name, _halves_pair, grad=False))


def _integers(draw, dtype, device):
    """Integer pairs (gcd, lcm, shifts): values in [-20, 20], shift amounts in [0, 5]."""
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((index_tensor(draw, sa, 41, device) - 20, index_tensor(draw, sb, 6, device)))


for _name in ("gcd", "lcm", "bitwise_left_shift", "bitwise_right_shift"):
    register(*_both(_name, _integers, grad=False, dtypes=FLOATS, note="integer inputs: the case's dtype is not used"))


# ----- tensor predicates (Python results) ----------------------------------------------------------
def _any_dtype(draw, dtype, device):
    kind = draw(st.sampled_from(["float", "int", "bool", "complex"]))
    x = tensor(draw, shape(draw), dtype, device)
    return Sample(({"float": x, "int": (x * 10).long(), "bool": x > 0, "complex": x.to(torch.complex64)}[kind],))


def _one_element(draw, dtype, device):
    x = (tensor(draw, draw(st.sampled_from([(), (1,), (1, 1)])), dtype, device) * 2).round() / 2  # zeros occur
    return Sample((x,))


def _two_shapes(draw, dtype, device):
    a = tensor(draw, shape(draw), dtype, device)
    return Sample((a, tensor(draw, a.shape if draw(st.booleans()) else shape(draw), dtype, device)))


PREDICATES = {"is_complex": _any_dtype, "is_conj": _any_dtype, "is_neg": _any_dtype, "is_signed": _any_dtype,
              "is_nonzero": _one_element, "is_same_size": _two_shapes}
for _name, _sample in PREDICATES.items():
    register(*_both(_name, _sample, grad=False))
def _promotion_pair(draw, dtype, device):
    """Two operands of kinds that promote differently: tensors of several dtypes and ranks, Python numbers."""
    def operand():
        kind = draw(st.sampled_from(["tensor", "0-d", "int tensor", "bool tensor", "int", "float"]))
        x = tensor(draw, (2,) if kind != "0-d" else (), dtype, device)
        return {"tensor": x, "0-d": x, "int tensor": x.long(), "bool tensor": x > 0, "int": 3, "float": 2.5}[kind]

    first = operand()
    while not isinstance(first, torch.Tensor):  # torch.result_type needs a tensor first
        first = operand()
    return Sample((first, operand()), raw_args=())


def _maybe_tensor(draw, dtype, device):
    return Sample((draw(st.sampled_from([tensor(draw, shape(draw), dtype, device), 1.5, [1.0, 2.0], None])),))


DTYPES = [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32,
          torch.float64, torch.complex64]


def _dtype_pair(draw, dtype, device):
    return Sample((draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))))


register(OpMirror("is_floating_point", nx.is_floating_point, torch.is_floating_point, _any_dtype, grad=False),
         OpMirror("numel", nx.numel, torch.numel, _any_dtype, grad=False),
         *_both("resolve_neg", unary(REAL)),
         OpMirror("is_tensor", nx.is_tensor, torch.is_tensor, _maybe_tensor, grad=False),
         OpMirror("result_type", nx.result_type, torch.result_type, _promotion_pair, grad=False),
         OpMirror("promote_types", nx.promote_types, torch.promote_types, _dtype_pair, grad=False),
         OpMirror("can_cast", nx.can_cast, torch.can_cast, _dtype_pair, grad=False))


# ----- window functions and scalar_tensor (factories: values, dtype, device and requires_grad compared) -------------
def _window(kaiser: bool):
    def sample(draw, dtype, device):
        kwargs = {"dtype": dtype, "device": device, "requires_grad": draw(st.booleans())}
        if draw(st.booleans()):
            kwargs["periodic"] = draw(st.booleans())
        if kaiser and draw(st.booleans()):
            kwargs["beta"] = draw(st.sampled_from([0.5, 5.0, 14.0]))
        return Sample((draw(st.integers(0, 9)),), kwargs)

    return sample


def _scalar_tensor(draw, dtype, device):
    return Sample((draw(st.sampled_from([0.0, -1.5, 3.0, 7])),),
                  {"dtype": dtype, "device": device, "requires_grad": draw(st.booleans())})


def _with_requires_grad(result):
    return result, result.requires_grad


def _empty_strided(draw, dtype, device):
    size = shape(draw, max_dims=3)
    stride = tuple(draw(st.integers(1, 4)) for _ in size)
    return Sample((size, stride), {"dtype": dtype, "device": device, "requires_grad": draw(st.booleans())})


def _strided_metadata(result):  # uninitialised memory: what is compared is the layout and the flags
    return tuple(result.shape), tuple(result.stride()), result.dtype, result.requires_grad


def _unravel(draw, dtype, device):
    sizes = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    count = 1
    for s in sizes:
        count *= s
    return Sample((index_tensor(draw, shape(draw, max_dims=2), count, device), sizes))


register(OpMirror("empty_strided", nx.empty_strided, torch.empty_strided, _empty_strided, grad=False,
                  output=_strided_metadata),
         OpMirror("detach", nx.detach, torch.detach, unary(REAL), grad=False, output=_with_requires_grad),
         OpMirror("unravel_index", nx.unravel_index, torch.unravel_index, _unravel, grad=False))

for _name in ("hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window", "scalar_tensor"):
    _sample = _scalar_tensor if _name == "scalar_tensor" else _window(_name == "kaiser_window")
    register(OpMirror(_name, getattr(nx, _name), getattr(torch, _name), _sample, grad=False, output=_with_requires_grad))


# ----- special.* reductions and softmax aliases --------------------------------------------------------
register(
    _special("logsumexp", reduction(nonempty=True, none_ok=False)),
    _special("softmax", _softmax(False)),
    _special("log_softmax", _softmax(False)),
    OpMirror("special.softmax[dtype]", nx.special.softmax, torch.special.softmax, _softmax(True)),
    OpMirror("special.log_softmax[dtype]", nx.special.log_softmax, torch.special.log_softmax, _softmax(True)),
)


# ----- Bessel functions and orthogonal polynomials: values only (torch has no derivative) ----------------
_NO_DERIVATIVE = "torch has no derivative (its result never requires grad): values only"
_NO_HALF = "; torch's CPU kernel has no float16/bfloat16"
for _name in nx.ops.pointwise_special.BESSEL:
    register(_special(_name, unary(Domain(0.1, 4.0)), grad=False, dtypes=FLOATS, note=_NO_DERIVATIVE + _NO_HALF))


def _polynomial(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device, Domain(-1.0, 1.0))
    if draw(st.booleans()):
        return Sample((x, draw(st.integers(0, 6))))
    return Sample((x, index_tensor(draw, shape(draw, max_dims=1, max_side=1), 7, device).to(dtype)))


for _name in nx.ops.pointwise_special.POLYNOMIALS:
    register(_special(_name, _polynomial, grad=False, dtypes=FLOATS, note=_NO_DERIVATIVE + _NO_HALF))
