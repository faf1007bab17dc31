"""nn.functional activations, distances, norms, attention and losses of issue 13: the behaviour their mirrors do
not reach (torch's errors, refused second derivatives, seeded draws, out=, degenerate inputs)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F


def _leaf(t):
    return nx.Tensor(t.clone()).requires_grad_()


def _raises_as_torch(nx_call, torch_call):
    """Both libraries refuse the call, with the same exception type."""
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)):
        nx_call()


X = torch.randn(3, dtype=torch.float64)


@pytest.mark.parametrize("call", [
    lambda m, x: m.celu(x, 0.0),
    lambda m, x: m.glu(torch.randn(3)),
    lambda m, x: m.glu(torch.randn(2, 4), dim=2),
    lambda m, x: m.glu(torch.tensor(1.0)),
    lambda m, x: m.rrelu(x, 0.5, 0.1, training=True),
    lambda m, x: m.rrelu(x, 0.5, 0.1, training=False),
    lambda m, x: m.softshrink(x, -1.0),
    lambda m, x: m.triplet_margin_loss(x, x, x, margin=0),
    lambda m, x: m.triplet_margin_with_distance_loss(x, x, x[None], margin=1.0),
    lambda m, x: m.gaussian_nll_loss(x, x, -torch.ones(3, dtype=torch.float64)),
    lambda m, x: m.gaussian_nll_loss(x, x, torch.ones(2, dtype=torch.float64)),
    lambda m, x: m.gaussian_nll_loss(x, x, -1.0),
    lambda m, x: m.multi_margin_loss(torch.randn(2, 3), torch.tensor([0, 1]), p=3),
    lambda m, x: m.multi_margin_loss(torch.randn(2, 3), torch.tensor([0, 5])),
    lambda m, x: m.multi_margin_loss(torch.randn(2, 3), torch.tensor([0, 1]), weight=torch.ones(1, 3)),
    lambda m, x: m.multilabel_margin_loss(torch.randn(2, 3), torch.tensor([0, 1])),
    lambda m, x: m.cosine_embedding_loss(torch.randn(2, 3), torch.randn(2, 3), torch.ones(2, 1)),
    lambda m, x: m.cosine_embedding_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor(1.0)),
    lambda m, x: m.margin_ranking_loss(x, x, x, reduction="bad"),
    lambda m, x: m.margin_ranking_loss(x, x, x[None]),
    lambda m, x: m.poisson_nll_loss(x, x, reduction="batchmean"),
    lambda m, x: m.ctc_loss(torch.randn(4, 1, 3).log_softmax(2), torch.tensor([[1]]), (4,), (1,), reduction="bad"),
    lambda m, x: m.bilinear(torch.randn(2, 3), torch.randn(2, 4), torch.randn(5, 3, 5)),
    lambda m, x: m.bilinear(torch.randn(2, 3), torch.randn(3, 4), torch.randn(5, 3, 4)),
    lambda m, x: m.pdist(torch.randn(2, 3, 4)),
    lambda m, x: m.pdist(torch.randn(2, 3), p=-1.0),
    lambda m, x: m.local_response_norm(torch.randn(2, 3), 2),
    lambda m, x: m.instance_norm(torch.randn(2, 3, 1)),
    lambda m, x: m.instance_norm(torch.randn(2, 3)),
    lambda m, x: m.instance_norm(torch.randn(2, 3, 4), use_input_stats=False),
    lambda m, x: m.rms_norm(torch.randn(2, 3), (4,)),
    lambda m, x: m.rms_norm(torch.randn(2, 3), (3,), torch.ones(2)),
    lambda m, x: m.one_hot(torch.tensor([3]), 2),
    lambda m, x: m.prelu(torch.randn(2, 3), torch.randn(2)),
    lambda m, x: m.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3),
                                                attn_mask=torch.ones(2, 2, dtype=torch.bool), is_causal=True),
    lambda m, x: m.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(2, 3).double(), torch.randn(2, 3)),
    lambda m, x: m.embedding_bag(torch.tensor([[0, 1]]), torch.randn(3, 2), torch.tensor([0])),
    lambda m, x: m.embedding_bag(torch.tensor([0, 1]), torch.randn(3, 2)),
    lambda m, x: m.embedding_bag(torch.tensor([0, 1]), torch.randn(3, 2), torch.tensor([0]), mode="min"),
    lambda m, x: m.embedding_bag(torch.tensor([0, 1]), torch.randn(3, 2), torch.tensor([0]), mode="max",
                                 scale_grad_by_freq=True),
    lambda m, x: m.embedding_bag(torch.tensor([0, 1]), torch.randn(3, 2), torch.tensor([0]),
                                 per_sample_weights=torch.ones(2)),
    lambda m, x: m.embedding_bag(torch.tensor([0, 1]), torch.randn(3, 2), torch.tensor([0]), padding_idx=3),
    lambda m, x: m.dropout1d(torch.randn(2, 3, 4, 5), 0.5),
    lambda m, x: m.alpha_dropout(x, 1.5),
    lambda m, x: m.linear_cross_entropy(torch.randn(2, 3), torch.randn(4, 2), torch.tensor([0, 1])),
    lambda m, x: m.linear_cross_entropy(torch.randn(3), torch.randn(4, 2, 3), torch.tensor([0, 1])),
])
def test_errors_as_torch(call):
    _raises_as_torch(lambda: call(F, nx.Tensor(X)), lambda: call(TF, X))


def test_soft_margin_target_that_requires_grad_is_refused_at_forward_as_torch():
    x, t = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        TF.soft_margin_loss(x, t)
    with pytest.raises(RuntimeError, match="target"):
        F.soft_margin_loss(_leaf(x.detach()), _leaf(t.detach()))
    F.soft_margin_loss(_leaf(x.detach()), nx.Tensor(t.detach()))  # a constant target is fine


def test_weight_of_multi_margin_that_requires_grad_is_refused():
    x, w = torch.randn(2, 3), torch.rand(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        TF.multi_margin_loss(x.requires_grad_(), torch.tensor([0, 2]), weight=w)
    with pytest.raises(RuntimeError, match="weight|input 2"):
        F.multi_margin_loss(_leaf(x.detach()), torch.tensor([0, 2]), weight=_leaf(w.detach()))


@pytest.mark.parametrize("loss", [
    lambda m, x: m.multi_margin_loss(x, torch.tensor([0, 2]), p=2),
    lambda m, x: m.multilabel_margin_loss(x, torch.tensor([[0, -1, 1], [2, 1, -1]])),
    lambda m, x: m.pdist(x),
    lambda m, x: m.ctc_loss(x.reshape(3, 1, 2).log_softmax(2), torch.tensor([[1]]), (3,), (1,)),
])
def test_second_derivative_in_the_input_is_refused_where_torch_has_none(loss):
    """torch raises at the second backward (not before); a first derivative under create_graph works in both.
    Where the installed torch has the second derivative (pdist's in torch 2.14, none in 2.13), neuronix's is torch's."""
    x = torch.randn(2, 3, dtype=torch.float64)
    seconds = []
    for m, leaf, grad in ((TF, x.clone().requires_grad_(), torch.autograd.grad), (F, _leaf(x), nx.autograd.grad)):
        (g,) = grad(loss(m, leaf), leaf, create_graph=True)
        v = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        try:
            (second,) = grad((g * (v if m is TF else nx.Tensor(v))).sum(), leaf)
        except RuntimeError as err:
            assert "not implemented" in str(err)
            seconds.append(None)
        else:
            seconds.append(getattr(second, "data", second))
    assert (seconds[0] is None) == (seconds[1] is None)
    if seconds[0] is not None:
        torch.testing.assert_close(seconds[1], seconds[0])


def test_rrelu_training_draws_torchs_slopes_after_the_same_seed():
    x = torch.randn(50, dtype=torch.float64)
    torch.manual_seed(7)
    expected = TF.rrelu(x, 0.1, 0.6, training=True)
    torch.manual_seed(7)
    actual = F.rrelu(nx.Tensor(x), 0.1, 0.6, training=True)
    assert torch.equal(actual.data, expected)
    slopes = (actual.data / x)[x < 0]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.6 and slopes.unique().numel() > 1  # drawn, not one mean slope


def test_rrelu_gradient_is_the_drawn_slope():
    x = torch.tensor([-1.0, -2.0, 3.0], dtype=torch.float64)
    torch.manual_seed(3)
    leaf = _leaf(x)
    y = F.rrelu(leaf, 0.2, 0.4, training=True)
    (g,) = nx.autograd.grad(y.sum(), leaf)
    assert torch.allclose(g.data, y.data / x)


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_samples_gradient():
    logits = torch.randn(4, 5, dtype=torch.float64)
    torch.manual_seed(11)
    hard = F.gumbel_softmax(_leaf(logits), tau=0.5, hard=True)
    assert torch.equal(hard.data.sum(-1), torch.ones(4, dtype=torch.float64))
    assert set(hard.data.unique().tolist()) <= {0.0, 1.0}
    leaf = _leaf(logits)
    torch.manual_seed(11)
    (g_hard,) = nx.autograd.grad((F.gumbel_softmax(leaf, tau=0.5, hard=True) * torch.arange(5.0)).sum(), leaf)
    torch.manual_seed(11)
    (g_soft,) = nx.autograd.grad((F.gumbel_softmax(leaf, tau=0.5) * torch.arange(5.0)).sum(), leaf)
    assert torch.allclose(g_hard.data, g_soft.data)


def test_normalize_out_writes_torchs_values_and_refuses_a_graph():
    x = torch.randn(3, 4, dtype=torch.float64)
    out = nx.Tensor(torch.empty(0, dtype=torch.float64))
    returned = F.normalize(nx.Tensor(x), p=3.0, dim=0, out=out)
    assert returned is out and torch.allclose(out.data, TF.normalize(x, p=3.0, dim=0))
    with pytest.raises(RuntimeError, match="out="):
        F.normalize(_leaf(x), out=nx.Tensor(torch.empty(3, 4, dtype=torch.float64)))


def test_local_response_norm_of_an_empty_input_is_the_input_itself():
    x = nx.Tensor(torch.empty(0, 3, 4))
    assert F.local_response_norm(x, 2) is x


def test_attention_row_with_every_key_masked_is_zero_with_zero_gradient():
    q, k, v = (torch.randn(3, 2, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True, True, True], [False, False, False], [True, False, True]])
    expected = TF.scaled_dot_product_attention(q.clone().requires_grad_(), k, v, attn_mask=mask)
    leaf = _leaf(q)
    out = F.scaled_dot_product_attention(leaf, k, v, attn_mask=mask)
    assert torch.allclose(out.data, expected.detach()) and torch.equal(out.data[1], torch.zeros(2, dtype=torch.float64))
    (g,) = nx.autograd.grad(out.sum(), leaf)
    assert torch.isfinite(g.data).all() and torch.equal(g.data[1], torch.zeros(2, dtype=torch.float64))


