"""Mirrors of the elementwise ops, comparisons and factories."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import (
    NONZERO,
    POSITIVE,
    PROB,
    REAL,
    Domain,
    binary,
    broadcast_shapes,
    method,
    shape,
    tensor,
    ternary,
    unary,
)


def _fn(name: str, sample, **kw) -> OpMirror:
    """``nx.<name>`` vs ``torch.<name>``."""
    return OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw)


# ----- unary math --------------------------------------------------------------------
UNARY_DOMAINS = {
    "exp": REAL, "expm1": REAL, "log": POSITIVE, "log1p": POSITIVE, "log2": POSITIVE, "log10": POSITIVE,
    "sqrt": POSITIVE, "rsqrt": POSITIVE, "abs": NONZERO, "neg": REAL, "negative": REAL, "sin": REAL,
    "cos": REAL, "tan": Domain(-1.2, 1.2), "sinh": REAL, "cosh": REAL, "tanh": REAL, "sigmoid": REAL,
    "relu": NONZERO, "reciprocal": NONZERO, "square": REAL, "erf": REAL, "frac": Domain(-2, 2, (-1, 0, 1), 0.1),
}
# floor/ceil/round/trunc/sign are piecewise constant: zero gradient away from their jumps.
STEP = Domain(-2.0, 2.0, kinks=(-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0), away=0.1)
for _name in ("floor", "ceil", "trunc", "round", "sign"):
    UNARY_DOMAINS[_name] = STEP

for _name, _domain in UNARY_DOMAINS.items():
    register(_fn(_name, unary(_domain)), OpMirror(f"Tensor.{_name}", method(_name), method(_name), unary(_domain)))

# ----- binary arithmetic ---------------------------------------------------------------
BINARY = {
    "add": binary(), "sub": binary(), "subtract": binary(), "mul": binary(), "multiply": binary(),
    "div": binary(REAL, NONZERO), "divide": binary(REAL, NONZERO), "true_divide": binary(REAL, NONZERO),
    "pow": binary(POSITIVE, REAL), "maximum": binary(), "minimum": binary(),
    "floor_divide": binary(REAL, NONZERO), "remainder": binary(REAL, NONZERO),
}
for _name, _sample in BINARY.items():
    # torch has no derivative for floor_divide ("derivative for aten::floor_divide is not implemented")
    grad = _name != "floor_divide"
    register(_fn(_name, _sample, grad=grad), OpMirror(f"Tensor.{_name}", method(_name), method(_name), _sample, grad=grad))


def _alpha(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    alpha = draw(st.sampled_from([1, 2, -0.5]))
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)), {"alpha": alpha})


def _scalar_pow(draw, dtype, device):
    exponent = draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, -1.5]))
    return Sample((tensor(draw, shape(draw), dtype, device, POSITIVE), exponent))


def _rscalar_pow(draw, dtype, device):
    base = draw(st.sampled_from([0.5, 2.0, 3.0]))
    return Sample((base, tensor(draw, shape(draw), dtype, device)), raw_args=(0,))


def _div_mode(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    mode = draw(st.sampled_from(["floor", "trunc"]))
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device, NONZERO)), {"rounding_mode": mode})


def _clamp(draw, dtype, device):
    shapes, result = broadcast_shapes(draw, 3)
    x = tensor(draw, result, dtype, device)  # tensor bounds broadcast to x (torch's backward needs that)
    kind = draw(st.sampled_from(["scalars", "tensors", "min_only", "max_only"]))
    if kind == "scalars":
        return Sample((x,), {"min": -0.5, "max": 0.7})
    if kind == "min_only":
        return Sample((x,), {"min": tensor(draw, shapes[1], dtype, device)})
    if kind == "max_only":
        return Sample((x,), {"max": 0.3})
    lo = tensor(draw, shapes[1], dtype, device, Domain(-2.0, -0.2))
    hi = tensor(draw, shapes[2], dtype, device, Domain(0.2, 2.0))
    return Sample((x, lo, hi))


def _where(draw, dtype, device):
    shapes, _ = broadcast_shapes(draw, 3)
    cond = tensor(draw, shapes[0], torch.float64, device) > 0
    return Sample((cond, tensor(draw, shapes[1], dtype, device), tensor(draw, shapes[2], dtype, device)))


def _where_method(condition, input, other):
    return input.where(condition, other)


def _lerp(draw, dtype, device):
    shapes, _ = broadcast_shapes(draw, 3)
    weight = draw(st.sampled_from(["tensor", 0.3]))
    w = tensor(draw, shapes[2], dtype, device, PROB) if weight == "tensor" else weight
    return Sample((tensor(draw, shapes[0], dtype, device), tensor(draw, shapes[1], dtype, device), w))


def _addc(denominator: Domain):
    def sample(draw, dtype, device):
        s = ternary(REAL, REAL, denominator)(draw, dtype, device)
        s.kwargs["value"] = draw(st.sampled_from([1, 0.5, -2]))
        return s

    return sample


SPECIAL = {
    "add": _alpha,
    "sub": _alpha,
    "clamp": _clamp,
    "clip": _clamp,
    "where": _where,
    "lerp": _lerp,
    "addcmul": _addc(REAL),
    "addcdiv": _addc(NONZERO),
}
for _name, _sample in SPECIAL.items():
    if _name == "where":  # the method form is ``input.where(condition, other)``
        register(_fn("where", _sample), OpMirror("Tensor.where", _where_method, _where_method, _sample))
        continue
    if _name in ("add", "sub"):
        register(OpMirror(f"{_name}[alpha]", getattr(nx, _name), getattr(torch, _name), _sample))
        continue
    register(_fn(_name, _sample), OpMirror(f"Tensor.{_name}", method(_name), method(_name), _sample))
register(
    OpMirror("pow[scalar exponent]", nx.pow, torch.pow, _scalar_pow),
    OpMirror("pow[scalar base]", nx.pow, torch.pow, _rscalar_pow),
    OpMirror("div[rounding_mode]", nx.div, torch.div, _div_mode, gradgrad=False),
    _fn("clamp_min", lambda d, t, v: Sample((tensor(d, shape(d), t, v), -0.3))),
    _fn("clamp_max", lambda d, t, v: Sample((tensor(d, shape(d), t, v), 0.4))),
)
