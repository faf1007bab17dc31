"""In-place variants, derived: every ``Tensor.<name>_`` is checked through its out-of-place mirror.

For each op mirror ``Tensor.<name>`` (or ``<name>``) whose in-place twin exists on both
``nx.Tensor`` and ``torch.Tensor``, ``Tensor.<name>_`` runs the same samples on a tensor
in the graph — a clone of the first input, broadcast to the result's shape — so values,
gradients of every input, second derivatives and finite differences of the recorded
in-place op are compared with torch's, and a new in-place method cannot stay unverified.
This module is imported last: it reads the mirrors the other modules of this package registered.
"""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import REGISTRY, OpMirror, Sample, register
from conformance.strategies import tensor


def _in_place(name: str):
    """``x.<name>_(*args)`` applied to a graph-connected copy of ``x`` of the result's shape."""

    def call(x, *args, **kwargs):
        shape = getattr(x, name)(*args, **kwargs).shape
        target = x.expand(shape).clone()
        return getattr(target, name + "_")(*args, **kwargs)

    call.__name__ = name + "_"
    return call


def _derive() -> list[OpMirror]:
    derived = {}
    for mirror_name, mirror in list(REGISTRY.items()):
        if not isinstance(mirror, OpMirror) or "[" in mirror_name:
            continue
        name = mirror_name.removeprefix("Tensor.")
        inplace = f"Tensor.{name}_"
        if name.startswith("_") or inplace in REGISTRY or (inplace in derived and mirror_name != f"Tensor.{name}"):
            continue
        if not (callable(getattr(nx.Tensor, name + "_", None)) and callable(getattr(torch.Tensor, name + "_", None))):
            continue
        call = _in_place(name)
        derived[inplace] = dataclasses.replace(mirror, name=inplace, nx=call, torch=call,
                                               note=f"derived from {mirror_name} (ops/inplace.py)")
    return list(derived.values())


register(*_derive())


def _copy(x, src):
    return x.clone().copy_(src)


def _fill(x, value):
    return x.clone().fill_(value)


def _zero(x):
    return x.clone().zero_()


def _copy_sample(draw, dtype, device):
    x = tensor(draw, (2, 3), dtype, device)
    src = tensor(draw, draw(st.sampled_from([(2, 3), (3,), (1, 3), ()])), dtype, device)
    return Sample((x, src))


def _fill_sample(draw, dtype, device):
    x = tensor(draw, (2, 3), dtype, device)
    value = draw(st.sampled_from([1.5, -2.0])) if draw(st.booleans()) else tensor(draw, (), dtype, device)
    return Sample((x, value))


register(
    OpMirror("Tensor.copy_", _copy, _copy, _copy_sample, note="the copied-over input gets a zero gradient"),
    OpMirror("Tensor.fill_", _fill, _fill, _fill_sample),
    OpMirror("Tensor.zero_", _zero, _zero, lambda d, t, v: Sample((tensor(d, (2, 3), t, v),))),
)
