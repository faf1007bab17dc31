"""Reruns of failing cases (``conformance.flaky``): each planted kind of failure gets its verdict.

Planted mirrors are registered for the test only (``monkeypatch.setitem``), since a rerun finds its
mirror by name in the registry, as a real report does.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx
from conformance import flaky, gate, report, runner
from conformance.coverage import Coverage
from conformance.mirror import REGISTRY, OpMirror, Sample
from conformance.strategies import tensor, unary
from conformance.tolerances import Tolerances
from tests.test_harness_report import _toml

OPTS = {"dtypes": ["float64"], "devices": ["cpu"], "profile": "ci", "examples": 2, "tolerances": None}


def _opts(tmp_path) -> dict:
    return {**OPTS, "tolerances": str(_toml(tmp_path, ""))}


def _run(mirror, opts):
    """The case as the run saw it: its records."""
    return runner.run_case(mirror, "float64", "cpu", opts["profile"], Tolerances.load(opts["tolerances"]),
                           opts["examples"]).records


def _plant(monkeypatch, mirror):
    monkeypatch.setitem(REGISTRY, mirror.name, mirror)
    return mirror


def _exp_wrong_when(wrong):
    """``exp`` whose neuronix side is off by 1% whenever ``wrong(x)`` says so."""
    def nx_exp(x):
        y = nx.exp(x)
        return y * 1.01 if wrong(x) else y

    return nx_exp


def test_a_deterministic_failure_reproduces(tmp_path, monkeypatch):
    opts = _opts(tmp_path)
    mirror = _plant(monkeypatch, OpMirror("planted.flaky_always", _exp_wrong_when(lambda x: True), torch.exp, unary(),
                                          dtypes=(torch.float64,)))
    records = _run(mirror, opts)
    seed = records[0].seed
    got = flaky.rerun_failures(records, opts)["planted.flaky_always|float64|cpu"]
    assert got["verdict"] == "reproduces"
    assert got["same_seed"]["seed"] == seed and got["same_seed"]["status"] == "fail"
    assert "forward" in got["same_seed"]["checks"]
    assert [r["seed"] for r in got["fresh"]] == flaky.fresh_seeds(seed) and len(got["fresh"]) == flaky.FRESH_SEEDS
    assert all(r["status"] == "fail" for r in got["fresh"])
    assert got["text"].startswith(f"reproduces: fails again with its seed {seed} (")
    assert "3 of 3 fresh seeds" in got["text"]


def test_a_failure_of_the_minimal_example_alone_says_so(tmp_path, monkeypatch):
    """Every seed starts with Hypothesis's minimal example: failing only there is one input, on every seed."""
    opts = _opts(tmp_path)
    mirror = _plant(monkeypatch, OpMirror("planted.flaky_minimal", _exp_wrong_when(lambda x: runner.current_example() == 0),
                                          torch.exp, unary(), dtypes=(torch.float64,)))
    got = flaky.rerun_failures(_run(mirror, opts), opts)["planted.flaky_minimal|float64|cpu"]
    assert got["verdict"] == "reproduces" and all(r["examples"] == [0] for r in got["fresh"])
    assert got["text"].endswith("(only at example 0, the minimal example every seed starts with)")
    always = _plant(monkeypatch, OpMirror("planted.flaky_every", _exp_wrong_when(lambda x: True), torch.exp, unary(),
                                          dtypes=(torch.float64,)))
    got = flaky.rerun_failures(_run(always, opts), opts)["planted.flaky_every|float64|cpu"]
    assert got["fresh"][0]["examples"] == [0, 1] and "minimal example" not in got["text"]


def test_fresh_seeds_are_derived_from_the_case_seed_alone():
    assert flaky.fresh_seeds(123) == flaky.fresh_seeds(123)
    assert len(set(flaky.fresh_seeds(123) + flaky.fresh_seeds(124))) == 2 * flaky.FRESH_SEEDS
    assert 123 not in flaky.fresh_seeds(123)


