"""Mirrors of the Python operators on ``Tensor`` and of the dtype / device conversions."""

from __future__ import annotations

import operator

import torch
from hypothesis import strategies as st

from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import NONZERO, POSITIVE, REAL, Domain, binary, broadcast_shapes, method, shape, tensor, unary

# ----- binary arithmetic: tensor op tensor, and Python number op tensor (reflected) ------------
ARITHMETIC = {
    "add": (operator.add, REAL, REAL), "sub": (operator.sub, REAL, REAL), "mul": (operator.mul, REAL, REAL),
    "truediv": (operator.truediv, REAL, NONZERO), "floordiv": (operator.floordiv, REAL, NONZERO),
    "mod": (operator.mod, REAL, NONZERO), "pow": (operator.pow, POSITIVE, REAL),
}
# torch: "derivative for aten::floor_divide is not implemented"; number % tensor: "... aten::remainder ..."
NO_DERIVATIVE = ("floordiv",)


def _reflected(op, scalars):
    """``number <op> tensor``: Python calls the tensor's ``__r<op>__``."""

    def call(x, number):
        return op(number, x)

    def sample(draw, dtype, device):
        x_domain = NONZERO if op in (operator.truediv, operator.floordiv, operator.mod) else REAL
        return Sample((tensor(draw, shape(draw), dtype, device, x_domain), draw(st.sampled_from(scalars))))

    return call, sample


for _name, (_op, _a, _b) in ARITHMETIC.items():
    _grad = _name not in NO_DERIVATIVE
    _scalars = [0.5, 2.0, 3.0] if _name == "pow" else [2.0, -0.5, 3]
    _call, _sample = _reflected(_op, _scalars)
    register(
        OpMirror(f"Tensor.__{_name}__", _op, _op, binary(_a, _b), grad=_grad),
        OpMirror(f"Tensor.__r{_name}__", _call, _call, _sample, grad=_grad and _name != "mod"),
    )

# ----- unary --------------------------------------------------------------------------------
register(
    OpMirror("Tensor.__neg__", operator.neg, operator.neg, unary()),
    OpMirror("Tensor.__pos__", operator.pos, operator.pos, unary()),
    OpMirror("Tensor.__abs__", operator.abs, operator.abs, unary(NONZERO)),
)

# ----- comparisons (bool results) and bitwise operators on bool tensors -------------------------
TIES = Domain(-2.0, 2.0)


def _comparable(draw, dtype, device):
    """Two broadcastable tensors with many exact ties (values rounded to halves)."""
    (sa, sb), _ = broadcast_shapes(draw, 2)
    a = (tensor(draw, sa, dtype, device, TIES) * 2).round() / 2
    b = (tensor(draw, sb, dtype, device, TIES) * 2).round() / 2
    return Sample((a, b))


def _bools(n: int):
    def sample(draw, dtype, device):
        shapes, _ = broadcast_shapes(draw, n)
        return Sample(tuple(tensor(draw, s, torch.float64, device) > 0 for s in shapes))

    return sample


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _op = getattr(operator, _name)
    register(OpMirror(f"Tensor.__{_name}__", _op, _op, _comparable, grad=False))
for _name, _op in (("and", operator.and_), ("or", operator.or_), ("xor", operator.xor)):
    register(
        OpMirror(f"Tensor.__{_name}__", _op, _op, _bools(2), grad=False),
        OpMirror(f"Tensor.__r{_name}__", method(f"__r{_name}__"), method(f"__r{_name}__"), _bools(2), grad=False),
    )
register(OpMirror("Tensor.__invert__", operator.invert, operator.invert, _bools(1), grad=False))

# ----- conversions ---------------------------------------------------------------------------------
# Differentiable casts: the gradient is cast back to the input's dtype. A cast to a lower precision makes a
# central difference in float64 meaningless (rounding 1e-7 .. 1e-3 against a step of 1e-6), hence fd=False.
register(OpMirror("Tensor.double", method("double"), method("double"), unary()))
for _name in ("float", "half", "bfloat16"):
    register(OpMirror(f"Tensor.{_name}", method(_name), method(_name), unary(), fd=False))
for _name in ("long", "int", "bool"):
    register(OpMirror(f"Tensor.{_name}", method(_name), method(_name), unary(), grad=False))


def _to(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    form = draw(st.sampled_from(["dtype", "dtype kw", "device", "device+dtype", "tensor"]))
    other = torch.float64 if dtype == torch.float32 else torch.float32
    if form == "dtype":
        return Sample((x, other))
    if form == "dtype kw":
        return Sample((x,), {"dtype": other})
    if form == "device":
        return Sample((x, x.device.type))
    if form == "device+dtype":
        return Sample((x, x.device.type, other))
    return Sample((x, torch.zeros((), dtype=other, device=device)), grad_args=(0,), raw_args=(1,))


def _type_as(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    other = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    return Sample((x, torch.zeros((), dtype=other, device=device)), grad_args=(0,))


def _type(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    other = draw(st.sampled_from([torch.float32, torch.float64, "torch.DoubleTensor", "torch.FloatTensor", dtype]))
    return Sample((x, other))


def _on(device_type: str):
    def sample(draw, dtype, device):
        return Sample((tensor(draw, shape(draw), dtype, device),))

    return sample


register(
    OpMirror("Tensor.to", method("to"), method("to"), _to, fd=False),
    OpMirror("Tensor.type_as", method("type_as"), method("type_as"), _type_as, fd=False),
    OpMirror("Tensor.type", method("type"), method("type"), _type, fd=False),
    OpMirror("Tensor.cpu", method("cpu"), method("cpu"), _on("cpu")),
    OpMirror("Tensor.cuda", method("cuda"), method("cuda"), _on("cuda"), devices=("cuda",)),
    OpMirror("Tensor.clamp_min", method("clamp_min"), method("clamp_min"),
             lambda d, t, v: Sample((tensor(d, shape(d), t, v), -0.3))),
    OpMirror("Tensor.clamp_max", method("clamp_max"), method("clamp_max"),
             lambda d, t, v: Sample((tensor(d, shape(d), t, v), 0.4))),
)
