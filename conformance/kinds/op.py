"""The op driver: one drawn call of ``mirror.nx`` against ``mirror.torch``.

Per example it yields, in order: the forward values; the gradient of every
differentiable input under one random upstream gradient (a ``.sum()`` would hide
transposed or mis-broadcast gradients); the second derivative, i.e. the gradient of
``<grad, v>`` for a random ``v``; and in float64 the central-difference estimate of the
directional derivative of ``<upstream, f(x)>`` against neuronix's own gradient, so a
mistake shared with torch cannot hide. Both libraries see the same values: the torch
leaves and the neuronix leaves wrap the same drawn (possibly non-contiguous) tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.dtype_claims import half_finite_differences
from conformance.kinds.common import (
    NxConst,
    NxLeaf,
    TorchLeaf,
    build_call,
    call_both,
    double_backward,
    forward_comparison,
    grads,
    leaf_slots,
    note_sample,
    outputs,
    randn_like,
    slot_value,
    substituted,
    upstream_leaves,
)
from conformance.mirror import FLOATS, Comparison, OpMirror
from conformance.trace import Mismatch, track

# Central-difference step per dtype: truncation ~ step^2 against rounding ~ unit roundoff / step. float64: 1e-6.
# Half: the outputs round at 4.9e-4 (float16) / 3.9e-3 (bfloat16) relative, so larger steps, capped so that a
# displacement (step x a direction clamped to +-2) stays below 0.1, the smallest distance the domains keep from a kink.
# float32 has none: it is compared with torch at 1e-6 and its rules are the float64 ones, which finite differences check.
FD_STEP = {torch.float64: 1e-6, torch.float16: 2e-2, torch.bfloat16: 4e-2}
FD_DIRECTION_CLAMP = 2.0
FD_DIRECTIONS = 2
FD_FULL_LIMIT = 2000  # elements: above this the failure message stays directional


def _float_positions(t_leaves) -> list[int]:
    return [k for k, (_, t) in enumerate(t_leaves) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def compare_op(mirror: OpMirror, draw, dtype: torch.dtype, device: torch.device) -> Iterator[Comparison]:
    """Run one drawn example of ``mirror``; yield its Comparisons (the runner judges them)."""
    sample = mirror.sample(draw, dtype, device)
    note_sample(sample)
    slots = leaf_slots(sample) if mirror.grad else []
    t_args, t_result, n_args, n_result = call_both(sample, slots, mirror.torch, mirror.nx)
    t_out, n_out = outputs(mirror, t_result), outputs(mirror, n_result)
    yield forward_comparison(t_out, n_out, "output")
    if len(t_out) != len(n_out):
        return
    floats = _float_positions(t_out) if slots else []
    if not floats:  # nothing to differentiate (comparisons, indices): the name's other spellings still must agree
        from conformance.kinds import variants

        yield from variants.check(OpExample(mirror, sample, [], [], [], [], [], None, draw, dtype, device))
        return
    gen = torch.Generator().manual_seed(torch.initial_seed() % 2**63)
    upstream = [randn_like(t_out[k][1], gen) for k in floats]
    t_leaves = [slot_value(t_args, p) for _, p in slots]
    n_leaves = [slot_value(n_args, p) for _, p in slots]
    track(*n_leaves, label="input")
    create = mirror.gradgrad and dtype in FLOATS  # second derivatives: float32/float64 only
    by_upstream = create and mirror.gradgrad_upstream
    t_up, n_up = (upstream_leaves(upstream, torch), upstream_leaves(upstream, nx)) if by_upstream else (upstream, upstream)
    try:
        t_grads = grads([t_out[k][1] for k in floats], t_leaves, t_up, torch, create)
    except RuntimeError as err:
        raise Mismatch("backward", f"torch has no derivative here ({err}); set grad=False in the mirror") from None
    n_grads = grads([n_out[k][1] for k in floats], n_leaves, n_up, nx, create)
    track(*n_grads, label="gradient")
    for (label, _), ng, tg in zip(slots, n_grads, t_grads):
        yield Comparison("backward", f"grad {label}", to_torch(ng), to_torch(tg))
    if create:  # w.r.t. the inputs and the upstream gradients (see upstream_leaves)
        ups = ([f"upstream gradient {k}" for k in floats], t_up, n_up) if by_upstream else None
        yield from double_backward([label for label, _ in slots], t_leaves, n_leaves, t_grads, n_grads, gen,
                                   upstream=ups)
    if mirror.fd and dtype in FD_STEP and (dtype == torch.float64 or half_finite_differences(mirror.name)):
        yield from _finite_differences(mirror, sample, slots, floats, upstream, n_grads, gen, FD_STEP[dtype])
    example = OpExample(mirror, sample, slots, floats, upstream, t_grads, n_grads, gen, draw, dtype, device)
    for check in example_checks():
        yield from check(example)


@dataclass
class OpExample:
    """One drawn example after its value and gradient checks: what the further checks of
    ``example_checks`` start from (each runs its own fresh forwards from ``sample``)."""

    mirror: OpMirror
    sample: object  # the Sample (torch values; never modified by a check)
    slots: list  # (label, path) of the differentiable inputs
    floats: list[int]  # positions of the floating outputs among the compared outputs
    upstream: list  # the upstream gradient of each floating output (torch tensors)
    t_grads: list  # torch's gradients under ``upstream``
    n_grads: list  # neuronix's
    gen: torch.Generator  # for further random draws, seeded from the example
    draw: Callable  # Hypothesis's draw, for checks that draw more (special values, variants)
    dtype: torch.dtype
    device: torch.device


def example_checks() -> tuple[Callable[[OpExample], Iterator[Comparison]], ...]:
    """The checks every op example runs after values, gradients, second derivatives and finite
    differences, in order. Imported here (not at module level) so each family stays in its own module."""
    from conformance.kinds import forward_mode, guards, special, variants

    return (_graph_reuse, _index_guard, guards.check, forward_mode.check, variants.check, special.check)


def forward_pair(mirror, sample, slots):
    """A fresh forward in both libraries: (torch leaves, torch outputs, neuronix leaves, neuronix outputs)."""
    t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
    n_args, n_kwargs = build_call(sample, slots, NxLeaf())
    t_out = outputs(mirror, mirror.torch(*t_args, **t_kwargs))
    n_out = outputs(mirror, mirror.nx(*n_args, **n_kwargs))
    return [slot_value(t_args, p) for _, p in slots], t_out, [slot_value(n_args, p) for _, p in slots], n_out


def _graph_reuse(ex: OpExample) -> Iterator[Comparison]:
    """One graph, several backward passes through it (retain_graph): each input alone, the upstream
    gradient alternating between two, then all inputs together under each.

    A gradient kept on a node for one upstream gradient (a stale fused result) or computed for
    the wrong subset of inputs shows here, while a fresh graph per check would hide it.
    """
    mirror, sample, slots, floats, upstream, t_grads, gen = (ex.mirror, ex.sample, ex.slots, ex.floats, ex.upstream,
                                                             ex.t_grads, ex.gen)
    t_leaves, t_out, n_leaves, n_out = forward_pair(mirror, sample, slots)
    track(*[v for _, v in n_out], label="output (graph reuse)")
    second = [randn_like(u, gen) for u in upstream]
    t_second = grads([t_out[k][1] for k in floats], t_leaves, second, torch, False)
    n_outs = [n_out[k][1] for k in floats]
    seeds = ((second, t_second, "2nd"), (upstream, t_grads, "1st"))
    for k, (label, _) in enumerate(slots):
        up, expected, which = seeds[k % 2]
        alone = grads(n_outs, [n_leaves[k]], up, nx, False, retain=True)[0]
        yield Comparison("backward", f"grad {label} alone, {which} upstream, retained graph", to_torch(alone),
                         to_torch(expected[k]))
    for up, expected, which in seeds:
        together = grads(n_outs, n_leaves, up, nx, False, retain=up is second)
        for (label, _), ng, tg in zip(slots, together, expected):
            yield Comparison("backward", f"grad {label} with all inputs, {which} upstream, same graph again",
                             to_torch(ng), to_torch(tg))


def _constant_tensors(values) -> list[torch.Tensor]:
    """The integer and boolean tensors among the call's arguments: indices and masks."""
    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            if not (v.is_floating_point() or v.is_complex()):
                found.append(v)
        elif isinstance(v, (list, tuple)):
            found += _constant_tensors(v)
    return found


