"""Special values: every op example also runs one draw at the points the smooth draws avoid.

The conformance run draws values away from kinks so that finite differences apply; this check
goes to those points. It redraws the mirror's own sample (shapes, options, dims) under
``strategies.special_values``, so its tensors hold zeros of both signs, +-1, the kinks of the
common activations and of the op's own domain, every float among the sample's options (a clamp
bound, a threshold), rounding ties, +-inf and NaN, with tied elements and tied inputs. Against
torch autograd it compares (check ``special_values``; NaN and inf positions must match exactly,
see ``closeness.measure``):

* the forward values;
* the gradient of every differentiable input under an upstream gradient holding 0, +-inf or NaN
  (a masked gradient must be 0 where torch's is, not ``inf * 0``), plainly and under
  ``create_graph=True`` (a rule's recorded form must give the first derivative of its fast path);
* under ``create_graph=True``, at the finite points only, that the gradient is in the graph
  wherever torch's is (else a gradient penalty or third derivative raises where torch returns
  zeros), and the second derivative (the gradient of ``<grad, v>``): there infinite inputs would
  only compare where torch's formulas happen to multiply 0 by inf.

Per example the harness runs one rotation with one upstream kind (``UPSTREAM_KINDS``, picked by
the example's seed), so the CI run meets every kind across its cases; the thorough sweep, every
rotation of every kind for every mirror, is ``tests/test_special_values.py`` over the same functions.
Where an op's behaviour at a point depends on the torch version (``neuronix.ops.conventions``),
the installed torch is the reference, as for every other point.
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Iterator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds.common import NxConst, NxLeaf, TorchLeaf, build_call, grads, leaf_slots, outputs, slot_value
from conformance.mirror import Comparison, OpMirror
from conformance.strategies import SPECIAL_POINTS, special_values
from conformance.trace import Mismatch

CHECK = "special_values"

# Mirrors that meet only the finite special points: pattern on the mirror name -> reason. (A defect
# is never listed here: it fails the gate until fixed, or is recorded in tolerances.toml.)
FINITE_ONLY: dict[str, str] = {
    "*cumprod*": "torch picks its cumprod backward by whether any element of the whole tensor is 0, and its mask "
                 "arithmetic then gives NaN or inf at +-inf/NaN inputs of unrelated slices; neuronix's exact products "
                 "differ there only",
    "linalg.vander": "a cumprod of the input, as torch's; torch's cumprod backward differs from neuronix's exact "
                     "products at +-inf/NaN inputs (see *cumprod*)",
    "linalg.cond*": "at inf/NaN entries torch's LAPACK routes (svdvals without vectors, inv_ex masked to inf) return "
                    "NaN where the SVD with vectors that a differentiable cond needs raises; finite points compare",
}

# Upstream gradients, cycled over each output: finite; with zeros and infinities; with NaN. A
# masked gradient must stay 0 under the last two, as torch's does. The "finite" kind goes with the
# finite special points and the second derivatives.
UPSTREAM = {
    "inf": (math.inf, 1.0, 0.0, -math.inf, -0.5),
    "nan": (math.nan, 1.0, 0.0, -1.0),
    "finite": (1.0, -2.0, 0.5, 3.0),
}
UPSTREAM_KINDS = tuple(UPSTREAM)
DIRECTION = (0.5, -1.0, 2.0)  # the v of <grad, v> for second derivatives
FINITE_POINTS = tuple(p for p in SPECIAL_POINTS if math.isfinite(p))
SWEEP_DTYPES = (torch.float32, torch.float64)  # other dtypes: the dtype checks decide


def finite_only(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in FINITE_ONLY)


def points_for(name: str, kind: str) -> tuple[float, ...]:
    """The special points an example with upstream ``kind`` draws from."""
    return FINITE_POINTS if kind == "finite" or finite_only(name) else SPECIAL_POINTS


def cycle(values: tuple, shape, start: int, dtype, device="cpu") -> torch.Tensor:
    """``values`` repeated cyclically from ``start`` over a tensor of ``shape``."""
    index = (start + torch.arange(math.prod(shape))) % len(values)
    return _as_tensor(values, dtype)[index].reshape(shape).to(device)


@functools.cache
def _as_tensor(values: tuple, dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def _numbers(sample) -> list[float]:
    """The sample's float options (bounds, thresholds, exponents): points where the op may have a kink."""
    return [v for v in list(sample.args) + list(sample.kwargs.values()) if isinstance(v, float) and math.isfinite(v)]


