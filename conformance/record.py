"""What a case leaves behind: its examples' judged comparisons, and the records that summarise it.

One ``Record`` per (entry, check, dtype, device): worst error, its tolerance and the rule that
set it, headroom, examples tried, the worst example's seed and input shapes, and the case's
leak verdict (also recorded as check ``leak``). Records stay typed through the pipeline
(runner, pytest plugin, report); ``Record.as_dict`` is the one place they become the JSON
rows of ``conformance.json``, and ``Record.from_dict`` reads such a row back (xdist workers
send their records to the controller as JSON).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from conformance.tolerances import Tolerance, Tolerances
from conformance.trace import REMOVED_PREFIX

CHECK_ORDER = ("forward", "backward", "double_backward", "finite_difference", "forward_ad", "special_values", "variant",
               "version_guard", "thread", "buffers", "trajectory", "lr", "error", "leak")


def repro_command(cid: str, profile: str = "ci") -> str:
    extra = "" if profile == "ci" else f" --profile {profile}"
    return f"python -m conformance repro '{cid}'{extra}"


@dataclass
class Judged:
    """One measured comparison of one example."""

    example: int
    check: str
    what: str
    max_abs: float
    max_rel: float
    headroom: float
    ok: bool
    rule: str
    rtol: float
    atol: float
    problem: str = ""


@dataclass
class ExampleResult:
    index: int
    seed: int
    info: dict = field(default_factory=dict)
    judged: list[Judged] = field(default_factory=list)
    status: str = "ran"  # ran | rejected | error
    error: str = ""
    error_check: str = "error"
    leak: str = ""  # empty when clean
    seconds: float = 0.0


@dataclass(frozen=True)
class Allowed:
    """The tolerance a record was judged under (its ``rule`` is a field of the record)."""

    rtol: float
    atol: float


@dataclass(frozen=True)
class Worst:
    """The example that came closest to failing (or failed first): enough to replay and describe it."""

    example: int
    seed: int
    what: str | None
    inputs: list | None  # as the driver noted them: descriptions of tensors, or shapes
    kwargs: dict | None


@dataclass(frozen=True)
class LeakVerdict:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Record:
    """One check of one case. Fields in the order of the JSON row; errors are ``None`` when not finite."""

    case_id: str
    entry: str
    kind: str
    check: str
    dtype: str
    device: str
    status: str  # pass | fail | error
    message: str
    max_abs_error: float | None
    max_rel_error: float | None
    headroom: float | None
    tolerance: Allowed | None
    rule: str | None
    comparisons: int
    examples: int
    rejected: int
    seed: int
    worst: Worst | None
    leak: LeakVerdict
    seconds: float
    profile: str
    repro: str
    label: str = ""  # failing records only: what kind of failure (``conformance.classify``)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Record:
        nested = {"tolerance": Allowed, "worst": Worst, "leak": LeakVerdict}
        return cls(**{k: nested[k](**v) if k in nested and v is not None else v for k, v in row.items()})


@dataclass
class CaseResult:
    case_id: str
    entry: str
    kind: str
    dtype: str
    device: str
    profile: str
    seed: int
    examples: list[ExampleResult] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(r.status != "pass" for r in self.records)

    def failure_message(self) -> str:
        failing = [r for r in self.records if r.status != "pass"]
        lines = [f"{self.case_id}: " + ", ".join(f"{r.check} {r.status}" for r in failing)]
        lines += [f"  [{r.check}]" + (f" ({r.label})" if r.label else "") + f" {r.message}" for r in failing]
        lines.append(f"  repro: {repro_command(self.case_id, self.profile)}")
        return "\n".join(lines)


def summarise(case: CaseResult, tolerances: Tolerances) -> list[Record]:
    """One record per check kind seen in the case, plus ``error`` (when any) and ``leak``."""
    by_check: dict[str, list[Judged]] = {}
    for ex in case.examples:
        for j in ex.judged:
            by_check.setdefault(j.check, []).append(j)
    errors = [ex for ex in case.examples if ex.status == "error"]
    for ex in errors:
        by_check.setdefault(ex.error_check, [])
    ran = [ex for ex in case.examples if ex.status != "rejected"]
    rejected = len(case.examples) - len(ran)
    leaks = [ex for ex in case.examples if ex.leak]
    records = []
    for check in sorted(by_check, key=lambda c: CHECK_ORDER.index(c) if c in CHECK_ORDER else len(CHECK_ORDER)):
        judged = by_check[check]
        worst = max(judged, key=lambda j: (not j.ok, j.headroom), default=None)
        failed = [j for j in judged if not j.ok]
        errs = [ex for ex in errors if ex.error_check == check]
        status = "fail" if failed or errs else "pass"
        message = ""
        if errs:
            status = "error" if check == "error" else "fail"
            message = f"example {errs[0].index}: {errs[0].error}"
        elif failed:
            j = failed[0]
            detail = j.problem or f"max abs error {j.max_abs:.3e}, max rel error {j.max_rel:.3e}"
            message = (f"example {j.example}: {j.what}: {detail} (allowed atol={j.atol:g} + rtol={j.rtol:g}*|expected|, "
                       f"headroom {j.headroom:.3g}, rule {j.rule}); {len(failed)} of {len(judged)} comparisons failed")
        worst_ex = next((ex for ex in case.examples if worst and ex.index == worst.example), errs[0] if errs else None)
        tol = tolerances.lookup(case.entry, check, case.dtype, case.device, case.case_id) if check != "error" else None
        records.append(_record(case, check, status, message, judged, worst, worst_ex, tol, len(ran), rejected, leaks))
    if not ran and case.examples and all(ex.error.startswith(REMOVED_PREFIX) for ex in case.examples):
        # the installed torch removed the function (torch 2.14's torch.cholesky, torch.qr; 2.13 computes them) and
        # neuronix raised torch's very error on every example (conformance.kinds.common.call_both checks it)
        records.append(_record(case, "forward", "pass", case.examples[0].error, [], None, case.examples[0], None, 0,
                               rejected, leaks))
    elif not ran and case.examples:
        records.append(_record(case, "error", "error", "every example was rejected (torch and neuronix both raised): "
                               + case.examples[0].error, [], None, case.examples[0], None, 0, rejected, leaks))
    leak_message = f"example {leaks[0].index}: {leaks[0].leak}" if leaks else ""
    records.append(_record(case, "leak", "fail" if leaks else "pass", leak_message, [], None, leaks[0] if leaks else None,
                           None, len(ran), rejected, leaks))
    return records


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _record(case: CaseResult, check: str, status: str, message: str, judged: list[Judged], worst: Judged | None,
            worst_ex: ExampleResult | None, tol: Tolerance | None, tried: int, rejected: int,
            leaks: list[ExampleResult]) -> Record:
    headroom = max((j.headroom for j in judged), default=0.0)
    return Record(
        case_id=case.case_id, entry=case.entry, kind=case.kind, check=check, dtype=case.dtype, device=case.device,
        status=status, message=message,
        max_abs_error=_finite(max((j.max_abs for j in judged), default=0.0)),
        max_rel_error=_finite(max((j.max_rel for j in judged), default=0.0)),
        headroom=_finite(headroom) if status == "pass" or headroom != math.inf else None,
        tolerance=None if tol is None else Allowed(tol.rtol, tol.atol),
        rule=None if tol is None else tol.rule,
        comparisons=len(judged), examples=tried, rejected=rejected, seed=case.seed,
        worst=None if worst_ex is None else Worst(
            worst_ex.index, worst_ex.seed, worst.what if worst else None, worst_ex.info.get("inputs"),
            worst_ex.info.get("kwargs")),
        leak=LeakVerdict(not leaks, leaks[0].leak if leaks else ""),
        seconds=round(case.seconds, 4), profile=case.profile, repro=repro_command(case.case_id, case.profile),
    )
