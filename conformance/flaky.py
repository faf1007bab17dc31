"""Flakiness: every failing case of a run is rerun with its own seed and with fresh seeds, so the report
says whether the failure reproduces (``data["reruns"]``; the gate prints its sentence under each failure).

Verdicts, for a case that failed checks C in the run:

* ``reproduces``: rerun with its own seed it fails one of C again, and so does at least one fresh seed:
  a deterministic failure that other inputs hit too.
* ``seed-specific``: it fails one of C again with its own seed, and passes C on every fresh seed: a
  deterministic failure of the inputs that seed draws (``repro`` replays exactly them).
* ``does not reproduce``: rerun with its own seed (the very same draws) it passes C: the failure depends
  on something other than the inputs (unseeded randomness, threads, process state), so it must not be
  read as a deterministic one.
* ``not rerun``: beyond the cap or the time budget, not in the mirror registry (mirrors planted by
  tests), a case whose worker crashed, or a rerun that raised; the text says which.

The fresh seeds are derived from the case's seed (``fresh_seeds``), so a report is reproducible and
names them. Reruns run in the pytest controller after every case ran, one after another, so they are
bounded: at most ``MAX_CASES`` cases within ``BUDGET_SECONDS``; a case is rerun only when the budget
left affords its own seed and at least one fresh seed at its recorded duration. Leak failures are
rerun too: ``run_case`` runs every example under the leak check itself (gc off, a scoped graph), so a
leak reruns exactly as it ran.
"""

from __future__ import annotations

import math
import time

from conformance import runner

FRESH_SEEDS = 3  # fresh seeds per failing case
MAX_CASES = 20  # failing cases rerun per report (the first by case id)
BUDGET_SECONDS = 120.0  # all reruns of a report, like ``shrink.REPORT_BUDGET`` for its scripts
# the message of a case whose xdist worker crashed (``plugin._lost_cases``): rerunning it here could take
# the controller, and with it the whole report, down the same way
CRASHED = "the case left no records"
REPRODUCES, SEED_SPECIFIC, NOT_REPRODUCED, NOT_RERUN = "reproduces", "seed-specific", "does not reproduce", "not rerun"


def fresh_seeds(seed: int, count: int = FRESH_SEEDS) -> list[int]:
    """``count`` seeds derived from the case's ``seed`` alone (the same on every run of the report)."""
    return [runner.seed_of(f"{seed}/fresh/{i}") for i in range(count)]


def rerun_failures(records, opts: dict, max_cases: int = MAX_CASES, budget: float = BUDGET_SECONDS,
                   fresh: int = FRESH_SEEDS) -> dict:
    """``{case_id: {"same_seed": {...}, "fresh": [...], "verdict": ..., "text": ...}}`` for the failing cases
    (format: module docstring and the issue 15 preamble); never raises for a case."""
    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.mirror import REGISTRY
    from conformance.tolerances import load

    by_case: dict[str, list] = {}
    for r in records:
        by_case.setdefault(r.case_id, []).append(r)
    failing = sorted(cid for cid, rows in by_case.items() if any(r.status != "pass" for r in rows))
    tolerances = load(opts.get("tolerances"))
    start, out = time.perf_counter(), {}
    for n, cid in enumerate(failing):
        rows = by_case[cid]
        first = rows[0]
        if n >= max_cases:
            out[cid] = _not_rerun(f"only the first {max_cases} of the run's {len(failing)} failing cases are rerun")
            continue
        reason = _unrerunnable(first, rows, REGISTRY)
        if reason:
            out[cid] = _not_rerun(reason)
            continue
        left = budget - (time.perf_counter() - start)
        per_run = max(first.seconds or 0.0, 1e-3)  # the case's own duration in the run
        affordable = math.floor(left / per_run) if left > 0 else 0
        if affordable < 2:  # its seed and one fresh seed at least, or the verdict could not be told
            out[cid] = _not_rerun(f"a rerun takes about {per_run:.3g} s and {max(left, 0):.3g} s of the report's "
                                  f"{budget:g} s rerun budget were left")
            continue
        out[cid] = _rerun_case(cid, rows, REGISTRY[first.entry], opts, tolerances,
                               fresh_seeds(first.seed, min(fresh, affordable - 1)), start, budget)
    return out


