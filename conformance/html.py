"""Renders the report JSON to one self-contained HTML page (Jinja2 template, inline CSS, JS and SVG).

The static parts (summary, histogram, matrix, worst cases, overrides, leaks, coverage) are HTML the template
writes; ``templates/report.js`` (inlined) makes the matrix navigable: search, filters, sorting, a drill-down
per case and headroom trends. Its state lives in the URL hash (``#q=exp&status=failing&open=exp|float32|cpu``),
so a link reproduces a view and a headless browser can drive it. What the script needs travels as one JSON
blob (``page_data``), compact: repeated strings are interned, numbers keep three significant digits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from conformance.mutate import SCHEMA as MUTATION_SCHEMA
from conformance.report import headroom_class

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_RANK = {"pass": 0, "not run": 0, "fail": 1, "error": 2}


def matrix(data: dict) -> tuple[list[str], list[dict]]:
    """Columns ``dtype/device`` and one row per entry with a cell per column (worst check wins)."""
    columns = sorted({f"{r['dtype']}/{r['device']}" for r in data["records"]})
    rows: dict[str, dict] = {}
    for r in data["records"]:
        row = rows.setdefault(r["entry"], {"entry": r["entry"], "kind": r["kind"], "cells": {}})
        col = f"{r['dtype']}/{r['device']}"
        cell = row["cells"].setdefault(col, {"status": "pass", "headroom": 0.0, "case_id": r["case_id"]})
        if STATUS_RANK[r["status"]] > STATUS_RANK[cell["status"]]:
            cell["status"] = r["status"]
        if r["headroom"] is not None:
            cell["headroom"] = max(cell["headroom"], r["headroom"])
    for row in rows.values():  # no per-cell check list: the drill-down shows the checks (it was most of the page)
        for cell in row["cells"].values():
            cell["css"] = headroom_class(cell["headroom"], cell["status"])
    columns = sorted(set(columns) | _not_run_cells(data, rows), key=_column_order)
    ordered = sorted(rows.values(), key=lambda row: (min(_rank(c) for c in row["cells"].values()), row["entry"]))
    return columns, ordered


DTYPE_ORDER = ("float32", "float64", "float16", "bfloat16", "complex64", "complex128")


def _column_order(col: str) -> tuple:
    dtype, _, device = col.partition("/")
    return (device, DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER), dtype)


def _not_run_cells(data: dict, rows: dict) -> set[str]:
    """A grey "not run" cell where an entry claims a dtype (on a device of the run) that this run did not
    cover (``--dtypes``): the matrix shows every claim. Returns the columns those cells add."""
    added = set()
    devices = [d["device"] for d in data["run"]["devices"]]
    for row in rows.values():
        claim = data.get("claims", {}).get(row["entry"], {"dtypes": [], "devices": []})
        for dtype in claim["dtypes"]:
            for device in (d for d in devices if d in claim["devices"]):
                col = f"{dtype}/{device}"
                if col not in row["cells"]:
                    row["cells"][col] = {"status": "not run", "headroom": 0.0, "css": "notrun",
                                         "title": f"{row['entry']} claims {dtype}; this run did not cover it (--dtypes)"}
                    added.add(col)
    return added


def _rank(cell: dict) -> int:
    return -STATUS_RANK[cell["status"]]


def histogram(data: dict, width: int = 640, height: int = 160) -> dict:
    """Bars of log10(headroom) per decade for every record with a measured, non-zero headroom."""
    edges = list(range(-16, 2))  # decades 1e-16 .. 1e1; the last bar holds the failures (> 1)
    counts = [0] * (len(edges) - 1)
    exact = 0
    for r in data["records"]:
        h = r["headroom"]
        if r["check"] == "leak" or r["check"] == "error":
            continue
        if h is None:
            counts[-1] += 1
        elif h == 0:
            exact += 1
        else:
            k = min(max(int(math.floor(math.log10(h))) - edges[0], 0), len(counts) - 1)
            counts[k] += 1
    top = max(counts + [1])
    bar = width / len(counts)
    bars = []
    for k, c in enumerate(counts):
        h = 0 if c == 0 else max(2.0, (height - 30) * c / top)
        bars.append({"x": k * bar + 1, "y": height - 20 - h, "w": bar - 2, "h": h, "count": c,
                     "label": f"1e{edges[k]}", "fail": edges[k] >= 0})
    return {"width": width, "height": height, "bars": bars, "exact": exact}


# ---- the script's data -----------------------------------------------------------------------------------

STATUS_CODES = ("pass", "fail", "error")  # a check's or case's status, as its index
CSS_CLASSES = ("exact", "h0", "h1", "h2", "h3", "fail", "notrun")  # report.headroom_class's buckets, as indices
TREND_RUNS = 40  # the trend charts show the last runs of the history: enough to see a drift, bounded in size
DRIFT_TOP = 15  # entries in the "drifted most" section


def _num(x: float | None) -> float | int | None:
    """Three significant digits: what the page shows, and a third of the bytes of a full float."""
    if x is None or not math.isfinite(x):
        return None
    short = float(f"{x:.3g}")
    return int(short) if short.is_integer() and abs(short) < 1e15 else short


class _Strings:
    """Interns repeated strings (rules, check names, input shapes, messages) into one list; rows hold indices."""

    def __init__(self):
        self.table: list[str] = [""]
        self.index: dict[str, int] = {"": 0}

    def __call__(self, text) -> int:
        text = "" if text is None else str(text)
        if text not in self.index:
            self.index[text] = len(self.table)
            self.table.append(text)
        return self.index[text]


def _kwargs_text(kwargs) -> str:
    return ", ".join(f"{k}={v}" for k, v in kwargs.items()) if isinstance(kwargs, dict) else str(kwargs or "")


STRING_TAIL = 11  # check fields from here on are interned strings: trailing empty ones ("" is 0) are left off


def _check_row(r: dict, s: _Strings, tolerances: _Strings) -> list:
    """One record as ``[check, status, max_abs, max_rel, headroom, tolerance, comparisons, examples, rejected,
    worst example, worst seed, what, inputs, kwargs, message]``: strings interned in ``s``, the tolerance as an
    index into ``tolerances`` (a ``[rtol, atol, rule]``, JSON-encoded: a few dozen for a whole run), trailing
    empty strings left off. report.js reads it by these positions (``K`` there)."""
    tol, worst = r.get("tolerance") or {}, r.get("worst") or {}
    allowed = tolerances(json.dumps([tol.get("rtol"), tol.get("atol"), s(r.get("rule"))])) if tol or r.get("rule") else 0
    row = [s(r["check"]), STATUS_CODES.index(r["status"]), _num(r.get("max_abs_error")), _num(r.get("max_rel_error")),
           _num(r.get("headroom")), allowed, r.get("comparisons"), r.get("examples"), r.get("rejected"),
           worst.get("example"), worst.get("seed"), s(worst.get("what")), s("; ".join(map(str, worst.get("inputs") or []))),
           s(_kwargs_text(worst.get("kwargs"))), s(r.get("message"))]
    while len(row) > STRING_TAIL and row[-1] == 0:
        row.pop()
    return row


def _cases(records: list[dict], s: _Strings, tolerances: _Strings) -> dict[str, list]:
    """``{case_id: [status, worst headroom, css class, overridden, seed, seconds, repro, label, [checks...]]}``.

    The repro command is interned as a template (the case id replaced by ``\\u0000``): one string for all."""
    cases: dict[str, list] = {}
    for r in records:
        case = cases.get(r["case_id"])
        if case is None:
            repro = (r.get("repro") or "").replace(r["case_id"], "\u0000")
            case = cases[r["case_id"]] = [0, None, 0, 0, r.get("seed"), _num(r.get("seconds")), s(repro), s(""), []]
        code = STATUS_CODES.index(r["status"])
        case[0] = max(case[0], code)
        if r.get("headroom") is not None and (case[1] is None or r["headroom"] > case[1]):
            case[1] = r["headroom"]
        case[3] = case[3] or int(str(r.get("rule") or "").startswith("override"))
        if r.get("label") and not case[7]:
            case[7] = s(r["label"])
        case[8].append(_check_row(r, s, tolerances))
    for case in cases.values():
        case[2] = CSS_CLASSES.index(headroom_class(case[1], STATUS_CODES[case[0]]))
        case[1] = _num(case[1])
    return cases


def trends(history: list[dict] | None) -> dict[str, list[dict]]:
    """``conformance.history.entry_trends`` over the last ``TREND_RUNS`` runs: ``{entry: [{"commit", "time",
    "torch", "headroom", "status", ...}, ...]}``, oldest first."""
    from conformance.history import entry_trends

    return entry_trends(list(history or [])[-TREND_RUNS:])


def drifted_most(history: list[dict] | None, top: int = DRIFT_TOP) -> list[dict]:
    """The entries whose headroom drifted most (``conformance.history.drifted``, its rule ``DRIFT_RULE``):
    ``[{"entry", "case", "drift" (decades, None when a finite headroom appeared or vanished), "first", "last"}]``."""
    from conformance.history import drifted

    out = []
    for d in drifted(list(history or [])[-TREND_RUNS:])[:top]:
        out.append({"entry": d["entry"], "case": d["case"], "drift": _num(d["drift"]),
                    "first": _num(d["series"][0]), "last": _num(d["series"][-1]), "runs": len(d["series"])})
    return out


def _run_indices(runs: list[dict], points: list[dict]) -> list[int | None]:
    """The index in ``runs`` of each trend point: points come in run order but skip the runs without the entry,
    and two runs may share commit and time (one report appended twice): match in order, on the case too."""
    def ran(run: dict, p: dict) -> bool:
        same = (run.get("commit"), run.get("time")) == (p["commit"], p["time"])
        return same and (p.get("case") is None or p["case"] in run.get("cases", {}))

    out, k = [], 0
    for p in points:
        while k < len(runs) and not ran(runs[k], p):
            k += 1
        out.append(k if k < len(runs) else None)
        k += 1
    return out


def _trend_point(run: int | None, point: dict) -> list:
    """``[run index, headroom]``, plus the status code when the entry failed or erred in that run (the chart
    draws it red: an error's headroom 0 is no measurement)."""
    status = point.get("status") or "pass"
    code = STATUS_CODES.index(status) if status in STATUS_CODES else 1  # an unknown status is no pass
    return [run, _num(point["headroom"])] + ([code] if code else [])


def page_data(data: dict, history: list[dict] | None = None) -> dict:
    """Everything report.js needs, compactly: cases keyed by id (checks as arrays, strings interned), the
    snippets and rerun verdicts of the failing cases, and the per-entry headroom trends of the history."""
    s, tolerances = _Strings(), _Strings()  # tolerances: index 0 is none (an error or leak record)
    cases = _cases(data["records"], s, tolerances)
    runs = list(history or [])[-TREND_RUNS:]
    trend_rows = {entry: [_trend_point(k, p) for k, p in zip(_run_indices(runs, points), points)]
                  for entry, points in trends(runs).items()}
    from conformance.history import DRIFT_RULE

    return {
        "status": list(STATUS_CODES), "css": list(CSS_CLASSES), "strings": s.table,
        "tolerances": [[None, None, 0]] + [json.loads(t) for t in tolerances.table[1:]], "cases": cases,
        "snippets": data.get("snippets") or {}, "reruns": data.get("reruns") or {},
        "runs": [[r.get("commit"), r.get("time"), r.get("torch")] for r in runs],
        "trends": trend_rows, "drift": drifted_most(runs), "drift_rule": DRIFT_RULE,
    }


def script_json(value) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS line separators
    escaped, so no string from a report (an error message quoting HTML) can close the element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _asset(name: str) -> str:
    text = (TEMPLATES / name).read_text()
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"templates/{name} must not contain a closing </script> or </style> tag: it is inlined")
    return text


