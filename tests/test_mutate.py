"""``python -m conformance mutate``: each fault kind plants what it says, planted faults are killed,
a fault the harness cannot see survives and is named, the arithmetic, the equivalent-fault table,
the gate and the command itself.

The planted ops are registered only for a test (removed again after it: ``tests/planting.py``) with mirrors
registered the same way, so these tests do not depend on the real registry's size.
"""

from __future__ import annotations

import json

import pytest
import torch
from planting import plant as _op
from planting import plant_mirror as _mirror

import neuronix as nx
from conformance import gate, mutate
from conformance.mirror import OpMirror, Sample
from conformance.mutate import Fault, Outcome, Policy, planted
from conformance.report import SCHEMA
from conformance.strategies import tensor, unary
from neuronix.ops import registry
from neuronix.ops.registry import apply


@pytest.fixture
def core_checks(monkeypatch):
    """The planted ops' cases run the core checks (values, gradients, second derivatives, finite
    differences, graph reuse) only: what these tests measure is the mutation machinery, not the
    further check families, which have their own tests."""
    from conformance.kinds import op

    monkeypatch.setattr(op, "example_checks", lambda: (op._graph_reuse,))




# a linear op y = 3 x: its second derivative is zero, so its whole second-order behaviour is the
# dependence of its rule on the upstream gradient
TRIPLE = "mutate_triple"


def _triple(**mirror_kw):
    spec = _op(TRIPLE, lambda x: x * 3, lambda g, out, x: g * 3, saves=())
    return spec, _mirror(OpMirror(TRIPLE, lambda x: apply(spec, x), lambda x: x * 3, unary(), **mirror_kw))


def _mul_broadcast():
    spec = _op("mutate_mul", torch.mul, lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)

    def sample(draw, dtype, device):
        return Sample((tensor(draw, (3, 1), dtype, device), tensor(draw, (1, 4), dtype, device)))

    return spec, _mirror(OpMirror("mutate_mul", lambda x, y: apply(spec, x, y), torch.mul, sample))


def _grad(spec, x, up, create=False):
    leaf = nx.Tensor(x, requires_grad=True)
    (g,) = nx.autograd.grad([apply(spec, leaf)], [leaf], grad_outputs=[up], create_graph=create)
    return g


X = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
UP = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)


# ----- each kind plants what it says, and the registry comes back ---------------------------------------
def test_rule_kinds_change_the_modes_they_name():
    spec, _ = _triple()
    right = 3 * UP
    factor = 1 + mutate.FACTOR
    expected = {  # kind: (plain backward, create_graph backward)
        "scaled": (right * factor, right * factor),
        "dropped": (0 * right, 0 * right),
        "plain_only": (right * factor, right),
        "recorded_only": (right, right * factor),
        "upstream_raw": (right, right),
    }
    for kind, (plain, recorded) in expected.items():
        with planted(Fault(TRIPLE, kind, 0)):
            assert torch.allclose(_grad(spec, X, nx.Tensor(UP)).data, plain), kind
            assert torch.allclose(_grad(spec, X, nx.Tensor(UP), create=True).data, recorded), kind
    assert torch.equal(_grad(spec, X, nx.Tensor(UP)).data, right)  # restored


def test_upstream_raw_cuts_only_the_dependence_on_the_upstream_gradient():
    spec, _ = _triple()
    for kind, slope in (("scaled", 3 * (1 + mutate.FACTOR)), ("upstream_raw", None)):
        up = nx.Tensor(UP.clone(), requires_grad=True)
        with planted(Fault(TRIPLE, kind, 0)):
            g = _grad(spec, X, up, create=True)
        assert g.requires_grad is (slope is not None)
        if slope is not None:
            (d,) = nx.autograd.grad([g.sum()], [up])
            assert torch.allclose(d.data, torch.full_like(UP, slope))


