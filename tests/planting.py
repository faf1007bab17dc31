"""Faults planted by the harness's own tests: throwaway registry ops and mirrors, removed after each test
(``tests/conftest.py`` calls ``remove_planted`` after every test), so no planted fault outlives its test."""

from __future__ import annotations

import torch

from conformance.mirror import REGISTRY
from neuronix.ops import registry

_PLANTED_OPS: list[str] = []
_PLANTED_MIRRORS: list[str] = []


def plant(name: str, forward, *vjps, **kw):
    """A throwaway primitive ``defop(name, forward, *vjps, **kw)``, replacing any earlier one of that name."""
    registry.OPS.pop(name, None)
    _PLANTED_OPS.append(name)
    return registry.defop(name, forward, *vjps, **kw)


def plant_mirror(mirror):
    """``mirror`` in the conformance registry until the test ends."""
    REGISTRY[mirror.name] = mirror
    _PLANTED_MIRRORS.append(mirror.name)
    return mirror


def torch_times_three(slope: float):
    """torch's twin of ``3 x`` whose autograd gives ``slope * g``: a fault planted on torch's side."""

    class TimesThree(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, g):
            return g * slope

    return TimesThree.apply


def remove_planted() -> None:
    for name in _PLANTED_OPS:
        registry.OPS.pop(name, None)
    for name in _PLANTED_MIRRORS:
        REGISTRY.pop(name, None)
    _PLANTED_OPS.clear()
    _PLANTED_MIRRORS.clear()
