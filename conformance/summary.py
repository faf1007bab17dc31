"""A short summary of a report (optionally against a baseline) for a pull request or CI step summary.

``python -m conformance summary [REPORT] [--baseline BASE.json] [--format md|text]`` prints the gate's
verdict, counts, coverage, overrides, leaks, the passing checks closest to their tolerance, the
regressions against the baseline, each failure with its repro command and rerun verdict, and the
mutation kill rate when ``mutation.json`` lies beside the report. Every list is capped (``N more``) so
the summary stays short enough for a PR comment; append it to ``$GITHUB_STEP_SUMMARY`` in CI:

    python -m conformance summary --baseline base/conformance.json >> "$GITHUB_STEP_SUMMARY"

It exits 0 whatever the verdict (the gate judges), 2 when a report cannot be read.
"""

from __future__ import annotations

from pathlib import Path

from conformance import diff as report_diff
from conformance.diff import ReportError, md_escape

WORST = 5  # passing checks closest to their tolerance
FAILURES = 10  # failing checks listed with their repro commands
REGRESSIONS = 10


def _verdict(data: dict, mutation: dict | None, baseline: tuple[list, list] | None) -> list[tuple[str, list[str]]]:
    """The gate's failing sections (``conformance.gate.problems``) plus the mutation and baseline ones."""
    from conformance.gate import problems
    from conformance.mutate import problems as mutation_problems

    found = problems(data)
    if mutation is not None and mutation_problems(mutation):
        found.append(("mutation", mutation_problems(mutation)))
    if baseline:
        found += baseline[0]
    return found


def _worst(data: dict) -> list[dict]:
    passing = [r for r in data["records"] if r["status"] == "pass" and r["headroom"] is not None]
    return sorted(passing, key=lambda r: -r["headroom"])[:WORST]


def _failures(data: dict) -> list[dict]:
    return [r for r in data["records"] if r["status"] != "pass"]


def _rerun(data: dict, case_id: str) -> str:
    rerun = (data.get("reruns") or {}).get(case_id)
    return rerun["text"] if rerun else ""


def _env(data: dict) -> str:
    run = data["run"]
    shard = run.get("shard")
    scope = (" (shard {index}/{count})".format(**shard) if shard
             else " (merged from {shards} shards)".format(**run["merged"]) if run.get("merged")
             else " (filtered run)" if run.get("filtered") else "")
    return (f"commit {run['commit'][:12]}, torch {run['torch']}, profile {run['profile']}, "
            f"devices {', '.join(d['device'] for d in run['devices'])}, dtypes {', '.join(run['dtypes'])}{scope}")


def _mutation_line(mutation: dict | None) -> str | None:
    if mutation is None:
        return None
    s = mutation.get("summary")
    if not s:
        return "mutation report unreadable"
    return (f"mutation kill rate {s['kill_rate']:.3f} ({s['killed']}/{s['killed'] + s['survived']} faults killed, "
            f"{s['equivalent']} equivalent; threshold {mutation.get('threshold')})")


