"""How close neuronix's result is to torch's: errors, headroom and a verdict under a tolerance.

``headroom = max(|actual - expected| / (atol + rtol * |expected|))``: below 1 passes, and
how far below says how much margin the implementation has. Structure must agree before
values are compared: shapes, dtypes and devices (torch's promotion rules are part of
the contract), and integer / bool results must be exactly equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # only its rtol and atol are read: nx.autograd.gradcheck passes its own (a bare install, no TOML reader)
    from conformance.tolerances import Tolerance


@dataclass
class Measurement:
    """The outcome of one comparison; ``problem`` explains a structural mismatch."""

    max_abs: float
    max_rel: float
    headroom: float
    ok: bool
    problem: str = ""
    shape: tuple = ()


def to_torch(value):
    """Plain torch values from neuronix results: ``nx.Tensor`` -> its detached data; containers recursively."""
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    data = getattr(value, "data", None)
    if isinstance(data, torch.Tensor) and type(value).__module__.startswith("neuronix"):
        return data.detach()
    if isinstance(value, (list, tuple)):
        return [to_torch(v) for v in value]
    if isinstance(value, dict):
        return {k: to_torch(v) for k, v in value.items()}
    return value


def flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    """``(path, leaf)`` pairs of a (nested) tuple/list/dict result; a lone leaf has path ``""``."""
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            out += flatten(v, f"{prefix}[{i}]")
        return out
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}[{k!r}]")
        return out
    return [(prefix, value)]


def _fail(problem: str, shape=()) -> Measurement:
    return Measurement(math.inf, math.inf, math.inf, False, problem, shape)


def measure(actual, expected, tol: Tolerance) -> Measurement:
    """Compare neuronix's ``actual`` with the oracle's ``expected`` (tensors, numbers, or containers of them)."""
    actual, expected = to_torch(actual), to_torch(expected)
    a_leaves, e_leaves = flatten(actual), flatten(expected)
    if [p for p, _ in a_leaves] != [p for p, _ in e_leaves]:
        return _fail(f"structure differs: neuronix {_kinds(a_leaves)} vs torch {_kinds(e_leaves)}")
    worst = Measurement(0.0, 0.0, 0.0, True)
    for (path, a), (_, e) in zip(a_leaves, e_leaves):
        m = _measure_leaf(a, e, tol)
        if m.problem and not worst.problem:
            worst.problem = f"{path}: {m.problem}" if path else m.problem
        if m.headroom >= worst.headroom:
            worst.headroom, worst.shape = m.headroom, m.shape
        worst.max_abs, worst.max_rel = max(worst.max_abs, m.max_abs), max(worst.max_rel, m.max_rel)
        worst.ok = worst.ok and m.ok
    return worst


def _kinds(leaves) -> str:
    return "(" + ", ".join(type(v).__name__ for _, v in leaves) + ")"


def _measure_leaf(a, e, tol: Tolerance) -> Measurement:
    if a is None or e is None:
        if a is None and e is None:
            return Measurement(0.0, 0.0, 0.0, True)
        return _fail(f"neuronix gave {type(a).__name__}, torch gave {type(e).__name__}")
    a_is_t, e_is_t = isinstance(a, torch.Tensor), isinstance(e, torch.Tensor)
    if a_is_t != e_is_t:
        return _fail(f"neuronix gave {type(a).__name__}, torch gave {type(e).__name__}")
    if not a_is_t:
        if isinstance(a, (bool, int, float)) and isinstance(e, (bool, int, float)):
            if type(a) is not type(e) and not (isinstance(a, float) and isinstance(e, float)):
                return _fail(f"neuronix gave {type(a).__name__} {a!r}, torch gave {type(e).__name__} {e!r}")
            a, e = torch.tensor(a, dtype=torch.float64), torch.tensor(e, dtype=torch.float64)
        else:
            ok = a == e
            return Measurement(0.0 if ok else math.inf, 0.0 if ok else math.inf, 0.0 if ok else math.inf, bool(ok),
                               "" if ok else f"neuronix gave {a!r}, torch gave {e!r}")
    shape = tuple(e.shape)
    if a.shape != e.shape:
        return _fail(f"shape {tuple(a.shape)} != torch's {shape}", shape)
    if a.dtype != e.dtype:
        return _fail(f"dtype {a.dtype} != torch's {e.dtype}", shape)
    if a.device != e.device:
        return _fail(f"device {a.device} != torch's {e.device}", shape)
    if a.numel() == 0:
        return Measurement(0.0, 0.0, 0.0, True, shape=shape)
    if not (e.is_floating_point() or e.is_complex()):
        wrong = int((a != e).sum())
        if wrong:
            return Measurement(math.inf, math.inf, math.inf, False, f"{wrong} of {e.numel()} exact values differ", shape)
        return Measurement(0.0, 0.0, 0.0, True, shape=shape)
    if e.is_complex():  # compared as (real, imaginary) pairs: a float64 cast would drop the imaginary part
        a, e = torch.view_as_real(a.resolve_conj()), torch.view_as_real(e.resolve_conj())
    return _measure_floats(a.detach(), e.detach(), tol, shape)


def _measure_floats(a: torch.Tensor, e: torch.Tensor, tol: Tolerance, shape: tuple) -> Measurement:
    """Errors of two same-shape floating tensors, in a few whole-tensor passes (models have 10M+ values)."""
    if torch.equal(a, e):  # bitwise-equal is common (same kernel, same order) and costs one read
        return Measurement(0.0, 0.0, 0.0, True, shape=shape)
    a64, e64 = a.to("cpu", torch.float64), e.to("cpu", torch.float64)  # may alias the inputs: never written
    diff = (a64 - e64).abs_()
    scale = e64.abs()
    if not bool(diff.isfinite().all()):  # a NaN or an infinity somewhere: only those positions need a closer look
        problem = _match_nonfinite(a64, e64, diff, scale)
        if problem:
            return _fail(problem, shape)
    max_abs = float(diff.max())
    max_rel = float((diff / scale.clamp_min(1e-300)).max())
    allowed = scale.mul_(tol.rtol).add_(tol.atol)
    ratio = diff.div_(allowed)
    if tol.atol <= 0:  # 0 / 0 where both values are exactly zero: an exact match
        ratio.masked_fill_(ratio.isnan(), 0.0)
    headroom = float(ratio.max())
    return Measurement(max_abs, max_rel, headroom, headroom <= 1.0, shape=shape)


def _match_nonfinite(a64, e64, diff, scale) -> str:
    """Non-finite differences must be matching NaNs or equal infinities; those count as exact (zeroed in place)."""
    a_nan, e_nan = a64.isnan(), e64.isnan()
    if not torch.equal(a_nan, e_nan):
        return f"NaN at different positions ({int(a_nan.sum())} in neuronix, {int(e_nan.sum())} in torch)"
    odd = ~diff.isfinite()
    same = (a64[odd] == e64[odd]) | a_nan[odd]
    if not bool(same.all()):
        return "infinite values differ"
    diff[odd] = 0.0
    scale[~scale.isfinite()] = 0.0
    return ""
