"""``conformance.closeness``: the measured errors and verdicts, including NaN / infinity handling,
and a mirror's own example count (``ModuleMirror.examples``)."""

from __future__ import annotations

import math

import pytest
import torch

from conformance.closeness import measure
from conformance.mirror import ModuleMirror, Sample
from conformance.runner import PROFILES, run_case
from conformance.strategies import tensor
from conformance.tolerances import Tolerance

TOL = Tolerance(rtol=1e-6, atol=1e-6, rule="test")
EXACT_ZERO_ATOL = Tolerance(rtol=1e-7, atol=0.0, rule="test")
inf, nan = math.inf, math.nan


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_errors_and_headroom_are_measured_elementwise(dtype):
    e = torch.tensor([1.0, -2.0, 0.0, 4.0], dtype=dtype)
    a = e + torch.tensor([0.0, 1e-6, 5e-7, 0.0], dtype=dtype)
    m = measure(a, e, TOL)
    assert m.ok and m.shape == (4,)
    assert m.max_abs == pytest.approx(1e-6, rel=1e-6 if dtype == torch.float64 else 1e-1)
    # per element: at -2, 1e-6 / (1e-6 + 2e-6) = 1/3; at 0, 5e-7 / 1e-6 = 1/2 (the worst, though not the largest error)
    assert m.headroom == pytest.approx(1 / 2, rel=1e-6 if dtype == torch.float64 else 1e-1)
    assert not measure(e + 1e-5, e, TOL).ok


def test_bitwise_equal_values_are_exact_and_tiny_differences_are_not():
    e = torch.randn(1000, dtype=torch.float64)
    assert measure(e.clone(), e, TOL).headroom == 0.0
    m = measure(e + 1e-13, e, EXACT_ZERO_ATOL)
    assert m.ok and 0 < m.max_abs < 2e-13 and m.headroom > 0


def test_zero_atol_counts_exact_zeros_as_exact_and_any_difference_from_zero_as_failure():
    z = torch.zeros(3, dtype=torch.float64)
    assert measure(z.clone(), z, EXACT_ZERO_ATOL).ok
    bad = measure(torch.tensor([0.0, 1e-300, 0.0], dtype=torch.float64), z, EXACT_ZERO_ATOL)
    assert not bad.ok and bad.headroom == inf


@pytest.mark.parametrize(
    "a, e, ok, problem",
    [
        ([1.0, inf, nan, -inf], [1.0, inf, nan, -inf], True, ""),
        ([1.0, inf, 2.0], [1.0, -inf, 2.0], False, "infinite values differ"),
        ([inf, 1.0], [1.0, 1.0], False, "infinite values differ"),
        ([1.0, nan], [1.0, 2.0], False, "NaN at different positions (1 in neuronix, 0 in torch)"),
        ([1e308, 1.0], [-1e308, 1.0], False, "infinite values differ"),  # the difference overflows
    ],
)
def test_non_finite_values_must_match_exactly(a, e, ok, problem):
    m = measure(torch.tensor(a, dtype=torch.float64), torch.tensor(e, dtype=torch.float64), TOL)
    assert (m.ok, m.problem) == (ok, problem)


def test_matching_non_finite_values_do_not_hide_errors_elsewhere():
    e = torch.tensor([inf, nan, 1.0], dtype=torch.float64)
    m = measure(torch.tensor([inf, nan, 1.1], dtype=torch.float64), e, TOL)
    assert not m.ok and m.max_abs == pytest.approx(0.1) and m.problem == ""


def test_inputs_are_not_modified():
    e = torch.tensor([inf, 2.0, -3.0], dtype=torch.float64)
    a = torch.tensor([inf, 2.5, -3.0], dtype=torch.float64)
    a0, e0 = a.clone(), e.clone()
    measure(a, e, TOL)
    assert torch.equal(a, a0) and torch.equal(e, e0)


def _linear_mirror(**kw) -> ModuleMirror:
    import neuronix as nx

    return ModuleMirror(
        "planted.linear", nx.nn.Linear, torch.nn.Linear, lambda draw: ((3, 2), {}),
        lambda draw, args, kwargs, dtype, device: Sample((tensor(draw, (2, 3), dtype, device),)), **kw)


def test_a_mirror_sets_its_own_example_count_per_profile():
    assert PROFILES["ci"].count("module", {"ci": 1}) == 1
    assert PROFILES["thorough"].count("module", {"ci": 1}) == PROFILES["thorough"].count("module")
    one = run_case(_linear_mirror(examples={"ci": 1}), "float64")
    default = run_case(_linear_mirror(), "float64")
    assert len(one.examples) == 1 and len(default.examples) == PROFILES["ci"].count("module") > 1
    assert all(r.status == "pass" for r in one.records + default.records)
