"""Small pieces several op families share (one definition each)."""

from __future__ import annotations

import functools

import torch


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` as a non-negative index when valid (0-d tensors accept -1 and 0); unchanged otherwise,
    so an out-of-range dim reaches torch's kernel, whose error names the op."""
    rank = max(ndim, 1)
    return dim % rank if -rank <= dim < rank else dim


def checked_dims(name: str, args, attrs: dict, *dims: int, ndim: int) -> tuple[int, ...]:
    """``dims`` wrapped into ``[0, ndim)`` as ``wrap_dim`` does, for a composition that must check them up front (its
    inner ops would name themselves, or fail with a bare Python error): the first one out of range raises torch's
    ``IndexError`` ("Dimension out of range (expected to be in range of [-n, n-1], but got d)") as a failed forward's
    error reads, ``neuronix.<name>(<args described>, <attrs>): <torch's reason>`` (``registry.op_error``)."""
    rank = max(ndim, 1)
    for d in dims:
        if not -rank <= d < rank:
            from neuronix.ops.registry import op_error  # the registry imports the op families, which import this

            reason = IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {d})")
            raise op_error(name, args, attrs, reason)
    return tuple(d % rank for d in dims)


class PerInput:
    """``spec.vjps`` of a variadic op (cat, stack, einsum): ``vjps[i]`` is ``rule`` with ``i`` bound."""

    __slots__ = ("rule",)

    def __init__(self, rule) -> None:
        self.rule = rule

    def __getitem__(self, i: int):
        return functools.partial(self.rule, i)


def _refuse(i, g, out, *inputs, value, name):
    raise RuntimeError(f"neuronix.{name}: torch defines no derivative for {name} (its backward raises 'derivative for "
                       f"aten::{name} is not implemented'); compute it under nx.no_grad() or from detached inputs")


_UNDIFFERENTIABLE = None  # the OpSpec, made at first use (the registry imports the tensor module, which is fine,
# but ops/helpers is imported by the op families while the registry is still being filled)


def undifferentiable(name: str, value: torch.Tensor, *inputs):
    """``value`` as torch returns it for an op it does not differentiate (unique, histogram, detach_copy, ...): its
    result requires grad when an input does (with grad mode on) and a backward through it raises torch's error, so a
    graph through it fails where torch's fails, at backward, never earlier and never silently.

    Not a registry op (``defop``): it has no derivative and no kernel of its own (its forward hands back the caller's
    value), so there is nothing for the harness's planted faults to change.
    """
    global _UNDIFFERENTIABLE
    from neuronix.ops.registry import OpSpec, apply, recording
    from neuronix.tensor import Tensor

    if recording(*inputs):
        if _UNDIFFERENTIABLE is None:
            _UNDIFFERENTIABLE = OpSpec("undifferentiable", lambda *inputs, value, name: value, PerInput(_refuse),
                                       saves=(), saves_out=False, aux=False)
        return apply(_UNDIFFERENTIABLE, *inputs, value=value, name=name)
    return Tensor._make(value, None)