def _float_tensors(sample) -> list[torch.Tensor]:
    found = []
    for v in list(sample.args) + list(sample.kwargs.values()):
        for t in v if isinstance(v, (list, tuple)) else (v,):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                found.append(t)
    return found


def draw_sample(mirror: OpMirror, draw, dtype: torch.dtype, device, points: tuple[float, ...]):
    """The mirror's own sample drawn under ``points``, and every point its tensors should take:
    ``points``, the kinks of the domains it drew from and its float options."""
    with special_values(points) as drawn:
        sample = mirror.sample(draw, dtype, torch.device(device))
    every = drawn.all_points() + tuple(_numbers(sample))
    return sample, tuple({repr(p): p for p in every}.values())


class Rotations:
    """Refills a sample's floating tensors in place, one rotation at a time.

    Tensor i holds ``points`` cyclically from ``start_i + r * n`` on (``n`` the largest tensor's
    size), so over ``count`` rotations the largest input holds every point, however small it is,
    and the others a run of as many; with equal starts (drawn half the time) inputs tie elementwise.
    """

    def __init__(self, sample, points: tuple[float, ...], draw) -> None:
        self.tensors, self.points = _float_tensors(sample), points
        self.n = max((t.numel() for t in self.tensors), default=1)
        self.count = math.ceil(len(points) / self.n) if self.tensors else 1
        tie = draw(st.booleans(), label="tied inputs")
        self.starts = [0 if tie else draw(st.integers(0, len(points) - 1), label="start") for _ in self.tensors]

    def apply(self, r: int) -> None:
        for t, start in zip(self.tensors, self.starts):
            t.copy_(cycle(self.points, t.shape, start + r * self.n, t.dtype, t.device))


def _describe(sample, upstream=None) -> str:
    text = f"inputs: {sample.args}; options: {sample.kwargs}"
    return text if upstream is None else text + f"; upstream gradient: {upstream}"