def bump_version(t: torch.Tensor) -> None:
    """An in-place write that keeps every value: only the version counter moves."""
    if t.dtype == torch.bool:
        t.logical_or_(torch.zeros((), dtype=torch.bool, device=t.device))
    else:
        t.add_(0)


def raises_version_error(run) -> bool:
    try:
        run()
    except RuntimeError as err:
        if "modified by an inplace operation" in str(err):
            return True
        raise
    return False


def _index_guard(ex: OpExample) -> Iterator[Comparison]:
    """After the forward, an index or mask argument is written in place: torch's backward raises
    where it saved that tensor, and neuronix must raise exactly there (never use the new values)."""
    mirror, sample, slots, floats, upstream = ex.mirror, ex.sample, ex.slots, ex.floats, ex.upstream
    constants = _constant_tensors([*sample.args, *sample.kwargs.values()])
    if not constants:
        return
    t_leaves, t_out, n_leaves, n_out = forward_pair(mirror, sample, slots)
    track(*[v for _, v in n_out], label="output (index guard)")
    for t in constants:  # shared by both calls: one write moves both libraries' view of it
        bump_version(t)
    t_raised = raises_version_error(lambda: grads([t_out[k][1] for k in floats], t_leaves, upstream, torch, False))
    n_raised = raises_version_error(lambda: grads([n_out[k][1] for k in floats], n_leaves, upstream, nx, False))
    yield Comparison("version_guard", "backward raises after an index/mask was written in place",
                     torch.tensor(float(n_raised)), torch.tensor(float(t_raised)))


