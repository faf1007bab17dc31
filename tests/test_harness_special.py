"""Special values and failure labels: each planted fault is caught and labelled as what it is.

Kinks and NaN through masks hide from the smooth draws and show in ``special_values``; a scaled
rule is a wrong value, a float32-only rounding difference is precision, a fault that does not
replay is nondeterministic, and a torch twin with a wrong gradient is a suspected torch defect,
which passes only once recorded in ``[[torch_defect]]``. Each test also runs the correct twin.
"""

from __future__ import annotations

import copy

import pytest
import torch
from planting import plant as _op
from planting import torch_times_three

from conformance import classify
from conformance.mirror import OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor
from conformance.tolerances import Tolerances, load
from neuronix.ops.elementwise import masked, where
from neuronix.ops.registry import apply


def _grid(draw, dtype, device):
    """20 elements: one example's rotation holds every special point."""
    return Sample((tensor(draw, (5, 4), dtype, device),))


def run(mirror, dtype="float64", tolerances=None, examples=3):
    return run_case(mirror, dtype, "cpu", examples=examples, tolerances=tolerances)


def record(case, check):
    return next(r for r in case.records if r.check == check)


def failing(case) -> dict:
    """Failing check -> label; leaks (an engineering matter of the checks, not of the planted op) aside."""
    return {r.check: r.label for r in case.records if r.status != "pass" and r.check != "leak"}


def smooth_pass(case) -> bool:
    return all(record(case, c).status == "pass" for c in classify.SMOOTH_CHECKS)


# ----- kinks and masks: only the special values see them -------------------------------------------
def _relu_mirror(rule) -> OpMirror:
    """relu; as torch's, the exact rules read the output (the kink rule needs the input)."""
    saves = dict(saves=(0,)) if rule is subgradient_one_at_zero else dict(saves=(), saves_out=True)
    spec = _op(f"planted_relu_{rule.__name__}", lambda x: x.clamp_min(0), rule, **saves)
    return OpMirror("planted.relu", lambda x: apply(spec, x), torch.relu, _grid)


def exact(g, out, x):
    return masked(g, ~(out.data <= 0), anchor=out)  # neuronix's relu rule: in the graph through out, as torch's


def subgradient_one_at_zero(g, out, x):
    return where(x.data < 0, 0.0, g)  # slope 1 at 0, where torch's is 0


def masked_by_multiplying(g, out, x):
    return g * (~(out.data <= 0)).to(out.data.dtype) + out * 0  # inf * 0 = NaN where torch's mask gives 0


def test_a_rule_wrong_only_at_the_kink_is_caught_by_special_values_and_labelled_a_kink():
    case = run(_relu_mirror(subgradient_one_at_zero))
    assert smooth_pass(case) and record(case, "special_values").label == classify.KINK, case.failure_message()
    assert "special points" in record(case, "special_values").message


def test_nan_through_a_mask_under_an_infinite_upstream_gradient_is_caught_by_special_values():
    case = run(_relu_mirror(masked_by_multiplying))
    special = record(case, "special_values")
    assert special.status == "fail" and "NaN at different positions" in special.message
    assert smooth_pass(case)  # the smooth checks cannot see it


def test_the_exact_relu_rule_passes_special_values():
    case = run(_relu_mirror(exact))
    special = record(case, "special_values")
    assert smooth_pass(case) and special.status == "pass" and special.comparisons > 0, case.failure_message()


# ----- wrong value and precision -------------------------------------------------------------------
def _scaled_mirror(factor32: float, factor64: float) -> OpMirror:
    def rule(g, out, x):
        return g * (3 * (factor32 if g.dtype == torch.float32 else factor64))

    spec = _op(f"planted_scaled_{factor32}_{factor64}", lambda x: x * 3, rule, saves=())
    return OpMirror("planted.scaled", lambda x: apply(spec, x), lambda x: x * 3, _grid, gradgrad=False)


def test_a_scaled_rule_is_a_wrong_value():
    case = run(_scaled_mirror(1.5, 1.5))
    assert failing(case)["backward"] == classify.WRONG


