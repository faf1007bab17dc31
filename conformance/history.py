"""The run history: one compact JSON line per run (commit, torch, devices, per-case worst headroom and
seconds); trends for the HTML report, durations for balanced shards, and the ``history`` command.

A line (schema ``neuronix-conformance-history/1``)::

    {"schema", "commit", "dirty", "time", "torch", "devices": ["cpu (x86_64)", ...], "profile", "dtypes",
     "filtered", "summary": {cases, failed_cases, records, passed, failed, errors, leaks, max_headroom},
     "cases": {case_id: [worst headroom (3 significant digits, null if none finite), seconds(, status)]}, "seconds"}

A case's optional third element is its status when it did not pass (``"fail"`` or ``"error"``): an error record
carries headroom 0, so without it a case that started erring would look like a case that became exact.

Why JSON Lines: a run appends one line with one ``write`` (no read-modify-write of a shared document), and a
run killed mid-write leaves at most one broken last line, which ``load`` skips with a warning. The file keeps
the last ``KEEP`` runs: a full run's line is about 300 kB (6774 cases), so an unbounded history in a CI cache would
grow without end; 100 runs (30 MB, 47 kB a line gzipped) cover months of merges and load in about two seconds.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import warnings
from pathlib import Path

SCHEMA = "neuronix-conformance-history/1"
REPORT_SCHEMA = "neuronix-conformance/1"
KEEP = 100  # runs kept by ``append``; older lines are dropped (rewritten atomically)
SUMMARY_KEYS = ("cases", "failed_cases", "records", "passed", "failed", "errors", "leaks", "max_headroom")
# Headrooms below this count as this when measuring drift: an exact check (headroom 0) has no logarithm, and a
# move within a thousandth of the tolerance is noise to a reviewer; exact -> 0.5 is still 2.7 decades of drift.
HEADROOM_FLOOR = 1e-3
STATUS_ORDER = ("pass", "fail", "error")  # worst last


def case_point(value: list) -> tuple[float | None, float | None, str]:
    """A ``cases`` value -> ``(headroom, seconds, status)``."""
    return value[0], value[1], value[2] if len(value) > 2 else "pass"


def _three_digits(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(f"{value:.3g}")


def entry_of(case_id: str) -> str:
    """``"entry|dtype|device"`` -> entry (entries never hold ``|``; dtype and device are the last two fields)."""
    return case_id.rsplit("|", 2)[0]


def compact(data: dict) -> dict:
    """The history record of report ``data`` (what ``append`` writes), without writing it.

    Raises ``ValueError`` for a document that is not a conformance report or is one shard's slice."""
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"history: not a conformance report: schema {found!r}, expected {REPORT_SCHEMA!r}")
    run = data["run"]
    if run.get("shard"):
        shard = run["shard"]
        raise ValueError(f"history: report is shard {shard.get('index')}/{shard.get('count')} of a run, a partial "
                         "record; merge the shards first (python -m conformance merge shard*.json --history FILE)")
    worst: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    status: dict[str, str] = {}
    for row in data["records"]:
        cid, h = row["case_id"], row.get("headroom")
        finite = h if h is not None and math.isfinite(h) else None
        if cid not in worst or (finite is not None and (worst[cid] is None or finite > worst[cid])):
            worst[cid] = finite
        seconds[cid] = max(seconds.get(cid, 0.0), row.get("seconds") or 0.0)  # the case's seconds, on every record
        status[cid] = max(status.get(cid, "pass"), row.get("status", "pass"), key=STATUS_ORDER.index)
    summary = {k: data["summary"].get(k) for k in SUMMARY_KEYS}
    summary["max_headroom"] = _three_digits(summary["max_headroom"])
    return {
        "schema": SCHEMA, "commit": run.get("commit"), "dirty": run.get("dirty"), "time": run.get("time"),
        "torch": run.get("torch"),
        "devices": [_device_label(d) for d in run.get("devices", [])],
        "profile": run.get("profile"), "dtypes": run.get("dtypes"), "filtered": bool(run.get("filtered")),
        "summary": summary,
        "cases": {cid: [_three_digits(worst[cid]), round(seconds[cid], 3)] + ([status[cid]] if status[cid] != "pass" else [])
                  for cid in sorted(worst)},
        "seconds": round(sum(seconds.values()), 3),
    }


def _device_label(device) -> str:
    """``"cuda (NVIDIA H200)"``; just ``"cpu"`` when the report knows no better name for it."""
    if not isinstance(device, dict):
        return str(device)
    name = device.get("name")
    return device["device"] if not name or name == device["device"] else f"{device['device']} ({name})"


def append(data: dict, path: str | Path, keep: int | None = KEEP) -> dict:
    """Append the compact record of report ``data`` to the JSON Lines file ``path``; returns the record.

    Keeps the last ``keep`` runs (``None``: all)."""
    record = compact(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    with path.open("ab") as fh:  # one write of one whole line: a concurrent reader sees it whole or not at all
        if fh.tell() and not _ends_with_newline(path):
            line = "\n" + line  # a killed run's half line stays its own (skipped) line instead of corrupting ours
        fh.write(line.encode())
    if keep is not None:
        _trim(path, keep)
    return record


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _trim(path: Path, keep: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) <= keep:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(lines[-keep:]))
    os.replace(tmp, path)  # readers see the old file or the trimmed one, never a mix


