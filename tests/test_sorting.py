"""Sorting, order statistics, scans and differences: what the mirrors do not check (result types, errors, a
tensor ``q`` in the graph, -inf in logcumsumexp's second derivative, torch's NaN products)."""

from __future__ import annotations

import math

import pytest
import torch

import neuronix as nx


def _pair(values, requires_grad=True):
    t = torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
    return t, nx.Tensor(t.detach().clone(), requires_grad=requires_grad)


@pytest.mark.parametrize("call", [
    lambda m, x: m.sort(x, 0), lambda m, x: m.topk(x, 2), lambda m, x: m.kthvalue(x, 2),
    lambda m, x: m.median(x, 0), lambda m, x: m.nanmedian(x, 0), lambda m, x: m.mode(x),
    lambda m, x: m.cummax(x, 0), lambda m, x: m.cummin(x, 0), lambda m, x: m.aminmax(x),
])
def test_named_results_as_torch(call):
    """torch.return_types: the same type name and field names, indices as int64 outside the graph."""
    t, n = _pair([3.0, 1.0, 2.0, 1.0])
    expected, got = call(torch, t), call(nx, n)
    assert type(got).__name__ == type(expected).__name__
    assert got._fields == (("min", "max") if type(expected).__name__ == "aminmax" else ("values", "indices"))
    for field in got._fields:
        e, g = getattr(expected, field), getattr(got, field)
        assert torch.equal(g.data, e.detach())
        assert g.requires_grad == e.requires_grad


def test_var_mean_std_mean_return_plain_tuples_in_torch_order():
    t, n = _pair([1.0, 2.0, 4.0])
    for name in ("var_mean", "std_mean"):
        got, expected = getattr(nx, name)(n), getattr(torch, name)(t)
        assert type(got) is tuple and len(got) == 2
        for g, e in zip(got, expected):
            assert torch.allclose(g.data, e.detach())