def render(data: dict, mutation: dict | None = None, history: list[dict] | None = None) -> str:
    """The page; ``mutation`` (``python -m conformance mutate``'s report, when one is beside) adds its section;
    ``history`` (``conformance.history.load``: the recorded runs, oldest first) adds the trend charts."""
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["num"] = lambda x, fmt="{:.3g}": "-" if x is None else fmt.format(x)
    columns, rows = matrix(data)
    records = data["records"]
    worst = sorted((r for r in records if r["check"] not in ("leak",)),
                   key=lambda r: (r["status"] == "pass", -(r["headroom"] if r["headroom"] is not None else math.inf)))[:30]
    leaks = [r for r in records if r["check"] == "leak" and r["status"] != "pass"]
    cases_checked = sum(r["check"] == "leak" for r in records)
    kinds = sorted({row["kind"] for row in rows})
    script_data = page_data(data, history)
    return env.get_template("report.html").render(
        data=data, run=data["run"], summary=data["summary"], columns=columns, rows=rows, worst=worst, leaks=leaks,
        cases_checked=cases_checked, hist=histogram(data), coverage=data["coverage"], overrides=data["overrides"],
        mutation=mutation if mutation and mutation.get("schema") == MUTATION_SCHEMA else None,
        kinds=kinds, dtypes=sorted({c.partition("/")[0] for c in columns}, key=_dtype_order),
        devices=sorted({c.partition("/")[2] for c in columns}), history_runs=len(history or []),
        drift=script_data["drift"], drift_rule=script_data["drift_rule"],
        page_json=Markup(script_json(script_data)), script=Markup(_asset("report.js")),
        style=Markup(_asset("report.css")),
    )


def _dtype_order(dtype: str) -> tuple:
    return (DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER), dtype)
