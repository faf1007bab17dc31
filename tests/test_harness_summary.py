"""``python -m conformance summary``: the short Markdown (or text) summary for a pull request."""

from __future__ import annotations

import copy
import json

from conformance import report, summary
from tests.test_harness_diff import _python, _report


def _tables(md: str) -> list[list[str]]:
    """The Markdown tables of ``md`` as lists of their rows."""
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _columns(row: str) -> int:
    return row.replace("\\|", "").count("|") - 1


def _assert_valid_tables(md: str) -> None:
    for table in _tables(md):
        assert len(table) >= 3 and set(table[1].replace("|", "")) <= set("-: "), table  # header, separator, rows
        assert len({_columns(row) for row in table}) == 1, table


def _failing(data: dict, n: int = 1) -> dict:
    """``data`` with its backward check failing on ``n`` synthetic cases, each with a rerun verdict."""
    data = copy.deepcopy(data)
    row = next(r for r in data["records"] if r["check"] == "backward")
    data["records"] = [r for r in data["records"] if r is not row]
    for k in range(n):
        cid = f"planted.fail{k}|float64|cpu"
        data["records"].append({**row, "case_id": cid, "status": "fail", "message": "max abs 1e-3 > allowed",
                                "headroom": 7.0, "repro": f"python -m conformance repro '{cid}'"})
        data["reruns"][cid] = {"verdict": "reproduces", "text": f"fails again with seed {k} and on 2 of 3 fresh seeds"}
    data["summary"]["failed"] = data["summary"]["failed_cases"] = n
    return data


def test_clean_report_summary(tmp_path):
    data, _ = _report(tmp_path, 1e-9, "r.json")
    md = summary.markdown(data)
    assert md.startswith("### Conformance: ✅ PASS")
    assert f"| {data['summary']['cases']} | 0 | {data['summary']['passed']}/{data['summary']['records']} |" in md
    assert "#### Closest to tolerance (passing)" in md and "planted.regress\\|float64\\|cpu" in md
    assert "#### Failures" not in md and "Against the baseline" not in md
    _assert_valid_tables(md)
    assert len(md.splitlines()) < 30


def test_failures_carry_repro_and_rerun_verdict_and_are_capped(tmp_path):
    data, _ = _report(tmp_path, 1e-9, "r.json")
    md = summary.markdown(_failing(data, 13))
    assert md.startswith("### Conformance: ❌ FAIL") and "**Why the gate fails:** failed checks (13)" in md
    assert "#### Failures (13)" in md
    assert "`python -m conformance repro 'planted.fail0|float64|cpu'`" in md
    assert "rerun: fails again with seed 0 and on 2 of 3 fresh seeds" in md
    assert "planted.fail9|" in md and "planted.fail10|" not in md and "... and 3 more" in md
    _assert_valid_tables(md)


def test_a_case_failing_several_checks_gives_its_rerun_verdict_once(tmp_path):
    data = _failing(_report(tmp_path, 1e-9, "r.json")[0], 1)
    row = next(r for r in data["records"] if r["case_id"] == "planted.fail0|float64|cpu")
    data["records"].append({**row, "check": "double_backward"})
    md = summary.markdown(data)
    assert "[backward] fail" in md and "[double_backward] fail" in md
    assert md.count("rerun: fails again with seed 0") == 1


def test_summary_against_a_baseline_names_the_regression(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json")
    new, _ = _report(tmp_path, 4e-9, "new.json")
    md = summary.markdown(new, base=base, base_name="base.json")
    assert md.startswith("### Conformance: ❌ FAIL") and "#### Against the baseline" in md
    assert "- baseline base.json: commit" in md and "Headroom regressions (5" in md
    table = next(t for t in _tables(md) if t[0].startswith("| case | check | base | new |"))
    assert any(row.startswith("| planted.regress\\|float64\\|cpu | backward | 0.01 | 0.04 |") for row in table)
    assert "`python -m conformance repro 'planted.regress\\|float64\\|cpu'`" in md  # escaped inside the table
    _assert_valid_tables(md)
    assert summary.markdown(base, base=base).startswith("### Conformance: ✅ PASS")


def test_mutation_kill_rate_is_reported():
    mutation = {"schema": "neuronix-mutation/1", "summary": {"kill_rate": 0.9, "killed": 9, "survived": 1,
                                                             "equivalent": 2}, "threshold": 1.0}
    assert summary._mutation_line(mutation) == "mutation kill rate 0.900 (9/10 faults killed, 2 equivalent; threshold 1.0)"


def test_summary_command(tmp_path):
    data, path = _report(tmp_path, 1e-9, "conformance.json")
    (tmp_path / "mutation.json").write_text(json.dumps({"schema": "x", "summary": {"kill_rate": 1.0, "killed": 4,
                                                        "survived": 0, "equivalent": 0}, "threshold": 1.0}))
    md = _python("summary", str(path))
    assert md.returncode == 0 and md.stdout.startswith("### Conformance:"), md.stdout + md.stderr
    assert "mutation kill rate 1.000 (4/4 faults killed" in md.stdout
    text = summary.text(data, None, data, str(path))  # in process: each command pays the harness's imports
    assert "conformance gate:" in text and f"baseline {path}: commit" in text and text.strip().endswith("gate: PASS")
    assert "closest to tolerance (passing): planted.regress|float64|cpu" in text
    assert _python("summary", str(tmp_path / "absent.json")).returncode == 2
    report.write_json({**data, "schema": "other/1"}, tmp_path / "other.json")
    assert _python("summary", str(tmp_path / "other.json")).returncode == 2
