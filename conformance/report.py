"""The reports: ``conformance.json`` (the gate reads it), ``conformance.html`` and JUnit XML.

The JSON is the source of truth; the HTML page is rendered from it by a Jinja2
template (``templates/report.html``), self-contained (inline CSS and SVG, no scripts
fetched), so it can be attached to a CI run as a single file.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

from conformance.record import Record

SCHEMA = "neuronix-conformance/1"
ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def metadata(opts: dict, filtered: bool) -> dict:
    import hypothesis
    import torch

    import neuronix

    devices = []
    for d in opts["devices"]:
        name = torch.cuda.get_device_name(0) if d == "cuda" and torch.cuda.is_available() else platform.processor() or "cpu"
        devices.append({"device": d, "name": name})
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "neuronix": neuronix.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "hypothesis": hypothesis.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "devices": devices,
        "dtypes": opts["dtypes"],
        "profile": opts["profile"],
        "examples": opts.get("examples"),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "filtered": filtered,
        "tolerances": str(opts.get("tolerances") or "tolerances.toml"),
        "shard": _shard(opts),  # None, or {"index": K, "count": N, ...} for a slice (conformance.shard)
        "history": opts.get("history"),  # the JSON Lines history the HTML draws its trends from (conformance.history)
    }


def _shard(opts: dict) -> dict | None:
    if not opts.get("shard"):
        return None
    from conformance.shard import describe

    return {**describe(opts["shard"], opts.get("history")), **(opts.get("case_list") or {})}


def _override_rows(tolerances, records: list[Record], run: dict, registry_names) -> list[dict]:
    rows = []
    for o in tolerances.overrides:
        rule = o.rule()
        applied = [r for r in records if r.rule == rule]
        in_scope = (any(fnmatch.fnmatchcase(d, o.dtype or "*") for d in run["dtypes"])
                    and any(fnmatch.fnmatchcase(d["device"], o.device or "*") for d in run["devices"]))
        names = [n for n in registry_names if fnmatch.fnmatchcase(n, o.op)]
        if not o.reason:
            status = "reasonless"
        elif applied:
            status = "ok"
        elif not names or (in_scope and not run["filtered"] and not run.get("shard")):
            status = "stale"
        else:  # a filtered run, a slice of a sharded run (merge judges the whole), or a dtype/device not covered
            status = "not exercised"
        headrooms = [r.headroom for r in applied if r.headroom is not None]
        errors = [r.max_abs_error for r in applied if r.max_abs_error is not None]
        rows.append({**o.as_dict(), "status": status, "records": len(applied),
                     "cases": sorted({r.case_id for r in applied}),
                     "max_headroom": max(headrooms, default=None), "max_abs_error": max(errors, default=None),
                     "max_rel_error": max((r.max_rel_error or 0 for r in applied), default=None)})
    return rows


def build(records: list[Record], opts: dict, filtered: bool = False, coverage=None, names=None,
          run: dict | None = None, snippets: dict | None = None, reruns: dict | None = None) -> dict:
    """The report document from the merged records: where they become JSON rows (``Record.as_dict``).

    ``coverage`` and ``names`` (the mirror names an override may target) default to the
    live registry; tests pass their own. ``run``, ``snippets`` and ``reruns`` default to this process's
    metadata and to computing them now; ``merge`` (``conformance.shard``) passes the shards' own, so
    merging neither re-describes the machine nor reruns the failing cases.
    """
    import conformance.mirrors  # noqa: F401
    from conformance.coverage import coverage as compute_coverage
    from conformance.dtype_claims import claims_of
    from conformance.mirror import REGISTRY
    from conformance.tolerances import load

    records = sorted(records, key=lambda r: (r.entry, r.dtype, r.device, r.check))
    run = metadata(opts, filtered) if run is None else run
    tolerances = load(opts.get("tolerances"))
    cov = (coverage or compute_coverage()).as_dict()
    names = set(REGISTRY if names is None else names) | {r.entry for r in records}
    overrides = _override_rows(tolerances, records, run, sorted(names))
    cases = sorted({r.case_id for r in records})
    if run.get("shard") and run["shard"].get("cases") is None:  # describe() cannot see the slice; the records can
        run["shard"]["cases"] = len(cases)
    leaks = sorted({r.case_id for r in records if r.check == "leak" and r.status != "pass"})
    summary = {
        "cases": len(cases),
        "failed_cases": len({r.case_id for r in records if r.status != "pass"}),
        "records": len(records),
        "passed": sum(r.status == "pass" for r in records),
        "failed": sum(r.status == "fail" for r in records),
        "errors": sum(r.status == "error" for r in records),
        "leaks": len(leaks),
        "coverage_public": cov["public"],
        "coverage_mirrored": cov["mirrored"],
        "coverage_missing": len(cov["missing"]),
        "overrides": len(overrides),
        "overrides_bad": sum(o["status"] in ("reasonless", "stale") for o in overrides),
        "max_headroom": max((r.headroom for r in records if r.headroom is not None), default=0.0),
    }
    defaults = {f"{check}.{dt}" if check != "*" else dt: {"rtol": v[0], "atol": v[1]}
                for check, per in tolerances.defaults.items() for dt, v in per.items()}
    from conformance.flaky import rerun_failures  # failing cases only: a clean run costs nothing here
    from conformance.shrink import report_snippets

    return {"schema": SCHEMA, "run": run, "summary": summary, "coverage": cov, "defaults": defaults,
            "overrides": overrides, "records": [r.as_dict() for r in records], "claims": claims_of({r.entry for r in records}),
            "snippets": snippets if snippets is not None else (report_snippets(records, opts) if summary["failed_cases"] else {}),
            "reruns": reruns if reruns is not None else (rerun_failures(records, opts) if summary["failed_cases"] else {})}


def one_line(data: dict) -> str:
    s = data["summary"]
    return (f"{s['cases']} cases, {s['passed']}/{s['records']} checks passed, {s['failed']} failed, {s['errors']} errors, "
            f"{s['leaks']} leaks, {s['coverage_missing']} unmirrored, {s['overrides_bad']} bad overrides")


def write_json(data: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def write_junit(data: dict, path: str | Path) -> Path:
    """One ``testcase`` per record, grouped in one ``testsuite`` per check kind; coverage holes as failures."""
    path = Path(path)
    suites: dict[str, list[str]] = {}
    for r in data["records"]:
        name = quoteattr(f"{r['case_id']}|{r['check']}")
        body = ""
        if r["status"] != "pass":
            tag = "error" if r["status"] == "error" else "failure"
            message = f"{r['message']}\nrepro: {r['repro']}"
            body = f"<{tag} message={quoteattr(message[:500])}>{_escape(message)}</{tag}>"
        suites.setdefault(r["check"], []).append(
            f'  <testcase classname={quoteattr("conformance." + r["check"])} name={name} '
            f'time="{r["seconds"]:.4f}">{body}</testcase>')
    for name in data["coverage"]["missing"]:
        suites.setdefault("coverage", []).append(
            f'  <testcase classname="conformance.coverage" name={quoteattr(name)}>'
            f'<failure message={quoteattr("public name without a mirror: " + name)}/></testcase>')
    for o in data["overrides"]:
        body = "" if o["status"] not in ("reasonless", "stale") else \
            f'<failure message={quoteattr(o["status"] + " override: " + o["rule"])}/>'
        suites.setdefault("overrides", []).append(
            f'  <testcase classname="conformance.overrides" name={quoteattr(o["rule"])}>{body}</testcase>')
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<testsuites>"]
    for suite, cases in suites.items():
        failures = sum("<failure" in c for c in cases)
        errors = sum("<error" in c for c in cases)
        parts.append(f'<testsuite name="conformance.{suite}" tests="{len(cases)}" failures="{failures}" errors="{errors}">')
        parts += cases
        parts.append("</testsuite>")
    parts.append("</testsuites>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
    return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_html(data: dict, path: str | Path) -> Path:
    from conformance import html

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from conformance.history import load as load_history
    from conformance.mutate import REPORT, load_report

    history = load_history(data["run"]["history"]) if data["run"].get("history") else []
    path.write_text(html.render(data, load_report(path.parent / REPORT), history))
    return path


def write_all(data: dict, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    return [write_json(data, directory / "conformance.json"), write_html(data, directory / "conformance.html"),
            write_junit(data, directory / "conformance.junit.xml")]


def headroom_class(h: float | None, status: str = "pass") -> str:
    """The colour bucket of a matrix cell: how close the measured error came to the allowed one."""
    if status != "pass":
        return "fail"
    if h is None or h == 0:
        return "exact"
    level = math.log10(h)
    return "h0" if level < -3 else "h1" if level < -2 else "h2" if level < -1 else "h3"