_LOADED: dict[Path, tuple[tuple[int, int], list[dict]]] = {}  # path -> ((mtime_ns, size), runs)


def load(path: str | Path) -> list[dict]:
    """The recorded runs, oldest first; ``[]`` when the file does not exist.

    Lines that do not parse (a run killed mid-write) or carry another schema are skipped with a warning.
    A sharded run asks for the same file several times (to select its slice, to describe it), and a full
    history takes seconds to parse, so the runs are kept per path until the file changes; treat them as
    read-only (the list is a copy, the run records are shared)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _LOADED.get(path.resolve())
    if cached and cached[0] == key:
        return list(cached[1])
    runs = _parse(path)
    _LOADED[path.resolve()] = (key, runs)
    return list(runs)


def _parse(path: Path) -> list[dict]:
    runs = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError as err:
            warnings.warn(f"{path}:{number}: skipping an unreadable history line ({err.msg}; a run killed while "
                          "writing it?)", stacklevel=3)
            continue
        if not isinstance(run, dict) or run.get("schema") != SCHEMA or not isinstance(run.get("cases"), dict):
            found = run.get("schema") if isinstance(run, dict) else type(run).__name__
            warnings.warn(f"{path}:{number}: skipping a line with schema {found!r}, expected {SCHEMA!r}", stacklevel=3)
            continue
        runs.append(run)
    return runs


def case_seconds(history: list[dict]) -> dict[str, float]:
    """``{case_id: seconds}`` from the recorded runs (the latest measurement of each case)."""
    seconds: dict[str, float] = {}
    for run in history:  # oldest first: later runs overwrite
        for cid, value in run["cases"].items():
            secs = case_point(value)[1]
            if secs is not None:
                seconds[cid] = secs
    return seconds


def entry_trends(history: list[dict]) -> dict[str, list[dict]]:
    """``{entry: [{"commit", "time", "torch", "headroom", "case", "status"}, ...]}``: each entry's worst headroom
    per run (``case``: the case that set it; headroom ``None`` when none of its cases had a finite one) and its
    worst case status (pass, fail, error), oldest first; runs that did not run the entry are omitted."""
    trends: dict[str, list[dict]] = {}
    for run in history:
        worst: dict[str, list] = {}  # entry -> [headroom, case, status]
        for cid, value in run["cases"].items():
            h, _, status = case_point(value)
            entry = entry_of(cid)
            if entry not in worst:
                worst[entry] = [h, cid, status]
            elif h is not None and (worst[entry][0] is None or h > worst[entry][0]):
                worst[entry][:2] = [h, cid]
            worst[entry][2] = max(worst[entry][2], status, key=STATUS_ORDER.index)
        for entry, (h, cid, status) in worst.items():
            trends.setdefault(entry, []).append({"commit": run.get("commit"), "time": run.get("time"),
                                                 "torch": run.get("torch"), "headroom": h, "case": cid,
                                                 "status": status})
    return trends


# ---- the ``history`` command -------------------------------------------------------------------------------

DRIFT_RULE = (f"drift = |log10(latest headroom / median of the earlier runs' headrooms)| per case, in decades;\n"
              f"  headrooms below {HEADROOM_FLOOR:g} count as {HEADROOM_FLOOR:g} (an exact check that turns inexact drifts);\n"
              "  a case that gains or loses a finite headroom (it errs now, or erred; a non-finite result) ranks first;\n"
              "  an entry ranks by its most-drifted case, shown in [brackets]; none = no finite headroom")


def _floored(h: float) -> float:
    return max(h, HEADROOM_FLOOR)


def case_drift(series: list[float | None]) -> float:
    """The drift of one case's headroom series (oldest first; see ``DRIFT_RULE``): ``inf`` when the latest
    run's finiteness differs from the earlier runs' majority, 0 for fewer than two runs."""
    if len(series) < 2:
        return 0.0
    latest, earlier = series[-1], series[:-1]
    finite = [h for h in earlier if h is not None]
    mostly_null = len(finite) * 2 < len(earlier)  # the earlier runs' majority had no finite headroom
    if latest is None or mostly_null:
        return 0.0 if latest is None and mostly_null else math.inf
    return abs(math.log10(_floored(latest) / _floored(statistics.median(finite))))


def _jump(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    return abs(math.log10(_floored(b) / _floored(a)))


def _fmt(h: float | None) -> str:
    return "none" if h is None else f"{h:.3g}"


def _series_text(series: list[float | None]) -> str:
    shown = [_fmt(h) for h in series]
    if len(shown) > 7:
        shown = shown[:2] + ["..."] + shown[-3:]
    finite = [h for h in series if h is not None]
    bounds = f"  min {_fmt(min(finite))} max {_fmt(max(finite))}" if finite else ""
    return f"{' '.join(shown)}  ({len(series)} runs){bounds}"


def _short(commit: str | None) -> str:
    return (commit or "unknown")[:10]


def _run_label(run: dict) -> str:
    return f"{_short(run.get('commit'))}{'+dirty' if run.get('dirty') else ''} (torch {run.get('torch')})"


def drifted(history: list[dict]) -> list[dict]:
    """Entries that drifted, most first: ``{"entry", "case", "drift", "series", "runs", "jumps"}`` where ``runs``
    are the history records the case ran in and ``jumps`` the indices ``i`` (into ``runs``) whose headroom moved
    most from run ``i - 1`` (the largest first, up to two)."""
    per_case: dict[str, list[tuple[dict, float | None]]] = {}
    for run in history:
        for cid, value in run["cases"].items():
            h, _, status = case_point(value)
            per_case.setdefault(cid, []).append((run, None if status == "error" else h))  # an error has no headroom
    best: dict[str, dict] = {}
    for cid, points in per_case.items():
        series = [h for _, h in points]
        drift = case_drift(series)
        if drift == 0.0:
            continue
        entry = entry_of(cid)
        if entry in best and best[entry]["drift"] >= drift:
            continue
        steps = sorted(range(1, len(series)), key=lambda i: -_jump(series[i - 1], series[i]))
        best[entry] = {"entry": entry, "case": cid, "drift": drift, "series": series,
                       "runs": [run for run, _ in points], "jumps": [i for i in steps[:2] if _jump(series[i - 1], series[i]) > 0]}
    return sorted(best.values(), key=lambda d: (-d["drift"], d["entry"]))


def _torch_changes(history: list[dict]) -> str:
    spans: list[list] = []  # [torch, first run number, last run number]
    for number, run in enumerate(history, 1):
        if spans and spans[-1][0] == run.get("torch"):
            spans[-1][2] = number
        else:
            spans.append([run.get("torch"), number, number])
    if len(spans) == 1:
        return f"torch {spans[0][0]} in every run: the drift below is Neuronix's (or the seeds')"
    parts = [f"{t} (run{'s' if a != b else ''} {a}{f'-{b}' if a != b else ''})" for t, a, b in spans]
    return "torch CHANGED between runs: " + ", ".join(parts) + "; a jump at a torch change may be torch's"


def render(history: list[dict], top: int, source: str = "") -> str:
    """The ``history`` command's text for the recorded runs (oldest first)."""
    first, last = history[0], history[-1]
    lines = [f"history{' ' + source if source else ''}: {len(history)} run(s), {first.get('time')} {_short(first.get('commit'))}"
             f" .. {last.get('time')} {_short(last.get('commit'))}",
             _torch_changes(history)]
    profiles = sorted({str(r.get("profile")) for r in history})
    if len(profiles) > 1:
        lines.append(f"profiles differ between runs ({', '.join(profiles)}): more examples can find larger errors")
    if len(history) < 2:
        lines.append("one run recorded: nothing to compare yet")
        return "\n".join(lines)
    lines.append(DRIFT_RULE)
    ranked = drifted(history)
    entries = len({entry_of(cid) for run in history for cid in run["cases"]})
    if not ranked:
        lines.append(f"no drift: all {entries} entries kept their headroom")
        return "\n".join(lines)
    lines.append(f"top {min(top, len(ranked))} of {len(ranked)} drifted entries ({entries} entries recorded):")
    for d in ranked[:top]:
        series, runs = d["series"], d["runs"]
        drift = "inf (gained or lost a finite headroom)" if math.isinf(d["drift"]) else f"{d['drift']:.2f}"
        earlier = [h for h in series[:-1] if h is not None]
        direction = ("worse" if series[-1] is None or (earlier and _floored(series[-1]) > _floored(statistics.median(earlier)))
                     else "better")
        lines.append(f"  {d['entry']}  [{d['case']}]  drift {drift} ({direction} now)")
        lines.append(f"      headroom {_series_text(series)}")
        for i in d["jumps"]:
            before, after = runs[i - 1], runs[i]
            torch_note = (f"; torch changed {before.get('torch')} -> {after.get('torch')}"
                          if before.get("torch") != after.get("torch") else "; same torch")
            lines.append(f"      jumped {_fmt(series[i - 1])} -> {_fmt(series[i])} at {_run_label(after)} "
                         f"from {_short(before.get('commit'))}{torch_note}")
    return "\n".join(lines)


def main(args) -> int:
    """``python -m conformance history [--file F] [--top N] [--last K]``."""
    path = Path(args.file)
    if not path.exists():
        print(f"history: no history file {path}; record one with "
              f"`python -m conformance run --history {path}` (or `merge --history {path}`)", file=sys.stderr)
        return 2
    history = load(path)
    if not history:
        print(f"history: {path} holds no readable run records (schema {SCHEMA!r})", file=sys.stderr)
        return 2
    if args.last is not None:
        if args.last < 1:
            print(f"history: --last must be a positive number of runs, got {args.last}", file=sys.stderr)
            return 2
        history = history[-args.last:]
    print(render(history, max(args.top, 0), str(path)))
    return 0
