"""Focused tests of ``nx.nn.functional`` (the conformance mirrors cover values and derivatives broadly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F


def leaf(t: torch.Tensor) -> nx.Tensor:
    return nx.Tensor(t.detach().clone(), requires_grad=True)


def torch_leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


# ----- dropout --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_mask_and_rng_state_match_torch(dtype, p):
    x = torch.randn(7, 13, dtype=dtype)
    torch.manual_seed(1234)
    expected = TF.dropout(x, p)
    after_torch = torch.rand(3)
    torch.manual_seed(1234)
    xs = leaf(x)
    got = F.dropout(xs, p)
    after_nx = torch.rand(3)
    assert torch.equal(got.data, expected)
    assert torch.equal(after_nx, after_torch)  # the same random numbers were consumed
    got.backward(nx.Tensor(torch.ones_like(x)))
    scale = 0.0 if p == 1 else 1 / (1 - p)
    assert torch.equal(xs.grad.data, (expected != 0).to(dtype) * scale if p < 1 else torch.zeros_like(x))


def test_dropout_eval_is_identity_and_rejects_bad_p():
    x = leaf(torch.randn(3))
    assert torch.equal(F.dropout(x, 0.5, training=False).data, x.data)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


# ----- batch norm running statistics ----------------------------------------------------------------------
def test_batch_norm_updates_running_stats_in_place_like_torch():
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64)
    rm_t, rv_t = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    rm_n, rv_n = nx.Tensor(rm_t.clone()), nx.Tensor(rv_t.clone())
    storage = rm_n.data.data_ptr()
    for momentum in (0.1, 0.3):
        TF.batch_norm(x, rm_t, rv_t, training=True, momentum=momentum)
        F.batch_norm(leaf(x), rm_n, rv_n, training=True, momentum=momentum)
    assert rm_n.data.data_ptr() == storage  # updated in place, not replaced
    torch.testing.assert_close(rm_n.data, rm_t, rtol=0, atol=1e-15)
    torch.testing.assert_close(rv_n.data, rv_t, rtol=0, atol=1e-15)  # unbiased variance, as torch
    before = rm_n.data.clone()
    F.batch_norm(leaf(x), rm_n, rv_n, training=False)
    assert torch.equal(rm_n.data, before)  # eval mode leaves them alone


def test_batch_norm_eval_gradient_is_right_for_a_strided_weight():
    # torch 2.13's CPU kernel gets this one wrong; the closed form is g * w / sqrt(running_var + eps)
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64)[::2]
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.2
    g = torch.randn(5, 3, dtype=torch.float64)
    xs = leaf(x)
    F.batch_norm(xs, rm, rv, nx.Tensor(w), training=False, eps=1e-3).backward(nx.Tensor(g))
    torch.testing.assert_close(xs.grad.data, g * w / (rv + 1e-3).sqrt(), rtol=1e-14, atol=1e-14)


def test_batch_norm_cumulative_average_matches_torch_module_with_momentum_none():
    torch.manual_seed(0)
    batches = [torch.randn(5, 2, dtype=torch.float64) * (i + 1) for i in range(4)]
    module = torch.nn.BatchNorm1d(2, momentum=None, dtype=torch.float64)
    rm, rv = nx.Tensor(torch.zeros(2, dtype=torch.float64)), nx.Tensor(torch.ones(2, dtype=torch.float64))
    for n, batch in enumerate(batches, start=1):
        module(batch)
        F.batch_norm(batch, rm, rv, training=True, momentum=1.0 / n)  # what nn.BatchNorm passes for momentum=None
    torch.testing.assert_close(rm.data, module.running_mean, rtol=0, atol=1e-14)
    torch.testing.assert_close(rv.data, module.running_var, rtol=0, atol=1e-14)
    with pytest.raises(TypeError, match="momentum"):
        F.batch_norm(batches[0], rm, rv, training=True, momentum=None)


# ----- fused first backward (the conformance run records with create_graph, so check this path here) ------
@pytest.mark.parametrize("case", ["batch_norm", "layer_norm", "group_norm", "conv2d", "max_pool2d", "nll_loss"])
def test_first_backward_matches_torch(case):
    torch.manual_seed(3)
    x = torch.randn(4, 6, 5, 3, dtype=torch.float64).to(memory_format=torch.channels_last)
    w, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    calls = {
        "batch_norm": lambda lib, x, w, b: lib.batch_norm(x, None, None, w, b, training=True),
        "layer_norm": lambda lib, x, w, b: lib.layer_norm(x.transpose(1, 3), (6,), w, b),
        "group_norm": lambda lib, x, w, b: lib.group_norm(x, 3, w, b),
        "conv2d": lambda lib, x, w, b: lib.conv2d(x, w.reshape(6, 1, 1, 1).expand(6, 2, 2, 2) * 1.0, b, groups=3),
        "max_pool2d": lambda lib, x, w, b: lib.max_pool2d(x * w.reshape(1, 6, 1, 1) + b.reshape(1, 6, 1, 1), 2,
                                                           ceil_mode=True),
        "nll_loss": lambda lib, x, w, b: lib.nll_loss(x.flatten(1)[:, :6] * w, torch.tensor([0, 5, 2, 1]), reduction="sum"),
    }
    call = calls[case]
    tx, tw, tb = torch_leaf(x), torch_leaf(w), torch_leaf(b)
    ty = call(TF, tx, tw, tb)
    upstream = torch.randn(ty.shape, dtype=torch.float64)
    expected = torch.autograd.grad(ty, (tx, tw, tb), upstream, allow_unused=True)
    nxs = [leaf(x), leaf(w), leaf(b)]
    ny = call(F, *nxs)
    got = nx.autograd.grad(ny, nxs, nx.Tensor(upstream), allow_unused=True)
    torch.testing.assert_close(ny.data, ty.detach(), rtol=1e-12, atol=1e-12)
    for g, e in zip(got, expected):
        if e is None:
            continue
        torch.testing.assert_close(g.data, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "selu", "leaky_relu", "softplus", "hardtanh", "hardswish", "mish"])
def test_activation_first_backward_is_torch_kernel_exactly(name):
    x = torch.randn(5, 7) * 3
    upstream = torch.randn(5, 7)
    tx = torch_leaf(x)
    expected = torch.autograd.grad(getattr(TF, name)(tx), tx, upstream)[0]
    nx_x = leaf(x)
    getattr(F, name)(nx_x).backward(nx.Tensor(upstream))
    assert torch.equal(nx_x.grad.data, expected)


def test_runs_under_torch_no_grad():
    x, w = leaf(torch.randn(2, 3, 6, 6)), leaf(torch.randn(4, 3, 3, 3))
    with torch.no_grad():
        y = F.max_pool2d(F.relu(F.batch_norm(F.conv2d(x, w, padding=1), None, None, training=True)), 2)
        F.cross_entropy(y.flatten(1)[:, :4], torch.tensor([0, 3])).backward()
    assert x.grad is not None and w.grad is not None


# ----- losses respect the upstream gradient -----------------------------------------------------------
LOSSES = {
    "mse_loss": lambda f, x, t, c: f.mse_loss(x, t),
    "l1_loss": lambda f, x, t, c: f.l1_loss(x, t),
    "smooth_l1_loss": lambda f, x, t, c: f.smooth_l1_loss(x, t, beta=0.5),
    "huber_loss": lambda f, x, t, c: f.huber_loss(x, t, delta=0.7),
    "nll_loss": lambda f, x, t, c: f.nll_loss(x, c, weight=torch.tensor([0.2, 1.0, 2.0, 0.5], dtype=x.dtype)),
    "cross_entropy": lambda f, x, t, c: f.cross_entropy(x, c, label_smoothing=0.1),
    "cross_entropy_probabilities": lambda f, x, t, c: f.cross_entropy(x, t.softmax(1) if f is TF else nx.Tensor(
        t.data.softmax(1))),
    "binary_cross_entropy": lambda f, x, t, c: f.binary_cross_entropy(x.sigmoid(), t.sigmoid() if f is TF else nx.Tensor(
        t.data.sigmoid())),
    "binary_cross_entropy_with_logits": lambda f, x, t, c: f.binary_cross_entropy_with_logits(
        x, t.sigmoid() if f is TF else nx.Tensor(t.data.sigmoid()), pos_weight=torch.linspace(0.5, 2.0, 4, dtype=x.dtype)),
    "kl_div": lambda f, x, t, c: f.kl_div(x.log_softmax(1), t.softmax(1) if f is TF else nx.Tensor(t.data.softmax(1)),
                                          reduction="batchmean"),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_scaled_by_ten_scales_every_gradient(name):
    torch.manual_seed(5)
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    classes = torch.tensor([1, 3, 0])
    grads = []
    for scale in (1.0, 10.0):
        xs, ts = leaf(x), leaf(t)
        loss = LOSSES[name](F, xs, ts, classes)
        (loss * scale).backward()
        grads.append([g.grad.data if g.grad is not None else None for g in (xs, ts)])
    tx = torch_leaf(x)
    expected = torch.autograd.grad(LOSSES[name](TF, tx, t, classes) * 10, tx)[0]
    torch.testing.assert_close(grads[1][0], expected, rtol=1e-12, atol=1e-14)
    for one, ten in zip(*grads):
        if one is not None:
            torch.testing.assert_close(ten, one * 10, rtol=1e-12, atol=1e-14)


def test_cross_entropy_probability_targets_with_label_smoothing_match_torch():
    torch.manual_seed(7)
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    target = torch.rand(3, 5, 2, dtype=torch.float64).softmax(1)
    weight = torch.rand(5, dtype=torch.float64) + 0.1
    for reduction in ("mean", "sum", "none"):
        tx, tt = torch_leaf(x), torch_leaf(target)
        expected = TF.cross_entropy(tx, tt, weight=weight, label_smoothing=0.3, reduction=reduction)
        nx_x, nx_t = leaf(x), leaf(target)
        got = F.cross_entropy(nx_x, nx_t, weight=weight, label_smoothing=0.3, reduction=reduction)
        torch.testing.assert_close(got.data, expected.detach(), rtol=1e-12, atol=1e-14)
        upstream = torch.randn(expected.shape, dtype=torch.float64)
        gx, gt = torch.autograd.grad(expected, (tx, tt), upstream)
        got.backward(nx.Tensor(upstream))
        torch.testing.assert_close(nx_x.grad.data, gx, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(nx_t.grad.data, gt, rtol=1e-12, atol=1e-14)  # probability targets are differentiable


# ----- errors --------------------------------------------------------------------------------------------
def test_conv_errors_name_the_op_and_shapes():
    x = leaf(torch.randn(2, 3, 8, 8))
    with pytest.raises(RuntimeError, match=r"conv2d: expected input with 4 channels .* got 3 channels .*\(2, 3, 8, 8\)"):
        F.conv2d(x, torch.randn(5, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: expected a 3-D \(unbatched\) or 4-D .* got a 2-D input of shape \(2, 3\)"):
        F.conv2d(leaf(torch.randn(2, 3)), torch.randn(5, 3, 3, 3))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        F.conv2d(x, torch.randn(5, 3, 3, 3), padding="same", stride=2)
    with pytest.raises(ValueError, match="groups=2 must .* divide out_channels=5"):
        F.conv2d(x, torch.randn(5, 3, 3, 3), groups=2)


def test_pool_and_norm_errors():
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D .* got a 2-D input of shape \(4, 4\)"):
        F.max_pool2d(leaf(torch.randn(4, 4)), 2)
    with pytest.raises(RuntimeError, match=r"batch_norm: expected running_mean with 3 elements .* \(2, 3, 4\).* \(4,\)"):
        F.batch_norm(leaf(torch.randn(2, 3, 4)), torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(leaf(torch.randn(1, 3)), None, None, training=True)
    with pytest.raises(RuntimeError, match=r"layer_norm: normalized_shape \(5,\) must match .* \(2, 4\)"):
        F.layer_norm(leaf(torch.randn(2, 4)), (5,))
    with pytest.raises(ValueError, match="num_groups=4 must divide the number of channels 6"):
        F.group_norm(leaf(torch.randn(2, 6)), 4)


def test_loss_errors_name_expected_and_given():
    x = leaf(torch.randn(3, 4))
    with pytest.raises(IndexError, match=r"cross_entropy: target 4 is out of bounds: .* 4 classes, .* \[0, 3\]"):
        F.cross_entropy(x, torch.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="nll_loss: target -1 is out of bounds"):
        F.nll_loss(x, torch.tensor([0, -1, 1]))
    F.nll_loss(x, torch.tensor([0, -1, 1]), ignore_index=-1)  # an ignored target is not out of range
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\) for input of shape \(3, 4\).* got .* \(2,\)"):
        F.cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer tensor"):
        F.nll_loss(x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(3, 4\) and target of shape \(2, 4\)"):
        F.mse_loss(x, torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target of shape \(4,\)"):
        F.binary_cross_entropy_with_logits(x, torch.rand(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.l1_loss(x, torch.randn(3, 4), reduction="avg")
    with pytest.raises(IndexError, match="embedding: index 7 is out of range for a table of 5 rows"):
        F.embedding(torch.tensor([1, 7]), leaf(torch.randn(5, 2)))


def test_embedding_padding_row_gets_no_gradient():
    w = leaf(torch.randn(5, 3))
    F.embedding(torch.tensor([[0, 2, 2], [4, 0, 1]]), w, padding_idx=2).sum().backward()
    assert torch.equal(w.grad.data[2], torch.zeros(3))
    assert torch.equal(w.grad.data[0], torch.full((3,), 2.0))


def test_group_norm_refuses_one_value_per_group_like_torch():
    x = torch.randn(1, 3, 1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.functional.group_norm(x, 3)
    with pytest.raises(ValueError, match=r"group_norm: expected more than 1 value per group.*\[1, 3, 1\]"):
        F.group_norm(nx.Tensor(x), 3)


def test_cross_entropy_refuses_ignore_index_with_probability_targets():
    x, target = torch.randn(3, 4), torch.rand(3, 4).softmax(1)
    with pytest.raises(RuntimeError, match="ignore_index"):
        torch.nn.functional.cross_entropy(x, target, ignore_index=1)
    with pytest.raises(RuntimeError, match="cross_entropy: ignore_index=1 is not supported"):
        F.cross_entropy(nx.Tensor(x), nx.Tensor(target), ignore_index=1)


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_all_targets_ignored_with_smoothing_has_zero_gradient(weighted):
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.full((3,), -100)
    weight = torch.rand(4, dtype=torch.float64) if weighted else None
    torch.nn.functional.cross_entropy(x, target, weight=weight, label_smoothing=0.1).backward()
    xn = nx.Tensor(x.detach(), requires_grad=True)
    loss = F.cross_entropy(xn, nx.Tensor(target), weight=weight, label_smoothing=0.1)
    loss.backward()
    assert torch.isnan(loss.data)  # as torch: 0/0 in the mean
    assert torch.equal(xn.grad.data, x.grad) and not xn.grad.data.any()
