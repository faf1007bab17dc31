"""Failure classification: every failing record gets a ``label`` saying what kind of failure it is.

Labels, decided in this order for each failing record of a case:

* ``nondeterministic``: the failing example, rerun with the same seed (the runner's replay: the
  same draws), passes that check. The message says whether fresh seeds reproduce the failure.
* ``suspected torch defect``: a failure of a check comparing torch's derivatives (``ODD_ORDER``)
  where torch is the odd one out. Along a random direction ``v`` the derivative of ``<u, f(x)>`` (of ``<grad, w>`` for a
  second derivative) is taken four ways: torch autograd, neuronix autograd, float64 central finite
  differences of neuronix's function, and neuronix's other mode (``nx.func.jvp``, first order, where
  present). Torch disagrees with finite differences while neuronix agrees with both. The message
  carries a torch-only repro script (``conformance.snippet``). A ``[[torch_defect]]`` of
  tolerances.toml recording it for the installed torch turns the record into a pass labelled
  ``torch defect (recorded)``; one that no longer reproduces is stale (``stale_torch_defects``).
* ``kink/subgradient convention``: only ``special_values`` fails, by a measured difference; values,
  gradients, second derivatives and finite differences at smooth points all pass.
* ``precision``: a float32 failure whose every failing comparison is off by less than
  ``PRECISION_HEADROOM`` times the allowed error (headroom < 10) and whose float64 twin passes the
  same check: rounding, where a wrong formula is off by O(1) in both dtypes.
* ``wrong value``: anything else, a check that raised (one library refused, a wrong type) included.
  (A leak is labelled ``leak``, a crash outside any check ``error``.)

Classification runs only for failing cases, so a clean run pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import math

import torch

import neuronix as nx
from conformance.kinds.common import (
    NxConst,
    NxLeaf,
    TorchLeaf,
    build_call,
    grads,
    leaf_slots,
    outputs,
    slot_value,
    substituted,
)
from conformance.mirror import OpMirror

WRONG, KINK, PRECISION = "wrong value", "kink/subgradient convention", "precision"
FLAKY, TORCH, RECORDED = "nondeterministic", "suspected torch defect", "torch defect (recorded)"
PRECISION_HEADROOM = 10.0
SMOOTH_CHECKS = ("forward", "backward", "double_backward", "finite_difference")
# checks that compare torch's derivatives, and the order of the derivative each compares: where torch's
# first derivative is the odd one out, each of them fails with it
ODD_ORDER = {"backward": 1, "special_values": 1, "variant": 1, "forward_ad": 1, "double_backward": 2}
FRESH_SEEDS = 2  # reruns of a nondeterministic case with other seeds
FD_STEP = 1e-6
AGREE = {torch.float64: 1e-5, torch.float32: 1e-3}  # relative agreement of two directional derivatives


def label_case(case, mirror, tolerances) -> list:
    """The case's records with a ``label`` on each failing one (see the module docstring)."""
    failing = [r for r in case.records if r.status != "pass"]
    if not failing:
        return case.records
    by_check = {r.check: r for r in case.records}
    replays: dict[int, tuple] = {}  # example index -> (rerun case, captured sample)
    twin = []  # the float64 twin case, run at most once
    verdicts: dict[tuple, Verdict] = {}  # (example, order) -> torch_odd_one_out
    labelled = []
    for r in case.records:
        if r.status == "pass":
            labelled.append(r)
            continue
        label, note = _label(r, case, mirror, tolerances, by_check, replays, twin, verdicts)
        labelled.append(_recorded(r, label, note, mirror, tolerances))
    return labelled


def _label(r, case, mirror, tolerances, by_check, replays, twin, verdicts) -> tuple[str, str]:
    if r.check == "leak":
        return "leak", ""
    k = _failing_example(case, r.check)
    if k not in replays:
        replays[k] = _replay(case, mirror, tolerances, k)
    again, sample = replays[k]
    if again is not None and _status(again, r.check) == "pass":
        fresh = [_status(_rerun(case, mirror, tolerances, seed=case.seed + 7919 * (i + 1)), r.check)
                 for i in range(FRESH_SEEDS)]
        reproduces = any(s not in ("pass", None) for s in fresh)
        return FLAKY, (f"example {k} rerun with its seed passes; with {FRESH_SEEDS} fresh seeds it "
                       f"{'reproduces' if reproduces else 'does not reproduce'}")
    if r.check == "error":
        return "error", ""
    order = ODD_ORDER.get(r.check)
    if order and sample is not None and isinstance(mirror, OpMirror):
        if (k, order) not in verdicts:
            verdicts[k, order] = torch_odd_one_out(mirror, sample, _dtype(case.dtype), case.device, order)
        if verdicts[k, order].suspected:
            return TORCH, verdicts[k, order].detail + "\n" + _torch_snippet(mirror, sample, case, k)
    measured = [j.headroom for ex in case.examples for j in ex.judged if j.check == r.check and not j.ok]
    if not measured:  # raised (one library refused, a wrong type): not a matter of degree
        return WRONG, ""
    if r.check == "special_values" and all(by_check[c].status == "pass" for c in SMOOTH_CHECKS if c in by_check):
        return KINK, "fails only at special points; the smooth checks pass"
    if case.dtype == "float32" and max(measured) < PRECISION_HEADROOM:
        if not twin:
            twin.append(_float64_twin(case, mirror, tolerances))
        if twin[0] is not None and _status(twin[0], r.check) == "pass":
            return PRECISION, f"within {PRECISION_HEADROOM:g}x the allowed error; the float64 case passes {r.check}"
    return WRONG, ""


