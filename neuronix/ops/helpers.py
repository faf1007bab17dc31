"""Small pieces several op families share (one definition each)."""

from __future__ import annotations

import functools


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` as a non-negative index when valid (0-d tensors accept -1 and 0); unchanged otherwise,
    so an out-of-range dim reaches torch's kernel, whose error names the op."""
    rank = max(ndim, 1)
    return dim % rank if -rank <= dim < rank else dim


class PerInput:
    """``spec.vjps`` of a variadic op (cat, stack, einsum): ``vjps[i]`` is ``rule`` with ``i`` bound."""

    __slots__ = ("rule",)

    def __init__(self, rule) -> None:
        self.rule = rule

    def __getitem__(self, i: int):
        return functools.partial(self.rule, i)