def test_a_failure_of_the_seed_s_own_inputs_is_seed_specific(tmp_path, monkeypatch):
    """Neuronix is wrong exactly on the inputs the case's own seed draws: a probe run records them.

    Example 0 is left out: Hypothesis starts every seed with its minimal example (the same inputs for
    every seed), so a failure there fails on every fresh seed too."""
    opts = _opts(tmp_path)
    seen: set[bytes] = set()
    probing = [True]

    def fingerprint(x) -> bytes:
        return x.detach().double().contiguous().numpy().tobytes() + bytes(str(tuple(x.shape)), "ascii")

    def sample(draw, dtype, device):
        x = tensor(draw, (3, 4), dtype, device)
        if probing[0] and runner.current_example() > 0:
            seen.add(fingerprint(x))
        return Sample((x,), {"bad": not probing[0] and fingerprint(x) in seen})

    def nx_exp(x, bad=False):
        return nx.exp(x) * 1.01 if bad else nx.exp(x)

    mirror = _plant(monkeypatch, OpMirror("planted.flaky_seed", nx_exp, lambda x, bad=False: torch.exp(x), sample,
                                          dtypes=(torch.float64,), grad=False, gradgrad=False, fd=False))
    assert all(r.status == "pass" for r in _run(mirror, opts))  # the probe: correct everywhere
    probing[0] = False
    records = _run(mirror, opts)
    assert any(r.check == "forward" and r.status == "fail" for r in records)
    got = flaky.rerun_failures(records, opts)["planted.flaky_seed|float64|cpu"]
    assert got["verdict"] == "seed-specific", got["text"]
    assert got["same_seed"]["status"] == "fail" and all(r["status"] == "pass" for r in got["fresh"])
    assert "but passes on all 3 fresh seeds" in got["text"]


def test_a_failure_on_the_first_call_only_does_not_reproduce(tmp_path, monkeypatch):
    opts = _opts(tmp_path)
    calls = [0]

    def first_call_only(x):
        calls[0] += 1
        return calls[0] == 1

    mirror = _plant(monkeypatch, OpMirror("planted.flaky_once", _exp_wrong_when(first_call_only), torch.exp, unary(),
                                          dtypes=(torch.float64,)))
    records = _run(mirror, opts)
    assert any(r.status == "fail" for r in records)
    got = flaky.rerun_failures(records, opts)["planted.flaky_once|float64|cpu"]
    assert got["verdict"] == "does not reproduce"
    assert got["same_seed"] == {"seed": records[0].seed, "status": "pass", "checks": [], "examples": []}
    assert got["text"].startswith(f"does not reproduce: rerun with its own seed {records[0].seed}")
    assert "nondeterministic and should not be trusted" in got["text"]


def test_a_leak_is_rerun_under_the_leak_check(tmp_path, monkeypatch):
    opts = _opts(tmp_path)
    kept = []

    def leaky_exp(x):
        y = nx.exp(x)
        kept.append(y)  # keeps the graph alive past the example: the leak check fails the case
        return y

    mirror = _plant(monkeypatch, OpMirror("planted.flaky_leak", leaky_exp, torch.exp, unary(), dtypes=(torch.float64,),
                                          gradgrad=False, fd=False))
    records = _run(mirror, opts)
    assert [r.check for r in records if r.status != "pass"] == ["leak"]
    got = flaky.rerun_failures(records, opts)["planted.flaky_leak|float64|cpu"]
    assert got["verdict"] == "reproduces" and got["same_seed"]["checks"] == ["leak"]


def test_the_cap_the_budget_and_unrerunnable_cases_are_said_not_rerun(tmp_path, monkeypatch):
    opts = _opts(tmp_path)
    wrong = _exp_wrong_when(lambda x: True)
    a = _plant(monkeypatch, OpMirror("planted.flaky_a", wrong, torch.exp, unary(), dtypes=(torch.float64,)))
    b = _plant(monkeypatch, OpMirror("planted.flaky_b", wrong, torch.exp, unary(), dtypes=(torch.float64,)))
    records = _run(a, opts) + _run(b, opts)
    capped = flaky.rerun_failures(records, opts, max_cases=1)
    assert capped["planted.flaky_a|float64|cpu"]["verdict"] == "reproduces"
    assert capped["planted.flaky_b|float64|cpu"] == {
        "verdict": "not rerun", "text": "not rerun: only the first 1 of the run's 2 failing cases are rerun"}
    spent = flaky.rerun_failures(records, opts, budget=0.0)
    assert {v["verdict"] for v in spent.values()} == {"not rerun"}
    assert "of the report's 0 s rerun budget were left" in spent["planted.flaky_a|float64|cpu"]["text"]
    # a budget for the seed and one fresh seed: the verdict rests on fewer fresh seeds, and says so
    seconds = records[0].seconds
    tight = flaky.rerun_failures([r for r in records if r.entry == "planted.flaky_a"], opts,
                                 budget=2.5 * max(seconds, 1e-3))
    assert len(tight["planted.flaky_a|float64|cpu"]["fresh"]) == 1
    # a mirror no longer registered (planted by a test and gone) is skipped with a reason, not an exception
    monkeypatch.delitem(REGISTRY, "planted.flaky_b")
    gone = flaky.rerun_failures([r for r in records if r.entry == "planted.flaky_b"], opts)
    assert "not in the mirror registry" in gone["planted.flaky_b|float64|cpu"]["text"]


