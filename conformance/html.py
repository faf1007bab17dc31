"""Renders the report JSON to one self-contained HTML page (Jinja2 template, inline CSS and SVG)."""

from __future__ import annotations

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
        cell = row["cells"].setdefault(col, {"status": "pass", "headroom": 0.0, "checks": [], "case_id": r["case_id"]})
        if STATUS_RANK[r["status"]] > STATUS_RANK[cell["status"]]:
            cell["status"] = r["status"]
        if r["headroom"] is not None:
            cell["headroom"] = max(cell["headroom"], r["headroom"])
        h = "-" if r["headroom"] is None else f"{r['headroom']:.2g}"
        cell["checks"].append(f"{r['check']}: {r['status']} (headroom {h})")
    for row in rows.values():
        for cell in row["cells"].values():
            cell["css"] = headroom_class(cell["headroom"], cell["status"])
            cell["title"] = f"{cell['case_id']}\n" + "\n".join(cell["checks"])
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
                    row["cells"][col] = {"status": "not run", "headroom": 0.0, "checks": [], "css": "notrun",
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


def render(data: dict, mutation: dict | None = None, history: list[dict] | None = None) -> str:
    """The page; ``mutation`` (``python -m conformance mutate``'s report, when one is beside) adds its section;
    ``history`` (``conformance.history.load``: the recorded runs, oldest first) adds the trend charts."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["num"] = lambda x, fmt="{:.3g}": "-" if x is None else fmt.format(x)
    columns, rows = matrix(data)
    records = data["records"]
    worst = sorted((r for r in records if r["check"] not in ("leak",)),
                   key=lambda r: (r["status"] == "pass", -(r["headroom"] if r["headroom"] is not None else math.inf)))[:30]
    leaks = [r for r in records if r["check"] == "leak" and r["status"] != "pass"]
    cases_checked = sum(r["check"] == "leak" for r in records)
    return env.get_template("report.html").render(
        data=data, run=data["run"], summary=data["summary"], columns=columns, rows=rows, worst=worst, leaks=leaks,
        cases_checked=cases_checked, hist=histogram(data), coverage=data["coverage"], overrides=data["overrides"],
        mutation=mutation if mutation and mutation.get("schema") == MUTATION_SCHEMA else None,
    )
