"""The HTML report's data and markup without a browser: what html.page_data embeds for the drill-down (and
how compactly), that no report string can break out of its <script> element, the trend and drift sections
from a history, and that the inlined assets ship with the package. tests/test_harness_browser.py runs the page."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch

import neuronix as nx
from conformance import html, report
from conformance.coverage import Coverage
from conformance.mirror import OpMirror
from conformance.runner import run_case
from conformance.strategies import unary

ROOT = Path(__file__).resolve().parent.parent
OPTS = {"dtypes": ["float32", "float64"], "devices": ["cpu"], "profile": "ci", "examples": 2, "tolerances": None}
INJECTION = '</script><script>console.error("injected")</script><img src=x onerror="console.error(1)"> & \u2028'
BLOB = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def data():
    mirrors = [OpMirror("exp", nx.exp, torch.exp, unary()),
               OpMirror("planted.wrong", lambda x: nx.exp(x) * 1.001, torch.exp, unary())]
    records = [r for m in mirrors for dt in ("float32", "float64") for r in run_case(m, dt, "cpu", examples=2).records]
    return report.build(records, OPTS, coverage=Coverage(["exp", "planted.wrong"], ["exp"], [], {}, []))


def history_runs(headrooms: list[dict[str, float | None]]) -> list[dict]:
    """Synthetic history records (the preamble's format), one per ``{case_id: headroom}``, oldest first; a tuple
    value is the case's whole ``[headroom, seconds, status]``."""
    return [{"schema": "neuronix-conformance-history/1", "commit": f"{k:02d}" + "c" * 38, "dirty": False,
             "time": f"2026-11-{k + 1:02d}T00:00:00+00:00", "torch": "2.13.0" if k < 2 else "2.14.0",
             "devices": ["cpu (x86_64)"], "profile": "ci", "dtypes": ["float32", "float64"],
             "summary": {"cases": len(cases), "failed_cases": 0, "records": 0, "passed": 0, "failed": 0, "errors": 0,
                         "leaks": 0, "max_headroom": None},
             "cases": {cid: list(h) if isinstance(h, tuple) else [h, 0.01] for cid, h in cases.items()}, "seconds": 0.1}
            for k, cases in enumerate(headrooms)]


def blob(page: str) -> dict:
    found = BLOB.findall(page)
    assert len(found) == 1
    return json.loads(found[0])


def test_each_case_carries_what_its_drill_down_shows(data):
    pd = html.page_data(data)
    S = pd["strings"]
    rows = [r for r in data["records"] if r["case_id"] == "planted.wrong|float64|cpu"]
    case = pd["cases"]["planted.wrong|float64|cpu"]
    status, headroom, css, overridden, seed, seconds, repro, label, checks = case
    assert pd["status"][status] == "fail" and pd["css"][css] == "fail" and overridden == 0
    assert seed == rows[0]["seed"] and S[repro].replace("\0", "planted.wrong|float64|cpu") == rows[0]["repro"]
    assert [S[c[0]] for c in checks] == [r["check"] for r in rows]
    forward = next(c for c in checks if S[c[0]] == "forward")
    row = next(r for r in rows if r["check"] == "forward")
    rtol, atol, rule = pd["tolerances"][forward[5]]
    assert pd["status"][forward[1]] == "fail" and S[rule] == row["rule"] == "defaults.float64"
    assert (rtol, atol) == (row["tolerance"]["rtol"], row["tolerance"]["atol"])
    assert forward[2] == float(f"{row['max_abs_error']:.3g}")  # three significant digits
    assert (forward[9], forward[10]) == (row["worst"]["example"], row["worst"]["seed"])
    assert S[forward[11]] == row["worst"]["what"] and S[forward[12]] == "; ".join(row["worst"]["inputs"])
    assert S[forward[14]] == row["message"] and "comparisons failed" in row["message"]
    leak = next(c for c in checks if S[c[0]] == "leak")
    assert pd["tolerances"][leak[5]] == [None, None, 0] and len(leak) < len(forward)  # no message, no kwargs: left off
    passing = pd["cases"]["exp|float64|cpu"]
    worst = max(r["headroom"] for r in data["records"] if r["case_id"] == "exp|float64|cpu" and r["headroom"] is not None)
    assert pd["css"][passing[2]] == report.headroom_class(worst) and passing[1] == float(f"{worst:.3g}")


def test_a_rule_starting_with_override_marks_the_case_overridden(data):
    changed = copy.deepcopy(data)
    target = next(r for r in changed["records"] if r["case_id"] == "exp|float32|cpu" and r["check"] == "forward")
    target["rule"] = "override[0] op=exp check=forward"
    cases = html.page_data(changed)["cases"]
    assert cases["exp|float32|cpu"][3] == 1 and cases["exp|float64|cpu"][3] == 0


def test_repeated_strings_are_stored_once(data):
    strings = html.page_data(data)["strings"]
    assert len(strings) == len(set(strings)) and strings.count("defaults.float32") == 1
    tolerances = html.page_data(data)["tolerances"]
    assert len(tolerances) == len({json.dumps(t) for t in tolerances}) <= 6  # per (rtol, atol, rule), not per record
    assert strings.count("python -m conformance repro '\0'") == 1  # one repro template for every ci case


def test_no_report_string_can_close_the_script_element(data):
    evil = copy.deepcopy(data)
    row = next(r for r in evil["records"] if r["status"] != "pass")
    row["message"] = INJECTION
    evil["snippets"] = {row["case_id"]: {"check": row["check"], "snippet": INJECTION, "shrunk": False, "example": 0}}
    text = html.script_json(html.page_data(evil))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    page = html.render(evil)
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data blob and the code: nothing else
    assert "<img src=x" not in page
    loaded = blob(page)
    assert INJECTION in loaded["strings"] and loaded["snippets"][row["case_id"]]["snippet"] == INJECTION


def test_the_asset_check_refuses_a_closing_tag(tmp_path, monkeypatch):
    (tmp_path / "report.js").write_text("var s = '</script>';")
    monkeypatch.setattr(html, "TEMPLATES", tmp_path)
    with pytest.raises(ValueError, match="report.js must not contain a closing"):
        html._asset("report.js")


def test_without_history_the_page_says_so(data):
    page = html.render(data)
    assert "No history:" in page and blob(page)["trends"] == {} and blob(page)["drift"] == []


def test_history_gives_each_entry_its_trend_and_ranks_the_drift(data):
    runs = history_runs([{"exp|float64|cpu": 1e-4, "exp|float32|cpu": 0.01, "planted.wrong|float64|cpu": None},
                         {"exp|float64|cpu": 1e-4, "exp|float32|cpu": 0.01},
                         {"exp|float64|cpu": 0.3, "exp|float32|cpu": 0.01, "planted.wrong|float64|cpu": 2e-3},
                         {"exp|float64|cpu": 0.3, "planted.wrong|float64|cpu": (0.0, 0.01, "error")}])
    page = html.render(data, None, runs)
    pd = blob(page)
    assert [r[0] for r in pd["runs"]] == [r["commit"] for r in runs] and pd["runs"][2][2] == "2.14.0"
    # exp's worst case per run: run 0 and 1 -> float32's 0.01, run 2 -> float64's 0.3; planted.wrong skipped run 1
    assert pd["trends"]["exp"] == [[0, 0.01], [1, 0.01], [2, 0.3], [3, 0.3]]
    assert pd["trends"]["planted.wrong"] == [[0, None], [2, 0.002], [3, 0, 2]]  # the status code when not a pass
    assert pd["drift"][0]["entry"] in ("exp", "planted.wrong") and {d["entry"] for d in pd["drift"]} == {"exp", "planted.wrong"}
    exp = next(d for d in pd["drift"] if d["entry"] == "exp")
    assert exp["case"] == "exp|float64|cpu" and (exp["first"], exp["last"]) == (1e-4, 0.3) and exp["drift"] > 2
    assert 'class="spark" data-entry="exp"' in page and "Headroom drift across recorded runs" in page


def test_the_trend_window_is_bounded(data):
    runs = history_runs([{"exp|float64|cpu": 1e-4 * (k + 1)} for k in range(html.TREND_RUNS + 7)])
    pd = html.page_data(data, runs)
    assert len(pd["runs"]) == html.TREND_RUNS and len(pd["trends"]["exp"]) == html.TREND_RUNS
    assert pd["runs"][-1][0] == runs[-1]["commit"]


def test_the_page_stays_small_per_record(data):
    """The drill-down's data: well under the JSON report's size for the same records (raw rows would be
    ~1.7 kB each here; the budget is the page's whole growth per record: matrix cell plus drill-down data)."""
    small, big = copy.deepcopy(data), copy.deepcopy(data)
    extra = []
    for k in range(200):  # 200 more entries like the measured ones
        for r in data["records"]:
            row = dict(r, entry=f"{r['entry']}_{k}", case_id=r["case_id"].replace(r["entry"], f"{r['entry']}_{k}", 1))
            row["repro"] = r["repro"].replace(r["case_id"], row["case_id"])
            extra.append(row)
    big["records"] = data["records"] + extra
    grown = len(html.render(big)) - len(html.render(small))
    per_record = grown / len(extra)
    json_per_record = len(json.dumps(extra)) / len(extra)
    assert per_record < 200 and per_record < 0.2 * json_per_record, (per_record, json_per_record)  # measured: 109


def test_the_inlined_assets_ship_with_the_package():
    text = (ROOT / "pyproject.toml").read_text()
    line = next(line for line in text.splitlines() if line.startswith("conformance = ["))
    for pattern in ("templates/*.html", "templates/*.js", "templates/*.css"):
        assert f'"{pattern}"' in line
    for name in ("report.js", "report.css"):
        assert (html.TEMPLATES / name).exists() and html._asset(name)


def test_the_matrix_is_plain_html_before_any_script_runs(data):
    """Search engines, text browsers and tests read the matrix without JavaScript: every row and cell, the
    "not run" cells of dtypes the entry claims but the run skipped, and the histogram stay static markup."""
    page = html.render(data)
    matrix = page[page.index('<table class="matrix">'):]
    matrix = matrix[: matrix.index("</table>")]
    assert matrix.count("<tr><td><code>") == 2 and 'class="cell fail">fail<' in matrix
    assert 'class="cell notrun"' in matrix and '<th data-col="complex128/cpu">' in matrix
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_runs_of_one_commit_and_time_keep_their_own_points(data):
    twice = history_runs([{"exp|float64|cpu": 1e-4}, {"exp|float64|cpu": 2e-4}, {"planted.wrong|float64|cpu": 1e-3},
                          {"exp|float64|cpu": 3e-4}])
    for run in twice:
        run["commit"], run["time"] = "same", "same"  # a report appended more than once
    assert html.page_data(data, twice)["trends"]["exp"] == [[0, 1e-4], [1, 2e-4], [3, 3e-4]]
