"""Sharding a conformance run across CI jobs (``run --shard K/N``) and merging the slices (``merge``).

A slice is chosen at collection time, in every pytest-xdist worker separately, so the choice must be a pure
function of the case list, the spec and the history file: the cases are dealt longest first (ties broken
by case id) to the slice with the least work so far. The work of a case is its recorded duration in the
history (``conformance.history``), else the median recorded duration; without any history, an estimate by
the case's kind and dtype (``ESTIMATE_SECONDS``). Every case lands in exactly one slice for any N.

``merge`` checks that the slices belong to one run (same commit, torch, profile, dtypes, devices,
tolerances, coverage; every slice 1..N exactly once; no case in two slices), then rebuilds one report over
the union of their records (``report.build`` recomputes the summary and the override statuses: an override
that matched in any slice is ``ok``), keeping the slices' own snippets and reruns.
"""

from __future__ import annotations

import heapq
import json
import statistics
from pathlib import Path

# Mean seconds per case by kind, and the dtype's factor on it, measured on a full ci-profile run (6774
# cases, all six dtypes, cpu, torch 2.13): an op case 0.20 s (float32/64 0.28, float16/bfloat16 0.135,
# complex 0.053), a module case 0.70 s. Only the ratios matter: they deal the slices evenly until a
# history records the real durations.
ESTIMATE_SECONDS = {"op": 0.20, "module": 0.70, "optimizer": 0.43, "scheduler": 0.11, "amp": 1.9}
DTYPE_FACTOR = {"float32": 1.4, "float64": 1.4, "float16": 0.7, "bfloat16": 0.7, "complex64": 0.27, "complex128": 0.27}
DEFAULT_ESTIMATE = 0.20  # an entry outside the registry (tests' synthetic ids) counts as an op


class MergeError(Exception):
    """Shard reports that do not make up one run; the message says which file and what differs."""


