"""The variant checks (conformance/kinds/variants.py, layouts.py, twins.py) catch the faults they target, and pass correct code.

Each fault is planted for the test only (a monkeypatched method, operator or function, or a
throwaway primitive whose rule misreads a non-contiguous upstream gradient); each test also runs
the correct twin, so a variant check that cannot fail, or fails on correct code, shows up here.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import strategies as st
from planting import plant

import neuronix as nx
from conformance.kinds import variants
from conformance.mirror import ModuleMirror, OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import NONZERO, POSITIVE, binary, tensor, unary
from neuronix.ops.registry import apply


@pytest.fixture(autouse=True)
def _every_variant_every_example(monkeypatch):
    """All variants on every example (the run rotates them over a case's examples to stay cheap)."""
    monkeypatch.setattr(variants, "ROTATION", 1)


def run(mirror, dtype="float64", examples=3):
    return run_case(mirror, dtype, "cpu", examples=examples)


def variant_failures(case) -> str:
    """Every failing variant comparison and variant error of ``case``, as one text."""
    lines = [f"{j.what}: {j.problem}" for ex in case.examples for j in ex.judged if j.check == "variant" and not j.ok]
    lines += [ex.error for ex in case.examples if ex.error_check == "variant"]
    return "\n".join(lines)


def variant_count(case) -> int:
    return sum(1 for ex in case.examples for j in ex.judged if j.check == "variant")


def _exp_mirror():
    return OpMirror("exp", nx.exp, torch.exp, unary())


# ----- variants of a name ---------------------------------------------------------------------
def test_correct_variants_pass_and_are_compared():
    for mirror in (_exp_mirror(), OpMirror("sub", nx.sub, torch.sub, binary())):
        case = run(mirror)
        assert variant_count(case) > 0
        assert not variant_failures(case), variant_failures(case)


def test_derived_variants_of_sub_include_method_in_place_alias_and_operators():
    found, missing = variants.derive("", "sub", "function")
    labels = {v.label for v in found}
    assert {"method Tensor.sub", "in-place Tensor.sub_ on a non-leaf copy", "function nx.subtract",
            "operator sub", "reflected y.__rsub__(x)", "augmented isub on a non-leaf copy"} <= labels
    assert "nx.sub(out=)" in missing  # torch documents out=, neuronix's signature has none: reported, not gated


def test_in_place_method_with_a_wrong_gradient_is_caught(monkeypatch):
    def exp_(self):  # the right value, a gradient of 2 instead of exp(x)
        return self.copy_(nx.exp(self.detach()) + (self - self.detach()) * 2)

    monkeypatch.setattr(nx.Tensor, "exp_", exp_)
    failures = variant_failures(run(_exp_mirror()))
    assert "in-place Tensor.exp_ on a non-leaf copy: grad arg 0" in failures
    assert "output" not in failures.replace("grad", "")  # the values stay right


def test_out_argument_that_is_ignored_is_caught(monkeypatch):
    real = nx.exp

    def ignores_out(input, *, out=None):
        return real(input)

    def honours_out(input, *, out=None):
        result = real(input)
        if out is not None:
            out.data.copy_(result.data)
        return result

    monkeypatch.setattr(nx, "exp", honours_out)
    assert not variant_failures(run(_exp_mirror()))
    monkeypatch.setattr(nx, "exp", ignores_out)
    assert "nx.exp(..., out=): the out tensor" in variant_failures(run(_exp_mirror()))


def test_reflected_operator_that_does_not_reverse_is_caught(monkeypatch):
    monkeypatch.setattr(nx.Tensor, "__rsub__", lambda self, other: nx.sub(self, other))
    assert "reflected y.__rsub__(x): output" in variant_failures(run(OpMirror("sub", nx.sub, torch.sub, binary())))


def test_method_that_differs_from_the_function_is_caught(monkeypatch):
    monkeypatch.setattr(nx.Tensor, "log", lambda self: nx.log(self) * 1.001)
    case = run(OpMirror("log", nx.log, torch.log, unary(POSITIVE)), "float32")
    assert "method Tensor.log: output" in variant_failures(case)


def test_augmented_assignment_that_is_not_in_place_is_caught(monkeypatch):
    monkeypatch.setattr(nx.Tensor, "__imul__", lambda self, other: nx.mul(self, other))  # a new tensor: x unchanged
    failures = variant_failures(run(OpMirror("mul", nx.mul, torch.mul, binary())))
    assert "augmented imul on a non-leaf copy: the modified tensor" in failures


# ----- non-contiguous upstream gradients -----------------------------------------------------------


def _raw(t):
    return t.data if isinstance(t, nx.Tensor) else t


def _contiguous_reading_rule(g, out, x):
    """Reads g's storage as if it were laid out contiguously (a missing ``g.contiguous()``)."""
    raw = _raw(g)
    strides = torch.empty(raw.shape, device=raw.device).stride()
    return 3 * raw.as_strided(raw.shape, strides, raw.storage_offset())


def _contiguity_checking_rule(g, out, x):
    """Right for a contiguous g only."""
    return g * 3 if _raw(g).is_contiguous() else g * 3.03


def _planted_times_three(rule) -> OpMirror:
    name = f"planted_times_three_{rule.__name__}"
    spec = plant(name, lambda x: x * 3, rule, saves=())

    def sample(draw, dtype, device):
        return Sample((tensor(draw, draw(st.sampled_from([(3, 4), (2, 3, 4, 5)])), dtype, device),))

    return OpMirror("planted.times_three", lambda x: apply(spec, x), lambda x: x * 3, sample, gradgrad=False)


def test_correct_rule_passes_under_every_upstream_layout():
    case = run(_planted_times_three(lambda g, out, x: g * 3), examples=4)
    assert variant_count(case) > 0
    assert not variant_failures(case), variant_failures(case)


def test_rule_reading_a_non_contiguous_upstream_as_contiguous_is_caught():
    case = run(_planted_times_three(_contiguous_reading_rule), examples=4)
    assert case.records and next(r for r in case.records if r.check == "backward").status == "pass"  # contiguous: right
    failures = variant_failures(case)
    assert "under a transposed upstream gradient" in failures


def test_rule_wrong_for_every_non_contiguous_upstream_layout_is_caught():
    failures = variant_failures(run(_planted_times_three(_contiguity_checking_rule), examples=6))
    for layout in ("transposed", "strided", "stride-0 expanded", "channels-last"):
        assert f"under a {layout} upstream gradient" in failures, layout


def test_empty_upstream_gradients_get_no_layout_variant():
    """An empty tensor has no layout to vary, and torch's view_as_real backward refuses an empty strided view (its
    "contiguous" check passes, view_as_complex then wants last-stride 1): such a variant failed torch, not neuronix,
    and erred the view_as_real case whenever its draw was empty."""
    import dataclasses

    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.mirror import REGISTRY

    def empty_parts(draw, dtype, device):
        shape = draw(st.sampled_from([(0,), (0, 3), (2, 0)]))
        return Sample((torch.randn(shape, dtype=dtype, device=device), torch.randn(shape, dtype=dtype, device=device)))

    case = run(dataclasses.replace(REGISTRY["view_as_real"], sample=empty_parts), dtype="float32", examples=3)
    errors = [ex.error for ex in case.examples if ex.error]
    assert not errors, errors


# ----- module vs functional twin ------------------------------------------------------------------
class _LeakyReLU(nx.nn.Module):
    """A right leaky ReLU that does not call ``F.leaky_relu``: only its twin check reaches a wrong F."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return nx.where(x > 0, x, x * self.negative_slope)


def _leaky_mirror() -> ModuleMirror:
    def build(draw):
        return (), {"negative_slope": draw(st.sampled_from([0.2, -0.5]))}

    def sample(draw, args, kwargs, dtype, device):
        return Sample((tensor(draw, (2, 3), dtype, device, NONZERO),))

    return ModuleMirror("planted.LeakyReLU", _LeakyReLU, torch.nn.LeakyReLU, build, sample)


def test_module_and_its_functional_twin_agree():
    case = run(_leaky_mirror())
    assert not case.failed, case.failure_message()
    assert "functional twin F.leaky_relu: grad arg 0" in {j.what.split(" ", 1)[1] for ex in case.examples
                                                          for j in ex.judged if j.check == "variant"}


def test_functional_twin_that_differs_from_the_module_is_caught(monkeypatch):
    real = nx.nn.functional.leaky_relu

    def leaky_relu(input, negative_slope=0.01, inplace=False):  # ignores the slope
        return real(input)

    monkeypatch.setattr(nx.nn.functional, "leaky_relu", leaky_relu)
    case = run(_leaky_mirror())
    assert next(r for r in case.records if r.check == "forward").status == "pass"  # the module itself is right
    assert "functional twin F.leaky_relu: output" in variant_failures(case)


# ----- stride-0 expanded inputs ---------------------------------------------------------------------
def _stride_sensitive_mirror(wrong: bool) -> OpMirror:
    name = f"planted_stride_sensitive_{wrong}"
    factor = 3.03 if wrong else 3.0
    spec = plant(name, lambda x: x * (factor if 0 in x.stride() else 3.0), lambda g, out, x: g * 3, saves=())

    def sample(draw, dtype, device):
        return Sample((tensor(draw, (3, 4), dtype, device, contiguous=True),))

    return OpMirror("planted.stride_sensitive", lambda x: apply(spec, x), lambda x: x * 3, sample, gradgrad=False)


def test_forward_wrong_only_for_a_stride_0_input_is_caught():
    assert not variant_failures(run(_stride_sensitive_mirror(False)))
    case = run(_stride_sensitive_mirror(True))
    assert next(r for r in case.records if r.check == "forward").status == "pass"
    assert "stride-0 expanded inputs: output" in variant_failures(case)


def test_ci_rotation_runs_every_variant_once_per_case(monkeypatch):
    monkeypatch.setattr(variants, "ROTATION", 4)  # as in a run: the CI profile's 4 examples share the variants
    mirror = OpMirror("sub", nx.sub, torch.sub, binary())
    case = run(mirror, examples=4)
    ran = {j.what.split(":")[0] for ex in case.examples for j in ex.judged if j.check == "variant" and ":" in j.what}
    derived = {v.label for v in variants.derive("", "sub", "function")[0]}
    assert derived <= ran, derived - ran


def test_comparison_operator_mapped_to_the_wrong_function_is_caught(monkeypatch):
    """Non-differentiable names get their value variants too (the op driver runs them without gradients)."""
    import conformance.mirrors  # noqa: F401  (the compare mirrors: samples with exact ties)
    from conformance.mirror import REGISTRY

    mirror = REGISTRY["gt"]
    assert not variant_failures(run(mirror))
    monkeypatch.setattr(nx.Tensor, "__gt__", lambda self, other: nx.ge(self, other))
    assert "operator gt: output" in variant_failures(run(mirror))


def test_variants_torch_has_and_neuronix_lacks_are_listed_not_compared(monkeypatch):
    # neuronix has every torch alias of abs now: take ``absolute`` away to see a missing one listed
    from neuronix.ops.public import FUNCTIONS, METHODS

    monkeypatch.delitem(FUNCTIONS, "absolute")
    monkeypatch.delitem(METHODS, "absolute")
    monkeypatch.delattr(nx, "absolute")
    monkeypatch.delattr(nx.Tensor, "absolute")
    monkeypatch.delattr(nx.Tensor, "absolute_")
    found, missing = variants.derive("", "abs", "function")
    assert "nx.absolute" in missing and "Tensor.absolute_" in missing  # torch's alias, not public in neuronix
    assert not any("absolute" in v.label for v in found)
    assert "nx.absolute" in variants.missing_variants()["abs"]
