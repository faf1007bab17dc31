"""The issue-14 nn modules (normalisations, dropouts, activations, distances, Bilinear, EmbeddingBag, losses,
parameter containers, nn.Buffer, DataParallel) against torch: init, repr, state_dict keys, values,
gradients, errors and warnings, and the hostile cases (NaN, inf upstream gradients, retain_graph,
create_graph, in place, eval/train, batch of 1, unbatched inputs).

Drawn inputs are the conformance harness's job (``conformance/mirrors/nn_modules_more.py``); these
tests pin fixed cases and the behaviour around them.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import neuronix as nx
from neuronix import nn


def _both(name, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    t = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    n = getattr(nn, name)(*args, **kwargs)
    return n, t


def _leaf(x):
    return nx.Tensor(x.detach().clone(), requires_grad=x.requires_grad)


def _run(n, t, *inputs, seed=0, upstream_seed=1, grad_args=None):
    """Both modules on the same inputs (float ones, or those at ``grad_args``, differentiated) with torch's RNG at
    ``seed`` before each call; returns (nx output, torch output, nx grads, torch grads) under one random upstream
    gradient."""
    t_in = [x.detach().clone().requires_grad_(x.is_floating_point() and (grad_args is None or i in grad_args))
            if isinstance(x, torch.Tensor) else x for i, x in enumerate(inputs)]
    n_in = [_leaf(x) if isinstance(x, torch.Tensor) else x for x in t_in]
    torch.manual_seed(seed)
    t_out = t(*t_in)
    torch.manual_seed(seed)
    n_out = n(*n_in)
    g = torch.randn(t_out.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=t_out.dtype)
    wrt_t = [x for x in t_in if isinstance(x, torch.Tensor) and x.requires_grad] + [p for p in t.parameters()]
    wrt_n = [x for x in n_in if isinstance(x, nx.Tensor) and x.requires_grad] + [p for p in n.parameters()]
    t_grads = torch.autograd.grad(t_out, wrt_t, g, allow_unused=True)
    n_grads = nx.autograd.grad(n_out, wrt_n, nx.Tensor(g), allow_unused=True)
    return n_out, t_out, n_grads, t_grads


def _close(n_value, t_value, **kw):
    if t_value is None:
        assert n_value is None or torch.count_nonzero(n_value.data) == 0
        return
    torch.testing.assert_close(n_value.data if isinstance(n_value, nx.Tensor) else n_value, t_value, equal_nan=True, **kw)


def _check(n, t, *inputs, **kw):
    n_out, t_out, n_grads, t_grads = _run(n, t, *inputs, **kw)
    _close(n_out, t_out)
    for ng, tg in zip(n_grads, t_grads):
        _close(ng, tg)


# (class name, args, kwargs, input shapes): fixed cases compared for init, repr, state_dict, values and gradients
CASES = [
    ("PReLU", (), {}, [(2, 3, 4)]),
    ("PReLU", (3,), {"init": -0.3}, [(2, 3, 4)]),
    ("CELU", (), {"alpha": 0.5}, [(3, 4)]),
    ("GLU", (), {"dim": 1}, [(2, 4, 3)]),
    ("Hardsigmoid", (), {}, [(5, 3)]),
    ("Softsign", (), {}, [(4,)]),
    ("Softshrink", (), {"lambd": 0.3}, [(4, 2)]),
    ("Hardshrink", (0.3,), {}, [(4, 2)]),
    ("Tanhshrink", (), {}, [(4, 2)]),
    ("Threshold", (0.1, -2.0), {}, [(4, 2)]),
    ("LogSigmoid", (), {}, [(4, 2)]),
    ("Softmin", (), {"dim": 0}, [(4, 2)]),
    ("Softmax2d", (), {}, [(2, 3, 2, 2)]),
    ("Softmax2d", (), {}, [(3, 2, 2)]),
    ("RReLU", (), {}, [(4, 5)]),
    ("RReLU", (0.1, 0.4), {"inplace": False}, [(4, 5)]),
    ("Dropout1d", (0.5,), {}, [(2, 4, 3)]),
    ("Dropout2d", (0.5,), {}, [(2, 4, 3, 3)]),
    ("Dropout3d", (0.3,), {}, [(2, 4, 2, 2, 2)]),
    ("Dropout3d", (0.3,), {}, [(4, 2, 2, 2)]),
    ("AlphaDropout", (0.2,), {}, [(3, 5)]),
    ("FeatureAlphaDropout", (0.4,), {}, [(2, 5, 3)]),
    ("Bilinear", (3, 4, 2), {}, [(5, 3), (5, 4)]),
    ("Bilinear", (3, 4, 2), {"bias": False}, [(3,), (4,)]),
    ("CosineSimilarity", (), {"dim": 0}, [(3, 4), (3, 4)]),
    ("PairwiseDistance", (), {"p": 1.0, "keepdim": True}, [(3, 4), (3, 4)]),
    ("BatchNorm3d", (3,), {}, [(2, 3, 2, 3, 2)]),
    ("SyncBatchNorm", (3,), {"momentum": None}, [(4, 3)]),
    ("SyncBatchNorm", (3,), {"affine": False}, [(2, 3, 2, 2, 2, 2)]),
    ("InstanceNorm1d", (3,), {}, [(2, 3, 5)]),
    ("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True}, [(3, 5)]),
    ("InstanceNorm2d", (2,), {"affine": True}, [(1, 2, 3, 4)]),
    ("InstanceNorm3d", (2,), {"track_running_stats": True, "momentum": None}, [(2, 2, 3, 2, 2)]),
    ("RMSNorm", ((3, 4),), {}, [(2, 3, 4)]),
    ("RMSNorm", (4,), {"eps": 1e-3, "elementwise_affine": False}, [(4,)]),
    ("LocalResponseNorm", (3,), {"alpha": 0.5, "k": 2.0}, [(2, 5, 3)]),
    ("LocalResponseNorm", (2,), {}, [(2, 4, 3, 3)]),
    ("CrossMapLRN2d", (3,), {"alpha": 0.5}, [(2, 5, 3, 3)]),
    ("CrossMapLRN2d", (2,), {"beta": 1.5, "k": 2}, [(1, 1, 2, 2)]),
    ("GaussianNLLLoss", (), {"full": True}, [(4, 3), (4, 3), "var"]),
    ("PoissonNLLLoss", (), {"log_input": True, "full": True}, [(4, 3), "counts"]),
    ("SoftMarginLoss", (), {"reduction": "sum"}, [(4, 3), "signs"]),
    ("HingeEmbeddingLoss", (), {"margin": 0.5}, [(4, 3), "signs"]),
    ("MarginRankingLoss", (), {"margin": 0.2}, [(5,), (5,), "signs"]),
    ("CosineEmbeddingLoss", (), {"margin": 0.1, "reduction": "none"}, [(5, 3), (5, 3), "row signs"]),
    ("MultiLabelSoftMarginLoss", (), {"weight": torch.rand(3) + 0.5}, [(4, 3), "probs"]),
    ("MultiMarginLoss", (), {"p": 2, "margin": 0.5, "weight": torch.rand(3) + 0.5}, [(4, 3), "classes 3"]),
    ("MultiLabelMarginLoss", (), {}, [(2, 4), "multilabel"]),
    ("TripletMarginLoss", (), {"margin": 0.5, "swap": True}, [(4, 3), (4, 3), (4, 3)]),
    ("TripletMarginWithDistanceLoss", (), {"margin": 0.5}, [(4, 3), (4, 3), (4, 3)]),
    ("NLLLoss2d", (), {"ignore_index": 1}, [(2, 3, 2, 2), "classes 3 spatial"]),
]


def _input(spec, batch_shape, gen):
    if isinstance(spec, tuple):
        return torch.randn(spec, generator=gen, dtype=torch.float64)
    n = batch_shape
    if spec == "var":
        return torch.rand(n, generator=gen, dtype=torch.float64) + 0.2
    if spec == "counts":
        return torch.randint(0, 5, n, generator=gen).to(torch.float64)
    if spec == "signs":
        return torch.randint(0, 2, n, generator=gen).to(torch.float64) * 2 - 1
    if spec == "row signs":
        return torch.randint(0, 2, n[:1], generator=gen).to(torch.float64) * 2 - 1
    if spec == "probs":
        return torch.rand(n, generator=gen, dtype=torch.float64)
    if spec == "classes 3":
        return torch.randint(0, 3, n[:1], generator=gen)
    if spec == "classes 3 spatial":
        return torch.randint(0, 3, (n[0],) + n[2:], generator=gen)
    if spec == "multilabel":
        return torch.tensor([[3, 0, -1, 1], [0, 1, 2, 3]])
    raise ValueError(spec)


def _inputs(shapes, seed=3):
    gen = torch.Generator().manual_seed(seed)
    first = shapes[0]
    return [_input(s, first, gen) for s in shapes]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{c[1]}{c[2]}{c[3]}")
def test_module_matches_torch(case):
    name, args, kwargs, shapes = case
    n, t = _both(name, *args, seed=7, **kwargs)
    assert repr(n) == repr(t)
    n_sd, t_sd = n.state_dict(), t.state_dict()
    assert list(n_sd) == list(t_sd)
    for key in t_sd:
        assert torch.equal(n_sd[key], t_sd[key]), key
    t.double()
    n.double()
    inputs = _inputs(shapes)
    for mode in (True, False):
        n.train(mode)
        t.train(mode)
        _check(n, t, *inputs, seed=11, grad_args=[i for i, s in enumerate(shapes) if isinstance(s, tuple)])
        for key, value in t.state_dict().items():  # running statistics moved alike
            torch.testing.assert_close(n.state_dict()[key], value)


def test_seeded_random_modules_draw_torchs_masks_and_slopes():
    x = torch.randn(6, 8, 3, 3)
    for name, args in (("Dropout2d", (0.5,)), ("RReLU", ()), ("AlphaDropout", (0.5,)), ("FeatureAlphaDropout", (0.5,)),
                       ("Dropout1d", (0.5,))):
        n, t = _both(name, *args)
        data = x if name != "Dropout1d" else x[:, :, 0]
        for seed in (0, 1):
            torch.manual_seed(seed)
            expected = t(data)
            torch.manual_seed(seed)
            assert torch.equal(n(nx.Tensor(data)).data, expected), name
        n.eval()
        t.eval()
        assert torch.equal(n(nx.Tensor(data)).data, t(data)), name  # eval: identity (RReLU: the mean slope)


def test_dropout_probabilities_outside_unit_interval_raise():
    for name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
            getattr(nn, name)(1.5)
        with pytest.raises(ValueError):
            getattr(torch.nn, name)(1.5)


# ----- activations ------------------------------------------------------------------------------------------
def test_prelu_gradient_per_channel_and_second_derivative():
    n, t = _both("PReLU", 3)
    x = torch.tensor([[[-1.0, 2.0], [0.0, -3.0], [4.0, -0.5]]], dtype=torch.float64, requires_grad=True)
    t.double()
    n.double()
    xn = _leaf(x)
    (gt,) = torch.autograd.grad(t(x).pow(2).sum(), x, create_graph=True)
    (gn,) = nx.autograd.grad(n(xn).pow(2).sum(), xn, create_graph=True)
    _close(gn, gt)
    _close(nx.autograd.grad(gn.sum(), n.weight)[0], torch.autograd.grad(gt.sum(), t.weight)[0])


def test_softmax2d_rejects_other_ranks_as_torch():
    with pytest.raises(ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D instead"):
        nn.Softmax2d()(nx.randn(2, 3))


def test_threshold_nan_and_inf_upstream():
    n, t = _both("Threshold", 0.0, 5.0)
    x = torch.tensor([float("nan"), -1.0, 0.0, 2.0, float("inf")], requires_grad=True)
    g = torch.tensor([1.0, float("inf"), 1.0, float("-inf"), 1.0])
    xn = _leaf(x)
    out_n, out_t = n(xn), t(x)
    _close(out_n, out_t)
    out_n.backward(nx.Tensor(g))
    out_t.backward(g)
    _close(xn.grad, x.grad)


def test_inplace_activation_modules_change_their_input():
    for name, args in (("CELU", ()), ("Threshold", (0.0, 1.0)), ("Hardsigmoid", ()), ("RReLU", ())):
        n, t = _both(name, *args, inplace=True)
        n.eval()
        t.eval()
        x = torch.randn(3, 4)
        xt, xn = x.clone(), nx.Tensor(x.clone())
        out_t, out_n = t(xt), n(xn)
        assert out_t is xt and out_n is xn and torch.equal(xn.data, xt), name
        assert repr(n) == repr(t)


# ----- normalisation ---------------------------------------------------------------------------------------
def test_instance_norm_num_features_mismatch_warns_or_raises_as_torch():
    x = torch.randn(2, 4, 5)
    with pytest.warns(UserWarning, match="input's size at dim=1 does not match num_features"):
        nn.InstanceNorm1d(3)(nx.Tensor(x))
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features \(3\), but got: 4."):
        nn.InstanceNorm1d(3, affine=True)(nx.Tensor(x))
    with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
        nn.InstanceNorm2d(3)(nx.randn(3, 4))
    with pytest.raises(ValueError):
        torch.nn.InstanceNorm2d(3)(torch.randn(3, 4))


def test_instance_norm_unbatched_equals_batch_of_one():
    n = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    x = torch.randn(3, 4, 5)
    single = n(nx.Tensor(x))
    stats = n.running_mean.data.clone()
    n.reset_running_stats()
    batched = n(nx.Tensor(x[None]))
    assert single.shape == (3, 4, 5)
    torch.testing.assert_close(single.data, batched.data[0])
    torch.testing.assert_close(stats, n.running_mean.data)
    assert n.num_batches_tracked.item() == 0  # instance norm never counts batches, as torch


def test_sync_batchnorm_errors_and_conversion_share_state():
    with pytest.raises(ValueError, match=r"expected at least 2D input \(got 1D input\)"):
        nn.SyncBatchNorm(3)(nx.randn(3))
    with pytest.raises(ValueError, match="number of input channels should be non-zero"):
        nn.SyncBatchNorm(0)(nx.randn(2, 0, 3))
    bn = nn.BatchNorm2d(4, momentum=0.3, bias=False)
    bn.eval()
    net = nn.Sequential(nn.Conv2d(3, 4, 1), bn, nn.Sequential(nn.BatchNorm1d(2)), nn.InstanceNorm2d(4))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    t_net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.3, bias=False),
                                torch.nn.Sequential(torch.nn.BatchNorm1d(2)), torch.nn.InstanceNorm2d(4))
    t_net[1].eval()
    t_converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(t_net)
    assert repr(converted) == repr(t_converted)
    assert list(converted.state_dict()) == list(t_converted.state_dict())
    assert converted[1].weight is bn.weight and converted[1].running_mean is bn.running_mean
    assert not converted[1].training and type(converted[3]) is nn.InstanceNorm2d


def test_batchnorm3d_rank_error_names_the_layer():
    with pytest.raises(ValueError, match=r"BatchNorm3d.*5D input"):
        nn.BatchNorm3d(3)(nx.randn(2, 3, 4, 4))


@pytest.mark.parametrize("name,shape", [("LazyBatchNorm1d", (4, 3, 5)), ("LazyBatchNorm2d", (2, 3, 4, 4)),
                                        ("LazyBatchNorm3d", (2, 3, 2, 2, 2)), ("LazyInstanceNorm1d", (2, 3, 5)),
                                        ("LazyInstanceNorm2d", (2, 3, 4, 4)), ("LazyInstanceNorm3d", (2, 3, 2, 2, 2))])
def test_lazy_norms_materialise_and_become_the_eager_class(name, shape):
    kwargs = {"affine": True, "track_running_stats": True} if "Instance" in name else {}
    n, t = _both(name, **kwargs)
    assert repr(n) == repr(t)
    x = torch.randn(shape)
    torch.testing.assert_close(n(nx.Tensor(x)).data, t(x))
    assert type(n).__name__ == type(t).__name__ == name.removeprefix("Lazy")
    assert repr(n) == repr(t) and list(n.state_dict()) == list(t.state_dict())
    for key, value in t.state_dict().items():
        torch.testing.assert_close(n.state_dict()[key], value)


def test_lazy_batchnorm_loads_a_torch_state_dict_before_any_forward():
    source = torch.nn.BatchNorm2d(5)
    source.running_mean.fill_(0.5)
    lazy = nn.LazyBatchNorm2d()
    lazy.load_state_dict(source.state_dict())
    torch.testing.assert_close(lazy.running_mean.data, source.running_mean)
    assert lazy(nx.randn(2, 5, 3, 3)).shape == (2, 5, 3, 3)


def test_cross_map_lrn2d_reproduces_torchs_legacy_gradient_not_the_derivative():
    # torch's backward is not the derivative of its forward: neuronix follows torch (gradcheck would fail both)
    n, t = _both("CrossMapLRN2d", 3, alpha=0.5)
    x = torch.randn(2, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(t, (x,), raise_exception=False)
    _check(n, t, x)
    with pytest.raises(ValueError, match="Expected input to be 4D, got 3D instead"):
        n(nx.randn(2, 3, 4))


def test_rmsnorm_eps_none_uses_dtype_epsilon_like_torch():
    n, t = _both("RMSNorm", 3)
    x = torch.full((2, 3), 1e-5, dtype=torch.float32)
    _close(n(nx.Tensor(x)), t(x))


# ----- EmbeddingBag -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"mode": "sum"}, {"mode": "mean", "padding_idx": -1}, {"mode": "max"},
                                    {"mode": "sum", "include_last_offset": True}, {"mode": "mean", "max_norm": 1.0}])
def test_embedding_bag_matches_torch(kwargs):
    n, t = _both("EmbeddingBag", 6, 3, **kwargs)
    assert repr(n) == repr(t)
    t.double()
    n.double()
    indices, offsets = torch.tensor([0, 2, 5, 1, 3, 3, 5]), torch.tensor([0, 2, 2, 4])
    if kwargs.get("include_last_offset"):
        offsets = torch.cat([offsets, torch.tensor([7])])
    _check(n, t, indices, offsets)
    _check(n, t, torch.tensor([[1, 2], [5, 0]]))  # 2-D input: one bag per row
    if kwargs.get("max_norm"):  # renormalised in place in both
        torch.testing.assert_close(n.weight.data, t.weight.detach())


def test_embedding_bag_per_sample_weights_and_from_pretrained():
    n, t = _both("EmbeddingBag", 5, 2, mode="sum")
    indices, offsets = torch.tensor([0, 4, 4, 1]), torch.tensor([0, 1])
    weights = torch.randn(4, dtype=torch.float32)
    _check(n, t, indices, offsets, weights)
    table = torch.randn(4, 3)
    bag = nn.EmbeddingBag.from_pretrained(table, mode="max")
    assert not bag.weight.requires_grad and bag.mode == "max"
    assert nn.EmbeddingBag.from_pretrained(table, freeze=False).weight.requires_grad
    with pytest.raises(AssertionError, match="2-dimensional"):
        nn.EmbeddingBag.from_pretrained(torch.randn(3))
    with pytest.raises(AssertionError, match="padding_idx must be within num_embeddings"):
        nn.EmbeddingBag(3, 2, padding_idx=3)
    emb = nn.Embedding.from_pretrained(table, padding_idx=1)
    assert not emb.weight.requires_grad and emb.padding_idx == 1


# ----- losses -------------------------------------------------------------------------------------------------
def test_loss_constructor_errors_as_torch():
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor, got 2D instead"):
        nn.MultiMarginLoss(weight=torch.ones(2, 2))
    with pytest.raises(ValueError, match="expected margin to be greater than 0, got 0 instead"):
        nn.TripletMarginLoss(margin=0)
    with pytest.raises(ValueError, match="greater than 0"):
        nn.TripletMarginWithDistanceLoss(margin=-1.0)
    with pytest.raises(TypeError):
        nn.GaussianNLLLoss(True)  # keyword-only, as torch
    with pytest.raises(RuntimeError, match=r"expected weight shape to be \(3,\)"):
        nn.LinearCrossEntropyLoss(2, 3, weight=torch.ones(2))
    with pytest.raises(RuntimeError, match="label_smoothing to be in range"):
        nn.LinearCrossEntropyLoss(2, 3, label_smoothing=1.5)


def test_legacy_size_average_reduce_flags_as_torch():
    with pytest.warns(UserWarning, match="reduction='sum'"):
        n = nn.SoftMarginLoss(size_average=False)
    assert n.reduction == "sum"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert nn.PoissonNLLLoss(reduce=False).reduction == torch.nn.PoissonNLLLoss(reduce=False).reduction


def test_triplet_with_distance_default_is_a_pairwise_distance_child():
    n, t = nn.TripletMarginWithDistanceLoss(), torch.nn.TripletMarginWithDistanceLoss()
    assert repr(n) == repr(t) and isinstance(n.distance_function, nn.PairwiseDistance)
    custom = nn.TripletMarginWithDistanceLoss(distance_function=lambda a, b: (a - b).abs().sum(-1))
    a, p, q = (torch.randn(4, 3) for _ in range(3))
    expected = torch.nn.TripletMarginWithDistanceLoss(distance_function=lambda a, b: (a - b).abs().sum(-1))(a, p, q)
    _close(custom(nx.Tensor(a), nx.Tensor(p), nx.Tensor(q)), expected)


def test_ctc_loss_module_matches_torch_through_log_softmax():
    n, t = _both("CTCLoss", blank=1, zero_infinity=True)
    logits = torch.randn(6, 2, 4, dtype=torch.float64)
    targets = torch.tensor([[0, 2, 3], [2, 2, 0]])
    lengths, target_lengths = torch.tensor([6, 5]), torch.tensor([3, 2])

    class Logits(torch.nn.Module):
        def __init__(self, loss):
            super().__init__()
            self.loss = loss

        def forward(self, x, *rest):
            return self.loss(x.log_softmax(-1), *rest)

    class NxLogits(nn.Module):
        def __init__(self, loss):
            super().__init__()
            self.loss = loss

        def forward(self, x, *rest):
            return self.loss(x.log_softmax(-1), *rest)

    _check(NxLogits(n), Logits(t), logits, targets, lengths, target_lengths)
    assert repr(n) == repr(t)


def test_adaptive_log_softmax_outputs_log_prob_predict_and_errors():
    n, t = _both("AdaptiveLogSoftmaxWithLoss", 8, 12, [3, 7], div_value=2.0, head_bias=True)
    assert repr(n) == repr(t) and list(n.state_dict()) == list(t.state_dict())
    n.double()
    t.double()
    x = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 4, 11, 2, 7, 9])
    xn = _leaf(x)
    out_n, out_t = n(xn, nx.Tensor(target)), t(x, target)
    assert type(out_n).__name__ == "_ASMoutput" and out_n._fields == ("output", "loss")
    _close(out_n.output, out_t.output)
    _close(out_n.loss, out_t.loss)
    out_n.loss.backward()
    out_t.loss.backward()
    _close(xn.grad, x.grad)
    _close(n.tail[1][0].weight.grad, t.tail[1][0].weight.grad)
    _close(n.log_prob(nx.Tensor(x.detach())), t.log_prob(x.detach()))
    assert torch.equal(n.predict(nx.Tensor(x.detach())).data, t.predict(x.detach()))
    single_n, single_t = n(nx.Tensor(x.detach()[0]), nx.Tensor(target[1])), t(x.detach()[0], target[1])
    _close(single_n.output, single_t.output)
    assert single_n.output.shape == ()
    with pytest.raises(RuntimeError, match=r"Target values should be in \[0, 11\]"):
        n(nx.Tensor(x.detach()), nx.tensor([0, 1, 2, 3, 4, 12]))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        n(nx.Tensor(x.detach()), nx.tensor([[0]]))
    with pytest.raises(ValueError, match="cutoffs should be a sequence of unique"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 12, [3, 3])
    with pytest.raises(ValueError, match="larger than 0"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 12, [])


def test_adaptive_log_softmax_predict_mixes_head_and_clusters():
    n, t = _both("AdaptiveLogSoftmaxWithLoss", 4, 6, [2], div_value=1.0, seed=3)
    x = torch.randn(40, 4) * 3
    expected = t.predict(x)
    assert (expected >= 2).any() and (expected < 2).any()  # both branches of predict
    assert torch.equal(n.predict(nx.Tensor(x)).data, expected)


def test_linear_cross_entropy_loss_matches_torch():
    n, t = _both("LinearCrossEntropyLoss", 3, 4, out_features=(2,), bias=True, weight=torch.rand(4) + 0.5,
                 label_smoothing=0.1)
    assert repr(n) == repr(t) and list(n.state_dict()) == list(t.state_dict())
    n.double()
    t.double()
    _check(n, t, torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 4, (5, 2)))
    assert nn.LinearCrossEntropyOptions is torch.nn.LinearCrossEntropyOptions


def test_losses_retain_graph_twice_and_create_graph():
    n, t = _both("GaussianNLLLoss")
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    target, var = torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64) + 0.5
    xn = _leaf(x)
    ln, lt = n(xn, nx.Tensor(target), nx.Tensor(var)), t(x, target, var)
    ln.backward(retain_graph=True)
    ln.backward()
    lt.backward(retain_graph=True)
    lt.backward()
    _close(xn.grad, x.grad)
    (gn,) = nx.autograd.grad(n(xn, nx.Tensor(target), nx.Tensor(var)), xn, create_graph=True)
    (gt,) = torch.autograd.grad(t(x, target, var), x, create_graph=True)
    _close(nx.autograd.grad(gn.pow(2).sum(), xn)[0], torch.autograd.grad(gt.pow(2).sum(), x)[0])


# ----- containers, Buffer, DataParallel ---------------------------------------------------------------------------
def test_parameter_list_as_torch():
    values = [torch.ones(2, 3), nn.Parameter(torch.zeros(3)), "text"]
    n, t = nn.ParameterList(values), torch.nn.ParameterList([v if isinstance(v, str) else torch.nn.Parameter(v.data)
                                                              if isinstance(v, nx.Tensor) else v for v in values])
    assert repr(n) == repr(t)
    assert list(n.state_dict()) == list(t.state_dict()) == ["0", "1"]
    assert isinstance(n[0], nn.Parameter) and n[1] is values[1] and n[-1] == "text" and len(n) == 3
    n.append(torch.randn(1))
    n.extend([torch.randn(2)])
    n += [torch.randn(3)]
    assert len(n) == 6 and [k for k, _ in n.named_parameters()] == ["0", "1", "3", "4", "5"]
    assert len(n[1:4]) == 3 and type(n[1:4]) is nn.ParameterList
    with pytest.raises(IndexError, match="out of range"):
        n[6]
    with pytest.raises(TypeError, match="should be called with an iterable"):
        n.extend(torch.ones(2))
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        n(1)
    n[0] = torch.zeros(1)
    assert isinstance(n[0], nn.Parameter) and n[0].shape == (1,)
    assert "0" not in dir(n)


def test_parameter_dict_as_torch():
    given = {"b": torch.ones(2), "a": torch.zeros(1, dtype=torch.float64)}
    n, t = nn.ParameterDict(given), torch.nn.ParameterDict(given)
    assert repr(n) == repr(t) and list(n) == list(t) == ["a", "b"]  # a plain dict is added sorted
    assert list(n.state_dict()) == list(t.state_dict())
    n["c"] = nn.Parameter(torch.ones(3))
    n.update([("d", torch.ones(1))])
    assert list(n.keys()) == ["a", "b", "c", "d"] and "c" in n and n.get("z", 5) == 5
    assert n.pop("a").dtype == torch.float64 and "a" not in n
    assert n.setdefault("e", torch.zeros(2)).shape == (2,)
    key, value = n.popitem()
    assert key == "e"
    merged = n | nn.ParameterDict({"z": torch.ones(1)})
    assert list(merged) == ["b", "c", "d", "z"] and list(n) == ["b", "c", "d"]
    assert list(reversed(n)) == ["d", "c", "b"]
    assert list(n.copy()) == list(n) and list(n.fromkeys(["x", "y"])) == ["x", "y"]
    with pytest.raises(TypeError, match="not a string"):
        n[1] = torch.ones(1)
    with pytest.raises(ValueError, match="has length 3; 2 is required"):
        n.update([("a", 1, 2)])
    n.clear()
    assert len(n) == 0 and list(n.parameters()) == []


def test_parameter_containers_train_in_a_model():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ParameterList([torch.randn(3, 3) for _ in range(2)])
            self.extra = nn.ParameterDict({"scale": torch.ones(3)})

        def forward(self, x):
            for w in self.layers:
                x = x @ w
            return x * self.extra["scale"]

    net = Net()
    optim = nx.optim.SGD(net.parameters(), lr=0.1)
    before = net.layers[0].data.clone()
    net(nx.randn(2, 3)).sum().backward()
    optim.step()
    assert not torch.equal(net.layers[0].data, before) and net.extra["scale"].grad is not None


def test_buffer_assignment_registers_a_buffer_as_torch():
    for lib in (torch, nx):
        module = lib.nn.Module()
        module.kept = lib.nn.Buffer(torch.ones(2))
        module.scratch = lib.nn.Buffer(torch.zeros(1), persistent=False)
        assert [k for k, _ in module.named_buffers()] == ["kept", "scratch"]
        assert list(module.state_dict()) == ["kept"]
        module.kept = torch.full((2,), 3.0)  # reassigning a buffer name keeps it a buffer
        assert float(module.state_dict()["kept"][0]) == 3.0
    assert nx.nn.Buffer(torch.ones(1)).persistent and not nx.nn.Buffer(torch.ones(1), persistent=False).persistent


def test_nllloss2d_is_deprecated_as_torch():
    with pytest.warns(FutureWarning, match="`NLLLoss2d` has been deprecated. Please use `NLLLoss`"):
        loss = nn.NLLLoss2d(ignore_index=2)
    assert isinstance(loss, nn.NLLLoss) and loss.ignore_index == 2


def test_container_is_deprecated_and_registers_its_keywords():
    with pytest.warns(FutureWarning, match="nn.Container` is deprecated"):
        n = nn.Container(a=nn.Linear(2, 2), b=nn.ReLU())
    assert list(n.state_dict()) == ["a.weight", "a.bias"] and [k for k, _ in n.named_children()] == ["a", "b"]


def test_data_parallel_wraps_the_module_with_torchs_prefix():
    n, t = _both("Linear", 3, 2)
    dn, dt = nn.DataParallel(n), torch.nn.DataParallel(t)
    assert list(dn.state_dict()) == list(dt.state_dict()) == ["module.weight", "module.bias"]
    assert dn.module is n and repr(dn) == repr(dt)
    x = torch.randn(4, 3)
    _close(dn(nx.Tensor(x)), dt(x))
    fresh = nn.DataParallel(nn.Linear(3, 2))
    fresh.load_state_dict(dt.state_dict())
    _close(fresh(nx.Tensor(x)), dt(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_modules_on_cuda_match_cpu():
    for name, args in (("InstanceNorm2d", (3,)), ("RMSNorm", (4,)), ("CrossMapLRN2d", (3,)), ("PReLU", ())):
        n, _ = _both(name, *args)
        x = torch.randn(2, 3, 4, 4)
        expected = n(nx.Tensor(x)).data
        torch.testing.assert_close(n.to("cuda")(nx.Tensor(x.cuda())).data.cpu(), expected, rtol=1e-4, atol=1e-5)


# ----- SyncBatchNorm across processes --------------------------------------------------------------------------------
def _sync_bn_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 3, 4, dtype=torch.float64)
        g = torch.randn(6, 3, 4, dtype=torch.float64)
        module = nn.SyncBatchNorm(3).double()
        with torch.no_grad():
            module.weight.data.copy_(torch.tensor([1.0, 2.0, -0.5]))
            module.bias.data.copy_(torch.tensor([0.1, 0.0, 0.3]))
        rows = slice(rank * 3, rank * 3 + 3)  # each process holds half of the batch
        xn = nx.Tensor(x[rows].clone(), requires_grad=True)
        y = module(xn)
        y.backward(nx.Tensor(g[rows]))
        grads = torch.stack([module.weight.grad.data, module.bias.grad.data])
        dist.all_reduce(grads)  # DDP's job: the parameter gradients summed over processes
        torch.save({"y": y.data, "x_grad": xn.grad.data, "param_grads": grads, "running_mean": module.running_mean.data,
                    "running_var": module.running_var.data}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_sync_batchnorm_over_two_processes_equals_batch_norm_of_the_whole_batch(tmp_path):
    import socket

    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("gloo unavailable")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_sync_bn_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 3, 4, dtype=torch.float64)
    reference = torch.nn.BatchNorm1d(3).double()
    with torch.no_grad():
        reference.weight.copy_(torch.tensor([1.0, 2.0, -0.5]))
        reference.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    y = reference(x)
    y.backward(g)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        rows = slice(rank * 3, rank * 3 + 3)
        torch.testing.assert_close(got["y"], y.detach()[rows])
        torch.testing.assert_close(got["x_grad"], x.grad[rows])
        torch.testing.assert_close(got["param_grads"], torch.stack([reference.weight.grad, reference.bias.grad]))
        torch.testing.assert_close(got["running_mean"], reference.running_mean)
        torch.testing.assert_close(got["running_var"], reference.running_var)