def test_a_tiny_float32_only_difference_is_precision():
    case = run(_scaled_mirror(1 + 3e-6, 1.0), "float32")
    backward = record(case, "backward")
    assert backward.status == "fail" and backward.label == classify.PRECISION, backward.message
    assert "float64 case passes" in backward.message
    assert not failing(run(_scaled_mirror(1 + 3e-6, 1.0)))  # float64 itself is right


def test_a_large_float32_only_difference_is_not_precision():
    case = run(_scaled_mirror(1 + 1e-3, 1.0), "float32")
    assert record(case, "backward").label == classify.WRONG


# ----- nondeterministic ----------------------------------------------------------------------------
def test_a_fault_that_does_not_replay_is_nondeterministic():
    calls = [0]

    def flaky(x):
        calls[0] += 1
        out = x * 3
        return out + 1e-3 if calls[0] == 1 else out  # the first call of the run is off, never again

    case = run(OpMirror("planted.flaky", flaky, lambda x: x * 3, _grid, gradgrad=False))
    labels = set(failing(case).values())
    assert labels == {classify.FLAKY}, case.failure_message()
    assert "does not reproduce" in next(r for r in case.records if r.status != "pass").message


# ----- torch as the odd one out --------------------------------------------------------------------
def _torch_defect_mirror() -> OpMirror:
    spec = _op("planted_times_three", lambda x: x * 3, lambda g, out, x: g * 3, saves=())
    return OpMirror("planted.torchbug", lambda x: apply(spec, x), torch_times_three(2), _grid,
                    gradgrad=False)


def _with_defect(**defect) -> Tolerances:
    data = {"defaults": {k: dict(v) for k, v in _raw_defaults().items()}, "torch_defect": [defect]}
    return Tolerances(data)


def _raw_defaults() -> dict:
    tol = load()
    out = {dt: {"rtol": r, "atol": a} for dt, (r, a) in tol.defaults["*"].items()}
    for check, per in tol.defaults.items():
        if check != "*":
            out[check] = {dt: {"rtol": r, "atol": a} for dt, (r, a) in per.items()}
    return copy.deepcopy(out)


def test_a_wrong_torch_gradient_is_a_suspected_torch_defect_with_a_torch_only_snippet():
    case = run(_torch_defect_mirror())
    backward = record(case, "backward")
    assert backward.status == "fail" and backward.label == classify.TORCH, backward.message
    assert record(case, "finite_difference").status == "pass"  # neuronix agrees with finite differences
    assert "finite differences" in backward.message and "import torch" in backward.message


def test_a_recorded_torch_defect_passes_and_an_unrecorded_one_fails():
    recorded = _with_defect(op="planted.torchbug", check="*", torch=torch.__version__.split("+")[0] + "*",
                            reason="planted: torch's backward of the twin is 2g")
    case = run(_torch_defect_mirror(), tolerances=recorded)
    assert not failing(case), case.failure_message()
    assert {r.label for r in case.records if r.label} == {classify.RECORDED}
    other_version = _with_defect(op="planted.torchbug", check="*", torch="0.1.*", reason="another torch")
    assert failing(run(_torch_defect_mirror(), tolerances=other_version))


def test_a_recorded_torch_defect_on_an_honest_op_is_not_used():
    """Recording never loosens: a real neuronix bug under a recorded name still fails."""
    recorded = _with_defect(op="planted.scaled", check="*", torch="*", reason="wrongly recorded")
    case = run(_scaled_mirror(1.5, 1.5), tolerances=recorded)
    assert failing(case)["backward"] == classify.WRONG


def test_a_recorded_torch_defect_that_no_longer_reproduces_is_stale():
    tol = _with_defect(op="planted.torchbug", check="backward", torch="*", reason="fixed upstream since")
    data = {"run": {"torch": torch.__version__, "filtered": False},
            "records": [{"entry": "planted.torchbug", "check": "backward", "label": "", "status": "pass"}]}
    assert len(classify.stale_torch_defects(data, tol)) == 1
    data["records"][0]["label"] = classify.RECORDED
    assert classify.stale_torch_defects(data, tol) == []