def parse_spec(spec: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``; a ValueError that says what is valid otherwise."""
    parts = str(spec).strip().split("/")
    try:
        index, count = (int(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count is None or count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {spec!r}: expected K/N, two whole numbers with 1 <= K <= N (e.g. 1/2 and 2/2)")
    return index, count


def _kind(entry: str) -> str | None:
    from conformance.mirror import REGISTRY

    mirror = REGISTRY.get(entry)
    return getattr(mirror, "kind", None) if mirror is not None else None


def _estimate(case_id: str) -> float:
    entry, dtype = (case_id.rsplit("|", 2) + ["", ""])[:2] if case_id.count("|") >= 2 else (case_id, "")
    return ESTIMATE_SECONDS.get(_kind(entry), DEFAULT_ESTIMATE) * DTYPE_FACTOR.get(dtype, 1.0)


def recorded_seconds(history: str | Path | None) -> dict[str, float]:
    """``{case_id: seconds}`` of the history file (the latest run that measured each case); ``{}`` without one."""
    if not history:
        return {}
    from conformance import history as hist

    return {cid: float(s) for cid, s in hist.case_seconds(hist.load(history)).items() if s is not None}


def durations(cases: list[str], history: str | Path | None = None) -> dict[str, float]:
    """The work of each case: recorded seconds, the median recorded seconds for a case the history has not
    seen (a new mirror), or the kind's estimate when there is no history at all."""
    recorded = recorded_seconds(history)
    if not recorded:
        return {c: _estimate(c) for c in cases}
    typical = statistics.median(recorded.values())
    return {c: recorded.get(c, typical) for c in cases}


def deal(work: dict[str, float], count: int) -> list[list[str]]:
    """Greedy longest-first: each case, longest first (ties by case id), to the slice with the least work
    so far (ties by slice number). Within 4/3 of the ideal split, and near it when no case is a large
    share of a slice."""
    slices: list[list[str]] = [[] for _ in range(count)]
    loads = [(0.0, i) for i in range(count)]  # a heap of (work so far, slice)
    for cid in sorted(work, key=lambda c: (-work[c], c)):
        load, i = heapq.heappop(loads)
        slices[i].append(cid)
        heapq.heappush(loads, (load + work[cid], i))
    return slices


def select(cases: list[str], spec: str, history: str | None = None) -> list[str]:
    """The case ids of slice ``spec`` ("K/N", 1-based) of ``cases``: deterministic, balanced by the
    recorded durations of ``history`` when it exists. Kept in the order of ``cases``."""
    index, count = parse_spec(spec)
    if len(set(cases)) != len(cases):
        raise ValueError("shard: the case list repeats a case id; each case must be dealt once")
    mine = set(deal(durations(cases, history), count)[index - 1])
    return [c for c in cases if c in mine]


def describe(spec: str, history: str | None = None) -> dict:
    """``run["shard"]`` of a slice's report (``report.build`` fills ``cases`` from the slice's records)."""
    index, count = parse_spec(spec)
    runs = 0
    if history and recorded_seconds(history):
        from conformance import history as hist

        runs = len(hist.load(history))
    return {"index": index, "count": count, "cases": None,
            "balanced_by": f"history {history} ({runs} runs)" if runs else "estimate"}


def report_problems(data: dict) -> list[tuple[str, list[str]]]:
    """The gate's section for a report that is one slice of a sharded run (merge first)."""
    shard = (data.get("run") or {}).get("shard")
    if not shard:
        return []
    k, n = shard.get("index"), shard.get("count")
    return [("sharded run", [f"slice {k} of {n}: merge the {n} slices with python -m conformance merge, "
                             "then gate the merged report"])]


# --- merge -------------------------------------------------------------------------------------------

# run fields every slice must share: the slices of one run differ only in their cases
SAME_RUN = ("commit", "neuronix", "torch", "cuda", "profile", "examples", "dtypes", "devices", "filtered", "tolerances")


def _static_overrides(data: dict) -> list[dict]:
    """The override rules as written in tolerances.toml (not what this slice measured under them)."""
    keys = ("index", "op", "check", "dtype", "device", "rtol", "atol", "reason", "rule")
    return [{k: o.get(k) for k in keys} for o in data.get("overrides", [])]


def _check_one_run(shards: list[tuple[str, dict]]) -> int:
    """Raise MergeError unless the reports are the N slices of one run; returns N."""
    for name, data in shards:
        if (data.get("run") or {}).get("shard") is None:
            raise MergeError(f"{name} is not a slice of a sharded run (its run.shard is null): "
                             "merge takes the conformance.json of each `run --shard K/N`")
    first_name, first = shards[0]
    for name, data in shards[1:]:
        for key in SAME_RUN:
            if data["run"].get(key) != first["run"].get(key):
                raise MergeError(f"{name} differs from {first_name} in run.{key}: "
                                 f"{data['run'].get(key)!r} vs {first['run'].get(key)!r}; the slices of one run share it")
        for key, what in (("coverage", "coverage"), ("defaults", "default tolerances")):
            if data.get(key) != first.get(key):
                raise MergeError(f"{name} differs from {first_name} in its {what}; the slices of one run share them")
        if _static_overrides(data) != _static_overrides(first):
            raise MergeError(f"{name} differs from {first_name} in its tolerance overrides; "
                             "the slices of one run share tolerances.toml")
        if data["run"]["shard"].get("fingerprint") != first["run"]["shard"].get("fingerprint"):
            raise MergeError(f"{name} and {first_name} were dealt from different case lists (fingerprints "
                             f"{data['run']['shard'].get('fingerprint')} and {first['run']['shard'].get('fingerprint')}): "
                             "other mirrors or --dtypes/--devices; the slices of one run deal one list")
        # slices dealt from different histories (or one from none) are not a partition: cases go missing
        if data["run"]["shard"].get("balanced_by") != first["run"]["shard"].get("balanced_by"):
            raise MergeError(f"{name} was dealt by {data['run']['shard'].get('balanced_by')!r} but {first_name} by "
                             f"{first['run']['shard'].get('balanced_by')!r}: every slice must get the same history")
    counts = {data["run"]["shard"]["count"] for _, data in shards}
    if len(counts) > 1:
        raise MergeError(f"the slices disagree on the number of slices: {sorted(counts)}")
    count = counts.pop()
    seen: dict[int, str] = {}
    for name, data in shards:
        index = data["run"]["shard"]["index"]
        if index in seen:
            raise MergeError(f"slice {index} of {count} given twice: {seen[index]} and {name}")
        seen[index] = name
    missing = [k for k in range(1, count + 1) if k not in seen]
    if missing:
        raise MergeError(f"slice(s) {', '.join(map(str, missing))} of {count} missing "
                         f"(got {', '.join(map(str, sorted(seen)))}): a merged report must hold every slice")
    owner: dict[str, str] = {}
    for name, data in shards:
        for cid in sorted({r["case_id"] for r in data["records"]}):
            if owner.setdefault(cid, name) != name:
                raise MergeError(f"case {cid} is in two slices: {owner[cid]} and {name} "
                                 "(were they run with different case lists or histories?)")
    total = first["run"]["shard"].get("total")
    if total is not None and not first["run"].get("filtered") and len(owner) != total:
        raise MergeError(f"the {count} slices hold {len(owner)} of the run's {total} cases: "
                         f"{total - len(owner)} landed in no slice or left no records (an interrupted slice?)")
    return count


class _Coverage:
    """The slices' coverage, as ``report.build`` takes it (``.as_dict()``): identical in every slice."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def as_dict(self) -> dict:
        return self.data


def merge(shards: list[tuple[str, dict]], history: str | None = None, names=None) -> dict:
    """One report from the ``(file name, report)`` slices of a run; MergeError when they are not one run.
    ``names`` (the mirror names an override may target) defaults to the live registry, as in ``build``."""
    from conformance import report
    from conformance.record import Record
    from conformance.tolerances import load

    if not shards:
        raise MergeError("no shard reports given")
    for name, data in shards:
        if data.get("schema") != report.SCHEMA:
            raise MergeError(f"{name}: schema {data.get('schema')!r} is not {report.SCHEMA!r}")
    count = _check_one_run(shards)
    shards = sorted(shards, key=lambda s: s[1]["run"]["shard"]["index"])
    first = shards[0][1]
    path = first["run"].get("tolerances")
    tolerances_path = None if path in (None, "tolerances.toml") else path
    try:
        load(tolerances_path)
    except OSError as err:
        raise MergeError(f"cannot read the slices' tolerances {path}: {err}; merge in the checkout they ran in") from err
    run = {**first["run"], "shard": None, "merged": {"shards": count, "files": [name for name, _ in shards]},
           "dirty": any(data["run"].get("dirty") for _, data in shards),
           "time": max(data["run"].get("time") or "" for _, data in shards),
           "history": str(history) if history else first["run"].get("history")}
    opts = {"dtypes": run["dtypes"], "devices": [d["device"] for d in run["devices"]], "profile": run["profile"],
            "examples": run.get("examples"), "tolerances": tolerances_path, "history": run["history"]}
    records = [Record.from_dict(row) for _, data in shards for row in data["records"]]
    snippets: dict = {}
    reruns: dict = {}
    for _, data in shards:
        snippets.update(data.get("snippets") or {})
        reruns.update(data.get("reruns") or {})
    merged = report.build(records, opts, filtered=bool(run.get("filtered")), coverage=_Coverage(first["coverage"]),
                          names=names, run=run, snippets=snippets, reruns=reruns)
    if _static_overrides(merged) != _static_overrides(first) or merged["defaults"] != first["defaults"]:
        raise MergeError(f"the tolerances at {path} differ from the ones the slices ran with; merge at their commit")
    return merged


def _read(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise MergeError(f"cannot read the shard report {path}: {err}") from err


def merge_main(args) -> int:
    """``python -m conformance merge shard*.json [--report-dir DIR] [--history FILE]``: 0 once the merged
    reports are written (the gate judges them), 2 when the files are not the slices of one run."""
    from conformance import report

    try:
        merged = merge([(path, _read(path)) for path in args.shards], history=args.history)
    except MergeError as err:
        print(f"conformance merge: {err}")
        return 2
    if args.history:  # first: the merged HTML's trend charts then include this run
        from conformance import history

        merged["run"]["history"] = args.history
        history.append(merged, args.history)
    paths = report.write_all(merged, args.report_dir)
    print(f"conformance merge: {len(args.shards)} slices: {report.one_line(merged)}")
    print(f"conformance merge: wrote {', '.join(str(p) for p in paths)}; "
          f"judge with: python -m conformance gate {paths[0]}")
    return 0