def test_broadcast_mean_divides_by_the_broadcast_count():
    spec, _ = _mul_broadcast()
    x, y = nx.Tensor(torch.ones(3, 1, dtype=torch.float64), requires_grad=True), nx.Tensor(torch.ones(1, 4, dtype=torch.float64))
    up = nx.Tensor(torch.ones(3, 4, dtype=torch.float64))
    with planted(Fault("mutate_mul", "broadcast_mean", 0)):
        (g,) = nx.autograd.grad([apply(spec, x, y)], [x], grad_outputs=[up])
    assert torch.equal(g.data, torch.ones(3, 1, dtype=torch.float64))  # mean of 4 ones, where the sum is 4
    (g,) = nx.autograd.grad([apply(spec, x, y)], [x], grad_outputs=[up])
    assert torch.equal(g.data, torch.full((3, 1), 4.0, dtype=torch.float64))


def test_forward_and_fused_faults():
    kernel = lambda g, out, x, needs: (g * 3,)  # noqa: E731
    spec = _op("mutate_fused", lambda x: x * 3, lambda g, out, x: g * 3, saves=(), fused=kernel)
    with planted(Fault("mutate_fused", "forward")):
        out = apply(spec, nx.Tensor(X)).data
    assert torch.allclose(out, 3 * X + mutate.FACTOR * (1 + (3 * X).abs()))
    with planted(Fault("mutate_fused", "fused")):
        assert torch.allclose(_grad(spec, X, nx.Tensor(UP)).data, 3 * UP * (1 + mutate.FACTOR))
    assert torch.equal(_grad(spec, X, nx.Tensor(UP)).data, 3 * UP)
    assert spec.fused is kernel


def test_the_registry_is_restored_when_the_run_raises():
    spec, _ = _triple()
    forward, vjps = spec.forward, spec.vjps
    with pytest.raises(KeyError), planted(Fault(TRIPLE, "scaled", 0)):
        raise KeyError("planted")
    with pytest.raises(KeyError), planted(Fault(TRIPLE, "forward")):
        raise KeyError("planted")
    assert spec.forward is forward and spec.vjps is vjps


# ----- the map ----------------------------------------------------------------------------------
def test_map_names_what_each_mirror_exercises(tmp_path, core_checks):
    _triple()
    _mul_broadcast()
    cases, baselines = mutate.build_map(2, [TRIPLE, "mutate_mul"], tmp_path / "map.json")
    triple = cases[f"{TRIPLE}|float64|cpu"]
    assert baselines == {} and mutate.Runner(cases, 2, 3, [TRIPLE]).baseline(TRIPLE, "float64") == []
    assert {f"forward:{TRIPLE}:direct", f"rule:{TRIPLE}:0:plain", f"rule:{TRIPLE}:0:recorded"} <= set(triple["uses"])
    mul = set(cases["mutate_mul|float64|cpu"]["uses"])
    assert {"broadcast:mutate_mul:0", "broadcast:mutate_mul:1"} <= mul
    assert mutate.build_map(2, [TRIPLE, "mutate_mul"], tmp_path / "map.json") == (cases, {})  # cached, same answer
    kinds = {(f.kind, f.rule) for f in mutate.faults(["mutate_mul"], list(mutate.KINDS), cases)}
    assert ("broadcast_mean", 0) in kinds and ("fused", None) not in kinds


# ----- killed, survived -------------------------------------------------------------------------
def test_planted_faults_in_a_real_op_are_killed(tmp_path):
    data = mutate.mutate(["exp"], ["scaled", "upstream_raw", "forward"], mirror_patterns=["exp"],
                         report_dir=tmp_path, policy=Policy(), log=lambda s: None)
    assert data["summary"] == {"faults": 3, "killed": 3, "survived": 0, "equivalent": 0, "kill_rate": 1.0}
    by_kind = {f["kind"]: f for f in data["faults"]}
    assert by_kind["scaled"]["killed_by"]["case_id"] == "exp|float64|cpu"
    assert "backward" in by_kind["scaled"]["killed_by"]["checks"]
    assert "double_backward" in by_kind["upstream_raw"]["killed_by"]["checks"]
    assert "forward" in by_kind["forward"]["killed_by"]["checks"]
    assert data["passed"] and json.loads((tmp_path / "mutation.json").read_text())["summary"]["killed"] == 3


