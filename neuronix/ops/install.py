"""Binds the registry's public functions to ``Tensor``: methods and Python operators."""

from __future__ import annotations

import torch

from neuronix.ops import compare, indexing, linalg, movement, shaping
from neuronix.ops import elementwise as ew
from neuronix.ops.inplace import install_inplace_methods
from neuronix.ops.registry import METHODS
from neuronix.tensor import Tensor


def _swap(fn):
    def reflected(self, other):
        return fn(other, self)

    return reflected


def _parse_to(args, kwargs):
    """``Tensor.to`` overloads: (dtype), (device[, dtype]), (tensor), keywords."""
    dtype, device = kwargs.get("dtype"), kwargs.get("device")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, (Tensor, torch.Tensor)):
            other = a.data if isinstance(a, Tensor) else a
            dtype, device = other.dtype, other.device
        elif a is not None:
            device = torch.device(a)
    return dtype, device


def _to(self, *args, **kwargs):
    """``Tensor.to``: differentiable dtype/device conversion (returns self when nothing changes)."""
    dtype, device = _parse_to(args, kwargs)
    return ew.convert(self, dtype, device)


def _type(self, dtype=None, non_blocking: bool = False, **kwargs):
    """``Tensor.type``: the type name (``'torch.FloatTensor'``) without ``dtype``, else a differentiable cast.

    ``dtype`` is a ``torch.dtype`` or a type name, which also names the device (``'torch.cuda.FloatTensor'``);
    torch's own parsing of the name decides both (and raises its error for an unknown name).
    """
    if dtype is None:
        return self.data.type()
    if isinstance(dtype, str):
        target = torch.empty(0, dtype=self.dtype, device=self.device).type(dtype)
        return ew.convert(self, target.dtype, target.device)
    return ew.convert(self, dtype)


OPERATORS = {
    "__add__": ew.add,
    "__radd__": _swap(ew.add),
    "__sub__": ew.sub,
    "__rsub__": _swap(ew.sub),
    "__mul__": ew.mul,
    "__rmul__": _swap(ew.mul),
    "__truediv__": ew.div,
    "__rtruediv__": lambda self, other: ew.reciprocal(self) * other,  # as torch's (values, and what is saved)
    "__floordiv__": ew.floor_divide,
    "__rfloordiv__": _swap(ew.floor_divide),
    "__mod__": ew.remainder,
    "__rmod__": _swap(ew.remainder),
    "__pow__": ew.pow,
    "__rpow__": _swap(ew.pow),
    "__neg__": ew.neg,
    "__pos__": lambda self: self,
    "__abs__": ew.abs,
    "__eq__": compare.eq,
    "__ne__": compare.ne,
    "__lt__": compare.lt,
    "__le__": compare.le,
    "__gt__": compare.gt,
    "__ge__": compare.ge,
    "__and__": compare.bitwise_and,
    "__rand__": _swap(compare.bitwise_and),
    "__or__": compare.bitwise_or,
    "__ror__": _swap(compare.bitwise_or),
    "__xor__": compare.bitwise_xor,
    "__rxor__": _swap(compare.bitwise_xor),
    "__invert__": compare.bitwise_not,
    "__matmul__": linalg.matmul,
    "__rmatmul__": _swap(linalg.matmul),
    "__getitem__": indexing.getitem,
}

CONVERSIONS = {
    "to": _to,
    "float": lambda self: ew.convert(self, torch.float32),
    "double": lambda self: ew.convert(self, torch.float64),
    "half": lambda self: ew.convert(self, torch.float16),
    "bfloat16": lambda self: ew.convert(self, torch.bfloat16),
    "long": lambda self: ew.convert(self, torch.int64),
    "int": lambda self: ew.convert(self, torch.int32),
    "bool": lambda self: ew.convert(self, torch.bool),
    "cpu": lambda self: ew.convert(self, device=torch.device("cpu")),
    "cuda": lambda self, device=None: ew.convert(self, device=torch.device("cuda" if device is None else device)),
    "type_as": lambda self, other: ew.convert(self, other.dtype),
    "type": _type,
}


def install_tensor_methods() -> None:
    for name, fn in {**METHODS, **OPERATORS, **CONVERSIONS}.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(movement.T, doc=movement.T.__doc__)
    Tensor.mT = property(movement.mT, doc=movement.mT.__doc__)
    Tensor.mH = property(shaping.mH, doc=shaping.mH.__doc__)
    Tensor.H = property(shaping.H, doc=shaping.H.__doc__)
    Tensor.__hash__ = object.__hash__
    install_inplace_methods()  # after the methods: the in-place ones are derived from them