def test_a_crashed_worker_s_case_and_a_raising_rerun_never_fail_the_report(tmp_path, monkeypatch):
    opts = _opts(tmp_path)
    mirror = _plant(monkeypatch, OpMirror("planted.flaky_raise", _exp_wrong_when(lambda x: True), torch.exp, unary(),
                                          dtypes=(torch.float64,)))
    records = _run(mirror, opts)
    # the error record ``plugin._lost_cases`` writes for a case whose worker died
    crashed = [type(r).from_dict({**r.as_dict(), "message": f"{flaky.CRASHED}: its worker crashed"}) for r in records]
    got = flaky.rerun_failures(crashed, opts)["planted.flaky_raise|float64|cpu"]
    assert got["verdict"] == "not rerun" and "worker crashed" in got["text"]

    if not torch.cuda.is_available():  # a report written on another machine than its cases ran on
        on_cuda = [type(r).from_dict({**r.as_dict(), "case_id": "planted.flaky_raise|float64|cuda", "device": "cuda"})
                   for r in records]
        got = flaky.rerun_failures(on_cuda, opts)["planted.flaky_raise|float64|cuda"]
        assert got["text"] == "not rerun: device 'cuda' is not available in the process writing the report"

    def boom(*args, **kwargs):
        raise RuntimeError("inconsistent data generation")

    monkeypatch.setattr(runner, "run_case", boom)
    got = flaky.rerun_failures(records, opts)["planted.flaky_raise|float64|cpu"]
    assert got == {"verdict": "not rerun",
                   "text": "not rerun: the rerun raised RuntimeError: inconsistent data generation"}


def test_a_report_carries_the_reruns_and_the_gate_prints_them(tmp_path, monkeypatch, capsys):
    import conformance.shrink

    monkeypatch.setattr(conformance.shrink, "report_snippets", lambda records, opts: {})  # not this test's cost
    opts = _opts(tmp_path)
    mirror = _plant(monkeypatch, OpMirror("planted.flaky_gate", _exp_wrong_when(lambda x: True), torch.exp, unary(),
                                          dtypes=(torch.float64,)))
    clean = OpMirror("planted.flaky_clean", nx.exp, torch.exp, unary(), dtypes=(torch.float64,))
    records = _run(mirror, opts) + _run(clean, opts)
    cov = Coverage(["exp"], ["exp"], [], {}, [])
    data = report.build(records, opts, coverage=cov, names=("planted.flaky_gate", "planted.flaky_clean"))
    assert set(data["reruns"]) == {"planted.flaky_gate|float64|cpu"}  # failing cases only
    text = data["reruns"]["planted.flaky_gate|float64|cpu"]["text"]
    assert text.startswith("reproduces: ")
    path = report.write_json(data, tmp_path / "conformance.json")  # plain JSON: no NaN, no objects
    assert gate.gate(path) == 1
    out = capsys.readouterr().out
    assert f"rerun: {text}" in out
    # once per failing case, under its first failing check, not once per check
    assert sum(r["status"] != "pass" and r["check"] != "leak" for r in data["records"]) > 1
    assert out.count("rerun: ") == 1


@pytest.mark.parametrize("verdict", ["reproduces", "seed-specific", "does not reproduce"])
def test_each_verdict_is_one_sentence(verdict):
    same = {"seed": 7, "status": "pass" if verdict == "does not reproduce" else "fail", "checks": ["backward"]}
    again = [{"seed": s, "status": "fail" if verdict == "reproduces" and s == 9 else "pass", "checks": []}
             for s in (9, 10, 11)]
    assert flaky._verdict(same, again) == verdict
    text = flaky._text(verdict, same, again)
    assert text.startswith(verdict + ": ") and "\n" not in text and "(9, 10, 11)" in text


def test_the_gate_gives_a_leaking_case_its_rerun_verdict_too():
    from conformance.report import SCHEMA

    leak = {"case_id": "planted.leaky|float64|cpu", "entry": "planted.leaky", "check": "leak", "status": "fail",
            "message": "example 0: 1 graph node alive", "repro": "python -m conformance repro 'planted.leaky|float64|cpu'"}
    data = {"schema": SCHEMA, "records": [leak], "coverage": {"missing": []}, "overrides": [],
            "run": {"filtered": True, "torch": "x", "shard": None},
            "reruns": {leak["case_id"]: {"verdict": "reproduces", "text": "reproduces: leaks again with its seed 1"}}}
    sections = dict(gate.problems(data))
    assert sections["leaks"] == [f"{leak['case_id']}: {leak['message']}\n      {leak['repro']}"
                                 "\n      rerun: reproduces: leaks again with its seed 1"]
