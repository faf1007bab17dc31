"""Argument helpers shared by the ``nn.functional`` modules: normalising and checking what users pass."""

from __future__ import annotations

import torch

from neuronix.tensor import Tensor


def as_nx(t):
    """A neuronix tensor for ``t`` (torch tensors become constants); ``None`` stays ``None``."""
    return Tensor(t) if isinstance(t, torch.Tensor) else t


def shape_of(t) -> tuple:
    """``t``'s shape as a plain tuple (for messages and comparisons)."""
    return tuple(t.shape)


def int_tuple(value, n: int, op: str, what: str) -> tuple:
    """``value`` as an ``n``-tuple of ints (torch accepts an int or a sequence of length 1 or n)."""
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{op}: {what} must be an int or a sequence of {n} ints, got {value}")
    return value


def check_rank(op: str, x, spatial: int) -> bool:
    """Accept (C, *spatial) or (N, C, *spatial); return whether the input is batched."""
    if x.ndim not in (spatial + 1, spatial + 2):
        sizes = {1: "L", 2: "H, W", 3: "D, H, W"}[spatial]
        raise ValueError(
            f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input of shape "
            f"(C, {sizes}) or (N, C, {sizes}), got a {x.ndim}-D input of shape {shape_of(x)}"
        )
    return x.ndim == spatial + 2


def add_batch(x, batched: bool):
    """``x`` with a batch dim of 1 in front, unless it already is ``batched``."""
    return x if batched else x.reshape((1,) + shape_of(x))


def drop_batch(out, batched: bool):
    """``add_batch`` undone on a result."""
    return out if batched else out.reshape(shape_of(out)[1:])


def reduction_mode(op: str, size_average, reduce, reduction: str, extra: tuple = ()) -> str:
    """The loss reduction, from torch's legacy ``size_average``/``reduce`` flags when given, checked."""
    if size_average is not None or reduce is not None:  # torch's legacy flags
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
    if reduction not in ("none", "mean", "sum", *extra):
        valid = ", ".join(repr(r) for r in ("none", "mean", "sum", *extra))
        raise ValueError(f"{op}: reduction must be one of {valid}, got {reduction!r}")
    return reduction