def test_a_fault_the_checks_cannot_see_survives_and_is_named(tmp_path, core_checks):
    # core_checks: no forward-mode or variant check that could see it another way
    _triple(gradgrad_upstream=False)  # the only check of a linear op's upstream dependence is off
    data = mutate.mutate([TRIPLE], ["scaled", "upstream_raw"], mirror_patterns=[TRIPLE], report_dir=tmp_path,
                         policy=Policy(), log=lambda s: None)
    assert [f["status"] for f in data["faults"]] == ["killed", "survived"]
    (survivor,) = data["survivors"]
    assert (survivor["op"], survivor["kind"], survivor["rule"]) == (TRIPLE, "upstream_raw", 0)
    assert survivor["cases_run"] == [f"{TRIPLE}|float64|cpu", f"{TRIPLE}|float32|cpu"]
    assert "every check of 2 exercising case(s) passed" in survivor["reason"]
    assert data["summary"]["kill_rate"] == 0.5 and not data["passed"]
    assert f"SURVIVED {TRIPLE}:upstream_raw:rule0" in mutate.table(data)


def test_a_fault_no_mirror_exercises_survives(tmp_path, core_checks):
    _triple(gradgrad=False)  # no create_graph backward: recorded rules never run
    data = mutate.mutate([TRIPLE], ["recorded_only"], mirror_patterns=[TRIPLE], report_dir=tmp_path,
                         policy=Policy(), log=lambda s: None)
    (survivor,) = data["survivors"]
    assert survivor["cases_run"] == [] and "no mirror case exercises it" in survivor["reason"]


def test_a_check_failing_unmutated_is_no_witness(tmp_path, core_checks):
    spec = _op(TRIPLE, lambda x: x * 3, lambda g, out, x: g * 3, saves=())
    _mirror(OpMirror(TRIPLE, lambda x: apply(spec, x), lambda x: x * 3 + 1, unary()))  # forward fails unmutated
    data = mutate.mutate([TRIPLE], ["scaled"], mirror_patterns=[TRIPLE], report_dir=tmp_path, policy=Policy(),
                         log=lambda s: None)
    baselines = json.loads((tmp_path / "mutation-map.json").read_text())["baselines"]
    assert baselines[f"{TRIPLE}|float64|cpu"] == ["forward"]
    (fault,) = data["faults"]
    assert fault["status"] == "killed" and "forward" not in fault["killed_by"]["checks"]
    assert "backward" in fault["killed_by"]["checks"]


def test_a_planting_bug_is_not_counted_as_a_kill(tmp_path, core_checks, monkeypatch):
    def broken(out):
        raise RuntimeError("planted bug in the planting code")

    monkeypatch.setattr(mutate, "_perturbed", broken)
    _triple()
    data = mutate.mutate([TRIPLE], ["forward"], mirror_patterns=[TRIPLE], report_dir=tmp_path, policy=Policy(),
                         log=lambda s: None)
    (survivor,) = data["survivors"]
    assert "the planted wrapper raised (a bug of conformance/mutate.py)" in survivor["reason"]
    assert "planted bug in the planting code" in survivor["reason"]


# ----- arithmetic, equivalents, threshold ----------------------------------------------------------
def test_kill_rate_arithmetic_leaves_equivalents_out():
    outcomes = [Outcome("a", "scaled", 0, "killed"), Outcome("a", "dropped", 0, "survived"),
                Outcome("b", "scaled", 0, "killed"), Outcome("b", "forward", None, "equivalent", "why")]
    data = mutate.report(outcomes, Policy(min_kill_rate=0.6), {})
    assert data["summary"] == {"faults": 4, "killed": 2, "survived": 1, "equivalent": 1, "kill_rate": 2 / 3}
    assert data["by_kind"]["scaled"]["kill_rate"] == 1.0 and data["by_kind"]["dropped"]["kill_rate"] == 0.0
    assert data["by_kind"]["forward"] == {"faults": 1, "killed": 0, "survived": 0, "equivalent": 1, "kill_rate": 1.0}
    assert data["by_op"]["a"]["kill_rate"] == 0.5 and data["passed"]
    assert not mutate.report(outcomes, Policy(min_kill_rate=0.7), {})["passed"]
    assert mutate.kill_rate(0, 0) == 1.0


