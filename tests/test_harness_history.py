"""The run history (``conformance.history``): compact JSON lines appended per run, read back tolerantly, the
durations shards balance by, per-entry trends, and the ``history`` command's drift ranking."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import history, report
from conformance.coverage import Coverage
from conformance.runner import run_case
from conformance.tolerances import Tolerances
from tests.test_harness_report import EXP, _toml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> dict:
    """A real report of one planted mirror over two dtypes (the pattern of tests/test_harness_report.py)."""
    toml = _toml(tmp_path_factory.mktemp("tol"), "")
    tol = Tolerances.load(toml)
    records = []
    for dtype in ("float32", "float64"):
        records += run_case(EXP, dtype, "cpu", tolerances=tol, examples=2).records
    opts = {"dtypes": ["float32", "float64"], "devices": ["cpu"], "profile": "ci", "examples": None,
            "tolerances": str(toml)}
    return report.build(records, opts, coverage=Coverage(["exp"], ["exp"], [], {}, []), names=("planted.exp",))


def _run(commit: str, torch_version: str, cases: dict, time: str = "2026-12-01T00:00:00+00:00") -> dict:
    """A synthetic history record: ``cases`` maps case ids to [headroom, seconds]."""
    return {"schema": history.SCHEMA, "commit": commit, "dirty": False, "time": time, "torch": torch_version,
            "devices": ["cpu"], "profile": "ci", "dtypes": ["float32"], "summary": {}, "cases": cases,
            "seconds": sum(v[1] for v in cases.values())}


def _write(path: Path, runs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in runs))
    return path


def test_append_writes_one_compact_line_per_run(small_report, tmp_path):
    path = tmp_path / "deep" / "dir" / "history.jsonl"  # parent folders are created
    record = history.append(small_report, path)
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert json.loads(text) == record
    run = small_report["run"]
    assert record["schema"] == history.SCHEMA and record["commit"] == run["commit"] and record["torch"] == run["torch"]
    assert record["devices"] and record["devices"][0].startswith("cpu")
    assert set(record["cases"]) == {"planted.exp|float32|cpu", "planted.exp|float64|cpu"}
    for cid, (headroom, seconds) in record["cases"].items():
        rows = [r for r in small_report["records"] if r["case_id"] == cid]
        worst = max(r["headroom"] for r in rows if r["headroom"] is not None)
        assert headroom == float(f"{worst:.3g}")  # three significant digits keep the line small
        assert seconds == round(rows[0]["seconds"], 3)
    assert record["summary"]["records"] == small_report["summary"]["records"]
    assert record["seconds"] == pytest.approx(sum(s for _, s in record["cases"].values()), abs=2e-3)


def test_a_case_that_did_not_pass_carries_its_status(small_report, tmp_path):
    records = [dict(r) for r in small_report["records"]]
    for r in records:
        if r["case_id"] == "planted.exp|float32|cpu" and r["check"] == "forward":
            r.update(status="error", headroom=0.0)  # how an erring check is recorded: headroom 0, not null
        if r["case_id"] == "planted.exp|float64|cpu" and r["check"] == "backward":
            r.update(status="fail", headroom=3.0)
    record = history.append({**small_report, "records": records}, tmp_path / "h.jsonl")
    assert record["cases"]["planted.exp|float32|cpu"][2] == "error"
    assert record["cases"]["planted.exp|float64|cpu"][::2] == [3.0, "fail"]
    assert [len(v) for v in history.append(small_report, tmp_path / "h.jsonl")["cases"].values()] == [2, 2]


def test_load_round_trips_appended_runs_oldest_first(small_report, tmp_path):
    path = tmp_path / "history.jsonl"
    first = history.append(small_report, path)
    later = {**small_report, "run": {**small_report["run"], "commit": "later"}}
    second = history.append(later, path)
    assert history.load(path) == [first, second]
    assert history.load(tmp_path / "missing.jsonl") == []


def test_a_killed_runs_half_line_is_skipped_and_the_next_run_still_appends(small_report, tmp_path):
    path = tmp_path / "history.jsonl"
    whole = history.append(small_report, path)
    with path.open("a") as fh:
        fh.write(json.dumps(whole)[:57])  # a run killed mid-write: no newline
    with pytest.warns(UserWarning, match=r"history.jsonl:2: skipping an unreadable history line"):
        assert history.load(path) == [whole]
    history.append(small_report, path)  # starts on its own line, not glued to the half one
    with pytest.warns(UserWarning, match="unreadable"):
        assert len(history.load(path)) == 2


def test_load_sees_each_append_although_it_keeps_parsed_runs(small_report, tmp_path):
    path = tmp_path / "history.jsonl"
    history.append(small_report, path)
    first = history.load(path)
    first.append("scribbled")  # a caller's list is its own
    assert len(history.load(path)) == 1
    history.append(small_report, path)
    assert len(history.load(path)) == 2


def test_lines_of_another_schema_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps({"schema": "something/9", "cases": {}}) + "\n"
                    + json.dumps(_run("a", "2.13", {"exp|float32|cpu": [0.1, 1.0]})) + "\n")
    with pytest.warns(UserWarning, match="schema 'something/9'"):
        assert [r["commit"] for r in history.load(path)] == ["a"]


def test_append_refuses_what_is_not_a_whole_run(small_report, tmp_path):
    path = tmp_path / "history.jsonl"
    with pytest.raises(ValueError, match="neuronix-conformance/1"):
        history.append({**small_report, "schema": "neuronix-conformance/0"}, path)
    shard = {**small_report, "run": {**small_report["run"], "shard": {"index": 1, "count": 2, "cases": 1}}}
    with pytest.raises(ValueError, match="shard 1/2.*merge the shards first"):
        history.append(shard, path)
    assert not path.exists()


def test_append_keeps_only_the_latest_runs(small_report, tmp_path):
    path = tmp_path / "history.jsonl"
    for commit in ("c1", "c2", "c3"):
        history.append({**small_report, "run": {**small_report["run"], "commit": commit}}, path, keep=2)
    assert [r["commit"] for r in history.load(path)] == ["c2", "c3"]
    assert not list(tmp_path.glob("*.tmp"))


def test_case_seconds_takes_the_latest_measurement_of_each_case():
    runs = [_run("a", "2.13", {"exp|float32|cpu": [0.1, 1.0], "sin|float32|cpu": [0.2, 3.0]}),
            _run("b", "2.13", {"exp|float32|cpu": [0.1, 2.5]})]  # a filtered run without sin
    assert history.case_seconds(runs) == {"exp|float32|cpu": 2.5, "sin|float32|cpu": 3.0}
    assert history.case_seconds([]) == {}


def test_entry_trends_take_each_entrys_worst_case_per_run_and_skip_runs_without_it():
    runs = [_run("a", "2.13", {"exp|float32|cpu": [0.1, 1], "exp|float64|cpu": [0.3, 1], "sin|float32|cpu": [None, 1]},
                 time="t1"),
            _run("b", "2.14", {"exp|float32|cpu": [0.5, 1], "exp|float64|cpu": [None, 1]}, time="t2"),
            _run("c", "2.14", {"sin|float32|cpu": [0.2, 1], "nn.functional.pad[reflect]|float32|cpu": [0, 1]}, time="t3")]
    trends = history.entry_trends(runs)
    assert trends["exp"] == [
        {"commit": "a", "time": "t1", "torch": "2.13", "headroom": 0.3, "case": "exp|float64|cpu", "status": "pass"},
        {"commit": "b", "time": "t2", "torch": "2.14", "headroom": 0.5, "case": "exp|float32|cpu", "status": "pass"}]
    assert [(p["commit"], p["headroom"]) for p in trends["sin"]] == [("a", None), ("c", 0.2)]  # run b lacks sin
    assert trends["nn.functional.pad[reflect]"][0]["headroom"] == 0
    assert {p["status"] for points in trends.values() for p in points} == {"pass"}
    erring = [_run("d", "2.14", {"exp|float32|cpu": [0.5, 1], "exp|float64|cpu": [0.0, 1, "error"]})]
    assert history.entry_trends(erring)["exp"] == [{"commit": "d", "time": erring[0]["time"], "torch": "2.14",
                                                     "headroom": 0.5, "case": "exp|float32|cpu", "status": "error"}]


def test_case_drift_is_decades_from_the_earlier_median_with_exact_and_null_handled():
    assert history.case_drift([0.1]) == 0.0
    assert history.case_drift([0.1, 0.1, 1.0]) == pytest.approx(1.0)
    assert history.case_drift([0.1, 10.0, 0.1, 0.1]) == pytest.approx(0.0)  # one old spike: the median ignores it
    assert history.case_drift([0.0, 0.0]) == 0.0  # exact stays exact
    assert history.case_drift([0.0, 0.5]) == pytest.approx(math.log10(0.5 / history.HEADROOM_FLOOR))  # exact -> inexact
    assert history.case_drift([0.2, None]) == math.inf  # lost its finite headroom: an error or a NaN now
    assert history.case_drift([None, None, 0.2]) == math.inf  # recovered
    assert history.case_drift([None, None]) == 0.0


def _python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_history_command_ranks_the_planted_drifting_entry_first(tmp_path):
    steady = {f"op{i}|float32|cpu": [0.1 * (1 + i % 3), 0.5] for i in range(12)}
    runs = [_run(f"commit{k:02d}aaaa", "2.13" if k < 3 else "2.14", dict(steady)) for k in range(5)]
    runs[1]["cases"]["op1|float32|cpu"] = [0.25, 0.5]  # a small wobble, 0.1 decades
    for k in (3, 4):  # planted: logsumexp's float32 error grows 20x at commit03, where torch changed too
        runs[k]["cases"]["op7|float32|cpu"] = [4.0, 0.5]
    runs[4]["cases"]["op9|float32|cpu"] = [0.0, 0.5, "error"]  # planted: op9 errs now (recorded headroom 0)
    path = _write(tmp_path / "history.jsonl", runs)
    out = _python("history", "--file", str(path), "--top", "3")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "drift = |log10(latest headroom / median of the earlier runs' headrooms)|" in text
    assert "torch CHANGED between runs: 2.13 (runs 1-3), 2.14 (runs 4-5)" in text
    ranked = [m.group(1) for m in re.finditer(r"^  (\S+)  \[\S+\]  drift", text, re.MULTILINE)]
    assert ranked == ["op9", "op7"]  # op1's wobble is over (latest back at the median): not drift
    assert "op9  [op9|float32|cpu]  drift inf (gained or lost a finite headroom) (worse now)" in text
    assert "headroom 0.2 0.2 0.2 4 4  (5 runs)  min 0.2 max 4" in text
    assert "jumped 0.2 -> 4 at commit03aa (torch 2.14) from commit02aa; torch changed 2.13 -> 2.14" in text
    last_two = _python("history", "--file", str(path), "--last", "2")  # both after the jump: no drift left
    assert last_two.returncode == 0 and "op9" in last_two.stdout and "op7" not in last_two.stdout
    assert "torch 2.14 in every run" in last_two.stdout


def test_history_command_exits_2_on_a_missing_or_empty_file(tmp_path, capsys):
    args = argparse.Namespace(file=str(tmp_path / "none.jsonl"), top=5, last=None)
    assert history.main(args) == 2
    assert "no history file" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert history.main(argparse.Namespace(file=str(tmp_path / "empty.jsonl"), top=5, last=None)) == 2
    assert "holds no readable run records" in capsys.readouterr().err


def test_history_command_with_one_run_has_nothing_to_compare(tmp_path, capsys):
    path = _write(tmp_path / "h.jsonl", [_run("solo", "2.14", {"exp|float32|cpu": [0.1, 1.0]})])
    assert history.main(argparse.Namespace(file=str(path), top=5, last=None)) == 0
    assert "one run recorded: nothing to compare yet" in capsys.readouterr().out


def test_run_with_history_appends_one_line_per_run(tmp_path):
    path = tmp_path / "history.jsonl"
    for attempt in range(2):
        run = _python("run", "-k", "resolve_neg and not Tensor", "--dtypes", "float64",
                      "--report-dir", str(tmp_path / f"r{attempt}"), "--history", str(path))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    runs = history.load(path)
    assert len(runs) == 2 and path.read_text().count("\n") == 2
    assert all(set(r["cases"]) == {"resolve_neg|float64|cpu"} and r["filtered"] for r in runs)
    data = json.loads((tmp_path / "r1" / "conformance.json").read_text())
    assert data["run"]["history"] == str(path)
