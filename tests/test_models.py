"""``nx.models``: torchvision's names, shapes and initialisation; forward and gradients equal torch's."""

from __future__ import annotations

import pytest
import torch
from _torch_resnet import TorchResNet, torchvision_or_none

import neuronix as nx
from neuronix.nn import functional as F

torchvision = torchvision_or_none()
needs_torchvision = pytest.mark.skipif(torchvision is None, reason="torchvision unavailable")
DEPTHS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


def _shapes(state):
    return [(k, tuple(v.shape)) for k, v in state.items()]


@pytest.mark.parametrize("name,cifar_stem", [("resnet18", False), ("resnet18", True), ("resnet34", True)])
def test_state_dict_keys_and_shapes_are_torchvisions(name, cifar_stem):
    model = getattr(nx.models, name)(num_classes=10, cifar_stem=cifar_stem)
    twin = TorchResNet(DEPTHS[name], 10, cifar_stem=cifar_stem)
    assert _shapes(model.state_dict()) == _shapes(twin.state_dict())
    model.load_state_dict(twin.state_dict())  # a torch state_dict loads directly
    for k, v in model.state_dict().items():
        assert torch.equal(v, twin.state_dict()[k])


def test_parameter_counts_are_the_published_ones():
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(nx.models.resnet18()) == 11_689_512
    assert count(nx.models.resnet34()) == 21_797_672
    assert count(nx.models.resnet18(num_classes=10, cifar_stem=True)) == 11_173_962


def test_same_seed_gives_torchvision_initialisation():
    torch.manual_seed(0)
    model = nx.models.resnet18(num_classes=10)
    torch.manual_seed(0)
    twin = TorchResNet(DEPTHS["resnet18"], 10)
    for k, v in twin.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_swapped_layer_keeps_its_place_in_the_state_dict():
    model, twin = nx.models.resnet18(), TorchResNet(DEPTHS["resnet18"], 1000)
    model.conv1 = nx.nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False)
    twin.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False)
    assert _shapes(model.state_dict()) == _shapes(twin.state_dict())


def test_wrong_stem_checkpoint_is_refused_with_shapes():
    with pytest.raises(RuntimeError, match=r"size mismatch for conv1\.weight"):
        nx.models.resnet18(cifar_stem=True).load_state_dict(TorchResNet(DEPTHS["resnet18"], 1000).state_dict())


def _compare_step(model, twin, x, y, mode):
    getattr(model, mode)()
    getattr(twin, mode)()
    xn = nx.Tensor(x.clone(), requires_grad=True)
    xt = x.clone().requires_grad_()
    logits = model(xn)
    loss = F.cross_entropy(logits, y, label_smoothing=0.1)
    loss.backward()
    logits_t = twin(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, y, label_smoothing=0.1)
    loss_t.backward()
    close = dict(rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(logits.data, logits_t.detach(), **close)
    torch.testing.assert_close(loss.data, loss_t.detach(), **close)
    torch.testing.assert_close(xn.grad.data, xt.grad, **close)
    grads = dict(twin.named_parameters())
    # a BatchNorm bias gradient is a per-channel sum that a train-mode BatchNorm downstream drives to ~0: its exact
    # value is pure cancellation, so both libraries carry absolute rounding noise of a few 1e-12 there
    grad_close = dict(rtol=1e-7, atol=1e-10)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad.data, grads[name].grad, **grad_close, msg=lambda m, n=name: f"grad {n}: {m}")
    buffers = dict(twin.named_buffers())
    for name, b in model.named_buffers():
        torch.testing.assert_close(b.data if isinstance(b, nx.Tensor) else b, buffers[name], **close)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("cifar_stem", [False, True])
def test_forward_loss_and_every_gradient_match_torch_float64(mode, cifar_stem):
    torch.manual_seed(1)
    twin = TorchResNet([1, 1, 1, 1], 5, cifar_stem=cifar_stem, width=8).double()
    with torch.no_grad():  # non-trivial running statistics for eval mode
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model = nx.models.ResNet([1, 1, 1, 1], num_classes=5, cifar_stem=cifar_stem, width=8).double()
    model.load_state_dict(twin.state_dict())
    side = 8 if cifar_stem else 16  # both reach 1x1 in layer4
    x = torch.randn(3, 3, side, side, dtype=torch.float64)
    _compare_step(model, twin, x, torch.tensor([0, 4, 2]), mode)


@needs_torchvision
def test_torchvision_resnet18_loads_and_matches():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=7).double()
    torch.manual_seed(0)
    model = nx.models.resnet18(num_classes=7).double()
    assert _shapes(model.state_dict()) == _shapes(tv.state_dict())
    for k, v in tv.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), f"{k}: same seed, different initialisation"
    _compare_step(model, tv, torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.tensor([1, 6]), "train")


def test_mlp_shapes_and_learning_signal():
    model = nx.models.mlp(64, 10, hidden=(32,))
    assert [k for k, _ in _shapes(model.state_dict())] == ["layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias"]
    out = model(nx.randn(4, 1, 8, 8))
    assert tuple(out.shape) == (4, 10)