def _finite_differences(mirror, sample, slots, floats, upstream, n_grads, gen, step: float) -> Iterator[Comparison]:
    base = [slot_value(sample.args, p).detach() for _, p in slots]
    analytic_grads = [to_torch(g) for g in n_grads]

    def weighted(values) -> tuple[float, float]:
        """``<upstream, f(values)>`` evaluated by neuronix without recording, and the 2-norm of its terms."""
        with nx.no_grad():
            a, k = build_call(substituted(sample, slots, values), [], NxConst())
            outs = outputs(mirror, mirror.nx(*a, **k))
        terms = [to_torch(outs[k][1]).double() * u.double() for k, u in zip(floats, upstream)]
        return float(sum(t.sum() for t in terms)), math.sqrt(sum(float(t.square().sum()) for t in terms))

    def objective(values) -> float:
        return weighted(values)[0]

    if not math.isfinite(objective(base)):
        return  # the output is not finite here (torch agrees: the forward check compared it): nothing to differentiate
    for d in range(FD_DIRECTIONS):
        dirs = [torch.randn(x.shape, generator=gen, dtype=torch.float64).clamp(-FD_DIRECTION_CLAMP, FD_DIRECTION_CLAMP)
                .to(x.device) for x in base]
        points_p = [(x.double() + step * v).to(x.dtype) for x, v in zip(base, dirs)]
        points_m = [(x.double() - step * v).to(x.dtype) for x, v in zip(base, dirs)]
        # the points round to the case's dtype (visibly in half): differentiate along the displacement taken
        dirs = [(p.double() - m.double()) / (2 * step) for p, m in zip(points_p, points_m)]
        (plus, plus_norm), (minus, minus_norm) = weighted(points_p), weighted(points_m)
        estimate = (plus - minus) / (2 * step)
        analytic = float(sum((g.double() * v).sum() for g, v in zip(analytic_grads, dirs)))
        unit = _noise_unit(base[0].dtype, max(plus_norm, minus_norm), step)
        what = f"directional derivative {d}" + ("" if unit == 1.0 else " (in units of its rounding noise)")
        yield Comparison(
            "finite_difference", what, torch.tensor(analytic / unit, dtype=torch.float64),
            torch.tensor(estimate / unit, dtype=torch.float64),
            explain=lambda: _full_gradient(objective, base, analytic_grads, slots, step),
        )


def _noise_unit(dtype: torch.dtype, norm: float, step: float) -> float:
    """What the half-precision comparison is measured in: the rounding noise of the central difference.

    Each output rounds to about ``u |f_i|`` (unit roundoff ``u``: 4.9e-4 float16, 3.9e-3 bfloat16),
    so the estimate carries an error of order ``u ||upstream * f|| / step``: a fixed tolerance on the
    raw derivative would be loose for small outputs and fail large ones (exp near 2). In these units
    the tolerance's atol counts noise units and its rtol covers truncation and the half gradient's own
    rounding. float64 is compared as it is (its noise, ~1e-10 of the derivative, is below its tolerance)."""
    if dtype not in (torch.float16, torch.bfloat16):
        return 1.0
    return max(torch.finfo(dtype).eps / 2 * norm / step, 1e-300)


def _full_gradient(objective, base, analytic_grads, slots, step: float) -> str:
    """Element-by-element central differences of ``<upstream, f>``: where neuronix's gradient is off."""
    if sum(x.numel() for x in base) > FD_FULL_LIMIT:
        return f"full finite-difference gradient skipped (more than {FD_FULL_LIMIT} elements)"
    lines = []
    for i, ((label, _), x, g) in enumerate(zip(slots, base, analytic_grads)):
        estimate = torch.zeros(x.numel(), dtype=torch.float64)
        for j in range(x.numel()):
            e = torch.zeros(x.numel(), dtype=torch.float64, device=x.device)
            e[j] = step
            e = e.reshape(x.shape).to(x.dtype)
            values_p = [b + e if k == i else b for k, b in enumerate(base)]
            values_m = [b - e if k == i else b for k, b in enumerate(base)]
            taken = float((values_p[i] - values_m[i]).double().reshape(-1)[j])  # in half, the step as rounded
            estimate[j] = (objective(values_p) - objective(values_m)) / taken if taken else math.nan
        diff = (g.double().cpu().reshape(-1) - estimate).abs()
        if diff.numel():
            j = int(diff.argmax())
            index = tuple(int(v) for v in torch.unravel_index(torch.tensor(j), x.shape)) if x.dim() else ()
            lines.append(f"grad {label}: max |neuronix - finite difference| = {float(diff.max()):.3e} at index {index} "
                         f"(neuronix {float(g.reshape(-1)[j]):.10g}, finite difference {float(estimate[j]):.10g})")
    return "; ".join(lines)
