"""The forward-mode check (conformance/kinds/forward_mode.py) catches the faults it targets.

Each fault is a throwaway primitive ``3 * x`` whose one VJP rule is planted wrong in one way;
neuronix's JVP is derived from that rule (the double-VJP trick), so the JVP inherits the fault.
Every test also runs the exact rule, which must pass every check.
"""

from __future__ import annotations

import pytest
import torch
from planting import plant

import neuronix as nx
from conformance.mirror import OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor
from neuronix.ops.registry import apply


def _sample(draw, dtype, device):
    return Sample((tensor(draw, (3, 2), dtype, device),))


def _rule(fault: str):
    """The VJP of ``3 * x``, right or planted wrong (``g`` is an nx.Tensor only under create_graph)."""

    def rule(g, out, x):
        recording = isinstance(g, nx.Tensor)
        if fault == "raw" and recording:  # reads the upstream value: cut off from it in the graph
            return nx.Tensor(g.data * 3)
        if fault == "upstream_scaled" and recording:  # right value, dependence on g scaled by 2
            return g * 6 - nx.Tensor(g.data * 3)
        if fault == "recorded_scaled" and recording:  # wrong only when recorded
            return g * 4.5
        if fault == "scaled":  # wrong first derivative, in every mode
            return g * 4.5
        return g * 3

    return rule


class _NoForwardAD(torch.autograd.Function):
    """torch's ``3 * x`` with a backward but no forward-mode formula: torch.func.jvp raises on it."""

    @staticmethod
    def forward(x):
        return x * 3

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return g * 3


def _mirror(fault: str, *, torch_fn=lambda x: x * 3, **kw) -> OpMirror:
    name = f"planted_forward_{fault}"
    spec = plant(name, lambda x: x * 3, _rule(fault), saves=())
    return OpMirror("planted.forward", lambda x: apply(spec, x), torch_fn, _sample, **kw)


def run(mirror, dtype="float64"):
    return run_case(mirror, dtype, "cpu", examples=2)


def judged(case, check: str) -> list:
    return [j for ex in case.examples for j in ex.judged if j.check == check]


def failing(case, check: str) -> set[str]:
    return {j.what for j in judged(case, check) if not j.ok}


TORCH_AD = "jvp of output 0 vs torch forward AD"
BOTH_MODES = "<u, J v> (forward mode) vs <J^T u, v> (reverse mode), over the sum of |terms|"
CENTRAL = "jvp of output 0 vs central difference"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_exact_rule_passes_all_three_comparisons(dtype):
    case = run(_mirror("none"), dtype)
    assert not case.failed, case.failure_message()
    whats = {j.what for j in judged(case, "forward_ad")}
    assert whats == {TORCH_AD, BOTH_MODES}
    fd = {j.what for j in judged(case, "finite_difference")}
    assert (CENTRAL in fd) == (dtype == "float64")  # (b) runs in float64 only


@pytest.mark.parametrize("fault", ["raw", "upstream_scaled"])
def test_a_rule_wrong_only_in_its_dependence_on_the_upstream_gradient_makes_the_jvp_wrong(fault):
    """With the upstream-gradient part of the second-derivative check off, forward mode alone sees it."""
    case = run(_mirror(fault, gradgrad=False))
    assert all(j.ok for j in judged(case, "backward"))  # the first derivative is right
    assert failing(case, "forward_ad") == {TORCH_AD, BOTH_MODES}
    assert CENTRAL in failing(case, "finite_difference")


def test_a_rule_wrong_only_under_recording_is_caught_by_all_three():
    case = run(_mirror("recorded_scaled", gradgrad=False))
    assert all(j.ok for j in judged(case, "backward"))  # a plain backward is right
    assert failing(case, "forward_ad") == {TORCH_AD, BOTH_MODES}
    worst = max(j.max_rel for j in judged(case, "forward_ad"))
    assert 0.4 < worst < 0.6  # J v off by the planted factor 1.5
    assert CENTRAL in failing(case, "finite_difference")


def test_a_scaled_first_derivative_is_caught_by_torch_forward_ad_and_finite_differences():
    """Both of neuronix's modes share the scaled rule, so (c) agrees with itself; (a) and (b) do not."""
    case = run(_mirror("scaled"))
    assert TORCH_AD in failing(case, "forward_ad")
    assert BOTH_MODES not in failing(case, "forward_ad")
    assert CENTRAL in failing(case, "finite_difference")


def test_where_torch_has_no_forward_ad_comparison_a_is_skipped_and_c_still_catches():
    exact = run(_mirror("none", torch_fn=_NoForwardAD.apply, fd=False, gradgrad=False))
    assert not exact.failed, exact.failure_message()
    assert {j.what for j in judged(exact, "forward_ad")} == {BOTH_MODES}
    assert all("skipped: torch has no forward AD" in ex.info["forward_ad_torch"] for ex in exact.examples)
    wrong = run(_mirror("recorded_scaled", torch_fn=_NoForwardAD.apply, fd=False, gradgrad=False))
    assert failing(wrong, "forward_ad") == {BOTH_MODES}  # neuronix's two modes disagree: the only oracle left


def test_a_failing_jvp_transform_is_reported_under_forward_ad(monkeypatch):
    import neuronix.func as func

    def broken(*args, **kwargs):
        raise RuntimeError("planted transform failure")

    monkeypatch.setattr(func, "_jvp_of", broken)
    case = run(_mirror("none"))
    errors = [ex for ex in case.examples if ex.error]
    assert errors and all(ex.error_check == "forward_ad" and "planted transform failure" in ex.error for ex in errors)


def test_where_torch_forward_ad_and_its_backward_disagree_only_a_is_skipped(monkeypatch):
    """embedding(padding_idx): torch's forward AD gives the padding rows a derivative, its backward none;
    neuronix's forward mode follows its backward (as torch's backward), so (c) passes and (a) is skipped."""
    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.kinds import forward_mode
    from conformance.mirror import REGISTRY

    mirror = REGISTRY["nn.functional.embedding[padding_idx]"]
    case = run(mirror)
    assert not case.failed, case.failure_message()
    assert {j.what for j in judged(case, "forward_ad")} == {BOTH_MODES}
    assert all("no gradient by convention" in ex.info["forward_ad_torch"] for ex in case.examples if ex.status == "ran")
    monkeypatch.setattr(forward_mode, "TORCH_FORWARD_AD_DIFFERS", {})  # without the entry, torch's convention shows
    assert TORCH_AD in failing(run(mirror), "forward_ad")
