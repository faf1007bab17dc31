"""Tensor factories with torch's signatures plus ``requires_grad``."""

from __future__ import annotations

import torch

from neuronix.ops.registry import public
from neuronix.tensor import Tensor, _check_can_require_grad


def _unwrap(x):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _factory(name: str):
    torch_fn = getattr(torch, name)

    def fn(*args, requires_grad: bool = False, **kwargs):
        data = torch_fn(*(_unwrap(a) for a in args), **kwargs)
        if requires_grad:
            _check_can_require_grad(data, f"nx.{name}")
        return Tensor(data, requires_grad=requires_grad)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.{name}`` returning an ``nx.Tensor`` (``requires_grad`` as torch)."
    return public(fn, method=False)


tensor = _factory("tensor")
as_tensor = _factory("as_tensor")
zeros = _factory("zeros")
ones = _factory("ones")
full = _factory("full")
empty = _factory("empty")
arange = _factory("arange")
linspace = _factory("linspace")
logspace = _factory("logspace")
eye = _factory("eye")
rand = _factory("rand")
randn = _factory("randn")
randint = _factory("randint")
randperm = _factory("randperm")
zeros_like = _factory("zeros_like")
ones_like = _factory("ones_like")
full_like = _factory("full_like")
empty_like = _factory("empty_like")
rand_like = _factory("rand_like")
randn_like = _factory("randn_like")
randint_like = _factory("randint_like")
from_numpy = _factory("from_numpy")