def test_in_place_functionals_refuse_a_leaf_that_requires_grad_and_write_a_non_leaf():
    x = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    for name, args in (("relu_", ()), ("elu_", (0.5,)), ("celu_", (0.5,)), ("selu_", ()), ("threshold_", (0.6, -1.0)),
                       ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.5)), ("rrelu_", (0.1, 0.3))):
        with pytest.raises(RuntimeError):
            getattr(TF, name)(x.clone().requires_grad_(), *args)
        with pytest.raises(RuntimeError):
            getattr(F, name)(_leaf(x), *args)
        y = x.clone()
        nx_y = nx.Tensor(x.clone())
        assert getattr(F, name)(nx_y, *args).data.data_ptr() == nx_y.data.data_ptr()
        torch.testing.assert_close(nx_y.data, getattr(TF, name)(y, *args))


def test_pdist_of_one_or_no_rows_is_empty():
    for n in (0, 1):
        leaf = _leaf(torch.randn(n, 3, dtype=torch.float64))
        out = F.pdist(leaf)
        assert out.shape == (0,)
        (g,) = nx.autograd.grad(out.sum(), leaf)  # torch 2.13 segfaults here for n == 0
        assert torch.equal(g.data, torch.zeros(n, 3, dtype=torch.float64))


def test_prelu_second_derivative_takes_torchs_side_at_zero():
    """torch's prelu gradient uses the weight at x == 0 while its derivative in the upstream gradient uses 1."""
    x, w = torch.tensor([0.0, -1.0, 2.0], dtype=torch.float64), torch.tensor([0.25], dtype=torch.float64)
    results = []
    for m, grad, wrap in ((torch, torch.autograd.grad, lambda t: t.clone().requires_grad_()), (nx, nx.autograd.grad, _leaf)):
        xl, wl, g = wrap(x), wrap(w), wrap(torch.ones(3, dtype=torch.float64))
        gx, gw = grad(m.prelu(xl, wl), (xl, wl), g, create_graph=True)
        (gg,) = grad(gx.sum(), g)
        results.append((gx.detach() if m is torch else gx.data, gg.detach() if m is torch else gg.data))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[1][0][0] == 0.25 and results[1][1][0] == 1.0