def _call(mirror: OpMirror, sample):
    """Call both libraries on ``sample``; yields the forward Comparison and returns the pieces the
    gradient checks need (``None`` when torch refuses the values and neuronix does too, or nothing
    is differentiable)."""
    slots = leaf_slots(sample) if mirror.grad else []
    t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
    try:
        t_result = mirror.torch(*t_args, **t_kwargs)
    except Exception as err:  # noqa: BLE001 - torch refuses these values: neuronix must refuse them too
        c_args, c_kwargs = build_call(sample, slots, NxConst())
        try:
            mirror.nx(*c_args, **c_kwargs)
        except Exception:  # noqa: BLE001 - both refuse
            return None
        raise Mismatch(CHECK, f"at special values torch raised {type(err).__name__}: {err}; neuronix returned a "
                              f"result ({_describe(sample)})") from None
    n_args, n_kwargs = build_call(sample, slots, NxLeaf())
    n_result = mirror.nx(*n_args, **n_kwargs)
    t_out, n_out = outputs(mirror, t_result), outputs(mirror, n_result)
    yield Comparison(CHECK, "output", to_torch([v for _, v in n_out]), to_torch([v for _, v in t_out]),
                     explain=lambda: _describe(sample))
    floats = [k for k, (_, t) in enumerate(t_out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not slots or not floats or len(t_out) != len(n_out):
        return None
    t_outs, n_outs = [t_out[k][1] for k in floats], [n_out[k][1] for k in floats]
    t_leaves, n_leaves = [slot_value(t_args, p) for _, p in slots], [slot_value(n_args, p) for _, p in slots]
    return slots, t_outs, n_outs, t_leaves, n_leaves


def first_order(mirror: OpMirror, sample, kind: str, start: int = 0, second: bool = False) -> Iterator[Comparison]:
    """Values and first derivatives at ``sample`` under an upstream gradient of ``kind`` (cycled from
    ``start``), plainly and under create_graph; with ``second`` also the second-order checks
    (finite points and upstream only)."""
    called = yield from _call(mirror, sample)
    if called is None:
        return
    slots, t_outs, n_outs, t_leaves, n_leaves = called
    upstream = [cycle(UPSTREAM[kind], t.shape, start, t.dtype, t.device) for t in t_outs]
    for create_graph in (False, True):
        # like with like: torch's own first derivative may depend on the mode (prod with two zeros)
        try:
            t_grads = grads(t_outs, t_leaves, upstream, torch, create_graph, retain=True)
        except RuntimeError as err:  # as the backward check says it: the mirror must not claim a gradient here
            raise Mismatch(CHECK, f"torch has no derivative here ({err}); set grad=False in the mirror") from None
        n_grads = grads(n_outs, n_leaves, upstream, nx, create_graph, retain=True)
        for (label, _), ng, tg in zip(slots, n_grads, t_grads):
            yield Comparison(CHECK, f"grad {label} under a {kind} upstream gradient (create_graph={create_graph})",
                             to_torch(ng), to_torch(tg), explain=lambda: _describe(sample, upstream))
    if second:
        yield from _second_derivatives(slots, t_grads, n_grads, t_leaves, n_leaves, sample)


def _second_derivatives(slots, t_grads, n_grads, t_leaves, n_leaves, sample) -> Iterator[Comparison]:
    """From create_graph gradients: each is in the graph wherever torch's is, and the gradient of
    ``<grad, v>`` matches torch's."""
    for (label, _), ng, tg in zip(slots, n_grads, t_grads):
        lost = tg.requires_grad and not ng.requires_grad
        yield Comparison(CHECK, f"grad {label} is in the graph under create_graph where torch's is",
                         torch.tensor(float(not lost)), torch.tensor(1.0),
                         explain=lambda: "a gradient penalty or third derivative would raise where torch's returns; "
                                         + _describe(sample))
    vs = [cycle(DIRECTION, x.shape, 0, x.dtype, x.device) for x in t_leaves]
    t_terms = [(g * v).sum() for g, v in zip(t_grads, vs) if g.requires_grad]
    n_terms = [(g * nx.Tensor(v)).sum() for g, v in zip(n_grads, vs) if g.requires_grad]
    if not t_terms or not n_terms:
        return
    t_sum, n_sum = sum(t_terms[1:], t_terms[0]), sum(n_terms[1:], n_terms[0])
    try:
        t_second = grads([t_sum], t_leaves, [torch.ones_like(t_sum)], torch, False)
    except RuntimeError as err:  # torch's DelayedError: no second derivative at these points; neuronix must refuse too
        try:
            grads([n_sum], n_leaves, [torch.ones_like(t_sum)], nx, False)
        except RuntimeError:
            return
        raise Mismatch(CHECK, f"torch refuses the second derivative at these special points ({err}); neuronix "
                              f"returned one ({_describe(sample)})") from None
    n_second = grads([n_sum], n_leaves, [torch.ones_like(t_sum)], nx, False)
    for (label, _), ng, tg in zip(slots, n_second, t_second):
        yield Comparison(CHECK, f"grad of <grad, v> wrt {label} at finite special points", to_torch(ng), to_torch(tg),
                         explain=lambda: _describe(sample))


def check(ex) -> Iterator[Comparison]:
    """One special-value draw for one op example: one rotation, one upstream kind.

    The kind follows the example's seed (``torch.initial_seed()``, itself a Hypothesis draw): what an
    example draws must depend on its own draws alone, or Hypothesis's replay of a case breaks (an
    example index, external to the draws, made two examples with one prefix draw differently).

    The kind "finite" draws finite points only and, in float64 where the mirror has second
    derivatives, checks those too.
    """
    if ex.dtype not in SWEEP_DTYPES or not getattr(ex.mirror, "tie_gradients", True):
        return  # (the draws below make ties by construction: OpMirror.tie_gradients)
    mirror, draw = ex.mirror, ex.draw
    kind = UPSTREAM_KINDS[torch.initial_seed() % len(UPSTREAM_KINDS)]
    sample, points = draw_sample(mirror, draw, ex.dtype, ex.device, points_for(mirror.name, kind))
    rotations = Rotations(sample, points, draw)
    rotations.apply(draw(st.integers(0, rotations.count - 1), label="rotation"))
    start = draw(st.integers(0, len(UPSTREAM[kind]) - 1), label="upstream start")
    second = kind == "finite" and mirror.gradgrad and ex.dtype == torch.float64
    yield from first_order(mirror, sample, kind, start, second=second)
