"""Baseline comparison: ``python -m conformance diff`` and ``gate --baseline`` (``conformance.diff``).

The done-when test plants a rule made 4x less accurate, still inside its tolerance, and the gate against
the earlier report fails naming it; the same report against itself passes, 1.5x stays below the factor,
and crossing the threshold trips it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import diff, gate, report
from conformance.coverage import Coverage
from conformance.mirror import OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor
from conformance.tolerances import RegressionPolicy, Tolerances
from neuronix.ops.registry import apply
from tests.planting import plant
from tests.test_harness_report import _toml as report_toml

ROOT = Path(__file__).resolve().parent.parent
CLEAN = Coverage(["planted.regress"], ["planted.regress"], [], {}, [])
OPTS = {"dtypes": ["float64"], "devices": ["cpu"], "profile": "ci", "examples": None}
POLICY = """[regression]
headroom_factor = 4
headroom_threshold = 0.5
headroom_floor = { "*" = 0.125, float64 = 0.01, complex128 = 0.01, float16 = 0.5, bfloat16 = 0.5 }
reason = "the repository's policy (test_the_tests_policy_is_the_repositorys)"
"""


def _toml(tmp_path, extra: str = "") -> Path:
    return report_toml(tmp_path, POLICY + extra)


def _sample(draw, dtype, device):
    return Sample((tensor(draw, (5, 4), dtype, device),), {})


def _mirror(eps: float) -> OpMirror:
    """``3 x`` whose backward rule is off by the relative error ``eps``: float64 headroom about eps / 1e-7."""
    spec = plant("planted_regress", lambda x: x * 3, lambda g, out, x: g * (3 * (1 + eps)), saves=())
    return OpMirror("planted.regress", lambda x: apply(spec, x), lambda x: x * 3, _sample)


def _report(tmp_path, eps: float, name: str, extra_toml: str = "") -> tuple[dict, Path]:
    toml = _toml(tmp_path, extra_toml)
    records = run_case(_mirror(eps), "float64", "cpu", tolerances=Tolerances.load(toml), examples=2).records
    data = report.build(records, {**OPTS, "tolerances": str(toml)}, coverage=CLEAN, names=("planted.regress",))
    return data, report.write_json(data, tmp_path / name)


def _backward(data: dict) -> dict:
    return next(r for r in data["records"] if r["check"] == "backward")


def test_a_rule_made_4x_less_accurate_fails_the_gate_against_the_baseline(tmp_path, capsys):
    base, base_path = _report(tmp_path, 1e-9, "base.json")
    new, new_path = _report(tmp_path, 4e-9, "new.json")  # the rule made 4x less accurate
    assert _backward(new)["status"] == "pass" and _backward(new)["headroom"] < 0.1  # inside its tolerance
    assert gate.gate(new_path) == 0  # judged alone it is a clean pass: the regression is silent
    capsys.readouterr()
    assert gate.gate(new_path, baseline=base_path) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "planted.regress|float64|cpu [backward]" in x)
    assert f"{_backward(base)['headroom']:.3g} -> {_backward(new)['headroom']:.3g}" in line
    assert "(4x, >= 4x (floor 0.01))" in line and "rule defaults.float64" in line
    assert "python -m conformance repro 'planted.regress|float64|cpu'" in out
    assert "vs baseline: headroom regressions" in out and out.strip().endswith("gate: FAIL")
    assert gate.gate(base_path, baseline=base_path) == 0  # the same run against itself


def test_the_tests_policy_is_the_repositorys(tmp_path):
    """The planted regressions here are judged by the policy of tolerances.toml, not a looser test-only one."""
    mine, repo = Tolerances.load(_toml(tmp_path)).regression, Tolerances.load(None).regression
    assert (mine.headroom_factor, mine.headroom_threshold, mine.headroom_floor) == \
        (repo.headroom_factor, repo.headroom_threshold, repo.headroom_floor)


def test_below_the_factor_passes_and_crossing_the_threshold_fails(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json")
    for below in (1.5e-9, 3.9e-9):
        slightly, _ = _report(tmp_path, below, "new.json")
        assert diff.compare(base, slightly).regressions == []
    base, _ = _report(tmp_path, 4e-8, "base.json")  # headroom ~0.4
    new, _ = _report(tmp_path, 6e-8, "new.json")  # ~0.6: only 1.5x, but across 0.5
    assert _backward(new)["status"] == "pass"
    regressions = [r for r in diff.compare(base, new).regressions if r.check == "backward"]
    assert [r.why for r in regressions] == ["threshold"]


def test_the_floor_keeps_ulp_noise_on_an_exact_check_quiet():
    policy = RegressionPolicy(4.0, 0.5, {"*": 0.05, "float64": 1e-3})
    assert policy.regressed(0.0, 0.04, "float32") is None  # exact -> one float32 ulp: below the floor
    assert policy.regressed(0.0, 0.06, "float32") == "factor"
    assert policy.regressed(1e-4, 9e-4, "float64") is None
    assert policy.regressed(1e-4, 2e-3, "float64") == "factor"
    assert policy.regressed(0.3, 0.9, "float64") == "threshold"
    assert policy.regressed(0.6, 0.9, "float64") is None  # already above the threshold, under 4x
    assert policy.regressed(0.1, 0.4, "float64") == "factor" and policy.regressed(0.1, 0.39, "float64") is None


def test_regression_policy_is_read_from_tolerances_toml(tmp_path):
    repo = Tolerances.load(None).regression
    assert repo.headroom_factor == 4 and repo.headroom_threshold == 0.5 and repo.reason
    assert Tolerances({}).regression == RegressionPolicy()  # defaults when the table is absent
    table = {"headroom_factor": 3, "headroom_floor": {"float16": 0.3}}
    assert Tolerances({"regression": table}).regression.floor("float16") == 0.3
    assert Tolerances({"regression": table}).regression.floor("float32") == RegressionPolicy().floor("x")
    with pytest.raises(ValueError, match="headroom_factor = 1.0; it must be > 1"):
        Tolerances({"regression": {"headroom_factor": 1}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['factor'\]"):
        Tolerances({"regression": {"factor": 4}})


def _fail(row: dict) -> dict:
    return {**row, "status": "fail", "message": "planted failure", "headroom": 3.0}


def test_diff_lists_failures_fixes_coverage_overrides_and_vanished_cases(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json",
                      '[[override]]\nop = "planted.regress"\ncheck = "forward"\natol = 1e-9\nreason = "r"\n')
    new = copy.deepcopy(base)
    rows = {r["check"]: r for r in new["records"]}
    base_rows = {r["check"]: r for r in base["records"]}
    base["records"] = [_fail(r) if r["check"] == "finite_difference" else r for r in base["records"]]
    new["records"] = [_fail(r) if r["check"] == "forward" else r for r in new["records"]]
    gone = {**base_rows["backward"], "case_id": "planted.gone|float64|cpu", "entry": "planted.gone"}
    other_dtype = {**base_rows["backward"], "case_id": "planted.gone|float32|cpu", "entry": "planted.gone"}
    base["records"] += [gone, other_dtype]
    new["records"].append({**rows["backward"], "case_id": "planted.fresh|float64|cpu"})
    new["coverage"] = {**new["coverage"], "public": 2, "missing": ["planted.hole"]}
    new["overrides"] = [{**new["overrides"][0], "atol": 1e-6}]
    d = diff.compare(base, new)
    assert [(r["case_id"], r["check"]) for r in d.new_failures] == [("planted.regress|float64|cpu", "forward")]
    assert [r["check"] for r in d.fixed] == ["finite_difference"]
    assert d.vanished == ["planted.gone|float64|cpu"]  # a complete float64 run dropped it
    assert d.not_run == ["planted.gone|float32|cpu"]  # not this run's dtype: stated, not failed
    assert d.appeared == ["planted.fresh|float64|cpu"]
    assert any("newly without a mirror (1): planted.hole" in c for c in d.coverage)
    assert d.overrides == ["loosened: op=planted.regress check=forward: rtol None atol 1e-09 -> rtol None atol 1e-06"]
    assert d.failed
    text = diff.render_text(d, RegressionPolicy(), "base.json", "new.json")
    for expected in ("new failures (1):", "fixed (1):", "cases or checks vanished from a complete run (1):", "new cases (1):",
                     "coverage (", "overrides (1):", "diff: REGRESSED"):
        assert expected in text
    new["overrides"] = []
    assert diff.compare(base, new).overrides[0].startswith("removed: op=planted.regress check=forward")
    new["overrides"] = base["overrides"] + [{**base["overrides"][0], "op": "planted.more", "reason": "why"}]
    assert "added: op=planted.more check=forward (rtol None atol 1e-09): why" in diff.compare(base, new).overrides


def test_a_check_that_stopped_running_in_a_case_that_still_runs_vanished(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json")
    new = copy.deepcopy(base)
    new["records"] = [r for r in new["records"] if r["check"] != "double_backward"]  # a harness change dropped it
    d = diff.compare(base, new)
    assert d.vanished == ["planted.regress|float64|cpu [double_backward]"] and d.failed
    new["run"] = {**new["run"], "filtered": True}  # a filtered run: stated as out of scope, not failed
    assert diff.compare(base, new).vanished == []
    new["run"] = {**base["run"], "torch": "2.99.0"}  # another torch: the checks it allows differ; stated
    d = diff.compare(base, new)
    assert d.vanished == [] and d.torch_dropped == ["planted.regress|float64|cpu [double_backward]"] and not d.failed
    assert "1 baseline check(s) not made under this run's torch: not compared" in diff.notes(d, "base.json")
    failing = copy.deepcopy(base)  # an error record goes away with the failure that made it: that is a fix
    failing["records"].append({**failing["records"][0], "check": "error", "status": "error", "headroom": None})
    assert diff.compare(failing, base).vanished == []
    assert [(r["case_id"], r["check"]) for r in diff.compare(failing, base).fixed] == \
        [("planted.regress|float64|cpu", "error")]


def test_a_filtered_or_sharded_run_does_not_count_missing_cases_as_vanished_a_merged_one_does(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json")
    new = copy.deepcopy(base)
    new["records"] = []
    for run in ({"filtered": True}, {"shard": {"index": 1, "count": 2, "cases": 0, "balanced_by": "names"}}):
        new["run"] = {**base["run"], **run}
        d = diff.compare(base, new)
        assert d.vanished == [] and d.not_run == ["planted.regress|float64|cpu"] and not d.failed
    new["run"] = {**base["run"], "merged": {"shards": 2, "files": ["a.json", "b.json"]}}  # merged shards: complete
    d = diff.compare(base, new)
    assert d.vanished == ["planted.regress|float64|cpu"] and d.failed
    assert "run complete -> complete (merged from 2 shards)" in d.environment


def test_environment_differences_are_stated_not_refused(tmp_path, capsys):
    base, base_path = _report(tmp_path, 1e-9, "base.json")
    new = copy.deepcopy(base)
    new["run"].update(torch="2.99.0", profile="thorough", devices=[{"device": "cuda", "name": "H200"}])
    new_path = report.write_json(new, tmp_path / "new.json")
    d = diff.compare(base, new)
    assert f"torch {base['run']['torch']} -> 2.99.0" in d.environment
    assert "profile ci -> thorough" in d.environment
    found, notes = diff.baseline_problems(base, new, "base.json")
    assert any(n.startswith(f"compared across torch {base['run']['torch']} -> 2.99.0") for n in notes)
    assert found == []  # cpu cases are not "vanished" from a cuda run: another device, stated
    assert gate.gate(new_path, baseline=base_path) == 0
    assert "compared across torch" in capsys.readouterr().out


def test_markdown_escapes_case_ids_in_tables(tmp_path):
    base, _ = _report(tmp_path, 1e-9, "base.json")
    new, _ = _report(tmp_path, 4e-9, "new.json")
    md = diff.render_md(diff.compare(base, new), RegressionPolicy(), "b", "n")
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert "planted.regress\\|float64\\|cpu" in md
    assert len({row.replace("\\|", "").count("|") for row in rows}) == 1  # every row has the header's columns


def _python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_diff_command_exit_status(tmp_path):
    _, base_path = _report(tmp_path, 1e-9, "base.json")
    _, new_path = _report(tmp_path, 4e-9, "new.json")
    same = _python("diff", str(base_path), str(base_path))
    assert same.returncode == 0 and "diff: no regression" in same.stdout, same.stdout + same.stderr
    worse = _python("diff", str(base_path), str(new_path), "--format", "md")
    assert worse.returncode == 1 and "#### Headroom regressions" in worse.stdout, worse.stdout + worse.stderr
    (tmp_path / "junk.json").write_text(json.dumps({"schema": "other/1"}))
    bad = _python("diff", str(base_path), str(tmp_path / "junk.json"))
    assert bad.returncode == 2 and "is not a conformance report" in bad.stdout
    assert _python("diff", str(tmp_path / "absent.json"), str(new_path)).returncode == 2
