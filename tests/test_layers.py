"""nx.nn layers: torch's default init, repr, state_dict keys, buffers, options and errors.

Values and gradients over drawn inputs are the conformance harness's job
(``conformance/mirrors/nn_modules.py``); these tests pin the behaviour around them.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx
from neuronix import nn

# (class name, args, kwargs): every layer with parameters or buffers, in several configurations
PARAMETRISED = [
    ("Linear", (3, 4), {}),
    ("Linear", (5, 2), {"bias": False}),
    ("Conv1d", (4, 6, 3), {"groups": 2, "padding": "same"}),
    ("Conv2d", (3, 8, 3), {}),
    ("Conv2d", (4, 4, (2, 3)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 4, "bias": False}),
    ("Conv2d", (2, 3, 3), {"padding": 1, "padding_mode": "reflect"}),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "output_padding": 1, "groups": 2}),
    ("BatchNorm1d", (5,), {}),
    ("BatchNorm2d", (3,), {"momentum": None, "affine": False}),
    ("BatchNorm2d", (3,), {"track_running_stats": False, "bias": False}),
    ("LayerNorm", ((3, 4),), {}),
    ("LayerNorm", (6,), {"elementwise_affine": False}),
    ("LayerNorm", (6,), {"bias": False}),
    ("GroupNorm", (2, 6), {}),
    ("GroupNorm", (3, 6), {"affine": False}),
    ("Embedding", (10, 4), {}),
    ("Embedding", (10, 4), {"padding_idx": -2}),
]
PARAMETERLESS = [
    ("ReLU", (), {}), ("ReLU", (), {"inplace": True}), ("ReLU6", (), {}), ("GELU", (), {"approximate": "tanh"}),
    ("Tanh", (), {}), ("Sigmoid", (), {}), ("SiLU", (), {}), ("ELU", (), {"alpha": 0.5}), ("SELU", (), {}),
    ("LeakyReLU", (0.2,), {}), ("Softplus", (), {"beta": 2.0}), ("Hardtanh", (-2.0, 2.0), {}), ("Hardswish", (), {}),
    ("Mish", (), {}), ("Softmax", (), {"dim": 1}), ("LogSoftmax", (-1,), {}), ("Identity", (), {}),
    ("Flatten", (), {}), ("Unflatten", (1, (2, 3)), {}), ("Dropout", (0.3,), {}), ("MaxPool2d", (3,), {"stride": 2}),
    ("MaxPool2d", ((2, 3),), {"padding": 1, "dilation": 2, "ceil_mode": True}), ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3, 1, 1), {"count_include_pad": False}), ("AdaptiveAvgPool2d", ((1, None),), {}),
    ("MSELoss", (), {}), ("L1Loss", (), {"reduction": "sum"}), ("SmoothL1Loss", (), {"beta": 0.5}),
    ("HuberLoss", (), {"delta": 2.0}), ("NLLLoss", (), {"ignore_index": 1}), ("CrossEntropyLoss", (), {"label_smoothing": 0.1}),
    ("BCELoss", (), {}), ("BCEWithLogitsLoss", (), {"pos_weight": torch.ones(3)}), ("KLDivLoss", (), {"log_target": True}),
]


def _both(name, args, kwargs, seed=0):
    torch.manual_seed(seed)
    t = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    n = getattr(nn, name)(*args, **kwargs)
    return n, t


def _ids(case):
    return f"{case[0]}{case[1]}{case[2]}"


@pytest.mark.parametrize("case", PARAMETRISED, ids=_ids)
def test_default_init_state_dict_and_repr_match_torch(case):
    n, t = _both(*case, seed=7)
    n_sd, t_sd = n.state_dict(), t.state_dict()
    assert list(n_sd) == list(t_sd)
    for key in t_sd:
        assert n_sd[key].dtype == t_sd[key].dtype and torch.equal(n_sd[key], t_sd[key]), key
    assert repr(n) == repr(t)
    assert [k for k, _ in n.named_buffers()] == [k for k, _ in t.named_buffers()]
    for attr in ("in_features", "kernel_size", "stride", "padding", "dilation", "groups", "num_features", "eps", "momentum",
                 "normalized_shape", "padding_idx", "num_embeddings", "output_padding", "padding_mode"):
        if hasattr(t, attr):
            assert getattr(n, attr) == getattr(t, attr), attr


@pytest.mark.parametrize("case", PARAMETERLESS, ids=_ids)
def test_parameterless_layers_repr_and_state_dict(case):
    n, t = _both(*case)
    assert repr(n) == repr(t)
    assert list(n.state_dict()) == list(t.state_dict())


def test_torch_state_dict_loads_and_forward_matches():
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 2))
    n = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(16, 2))
    n.load_state_dict(t.state_dict())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    t.double()
    n.double()
    for train in (True, False):
        t.train(train)
        n.train(train)
        torch.testing.assert_close(n(nx.Tensor(x)).data, t(x), rtol=1e-7, atol=1e-12)
    for key, value in t.state_dict().items():
        torch.testing.assert_close(n.state_dict()[key], value, rtol=1e-7, atol=1e-12)


# ----- batch norm ------------------------------------------------------------------------
def test_batchnorm_running_stats_train_eval_and_cumulative_momentum():
    n, t = _both("BatchNorm1d", (3,), {"momentum": None})
    xs = [torch.randn(4, 3) for _ in range(3)]
    for x in xs:
        n(nx.Tensor(x))
        t(x)
    assert n.num_batches_tracked.item() == 3
    torch.testing.assert_close(n.running_mean.data, t.running_mean)
    torch.testing.assert_close(n.running_var.data, t.running_var)
    n.eval()
    before = n.running_mean.data.clone()
    n(nx.Tensor(xs[0]))
    assert torch.equal(n.running_mean.data, before) and n.num_batches_tracked.item() == 3


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval():
    n = nn.BatchNorm2d(2, track_running_stats=False).eval()
    x = torch.randn(3, 2, 4, 4)
    expected = torch.nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(n(nx.Tensor(x)).data, expected)
    assert n.running_mean is None and "running_mean" not in n.state_dict()


def test_batchnorm_loads_checkpoints_without_num_batches_tracked():
    n = nn.BatchNorm1d(3)
    n.num_batches_tracked.data.fill_(5)
    old = {k: v for k, v in torch.nn.BatchNorm1d(3).state_dict().items() if k != "num_batches_tracked"}
    assert n.load_state_dict(old) == ([], [])  # a plain dict: an old checkpoint, the count is kept
    assert n.num_batches_tracked.item() == 5
    current = torch.nn.BatchNorm1d(3).state_dict()  # carries _metadata (version 2): the key is required
    del current["num_batches_tracked"]
    with pytest.raises(RuntimeError, match='Missing key.*"num_batches_tracked"'):
        n.load_state_dict(current)


def test_state_dict_metadata_versions_match_torch():
    n = nn.Sequential(nn.BatchNorm2d(2), nn.Linear(2, 2))
    t = torch.nn.Sequential(torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2))
    assert dict(n.state_dict()._metadata) == {k: {"version": v["version"]} for k, v in t.state_dict()._metadata.items()}


# ----- other layers ------------------------------------------------------------------------
def test_conv_transpose_output_size():
    n, t = _both("ConvTranspose2d", (2, 3, 3), {"stride": 2, "padding": 1})
    n.load_state_dict(t.state_dict())
    x = torch.randn(1, 2, 4, 5)
    for size in ([7, 9], [8, 10], (1, 3, 8, 9)):
        torch.testing.assert_close(n(nx.Tensor(x), output_size=size).data, t(x, output_size=size))
    with pytest.raises(ValueError, match="valid sizes range from 7 to 8"):
        n(nx.Tensor(x), output_size=[10, 10])


def test_embedding_padding_row_and_from_pretrained():
    n = nn.Embedding(5, 3, padding_idx=1)
    assert n.weight.data[1].abs().sum() == 0
    out = n(nx.tensor([[1, 2], [1, 4]]))
    out.sum().backward()
    assert n.weight.grad.data[1].abs().sum() == 0 and n.weight.grad.data[2].tolist() == [1.0, 1.0, 1.0]
    pre = nn.Embedding.from_pretrained(torch.arange(6.0).reshape(3, 2))
    assert not pre.weight.requires_grad and pre(nx.tensor([2])).tolist() == [[4.0, 5.0]]


def test_dropout_same_mask_as_torch_and_identity_in_eval():
    x = torch.randn(4, 5)
    n, t = nn.Dropout(0.4), torch.nn.Dropout(0.4)
    torch.manual_seed(3)
    expected = t(x)
    torch.manual_seed(3)
    assert torch.equal(n(nx.Tensor(x)).data, expected)
    assert torch.equal(n.eval()(nx.Tensor(x)).data, x)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_swish_default_is_silu_and_learnable_beta_trains():
    x = nx.randn(3, 4)
    assert torch.equal(nn.Swish()(x).data, nn.SiLU()(x).data)
    assert list(nn.Swish().state_dict()) == []
    s = nn.Swish(beta=1.5, learnable=True)
    assert list(s.state_dict()) == ["beta"] and repr(s) == "Swish(beta=1.5, learnable=True)"
    xr = torch.randn(3, 4)
    beta = torch.tensor(1.5, requires_grad=True)
    (xr * torch.sigmoid(beta * xr)).sum().backward()
    s(nx.Tensor(xr)).sum().backward()
    torch.testing.assert_close(s.beta.grad.data, beta.grad)


def test_loss_weights_are_buffers_and_legacy_reduction():
    loss = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]))
    assert list(loss.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=torch.ones(3)).state_dict()) == ["weight"]
    loss.double()
    assert loss.weight.dtype == torch.float64
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning):
        assert nn.L1Loss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="average")


def test_flatten_unflatten_match_torch():
    x = torch.randn(2, 3, 4, 5)
    for args in ((), (0,), (1, 2), (-3, -2)):
        assert nn.Flatten(*args)(nx.Tensor(x)).shape == torch.nn.Flatten(*args)(x).shape
    y = torch.randn(2, 12, 5)
    for dim, sizes in ((1, (3, 4)), (1, (-1, 2)), (-1, (5, 1))):
        assert nn.Unflatten(dim, sizes)(nx.Tensor(y)).shape == torch.nn.Unflatten(dim, sizes)(y).shape
    with pytest.raises(ValueError, match="does not multiply"):
        nn.Unflatten(1, (5, 5))(nx.Tensor(y))


def test_module_conversions_move_every_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    model.double()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model[1].num_batches_tracked.dtype == torch.long


# ----- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,shape,pattern", [
    (lambda: nn.Conv2d(3, 4, 3), (2, 5, 8, 8), r"Conv2d\(3, 4.*expected input of shape \(N, 3, H, W\) or \(3, H, W\).*"
                                               r"got shape \(2, 5, 8, 8\)"),
    (lambda: nn.Conv2d(3, 4, 3), (8, 8), r"Conv2d\(3, 4.*expected a 3D or 4D input.*got a 2D input of shape \(8, 8\)"),
    (lambda: nn.Conv1d(2, 4, 3), (2, 3, 8), r"Conv1d\(2, 4.*\(N, 2, L\) or \(2, L\).*got shape \(2, 3, 8\)"),
    (lambda: nn.ConvTranspose2d(2, 4, 3), (1, 3, 4, 4), r"ConvTranspose2d.*with 2 channels, got shape \(1, 3, 4, 4\)"),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4), r"BatchNorm2d\(3.*expected a 4D input of shape \(N, 3, H, W\).*\(2, 3, 4\)"),
    (lambda: nn.BatchNorm1d(3), (4, 2), r"BatchNorm1d\(3.*\(N, 3\) or \(N, 3, L\) with 3 channels, got shape \(4, 2\)"),
    (lambda: nn.MaxPool2d(2), (4, 4), r"MaxPool2d\(kernel_size=2.*3D or 4D input.*got a 2D input of shape \(4, 4\)"),
    (lambda: nn.AvgPool2d(2), (1, 1, 1, 4, 4), r"AvgPool2d.*got a 5D input"),
    (lambda: nn.AdaptiveAvgPool2d(1), (4,), r"AdaptiveAvgPool2d.*got a 1D input"),
    (lambda: nn.LayerNorm(4), (2, 5), r"LayerNorm\(\(4,\).*expected input of shape \(\*, 4\), got shape \(2, 5\)"),
    (lambda: nn.GroupNorm(2, 4), (2, 6, 3), r"GroupNorm\(2, 4.*expected input of shape \(N, 4, \*\), got shape \(2, 6, 3\)"),
    (lambda: nn.Linear(3, 2), (4, 5), r"Linear\(in_features=3.*expected input of shape \(\*, 3\), got shape \(4, 5\)"),
])
def test_wrong_input_shapes_name_the_layer_and_both_shapes(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer()(nx.randn(*shape))


def test_constructor_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="output padding must be smaller"):
        nn.ConvTranspose2d(2, 2, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=3)