def _recorded(r, label: str, note: str, mirror, tolerances):
    """The labelled record; a suspected torch defect recorded for the installed torch passes."""
    message = r.message + (f" [{label}: {note}]" if note else "")
    if label == TORCH:
        defect = tolerances.torch_defect(r.entry, r.check, torch.__version__)
        if defect is not None:
            return dataclasses.replace(r, status="pass", label=RECORDED,
                                       message=f"{defect.rule()} ({defect.reason}); {message}")
    return dataclasses.replace(r, label=label, message=message)


def _failing_example(case, check: str) -> int:
    """The first example that failed ``check``: a failed comparison or an error raised under it (the
    record's worst example is the closest comparison, which may be another example's)."""
    for ex in case.examples:
        if (ex.status == "error" and ex.error_check == check) or any(j.check == check and not j.ok for j in ex.judged):
            return ex.index
    return 0


def _status(case, check: str) -> str | None:
    return next((r.status for r in case.records if r.check == check), None)


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _rerun(case, mirror, tolerances, seed=None, only_example=None, dtype=None, wrapped=None):
    from conformance.runner import run_case

    return run_case(wrapped or mirror, dtype or case.dtype, case.device, case.profile, tolerances,
                    examples=len(case.examples) or None, only_example=only_example, seed=seed, classify=False)


def _replay(case, mirror, tolerances, k: int):
    """Example ``k`` rerun with its own seed: ``(its case, its drawn sample)`` (sample: ops only)."""
    from conformance.runner import current_example

    drawn: dict[int, object] = {}
    wrapped = None
    if isinstance(mirror, OpMirror):
        def sample(draw, dtype, device):
            s = mirror.sample(draw, dtype, device)
            drawn.setdefault(current_example(), s)  # the driver's first draw; later checks draw again
            return s

        wrapped = dataclasses.replace(mirror, sample=sample)
    try:
        again = _rerun(case, mirror, tolerances, only_example=k, wrapped=wrapped)
    except Exception:  # noqa: BLE001 - a rerun that cannot run says nothing either way
        return None, None
    return again, drawn.get(k)


def _float64_twin(case, mirror, tolerances):
    if torch.float64 not in getattr(mirror, "dtypes", ()):
        return None
    return _rerun(case, mirror, tolerances, dtype="float64")


# ----- torch as the odd one out -----------------------------------------------------------------------


@dataclasses.dataclass
class Verdict:
    suspected: bool
    detail: str


def torch_odd_one_out(mirror: OpMirror, sample, dtype: torch.dtype, device, order: int = 1) -> Verdict:
    """Is torch alone off? The directional derivative of ``<u, f>`` (order 1) or of ``<grad <u, f>, w>``
    (order 2) by torch, by neuronix, by float64 finite differences of neuronix and by ``nx.func.jvp``."""
    if torch.float64 not in mirror.dtypes or not mirror.fd:
        return Verdict(False, "no float64 finite differences for this mirror")
    slots = leaf_slots(sample)
    if not slots:
        return Verdict(False, "nothing differentiable")
    gen = torch.Generator().manual_seed(12345)
    base = [slot_value(sample.args, p).detach() for _, p in slots]
    t_out = _floats(mirror, sample, slots, [x.double() for x in base], TorchLeaf(), torch.float64)
    ups = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in t_out]
    vs = [torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in base]
    ws = [torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in base]

    def scalar(lib, xs, create: bool):
        """``<u, f(xs)>`` (order 1) or ``<grad, w>`` (order 2) in ``lib`` at leaves ``xs``, in their dtype."""
        leaf = TorchLeaf() if lib is torch else NxLeaf()
        outs = _floats(mirror, sample, slots, xs, leaf, xs[0].dtype, keep=True)
        leaves, outs = outs
        s = _dot(lib, outs, [u.to(xs[0].dtype) for u in ups])
        if order == 2:
            g = grads([s], leaves, [_one(lib, s)], lib, True)
            s = _dot(lib, g, [w.to(xs[0].dtype) for w in ws])
        return leaves, s

    def directional(lib, xs) -> float:
        leaves, s = scalar(lib, xs, True)
        g = grads([s], leaves, [_one(lib, s)], lib, False)
        return float(sum((_raw(a).double() * v).sum() for a, v in zip(g, vs)))

    def value(xs) -> float:
        return float(_raw(scalar(nx, xs, order == 2)[1]).double())

    x64 = [x.double() for x in base]
    try:
        by_torch = directional(torch, [x.to(dtype) for x in base])
        by_nx = directional(nx, [x.to(dtype) for x in base])
        plus, minus = ([x + sign * FD_STEP * v for x, v in zip(x64, vs)] for sign in (1, -1))
        fd = (value(plus) - value(minus)) / (2 * FD_STEP)
        by_jvp = _jvp(mirror, sample, slots, base, vs, ups, dtype) if order == 1 else None
    except Exception as err:  # noqa: BLE001 - an oracle that cannot run decides nothing
        return Verdict(False, f"odd-one-out check failed to run: {type(err).__name__}: {err}")
    tol = AGREE.get(dtype, 1e-3)
    nx_ok = _agree(by_nx, fd, tol) and (by_jvp is None or _agree(by_jvp, by_nx, tol))
    torch_off = not _agree(by_torch, fd, tol)
    jvp_text = "not available" if by_jvp is None else f"{by_jvp:.10g}"
    detail = (f"directional derivative (order {order}): torch {by_torch:.10g}, neuronix {by_nx:.10g}, float64 finite "
              f"differences {fd:.10g}, neuronix forward mode {jvp_text}")
    return Verdict(nx_ok and torch_off and math.isfinite(fd), detail)