def test_equivalent_table_and_threshold_come_from_tolerances_toml(tmp_path):
    path = tmp_path / "tolerances.toml"
    path.write_text('[mutation]\nmin_kill_rate = 0.9\n\n[[mutation.equivalent]]\nop = "mutate_*"\nkind = "upstream_raw"\n'
                    'rule = 0\nreason = "planted: the rule never reads its upstream gradient"\n')
    policy = Policy.load(path)
    assert policy.min_kill_rate == 0.9
    assert policy.equivalent_reason(Fault(TRIPLE, "upstream_raw", 0)) == "planted: the rule never reads its upstream gradient"
    assert policy.equivalent_reason(Fault(TRIPLE, "upstream_raw", 1)) is None
    assert policy.equivalent_reason(Fault(TRIPLE, "scaled", 0)) is None
    path.write_text('[[mutation.equivalent]]\nop = "x"\nkind = "scaled"\n')
    with pytest.raises(ValueError, match="has no reason"):
        Policy.load(path)
    assert Policy.load().min_kill_rate > 0  # the project's own file parses, every equivalent has a reason


def test_equivalent_by_rule_function_and_lists_of_globs():
    from neuronix.ops.elementwise import zero_gradient

    _op("mutate_step", torch.ceil, zero_gradient, saves=())
    policy = Policy(1.0, [{"op": ["nothing", "mutate_*"], "kind": ["scaled", "dropped"], "rule_is": "zero_gradient",
                           "reason": "the zero gradient by construction"}])
    assert policy.equivalent_reason(Fault("mutate_step", "dropped", 0)) == "the zero gradient by construction"
    assert policy.equivalent_reason(Fault("mutate_step", "forward")) is None  # the forward is not the rule
    _triple()
    assert policy.equivalent_reason(Fault(TRIPLE, "scaled", 0)) is None  # a rule that is not zero_gradient


def test_an_equivalent_fault_is_shown_not_run_not_counted(tmp_path, core_checks):
    _triple()
    policy = Policy(1.0, [{"op": TRIPLE, "kind": "upstream_raw", "reason": "declared for the test"}])
    data = mutate.mutate([TRIPLE], ["upstream_raw"], mirror_patterns=[TRIPLE], report_dir=tmp_path, policy=policy,
                         log=lambda s: None)
    (eq,) = data["equivalent"]
    assert eq["reason"] == "declared for the test" and eq["cases_run"] == []
    assert data["summary"]["kill_rate"] == 1.0 and data["passed"]


# ----- the gate and the command ----------------------------------------------------------------
def _conformance_report(directory):
    data = {"schema": SCHEMA, "records": [{"case_id": "exp|float64|cpu", "check": "forward", "status": "pass",
                                           "message": "", "repro": ""}],
            "coverage": {"missing": []}, "overrides": [],
            "summary": {"cases": 1, "failed_cases": 0, "passed": 1, "records": 1, "failed": 0, "errors": 0, "leaks": 0,
                        "coverage_mirrored": 1, "coverage_public": 1, "coverage_missing": 0, "overrides": 0,
                        "overrides_bad": 0, "max_headroom": 0.0},
            "run": {"commit": "0" * 40, "torch": torch.__version__, "profile": "ci", "devices": [{"device": "cpu"}],
                    "dtypes": ["float64"]}}
    (directory / "conformance.json").write_text(json.dumps(data))
    return directory / "conformance.json"


