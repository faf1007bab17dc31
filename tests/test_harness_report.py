"""Coverage, tolerance overrides, reports and the gate: each planted problem fails the gate, named."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch

import neuronix as nx
from conformance import gate, report
from conformance.coverage import Coverage, coverage
from conformance.mirror import OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor, unary
from conformance.tolerances import Tolerances

CLEAN = Coverage(["exp"], ["exp"], [], {}, [])
OPTS = {"dtypes": ["float32", "float64"], "devices": ["cpu"], "profile": "ci", "examples": None}


def _sum_sample(draw, dtype, device):
    return Sample((tensor(draw, (64, 3), dtype, device),), {"dim": 0})


SUM = OpMirror("planted.sum", nx.sum, torch.sum, _sum_sample)
EXP = OpMirror("planted.exp", nx.exp, torch.exp, unary())


def _toml(tmp_path, text: str):
    base = """schema = 1
[defaults]
float32 = { rtol = 1e-6, atol = 1e-6 }
float64 = { rtol = 1e-7, atol = 1e-12 }
[defaults.finite_difference]
float64 = { rtol = 1e-6, atol = 1e-7 }
"""
    path = tmp_path / "tolerances.toml"
    path.write_text(base + text)
    return path


def _report(tmp_path, toml_path, mirrors=(EXP,), filtered=False, cov=CLEAN, names=("planted.sum",)):
    tol = Tolerances.load(toml_path)
    records = []
    for m in mirrors:
        for dtype in ("float32", "float64"):
            records += run_case(m, dtype, "cpu", tolerances=tol, examples=2).records
    return report.build(records, {**OPTS, "tolerances": str(toml_path)}, filtered=filtered, coverage=cov, names=names)


def _sections(data) -> dict:
    return dict(gate.problems(data))


def test_clean_run_passes_the_gate(tmp_path, capsys):
    data = _report(tmp_path, _toml(tmp_path, ""))
    assert gate.problems(data) == []
    path = report.write_json(data, tmp_path / "conformance.json")
    assert gate.gate(path) == 0
    assert "gate: PASS" in capsys.readouterr().out


def test_every_record_names_the_rule_that_set_its_tolerance(tmp_path):
    data = _report(tmp_path, _toml(tmp_path, ""))
    rules = {(r["check"], r["dtype"]): r["rule"] for r in data["records"] if r["check"] != "leak"}
    assert rules[("backward", "float32")] == "defaults.float32"
    assert rules[("finite_difference", "float64")] == "defaults.finite_difference.float64"


def test_override_without_reason_fails_the_gate(tmp_path):
    toml = _toml(tmp_path, '[[override]]\nop = "planted.exp"\ncheck = "forward"\nrtol = 1e-5\n')
    data = _report(tmp_path, toml)
    row = data["overrides"][0]
    assert row["status"] == "reasonless" and row["records"] == 2  # it did set tolerances, yet has no reason
    assert any("planted.exp|float32|cpu" == r["case_id"] and r["rule"] == row["rule"] for r in data["records"])
    assert "override[0] op=planted.exp check=forward: reasonless" in _sections(data)["overrides"][0]


def test_stale_override_fails_the_gate(tmp_path):
    toml = _toml(tmp_path, '[[override]]\nop = "planted.no_such_op"\natol = 1e-3\nreason = "was needed once"\n'
                           '[[override]]\nop = "planted.exp"\ncheck = "double_backward"\ndtype = "float32"\n'
                           'atol = 1e-5\nreason = "fine"\n')
    data = _report(tmp_path, toml)
    status = {o["op"]: o["status"] for o in data["overrides"]}
    assert status == {"planted.no_such_op": "stale", "planted.exp": "ok"}
    assert "override[0] op=planted.no_such_op: stale" in _sections(data)["overrides"][0]


def test_override_in_a_filtered_run_is_not_called_stale(tmp_path):
    toml = _toml(tmp_path, '[[override]]\nop = "planted.sum"\natol = 1e-3\nreason = "not run this time"\n')
    data = _report(tmp_path, toml, filtered=True)
    assert data["overrides"][0]["status"] == "not exercised"
    assert "overrides" not in _sections(data)


def test_override_tightens_and_loosens(tmp_path):
    # float32 sums of 64 terms round differently from torch's kernel at ~1e-7: atol=0, rtol=0 must fail.
    tight = _toml(tmp_path, '[[override]]\nop = "planted.sum"\ncheck = "forward"\ndtype = "float32"\nrtol = 0\natol = 0\n'
                            'reason = "tightened on purpose"\n')
    tol = Tolerances.load(tight)
    mirror = OpMirror("planted.sum", lambda x, dim: nx.sum(x * 1.0000001, dim), torch.sum, _sum_sample)
    records = run_case(mirror, "float32", "cpu", tolerances=tol, examples=2).records
    forward = next(r for r in records if r.check == "forward")
    assert forward.status == "fail" and forward.rule == "override[0] op=planted.sum check=forward dtype=float32"
    loose = Tolerances({"defaults": {"float32": {"rtol": 1e-6, "atol": 1e-6}},
                        "override": [{"op": "planted.*", "rtol": 1e-5, "reason": "loosened"}]})
    records = run_case(mirror, "float32", "cpu", tolerances=loose, examples=2).records
    assert next(r for r in records if r.check == "forward").status == "pass"


def test_public_op_without_mirror_is_a_coverage_hole(monkeypatch, tmp_path, capsys):
    from conformance import cli
    from neuronix.ops.registry import FUNCTIONS

    monkeypatch.setitem(FUNCTIONS, "planted_unmirrored", lambda x: x)
    cov = coverage()
    assert "planted_unmirrored" in cov.missing
    assert cli.main(["list", "--missing"]) == 0
    assert "planted_unmirrored" in capsys.readouterr().out.split()
    only_planted = Coverage(cov.public, cov.mirrored, ["planted_unmirrored"], {}, [])
    data = _report(tmp_path, _toml(tmp_path, ""), cov=only_planted)
    assert _sections(data)["public names without a mirror"] == ["1: planted_unmirrored"]


def test_failures_and_leaks_fail_the_gate_with_repro_commands(tmp_path, capsys):
    spec_calls = []

    def leaky(x):
        out = nx.exp(x)
        spec_calls.append(out)  # a global reference keeps the output (and its graph) alive
        return out

    data = _report(tmp_path, _toml(tmp_path, ""), mirrors=(OpMirror("planted.leaky", leaky, torch.exp, unary()),))
    sections = _sections(data)
    assert "planted.leaky|float64|cpu" in "\n".join(sections["leaks"])
    assert "python -m conformance repro 'planted.leaky|float64|cpu'" in "\n".join(sections["leaks"])
    path = report.write_json(data, tmp_path / "r.json")
    assert gate.gate(path) == 1
    out = capsys.readouterr().out
    assert "FAIL leaks" in out and "gate: FAIL" in out and len(out.splitlines()) < 40


def test_gate_rejects_an_unreadable_or_foreign_report(tmp_path):
    assert gate.gate(tmp_path / "missing.json") == 2
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else/9"}))
    assert gate.gate(tmp_path / "other.json") == 1


def test_json_junit_and_html_are_written_from_the_records(tmp_path):
    bad = OpMirror("planted.bad", lambda x: nx.exp(x) * 1.001, torch.exp, unary())
    data = _report(tmp_path, _toml(tmp_path, ""), mirrors=(EXP, bad))
    paths = report.write_all(data, tmp_path / "out")
    loaded = json.loads(paths[0].read_text())
    assert loaded["schema"] == report.SCHEMA and loaded["run"]["torch"] == torch.__version__
    record = next(r for r in loaded["records"] if r["case_id"] == "planted.bad|float64|cpu" and r["check"] == "forward")
    for key in ("max_abs_error", "max_rel_error", "tolerance", "rule", "headroom", "examples", "worst", "leak", "repro"):
        assert key in record
    assert record["worst"]["seed"] is not None and record["worst"]["inputs"]
    suites = ET.parse(paths[2]).getroot()
    failures = [tc.get("name") for tc in suites.iter("testcase") if tc.find("failure") is not None]
    assert "planted.bad|float64|cpu|forward" in failures and "planted.exp|float64|cpu|forward" not in failures
    html = paths[1].read_text()
    assert "planted.bad|float64|cpu" in html and "<svg" in html and "python -m conformance repro" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained


@pytest.mark.parametrize("value", ["float32", "float64"])
def test_defaults_match_the_projects_readme(value):
    tol = Tolerances.load(None).default("backward", value)
    assert (tol.rtol, tol.atol) == {"float32": (1e-6, 1e-6), "float64": (1e-7, 1e-12)}[value]


class _Report:
    def __init__(self, nodeid: str):
        self.nodeid, self.when = nodeid, "call"


class _Terminal:
    def __init__(self, nodeids):
        self.stats = {"passed": [_Report(n) for n in nodeids]}


class _Plugins:
    def __init__(self, terminal):
        self.terminal = terminal

    def get_plugin(self, name):
        return self.terminal if name == "terminalreporter" else None


class _Config:
    def __init__(self, nodeids):
        self.pluginmanager = _Plugins(_Terminal(nodeids))


def test_a_case_whose_worker_crashed_fails_the_gate_by_name(tmp_path):
    """A segfaulting kernel kills its xdist worker and the records of every case the worker ran: the
    report must not shrink silently; each case that ran without records is an error naming it."""
    from conformance.plugin import _lost_cases

    kept = run_case(EXP, "float64", "cpu", examples=2).records
    ran = ["conformance/test_cases.py::test_case[planted.exp|float64|cpu]",
           "conformance/test_cases.py::test_case[nn.functional.nll_loss[spatial]|float32|cpu]"]
    lost = _lost_cases(_Config(ran), kept, {**OPTS, "tolerances": None})
    assert {r.case_id for r in lost} == {"nn.functional.nll_loss[spatial]|float32|cpu"}
    assert any(r.status == "error" and "worker crashed" in r.message for r in lost)
    data = report.build(kept + lost, {**OPTS, "tolerances": None}, coverage=CLEAN, names=("planted.exp",))
    failing = _sections(data)["failed checks"]
    assert any(line.startswith("nn.functional.nll_loss[spatial]|float32|cpu [error]") for line in failing)
    assert _lost_cases(_Config(ran[:1]), kept, {**OPTS, "tolerances": None}) == []


def test_warning_reports_without_a_phase_are_not_cases():
    from conformance.plugin import _lost_cases

    config = _Config([])
    warning = type("WarningReport", (), {"nodeid": "conformance/test_cases.py::test_case[exp|float64|cpu]"})()
    config.pluginmanager.terminal.stats["warnings"] = [warning]
    assert _lost_cases(config, [], {**OPTS, "tolerances": None}) == []