def _with_slots(sample, slots, xs, dtype):
    """``sample`` with its slots set to ``xs`` as given (a strided leaf stays strided: torch's defect
    may be in that layout) and its other floating tensors in ``dtype``, copied (a call may write
    them in place: running statistics)."""
    def cast(a):
        if isinstance(a, (list, tuple)):
            return type(a)(cast(b) for b in a)
        return a.to(dtype, copy=True) if isinstance(a, torch.Tensor) and a.is_floating_point() else a

    cast_sample = dataclasses.replace(sample, args=tuple(cast(a) for a in sample.args),
                                      kwargs={k: cast(v) for k, v in sample.kwargs.items()})
    return substituted(cast_sample, slots, xs)


def _floats(mirror, sample, slots, xs, leaf, dtype, keep: bool = False):
    """The floating outputs of the call with the slots set to ``xs`` (as leaves of ``leaf``'s library)."""
    a, k = build_call(_with_slots(sample, slots, xs, dtype), slots, leaf)
    fn = mirror.torch if isinstance(leaf, TorchLeaf) else mirror.nx
    outs = [v for _, v in outputs(mirror, fn(*a, **k)) if _is_float(v)]
    if keep:
        return [slot_value(a, p) for _, p in slots], outs
    return [_raw(o).detach() for o in outs]


def _is_float(v) -> bool:
    t = _raw(v)
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def _raw(v):
    return v.data if isinstance(v, nx.Tensor) else v


def _one(lib, s):
    return torch.ones_like(_raw(s))


def _dot(lib, outs, us):
    terms = [(o * (u if lib is torch else nx.Tensor(u))).sum() for o, u in zip(outs, us)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _agree(a: float, b: float, tol: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol * (abs(a) + abs(b)) + tol * 1e-3


def _jvp(mirror, sample, slots, base, vs, ups, dtype):
    """``<u, J v>`` by neuronix's forward mode, when ``nx.func.jvp`` exists."""
    jvp = getattr(getattr(nx, "func", None), "jvp", None)
    if jvp is None:
        return None

    def f(*xs):
        a, k = build_call(_with_slots(sample, slots, xs, dtype), [], NxConst())  # xs pass as they are
        return tuple(v for _, v in outputs(mirror, mirror.nx(*a, **k)) if _is_float(v))

    primals = tuple(nx.Tensor(x.to(dtype)) for x in base)
    tangents = tuple(nx.Tensor(v.to(dtype)) for v in vs)
    _, out_t = jvp(f, primals, tangents)
    out_t = out_t if isinstance(out_t, tuple) else (out_t,)
    return float(sum((_raw(o).double() * u).sum() for o, u in zip(out_t, ups)))


def _torch_snippet(mirror, sample, case, k: int) -> str:
    """A torch-only repro script (``conformance.snippet``), else the repro command."""
    try:
        from conformance.snippet import snippet_for

        return snippet_for(mirror, sample, _dtype(case.dtype), case.device, torch_only=True, case=case.case_id,
                           note=f"example {k}: torch's derivative against float64 finite differences")
    except Exception as err:  # noqa: BLE001 - the snippet is a courtesy; the label stands without it
        return f"(no snippet: {type(err).__name__}: {err}) python -m conformance repro '{case.case_id}' --example {k}"


def stale_torch_defects(data: dict, tolerances) -> list[str]:
    """Recorded torch defects for this run's torch that no case reproduced (gate section lines).

    A defect is stale when the run covered its op and check (a record of it exists), or the run was
    complete, and no record was passed as ``torch defect (recorded)`` under it."""
    if not tolerances.torch_defects:
        return []
    version = data["run"]["torch"]
    records = data["records"]
    lines = []
    for d in tolerances.torch_defects:
        if not d.applies(version):
            continue
        mine = [r for r in records if d.matches(r["entry"], r["check"])]
        if any(r.get("label") == RECORDED for r in mine):
            continue
        if mine or not data["run"].get("filtered"):
            lines.append(f"{d.rule()}: stale (torch {version} no longer shows it: remove it)")
    return lines