@pytest.mark.parametrize("call, error, words", [
    (lambda m, x: m.topk(x, 9), RuntimeError, "topk"),
    (lambda m, x: m.kthvalue(x, 0), RuntimeError, "kthvalue"),
    (lambda m, x: m.quantile(x, 1.5), RuntimeError, "quantile"),
    (lambda m, x: m.quantile(x, 0.5, 3), IndexError, "quantile"),
    (lambda m, x: m.quantile(x, 0.5, interpolation="cubic"), RuntimeError, "quantile"),
    (lambda m, x: m.quantile(x.float(), torch.tensor([0.5], dtype=torch.float64)), RuntimeError, "quantile"),
    (lambda m, x: m.diff(x[0]), RuntimeError, "diff"),
    (lambda m, x: m.diff(x, -1), RuntimeError, "diff"),
    (lambda m, x: m.gradient(x, edge_order=3), RuntimeError, "gradient"),
    (lambda m, x: m.gradient(x[:1]), RuntimeError, "gradient"),
    (lambda m, x: m.aminmax(x[:0]), RuntimeError, "aminmax"),
    (lambda m, x: m.nanmean(x.long()), RuntimeError, "nanmean"),
    (lambda m, x: m.trapezoid(x, x[:3]), RuntimeError, "trapezoid"),
])
def test_errors_as_torch_and_named(call, error, words):
    t = torch.tensor([3.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    with pytest.raises(error):
        call(torch, t)
    with pytest.raises(error, match=words):
        call(nx, nx.Tensor(t))


def test_median_keepdim_without_dim_is_refused():
    with pytest.raises(TypeError, match="median"):
        nx.median(nx.tensor([1.0, 2.0]), keepdim=True)


def test_quantile_tensor_q_gets_torch_gradient():
    """A q in the graph: torch's gradient reaches it through the linear interpolation weight."""
    t, n = _pair([[0.5, -1.0, 2.0, 3.0], [4.0, 1.0, 0.0, -2.0]])
    tq, nq = _pair([0.3, 0.65])
    expected = torch.autograd.grad((torch.quantile(t, tq, dim=1) ** 2).sum(), (t, tq))
    got = nx.autograd.grad((nx.quantile(n, nq, dim=1) ** 2).sum(), (n, nq))
    for g, e in zip(got, expected):
        assert torch.allclose(g.data, e)


def test_logcumsumexp_at_minus_inf_second_derivative_as_torch():
    """-inf inputs and a zero upstream element: the recorded rule (linear in g) and torch's give the same
    finite first and second derivatives."""
    values = [-math.inf, 0.5, -math.inf, 1.0]
    t, n = _pair(values)
    up = torch.tensor([1.0, 0.0, -2.0, 0.5], dtype=torch.float64)
    tg, = torch.autograd.grad(torch.logcumsumexp(t, 0), t, up, create_graph=True)
    ng, = nx.autograd.grad(nx.logcumsumexp(n, 0), n, nx.Tensor(up), create_graph=True)
    assert torch.allclose(ng.data, tg.detach(), equal_nan=True)
    v = torch.tensor([0.5, -1.0, 2.0, 1.0], dtype=torch.float64)
    t2, = torch.autograd.grad((tg * v).sum(), t)
    n2, = nx.autograd.grad((ng * nx.Tensor(v)).sum(), n)
    assert torch.allclose(n2.data, t2, equal_nan=True)


def test_nansum_infinite_upstream_gives_nan_at_nan_inputs_as_torch():
    """torch's nansum backward multiplies by the not-NaN mask: inf * 0 is NaN there."""
    t, n = _pair([1.0, math.nan, 2.0])
    up = torch.tensor(math.inf, dtype=torch.float64)
    expected, = torch.autograd.grad(torch.nansum(t), t, up)
    got, = nx.autograd.grad(nx.nansum(n), n, nx.Tensor(up))
    assert torch.equal(got.data.isnan(), expected.isnan()) and expected.isnan().any()


def test_sort_gradient_goes_to_torchs_index_among_ties():
    t, n = _pair([1.0, 1.0, 0.0, 1.0])
    up = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    for call in (lambda m, x: m.sort(x, descending=True).values, lambda m, x: m.topk(x, 2).values,
                 lambda m, x: m.median(x, 0).values.expand(4), lambda m, x: m.cummax(x, 0).values):
        expected, = torch.autograd.grad(call(torch, t), t, up[: call(torch, t).numel()])
        got, = nx.autograd.grad(call(nx, n), n, nx.Tensor(up[: call(torch, t).numel()]))
        assert torch.equal(got.data, expected)


def test_diff_of_bool_is_xor():
    t = torch.tensor([True, False, False, True])
    assert torch.equal(nx.diff(nx.Tensor(t)).data, torch.diff(t))


@pytest.mark.parametrize("call", [
    lambda m, x: m.unique(x), lambda m, x: m.unique_consecutive(x), lambda m, x: m.histc(x, 3),
    lambda m, x: m.histogram(x, 3).hist, lambda m, x: m.histogram(x, 3).bin_edges,
    lambda m, x: m.bincount(m.tensor([0, 1, 1]), x), lambda m, x: m.bucketize(x, m.tensor([1.0])),
    lambda m, x: m.searchsorted(m.tensor([1.0]), x), lambda m, x: m.isin(x, x),
])
def test_undifferentiable_results_require_grad_where_torchs_do_and_backward_raises(call):
    """torch defines no derivative for these; some of its results still require grad (their backward raises):
    a graph through them fails at backward as torch's, never silently detached."""
    values = torch.tensor([0.5, 2.0, 0.5], dtype=torch.float64)
    expected = call(torch, values.clone().requires_grad_())
    got = call(nx, nx.Tensor(values, requires_grad=True))
    assert got.requires_grad == expected.requires_grad
    assert torch.equal(got.data, expected.detach())
    if expected.requires_grad:
        with pytest.raises(RuntimeError):
            expected.sum().backward()
        with pytest.raises(RuntimeError, match="no derivative"):
            got.sum().backward()