def test_ctc_loss_zero_infinity_and_mean_divide_as_torch():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, dtype=torch.float64)
    targets = torch.tensor([[1, 2, 3], [1, 1, 0]])
    lengths = ((2, 2), (3, 1))  # the first is infeasible (3 labels in 2 steps): an infinite loss
    for zero_infinity in (False, True):
        expected = TF.ctc_loss(logits.log_softmax(2), targets, *lengths, zero_infinity=zero_infinity, reduction="none")
        actual = F.ctc_loss(nx.Tensor(logits).log_softmax(2), targets, *lengths, zero_infinity=zero_infinity,
                            reduction="none")
        assert torch.equal(actual.data, expected)
    assert math.isinf(float(actual.data[0])) is False


def test_gaussian_nll_gradient_passes_the_variance_clamp():
    """torch clamps var in place under no_grad: the clamped value, the unclamped (identity) gradient."""
    x, t = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    var = torch.tensor([1e-9, 2.0], dtype=torch.float64)
    expected_var = var.clone().requires_grad_()
    (expected,) = torch.autograd.grad(TF.gaussian_nll_loss(x, t, expected_var, eps=1e-3), expected_var)
    leaf = _leaf(var)
    (actual,) = nx.autograd.grad(F.gaussian_nll_loss(nx.Tensor(x), nx.Tensor(t), leaf, eps=1e-3), leaf)
    torch.testing.assert_close(actual.data, expected)
    assert actual.data[0] != 0