def test_the_gate_names_the_label_of_each_failure_and_stale_recorded_defects(tmp_path):
    from conformance.gate import problems
    from conformance.report import SCHEMA

    toml = tmp_path / "tolerances.toml"
    toml.write_text('[defaults]\nfloat32 = { rtol = 1e-6, atol = 1e-6 }\nfloat64 = { rtol = 1e-7, atol = 1e-12 }\n'
                    '[[torch_defect]]\nop = "planted.gone"\ncheck = "backward"\ntorch = "*"\nreason = "fixed upstream"\n')
    failed = {"case_id": "planted.relu|float64|cpu", "entry": "planted.relu", "check": "special_values", "status": "fail",
              "message": "grad differs", "repro": "python -m conformance repro 'planted.relu|float64|cpu'",
              "label": classify.KINK}
    data = {"schema": SCHEMA, "records": [failed], "coverage": {"missing": []}, "overrides": [],
            "run": {"torch": torch.__version__, "filtered": False, "tolerances": str(toml)}}
    found = dict(problems(data))
    assert f"({classify.KINK})" in found["failed checks"][0]
    assert "torch_defect[0] op=planted.gone" in found["recorded torch defects"][0]


# ----- a real one: torch 2.13's CPU eval-mode batch_norm backward with a strided weight ------------
def _strided_weight_batch_norm(draw, dtype, device):
    wide = tensor(draw, (6,), dtype, device, contiguous=True)
    kwargs = {"training": False, "running_mean": tensor(draw, (3,), dtype, device, contiguous=True),
              "running_var": tensor(draw, (3,), dtype, device, contiguous=True).abs() + 0.5}
    return Sample((tensor(draw, (4, 3), dtype, device, contiguous=True), wide[::2]), kwargs)


def _torch_shows_the_batch_norm_defect() -> bool:
    x, w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True), torch.randn(6, dtype=torch.float64)[::2]
    y = torch.nn.functional.batch_norm(x, torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
                                       w.detach().requires_grad_(), training=False)
    u = torch.randn_like(y)
    (g,) = torch.autograd.grad(y, x, u)
    return not torch.allclose(g, u * w / (1 + 1e-5) ** 0.5)


def test_torchs_eval_batch_norm_defect_is_classified_as_a_suspected_torch_defect():
    if not _torch_shows_the_batch_norm_defect():
        pytest.skip(f"torch {torch.__version__} computes this gradient right")
    import neuronix.nn.functional as F

    def call(lib):
        return lambda x, w, running_mean, running_var, **kw: lib.batch_norm(x, running_mean, running_var, w, **kw)

    mirror = OpMirror("planted.batch_norm_strided_weight", call(F), call(torch.nn.functional),
                      _strided_weight_batch_norm, gradgrad=False)
    backward = record(run(mirror, examples=2), "backward")
    assert backward.status == "fail" and backward.label == classify.TORCH, backward.message
    assert "neuronix forward mode" in backward.message and "torch.nn.functional" in backward.message or \
        "import torch" in backward.message  # the torch-only snippet


def test_a_mirror_without_tie_gradients_skips_only_the_checks_that_make_ties():
    """Planted: the largest element by sorting (the gradient goes to one tied maximum) against torch.amax (split among
    the ties). They agree on the drawn tie-free samples; the special-value draw and stride-0 inputs make ties, and
    there they differ: caught with the claim, skipped without it (OpMirror.tie_gradients), the rest still checked."""
    import neuronix as nx

    def sample(draw, dtype, device):
        x = tensor(draw, (6,), dtype, device)
        return Sample((x + torch.arange(6, dtype=dtype) * 10,))  # distinct values: no ties in the draw itself

    def largest(x):
        return nx.sort(x).values[-1]

    mirror = OpMirror("planted_largest", largest, lambda x: torch.amax(x, -1), sample, gradgrad=False, fd=False,
                      dtypes=(torch.float64,), devices=("cpu",))
    caught = run_case(mirror, "float64", "cpu", examples=8)
    assert {r.check for r in caught.records if r.status != "pass"} & {"special_values", "variant"}
    relaxed = run_case(OpMirror(**{**mirror.__dict__, "tie_gradients": False}), "float64", "cpu", examples=8)
    assert not relaxed.failed, [r.check for r in relaxed.records if r.status != "pass"]
    assert {"forward", "backward"} <= {r.check for r in relaxed.records}