def _unrerunnable(first, rows, registry) -> str:
    """Why the case cannot be rerun here; empty when it can."""
    if first.entry not in registry:
        return f"{first.entry!r} is not in the mirror registry (a mirror planted by a test?)"
    if any(CRASHED in r.message for r in rows):
        return "its pytest-xdist worker crashed; rerunning it in the report's process could crash the report too"
    if first.device != "cpu":
        import torch

        backend = getattr(torch, first.device, None)
        if backend is None or not backend.is_available():
            return f"device {first.device!r} is not available in the process writing the report"
    return ""


def _rerun_case(cid: str, rows, mirror, opts: dict, tolerances, seeds: list[int], start: float, budget: float) -> dict:
    checks = {r.check for r in rows if r.status != "pass"}  # what failed in the run
    # checks a recorded torch defect turned into a pass: the reruns skip classification, so they fail there
    recorded = {r.check for r in rows if r.label == "torch defect (recorded)"}
    first = rows[0]
    began = time.perf_counter()
    try:
        same = _run(mirror, first, opts, tolerances, first.seed, checks, recorded)
        again = []
        for seed in seeds:
            if again and time.perf_counter() - start > budget:
                break  # the budget ran out mid-case: the fresh seeds run so far decide
            again.append(_run(mirror, first, opts, tolerances, seed, checks, recorded))
    except Exception as err:  # noqa: BLE001 - the report never fails because of a rerun
        return _not_rerun(f"the rerun raised {type(err).__name__}: {' '.join(str(err).split())[:300]}")
    verdict = _verdict(same, again)
    return {"same_seed": same, "fresh": again, "verdict": verdict, "text": _text(verdict, same, again),
            "seconds": round(time.perf_counter() - began, 3)}


def _run(mirror, first, opts: dict, tolerances, seed: int, checks: set, recorded: set) -> dict:
    case = runner.run_case(mirror, first.dtype, first.device, first.profile, tolerances, opts.get("examples"),
                           seed=seed, classify=False)
    failed = sorted({r.check for r in case.records if r.status != "pass"} - recorded)
    return {"seed": seed, "status": "fail" if checks & set(failed) else "pass", "checks": failed,
            "examples": _failing_examples(case)}


def _failing_examples(case) -> list[int]:
    """Indices of the examples that failed a comparison, raised or leaked."""
    return [ex.index for ex in case.examples
            if ex.status == "error" or ex.leak or any(not j.ok for j in ex.judged)]


def _verdict(same: dict, again: list[dict]) -> str:
    if same["status"] == "pass":
        return NOT_REPRODUCED
    return REPRODUCES if any(r["status"] == "fail" for r in again) else SEED_SPECIFIC


def _text(verdict: str, same: dict, again: list[dict]) -> str:
    """One sentence for the gate, the summary and the HTML report."""
    bad = [r for r in again if r["status"] == "fail"]
    seeds = ", ".join(str(r["seed"]) for r in again)
    where = f"{len(bad)} of {len(again)} fresh seeds ({seeds})"
    if verdict == REPRODUCES:
        # Hypothesis starts every seed with its minimal example: a failure of that example alone is one
        # input failing on every seed, not several inputs failing
        minimal = all(r.get("examples") == [0] for r in bad)
        return (f"reproduces: fails again with its seed {same['seed']} ({', '.join(same['checks'])}) and on {where}"
                + (f", failing with {', '.join(str(r['seed']) for r in bad)}" if len(bad) < len(again) else "")
                + (" (only at example 0, the minimal example every seed starts with)" if minimal else ""))
    if verdict == SEED_SPECIFIC:
        return (f"seed-specific: fails again with its seed {same['seed']} ({', '.join(same['checks'])}) but passes on all "
                f"{len(again)} fresh seeds ({seeds}): a deterministic failure of the inputs that seed draws")
    fresh = (f"; it fails on {where}, failing with {', '.join(str(r['seed']) for r in bad)}" if bad
             else f"; it passes on all {len(again)} fresh seeds ({seeds})")
    return (f"does not reproduce: rerun with its own seed {same['seed']} (the same inputs) it passes{fresh}: the failure "
            f"is nondeterministic and should not be trusted as a deterministic one")


def _not_rerun(reason: str) -> dict:
    return {"verdict": NOT_RERUN, "text": f"not rerun: {reason}"}
