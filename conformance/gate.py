"""The CI gate: reads ``conformance.json`` and fails on anything that is not a clean pass.

Failures: a failed or erroring check, a leak, a public name without a mirror, an
override without a reason, a stale override (matched no case of a complete run), and
a report that is not this schema or holds no cases, and a mutation report (``mutation.json``
beside it, or ``--mutation PATH``) whose kill rate is below ``[mutation] min_kill_rate``.
With ``--baseline BASE.json`` (an earlier report) it also fails on headroom regressions (tolerances.toml
``[regression]``) and on cases that vanished from a complete run, and states what it compared with and how
the environments differ (``conformance.diff``). The summary fits one screen.
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.report import SCHEMA

MAX_LINES = 12  # per section, so the summary stays one screen


def problems(data: dict) -> list[tuple[str, list[str]]]:
    """``(section, lines)`` for every reason the gate fails; empty when it passes."""
    found: list[tuple[str, list[str]]] = []
    if data.get("schema") != SCHEMA:
        return [("schema", [f"report schema {data.get('schema')!r} is not {SCHEMA!r}"])]
    records = data["records"]
    if not records:
        found.append(("empty", ["the report holds no cases"]))
    rerun = _rerun_lines(data)
    failing = [r for r in records if r["status"] != "pass" and r["check"] != "leak"]
    if failing:
        found.append(("failed checks", [failure_line(r) + rerun(r["case_id"]) for r in failing]))
    leaks = [r for r in records if r["check"] == "leak" and r["status"] != "pass"]
    if leaks:
        found.append(("leaks", [f"{r['case_id']}: {_short(r['message'])}\n      {r['repro']}" + rerun(r["case_id"])
                                for r in leaks]))
    missing = data["coverage"]["missing"]
    if missing:
        shown = ", ".join(missing[:40]) + (f", ... ({len(missing) - 40} more: python -m conformance list --missing)"
                                           if len(missing) > 40 else "")
        found.append(("public names without a mirror", [f"{len(missing)}: {shown}"]))
    bad = [o for o in data["overrides"] if o["status"] in ("reasonless", "stale")]
    if bad:
        found.append(("overrides", [f"{o['rule']}: {o['status']}" + (" (add a reason = \"...\")" if o["status"] == "reasonless"
                                    else " (it matched no case: remove it or fix its pattern)") for o in bad]))
    from conformance.shard import report_problems as shard_problems

    found += shard_problems(data)  # a lone slice of a sharded run is not a run: merge the shards first
    stale = _stale_torch_defects(data)
    if stale:
        found.append(("recorded torch defects", stale))
    return found


def failure_line(r: dict) -> str:
    """A failing record as the gate (and ``diff``) prints it: case, check, status, label, message, repro."""
    label = f" ({r['label']})" if r.get("label") else ""
    return f"{r['case_id']} [{r['check']}] {r['status']}{label}: {_short(r['message'])}\n      {r['repro']}"


def _rerun_lines(data: dict):
    """``case_id -> text``: the rerun verdict (``conformance.flaky``: does the failure reproduce?) under the
    first failing line of each case only, so a case failing seven checks says it once."""
    reruns, told = data.get("reruns") or {}, set()

    def line(cid: str) -> str:
        if cid not in reruns or cid in told:
            return ""
        told.add(cid)
        return f"\n      rerun: {reruns[cid]['text']}"
    return line


def _stale_torch_defects(data: dict) -> list[str]:
    from conformance.tolerances import DEFAULT_PATH, load

    path = Path(data.get("run", {}).get("tolerances") or DEFAULT_PATH)
    tolerances = load(path if path.exists() else None)
    if not tolerances.torch_defects:  # conformance.classify imports torch and the harness: seconds, for nothing
        return []
    from conformance.classify import stale_torch_defects

    return stale_torch_defects(data, tolerances)


def _short(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def summary(data: dict, found: list[tuple[str, list[str]]], notes: list[str] = ()) -> str:
    if data.get("schema") != SCHEMA:
        return "\n".join(lines[0] for _, lines in found)
    s, run = data["summary"], data["run"]
    out = [
        f"conformance gate: commit {run['commit'][:12]}, torch {run['torch']}, profile {run['profile']}, "
        f"devices {', '.join(d['device'] for d in run['devices'])}, dtypes {', '.join(run['dtypes'])}"
        + (" (filtered run)" if run.get("filtered") else ""),
        f"  cases {s['cases']} ({s['failed_cases']} failing) · checks {s['passed']}/{s['records']} pass · "
        f"{s['failed']} failed · {s['errors']} errors · leaks {s['leaks']}",
        f"  coverage {s['coverage_mirrored']}/{s['coverage_public']} mirrored, {s['coverage_missing']} missing · "
        f"overrides {s['overrides']} ({s['overrides_bad']} bad) · max headroom {s['max_headroom']:.3g}",
    ]
    out += [f"  {note}" for note in notes]  # with --baseline: what it is compared with, and how the runs differ
    for section, lines in found:
        out.append(f"FAIL {section} ({len(lines)}):")
        out += [f"  {line}" for line in lines[:MAX_LINES]]
        if len(lines) > MAX_LINES:
            out.append(f"  ... and {len(lines) - MAX_LINES} more (see reports/conformance.html)")
    out.append("gate: FAIL" if found else "gate: PASS")
    return "\n".join(out)


def mutation_problems(path: str | Path) -> list[tuple[str, list[str]]]:
    """The mutation report at ``path`` (``python -m conformance mutate``): a section when its kill rate is
    below the threshold of tolerances.toml ``[mutation]``; nothing when the file does not exist."""
    from conformance.mutate import load_report
    from conformance.mutate import problems as mutation_lines

    data = load_report(path)
    lines = [] if data is None else mutation_lines(data)
    return [(f"mutation ({path})", lines)] if lines else []


def gate(path: str | Path, mutation: str | Path | None = None, baseline: str | Path | None = None) -> int:
    """Print the summary; 0 when the report is a clean pass, 1 otherwise (2 when a report cannot be read).

    A mutation report beside the conformance report (or at ``mutation``) is judged too; with ``baseline``
    (an earlier ``conformance.json``), so are the regressions against it (``conformance.diff``)."""
    reports = {}
    for role, where in (("report", path), ("baseline", baseline)):
        if where is None:
            continue
        try:
            reports[role] = json.loads(Path(where).read_text())
        except (OSError, ValueError) as err:
            print(f"conformance gate: cannot read the {role} {where}: {err}")
            return 2
    data = reports["report"]
    found = problems(data)
    if data.get("schema") == SCHEMA:
        found += mutation_problems(mutation or Path(path).parent / "mutation.json")
    notes: list[str] = []
    if "baseline" in reports:
        from conformance.diff import baseline_problems

        regressions, notes = baseline_problems(reports["baseline"], data, str(baseline))
        found += regressions
    print(summary(data, found, notes))
    return 1 if found else 0
