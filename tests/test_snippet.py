"""Minimal repros: snippets reproduce a planted failure standalone, shrinking finds the smallest failing
example, and the snippets of every call form (function, method, in-place, operator, functional,
module, torch-only) are Python that runs."""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys

import pytest
import torch

import conformance.mirrors  # noqa: F401  (the registry the snippets name)
import neuronix as nx
from conformance import html, report
from conformance.coverage import Coverage
from conformance.mirror import REGISTRY, OpMirror
from conformance.runner import run_case
from conformance.shrink import replay, report_snippets, shrink, size
from conformance.snippet import call_form, snippet, snippet_for, tensor_expr
from conformance.strategies import unary
from neuronix.ops import registry
from neuronix.ops.registry import apply, defop

LINE = re.compile(r"^(.+?)\s+max \|(.+?)\| = (\S+)$", re.M)


def differences(text: str) -> dict[str, float]:
    """``{quantity: max difference}`` from a snippet's printout."""
    return {m.group(1).strip(): float(m.group(3)) for m in LINE.finditer(text)}


def execute(source: str) -> str:
    """Run a snippet in this process (planted ops and mirrors exist only here); its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<snippet>", "exec"), {"__name__": "__main__"})
    return out.getvalue()


@pytest.fixture
def planted():
    """Register planted ops and mirrors (as a run would see them); removed afterwards."""
    ops, mirrors = [], []

    def plant(name, forward, vjp, mirror_sample=None, torch_fn=None):
        registry.OPS.pop(name, None)
        spec = defop(name, forward, vjp, saves=())
        ops.append(name)
        mirror = OpMirror(f"planted.{name}", lambda x: apply(spec, x), torch_fn or (lambda x: x * 3),
                          mirror_sample or unary())
        REGISTRY[mirror.name] = mirror
        mirrors.append(mirror.name)
        return mirror

    yield plant
    for name in ops:
        registry.OPS.pop(name, None)
    for name in mirrors:
        REGISTRY.pop(name, None)


# ----- exact literals ---------------------------------------------------------------------------
def test_tensor_literals_rebuild_values_dtype_and_strides_exactly():
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    base[0, :4] = torch.tensor([math.nan, math.inf, -math.inf, -0.0], dtype=torch.float64)
    cases = [base, base.float(), base.half(), base.bfloat16(), torch.complex(base, base.mT.reshape(4, 6)), base.mT,
             base[..., ::2], base[:, :1].expand(4, 5), torch.tensor(1.5), torch.empty(0, 3), torch.tensor([[1, 2]]),
             torch.tensor([True, False])]
    for t in cases:
        back = eval(tensor_expr(t), {"torch": torch, "DEVICE": "cpu", "inf": math.inf, "nan": math.nan})
        assert back.dtype == t.dtype and back.shape == t.shape and back.stride() == t.stride(), tensor_expr(t)
        assert torch.equal(back.nan_to_num(7.0), t.nan_to_num(7.0)) and torch.equal(back.isnan(), t.isnan())
        if t.is_floating_point():
            assert torch.equal(back.signbit() & ~t.isnan(), t.signbit() & ~t.isnan())  # -0.0 kept (a NaN's sign is not)


# ----- a planted fault, reproduced standalone -----------------------------------------------------
def test_snippet_of_a_planted_failure_shows_the_harness_difference(planted):
    planted("snip_scaled", lambda x: x * 3, lambda g, out, x: g * (3 * (1 + 1e-5)))
    case = run_case(REGISTRY["planted.snip_scaled"], "float64", "cpu", examples=2)
    harness = next(j for j in case.examples[1].judged if j.what == "grad arg 0")
    assert not harness.ok
    text = snippet("planted.snip_scaled|float64|cpu", 1, examples=2)
    assert "REGISTRY['planted.snip_scaled']" in text and "not a plain public name" in text
    printed = differences(execute(text))
    assert printed["output 0"] == 0.0
    # the same values and the same upstream gradient as the run: the very difference it measured
    assert printed["grad arg 0"] == pytest.approx(harness.max_abs, rel=1e-3)
    assert printed["grad arg 0"] > 0


def test_snippet_of_a_planted_rule_in_a_public_op_calls_it_by_name(monkeypatch):
    monkeypatch.setattr(registry.OPS["exp"], "vjps", (lambda g, out, x: g * out * (1 + 1e-4),))
    text = snippet("exp|float64|cpu", 1)
    assert "return torch.exp(x0)" in text and "return nx.exp(x0)" in text and "REGISTRY" not in text
    printed = differences(execute(text))
    assert printed["output 0"] == 0.0 and printed["grad arg 0"] > 1e-6
    monkeypatch.undo()
    assert differences(execute(text))["grad arg 0"] == 0.0  # the correct rule: no difference


def test_module_snippet_reproduces_the_harness_difference_in_each_mode(monkeypatch):
    spec = registry.OPS["tanh"]
    monkeypatch.setattr(spec, "vjps", (lambda g, out, x: g * (1 - out * out) * (1 + 1e-5),))
    monkeypatch.setattr(spec, "fused", None)  # the planted rule alone computes the gradient
    case = run_case(REGISTRY["nn.Tanh"], "float64", "cpu", examples=3)
    measured = {j.what: j.max_abs for j in case.examples[2].judged}
    text = snippet("nn.Tanh|float64|cpu", 2, examples=3)
    assert "torch.nn.Tanh()" in text and "nx.nn.Tanh()" in text
    printed = differences(execute(text))
    for mode in ("train", "eval"):  # the same weights, seeds and upstream gradients as the run, mode after mode
        assert printed[f"{mode} grad arg 0"] == pytest.approx(measured[f"{mode} grad arg 0"], rel=1e-3)  # printed to 4 digits
        assert printed[f"{mode} grad arg 0"] > 0 and printed[f"{mode} output 0"] == 0.0


def test_a_fault_only_in_the_upstream_dependence_shows_in_the_snippet(planted):
    # right to first order, but under create_graph it reads the raw upstream value: no dependence recorded
    def rule(g, out, x):
        return nx.Tensor(g.data) * 3 if isinstance(g, nx.Tensor) else g * 3

    planted("snip_upstream", lambda x: x * 3, rule)
    printed = differences(execute(snippet("planted.snip_upstream|float64|cpu")))  # the worst example
    assert printed["output 0"] == printed["grad arg 0"] == printed["grad of <grad, v> wrt arg 0"] == 0.0
    assert printed["grad of <grad, v> wrt upstream gradient 0"] > 1e-3


# ----- shrinking ------------------------------------------------------------------------------------
def test_shrinking_a_failure_of_tensors_with_three_elements_or_more_yields_three_elements(planted):
    def rule(g, out, x):
        return g * (3 * (1 + 1e-3) if g.numel() >= 3 else 3)

    planted("snip_three", lambda x: x * 3, rule)
    found = shrink("planted.snip_three|float64|cpu", examples=20, seconds=60, check="backward")
    assert found is not None and found.check == "backward" and not found.capped
    assert size(found.drawn)[0] == 3, found.drawn.sample
    assert found.drawn.sample.args[0].is_contiguous()
    printed = differences(execute(found.snippet))
    assert printed["grad arg 0"] > 1e-4 and printed["output 0"] == 0.0
    assert "shrinking example" in found.snippet


def test_shrink_of_a_passing_check_finds_nothing():
    assert shrink("exp|float64|cpu", examples=3, seconds=10, check="backward") is None


def test_replay_gives_the_runners_example():
    mirror = REGISTRY["Tensor.add"]
    case = run_case(mirror, "float32", "cpu", examples=3)
    drawn, result = replay("Tensor.add|float32|cpu", 2, examples=3)
    ran = case.examples[2]
    assert (result.seed, result.info) == (ran.seed, ran.info)
    assert [(j.what, j.max_abs) for j in result.judged] == [(j.what, j.max_abs) for j in ran.judged]
    assert drawn.sample is not None and len(drawn.sample.args) == 2


# ----- every call form is valid, runnable Python ------------------------------------------------------
FORMS = {"exp|float64|cpu": ("function", "torch.exp("), "Tensor.add|float32|cpu": ("method", "x0.add("),
         "Tensor.add_|float64|cpu": ("in_place", "target.add_("),
         "Tensor.__mul__|float64|cpu": ("operator", "operator.mul("),
         "nn.functional.relu|float64|cpu": ("functional", "torch.nn.functional.relu("),
         "nn.Linear|float32|cpu": ("module", "torch.nn.Linear(")}


def test_snippets_of_each_call_form_run_standalone(tmp_path):
    paths = []
    for cid, (kind, call) in FORMS.items():
        name = cid.split("|")[0]
        assert call_form(REGISTRY[name])[0] == kind
        for torch_only in (False, True):
            text = snippet(cid, 0, torch_only=torch_only)
            assert call in text and "REGISTRY" not in text
            path = tmp_path / f"snippet_{len(paths)}.py"
            path.write_text(text)
            paths.append((cid, torch_only, path))
    # one interpreter runs them all, each as its own __main__ (torch and neuronix import once)
    runner = "import runpy, sys\nfor p in sys.argv[1:]:\n    print('=== ' + p)\n    runpy.run_path(p, run_name='__main__')\n"
    done = subprocess.run([sys.executable, "-c", runner, *[str(p) for _, _, p in paths]], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = done.stdout.split("=== ")[1:]
    assert len(outputs) == len(paths)
    for (cid, torch_only, _), out in zip(paths, outputs):
        printed = differences(out)
        assert printed, (cid, out)
        if torch_only:
            assert "torch autograd - finite difference" in out and max(printed.values()) < 1e-6, (cid, out)
        else:
            assert max(printed.values()) == 0.0, (cid, out)


def test_torch_only_snippet_shows_a_torch_defect_against_finite_differences(planted):
    class WrongExp(torch.autograd.Function):  # a planted torch defect: backward 1% off
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * out * 1.01

    mirror = OpMirror("planted.torch_defect", nx.exp, WrongExp.apply, unary(), gradgrad=False)
    REGISTRY[mirror.name] = mirror
    try:
        case = run_case(mirror, "float64", "cpu", examples=2)
        drawn, _ = replay(case.case_id, 1, examples=2)
        text = snippet_for(mirror, drawn.sample, torch.float64, "cpu", torch_only=True, drawn=drawn)
        out = execute(text)
    finally:
        REGISTRY.pop(mirror.name)
    assert "import neuronix" not in text
    assert differences(out)["grad arg 0"] > 1e-4  # torch against finite differences: the defect shows


# ----- the report -------------------------------------------------------------------------------------
def test_report_gives_failing_cases_a_shrunk_snippet(planted):
    planted("snip_report", lambda x: x * 3, lambda g, out, x: g * (3 * (1 + 1e-5)))
    records = [r for dt in ("float64",) for m in (REGISTRY["planted.snip_report"], REGISTRY["exp"])
               for r in run_case(m, dt, "cpu", examples=2).records]
    opts = {"dtypes": ["float64"], "devices": ["cpu"], "profile": "ci", "examples": 2, "tolerances": None}
    data = report.build(records, opts, coverage=Coverage(["exp"], ["exp"], [], {}, []))
    failing = {r.case_id for r in records if r.status != "pass"}
    assert "planted.snip_report|float64|cpu" in data["snippets"] and set(data["snippets"]) <= failing
    entry = data["snippets"]["planted.snip_report|float64|cpu"]
    assert entry["check"] == "backward" and "def nx_f(x0):" in entry["snippet"]
    assert differences(execute(entry["snippet"]))["grad arg 0"] > 0
    page = html.render(data)
    assert "minimal repro" in page and "def nx_f(x0):" in page


def test_report_snippets_skip_entries_outside_the_registry():
    case = run_case(OpMirror("planted.unregistered", lambda x: nx.exp(x) * 1.001, torch.exp, unary()), "float64",
                    "cpu", examples=1)
    assert case.failed and report_snippets(case.records, {}) == {}


def test_report_snippets_skip_a_case_whose_worker_crashed(monkeypatch):
    import dataclasses

    from conformance.flaky import CRASHED

    crashy = OpMirror("planted.crashed", lambda x: nx.exp(x) * 1.001, torch.exp, unary())
    monkeypatch.setitem(REGISTRY, crashy.name, crashy)
    records = run_case(crashy, "float64", "cpu", examples=1).records
    assert set(report_snippets(records, {})) == {"planted.crashed|float64|cpu"}  # registered: it gets a script
    # as plugin._lost_cases records a crashed worker's case: replaying it in the report's process could crash it too
    lost = [dataclasses.replace(r, message=f"example 0: {CRASHED}: its pytest-xdist worker crashed")
            if r.status != "pass" else r for r in records]
    assert report_snippets(lost, {}) == {}


# ----- the command line ---------------------------------------------------------------------------------
def test_repro_prints_the_snippet_and_the_shrunk_snippet(planted, capsys):
    from conformance.cli import main

    planted("snip_cli", lambda x: x * 3, lambda g, out, x: g * (3 * (1 + 1e-5)))
    assert main(["repro", "planted.snip_cli|float64|cpu", "--examples", "2", "--snippet"]) == 1
    text = capsys.readouterr().out
    script = text[text.index("# Standalone repro"):]
    assert "--example " in script and differences(execute(script))["grad arg 0"] > 0
    assert main(["repro", "planted.snip_cli|float64|cpu", "--examples", "2", "--shrink", "--seconds", "20"]) == 1
    text = capsys.readouterr().out
    assert "the smallest failing example Hypothesis found" in text and "def nx_f(x0):" in text


def test_report_scripts_a_check_the_script_does_not_redo_without_shrinking(planted):
    import dataclasses

    planted("snip_other", lambda x: x * 3, lambda g, out, x: g * (3 * (1 + 1e-5)))
    records = run_case(REGISTRY["planted.snip_other"], "float64", "cpu", examples=2).records
    # as if a check that draws its own inputs (variants, special values) had failed: no shrink, the worst example
    relabelled = [dataclasses.replace(r, check="variant") if r.status != "pass" else r for r in records]
    entry = report_snippets(relabelled, {"examples": 2})["planted.snip_other|float64|cpu"]
    assert entry["shrunk"] is False and entry["check"] == "variant" and "--example" in entry["snippet"]
    assert "a check this script does not redo" not in entry["snippet"]  # its example fails backward, redone