def test_gate_fails_on_a_mutation_report_below_threshold(tmp_path, capsys):
    report = _conformance_report(tmp_path)
    assert gate.gate(report) == 0  # no mutation report: the conformance report alone decides
    outcomes = [Outcome(TRIPLE, "scaled", 0, "killed"), Outcome(TRIPLE, "upstream_raw", 0, "survived", "planted reason")]
    below = mutate.report(outcomes, Policy(min_kill_rate=1.0), {})
    (tmp_path / "mutation.json").write_text(json.dumps(below))
    capsys.readouterr()
    assert gate.gate(report) == 1
    out = capsys.readouterr().out
    assert "mutation" in out and "kill rate 0.500 < min_kill_rate 1.0" in out and f"{TRIPLE}:upstream_raw:rule0" in out
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    met = mutate.report(outcomes, Policy(min_kill_rate=0.5), {})
    (elsewhere / "mutation.json").write_text(json.dumps(met))
    assert gate.gate(report, mutation=elsewhere / "mutation.json") == 0  # --mutation PATH: that report instead


def test_html_section_shows_kill_rates_and_survivors():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from conformance.html import TEMPLATES

    outcomes = [Outcome(TRIPLE, "scaled", 0, "killed", killed_by={"case_id": "c", "checks": ["backward"], "message": ""}),
                Outcome(TRIPLE, "upstream_raw", 0, "survived", "planted: no check sees it", cases_run=["c"]),
                Outcome("mutate_step", "dropped", 0, "equivalent", "zero by construction")]
    data = mutate.report(outcomes, Policy(), {"profile": "ci", "examples": 4, "ops": [TRIPLE], "max_mirrors": 2,
                                              "commit": "abc", "time": "now", "seconds": 1.0})
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    page = env.get_template("mutation.html").render(mutation=data)
    assert "50.0 %" in page and "planted: no check sees it" in page and "zero by construction" in page
    assert "<code>upstream_raw</code>" in page and 'id="mutation"' in page
    assert env.get_template("mutation.html").render(mutation=None).strip() == ""  # no report beside: no section
    assert '{% include "mutation.html" %}' in (TEMPLATES / "report.html").read_text()


def test_cli_on_a_tiny_op_set(tmp_path, capsys, core_checks):
    from conformance.cli import main

    _triple(gradgrad_upstream=False)
    toml = tmp_path / "tolerances.toml"
    toml.write_text("[mutation]\nmin_kill_rate = 1.0\n")
    args = ["mutate", "--ops", TRIPLE, "--kinds", "scaled,dropped", "--mirrors", TRIPLE, "--report-dir", str(tmp_path),
            "--tolerances", str(toml)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "kill rate 1.000 (threshold 1.0): PASS" in out
    data = json.loads((tmp_path / "mutation.json").read_text())
    assert data["run"]["ops"] == [TRIPLE] and data["summary"]["faults"] == 2
    assert main(args[:4] + ["upstream_raw"] + args[5:]) == 1  # a survivor: below the threshold
    assert "SURVIVED mutate_triple:upstream_raw:rule0" in capsys.readouterr().out
    assert main(["mutate", "--kinds", "no_such_kind", "--ops", TRIPLE, "--mirrors", TRIPLE, "--report-dir",
                 str(tmp_path)]) == 2


def test_rules_mutated_per_op():
    from neuronix.ops.registry import OPS

    assert mutate._rule_indices(OPS["where"]) == [1, 2, 3]  # the condition has no rule
    assert mutate._rule_indices(OPS["cat"]) == [0, 1]  # PerInput: the first two inputs of any number
    assert mutate._rule_indices(OPS["backward_hook_gate"]) == [0, 1]  # one generated rule per gated tensor


def test_ci_sample_is_deterministic_and_sized():
    ops = sorted(registry.OPS)
    first = mutate.sample_ops(ops, 24)
    assert first == mutate.sample_ops(list(reversed(ops)), 24) and len(first) == 24
    assert mutate.sample_ops(ops, None) == ops


def test_a_complex_twin_gets_rule_faults_but_no_forward_fault():
    # cos[complex] is recorded where complex values meet cos, but the forward that runs is cos's: a fault planted in
    # the twin's forward could never be observed, so it is not generated (its rules are, and mirrors witness them)
    found = mutate.faults(["cos[complex]", "cos"], ["forward", "scaled"], {})
    assert Fault("cos", "forward") in found and Fault("cos[complex]", "forward") not in found
    assert Fault("cos[complex]", "scaled", 0) in found