def markdown(data: dict, mutation: dict | None = None, base: dict | None = None, base_name: str = "") -> str:
    compared = report_diff.compare(base, data) if base else None
    baseline = report_diff.baseline_problems(base, data, base_name, compared) if base else None
    found = _verdict(data, mutation, baseline)
    s = data["summary"]
    verdict = "❌ FAIL" if found else "✅ PASS"
    out = [f"### Conformance: {verdict}", "", md_escape(_env(data)), "",
           "| cases | failing cases | checks passed | failed | errors | leaks | coverage | overrides (bad) | max headroom |",
           "|---|---|---|---|---|---|---|---|---|",
           f"| {s['cases']} | {s['failed_cases']} | {s['passed']}/{s['records']} | {s['failed']} | {s['errors']} | "
           f"{s['leaks']} | {s['coverage_mirrored']}/{s['coverage_public']} ({s['coverage_missing']} missing) | "
           f"{s['overrides']} ({s['overrides_bad']}) | {s['max_headroom']:.3g} |"]
    line = _mutation_line(mutation)
    if line:
        out += ["", md_escape(line)]
    if found:
        out += ["", "**Why the gate fails:** " + md_escape("; ".join(f"{title} ({len(lines)})" for title, lines in found))]
    failures = _failures(data)
    if failures:
        out += ["", f"#### Failures ({len(failures)})", ""]
        told = set()  # a case's rerun verdict once, with its first failing check
        for r in failures[:FAILURES]:
            rerun = "" if r["case_id"] in told else _rerun(data, r["case_id"])
            told.add(r["case_id"])
            label = f" ({r['label']})" if r.get("label") else ""
            out.append(f"- **{md_escape(r['case_id'])}** [{r['check']}] {r['status']}{md_escape(label)}: "
                       f"{md_escape(' '.join(str(r['message']).split())[:120])} `{r['repro']}`"
                       + (f" — rerun: {md_escape(rerun)}" if rerun else ""))
        if len(failures) > FAILURES:
            out.append(f"- ... and {len(failures) - FAILURES} more (see the HTML report)")
    if compared is not None:
        out += ["", "#### Against the baseline", ""] + [f"- {md_escape(n)}" for n in baseline[1]]
        regs = compared.regressions
        if regs:
            policy = report_diff.policy_for(data)
            out += ["", f"Headroom regressions ({len(regs)}; factor {policy.headroom_factor:g}, threshold "
                        f"{policy.headroom_threshold:g}):", "", "| case | check | base | new | rule | repro |",
                    "|---|---|---|---|---|---|"]
            out += [f"| {md_escape(r.case_id)} | {r.check} | {r.base:.3g} | {r.new:.3g} | {md_escape(r.rule)} | "
                    f"`{r.repro.replace('|', chr(92) + '|')}` |" for r in regs[:REGRESSIONS]]
            if len(regs) > REGRESSIONS:
                out.append(f"\n... and {len(regs) - REGRESSIONS} more (python -m conformance diff)")
        for cid in compared.vanished[:REGRESSIONS]:
            out.append(f"- vanished: {md_escape(cid)}")
        if len(compared.vanished) > REGRESSIONS:
            out.append(f"- ... and {len(compared.vanished) - REGRESSIONS} more vanished cases")
    worst = _worst(data)
    if worst:
        out += ["", "#### Closest to tolerance (passing)", "", "| case | check | headroom | rule |", "|---|---|---|---|"]
        out += [f"| {md_escape(r['case_id'])} | {r['check']} | {r['headroom']:.3g} | {md_escape(r['rule'] or '')} |"
                for r in worst]
    return "\n".join(out) + "\n"


def text(data: dict, mutation: dict | None = None, base: dict | None = None, base_name: str = "") -> str:
    """The same content for a terminal: the gate's own one-screen summary (with the baseline's notes)."""
    from conformance.gate import summary as gate_summary

    baseline = report_diff.baseline_problems(base, data, base_name) if base else ([], [])
    found = _verdict(data, mutation, baseline)
    *out, verdict = gate_summary(data, found, baseline[1]).splitlines()
    line = _mutation_line(mutation)
    if line:
        out.append(f"  {line}")
    worst = _worst(data)
    if worst:
        out.append("closest to tolerance (passing): " + "; ".join(
            f"{r['case_id']} [{r['check']}] {r['headroom']:.3g}" for r in worst))
    return "\n".join(out + [verdict]) + "\n"  # the verdict last, as the gate prints it


def main(args) -> int:
    """``python -m conformance summary [REPORT] [--baseline B] [--format md|text]``."""
    from conformance.mutate import REPORT, load_report

    try:
        data = report_diff.load(args.report)
        base = report_diff.load(args.baseline) if args.baseline else None
    except ReportError as err:
        print(f"conformance summary: {err}")
        return 2
    mutation = load_report(Path(args.report).parent / REPORT)
    render = markdown if args.format == "md" else text
    print(render(data, mutation, base, str(args.baseline or "")), end="")
    return 0
