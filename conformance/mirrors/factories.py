"""Mirrors of the tensor factories: same arguments, same values (random ones from the same seed).

Factories have no differentiable input; what is compared is the value, dtype, device and
``requires_grad`` of the result. ``empty``/``empty_like`` hold uninitialised memory, so
only their shape, dtype and flags are compared.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import shape, tensor


def _seeded(fn):
    """Call ``fn`` right after seeding torch's RNG with a fixed seed, restoring the RNG afterwards."""

    def call(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(20240601)
            return fn(*args, **kwargs)

    return call


def _with_grad(result):
    return result, result.requires_grad


def _metadata(result):
    return tuple(result.shape), result.dtype, result.device, result.requires_grad


def _requires_grad(draw, dtype) -> dict:
    return {"requires_grad": draw(st.booleans())} if dtype.is_floating_point else {}


def _sized(draw, dtype, device):
    s = shape(draw)
    size = (s,) if draw(st.booleans()) or not s else s  # f((2, 3)) and f(2, 3); f() is an error, f(()) 0-d
    return Sample(size, {"dtype": dtype, "device": device, **_requires_grad(draw, dtype)})


def _full(draw, dtype, device):
    return Sample((shape(draw), draw(st.sampled_from([0.5, -2.0, 3]))), {"dtype": dtype, "device": device,
                                                                        **_requires_grad(draw, dtype)})


def _like(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    kwargs = draw(st.sampled_from([{}, {"dtype": torch.float64}, {"dtype": torch.float32, "requires_grad": True}]))
    return Sample((x,), kwargs, grad_args=())


def _full_like(draw, dtype, device):
    s = _like(draw, dtype, device)
    return Sample((s.args[0], 1.5), s.kwargs, grad_args=())


def _arange(draw, dtype, device):
    form = draw(st.sampled_from([(5,), (1, 4), (-1.0, 2.0, 0.25), (0, 10, 3)]))
    return Sample(form, {"dtype": dtype, "device": device})


def _linspace(draw, dtype, device):
    return Sample((draw(st.sampled_from([-1.0, 0.0])), draw(st.sampled_from([1.0, 2.5])), draw(st.integers(0, 7))),
                  {"dtype": dtype, "device": device})


def _eye(draw, dtype, device):
    n = draw(st.integers(0, 5))
    args = (n,) if draw(st.booleans()) else (n, draw(st.integers(0, 5)))
    return Sample(args, {"dtype": dtype, "device": device})


def _randint(draw, dtype, device):
    return Sample((draw(st.integers(1, 10)), shape(draw)), {"device": device})


def _randint_like(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device), 7), grad_args=())


def _randperm(draw, dtype, device):
    return Sample((draw(st.integers(0, 12)),), {"device": device})


def _data(draw, dtype, device):
    values = draw(st.sampled_from([[1.0, 2.0], [[1, 2], [3, 4]], 3.5, [[0.5], [1.5]], []]))
    return Sample((values,), {"dtype": dtype, "device": device, **_requires_grad(draw, dtype)})


def _plain_data(draw, dtype, device):
    """``as_tensor`` takes no ``requires_grad`` (as torch)."""
    s = _data(draw, dtype, device)
    s.kwargs.pop("requires_grad", None)
    return s


def _from_numpy(draw, dtype, device):
    return Sample((np.arange(6, dtype=np.float64 if dtype == torch.float64 else np.float32).reshape(2, 3),))


FACTORIES = {
    "zeros": (_sized, _with_grad), "ones": (_sized, _with_grad), "full": (_full, _with_grad),
    "zeros_like": (_like, _with_grad), "ones_like": (_like, _with_grad), "full_like": (_full_like, _with_grad),
    "arange": (_arange, None), "linspace": (_linspace, None), "logspace": (_linspace, None), "eye": (_eye, None),
    "tensor": (_data, _with_grad), "as_tensor": (_plain_data, None), "from_numpy": (_from_numpy, None),
    "empty": (_sized, _metadata), "empty_like": (_like, _metadata),
}
RANDOM = {
    "rand": _sized, "randn": _sized, "rand_like": _like, "randn_like": _like,
    "randint": _randint, "randint_like": _randint_like, "randperm": _randperm,
}

for _name, (_sample, _output) in FACTORIES.items():
    _kw = {"dtypes": (torch.float64,)} if _name == "from_numpy" else {}
    register(OpMirror(_name, getattr(nx, _name), getattr(torch, _name), _sample, grad=False, output=_output, **_kw))
for _name, _sample in RANDOM.items():
    register(OpMirror(_name, _seeded(getattr(nx, _name)), _seeded(getattr(torch, _name)), _sample, grad=False,
                      output=_with_grad if _name in ("rand", "randn") else None))
