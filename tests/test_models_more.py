"""torchvision's architectures beyond ResNet-18/34: names, parameter counts, seeded init, outputs, ``weights=``."""

from __future__ import annotations

import pytest
import torch
from _torch_resnet import torchvision_or_none

import neuronix as nx

torchvision = torchvision_or_none()
needs_torchvision = pytest.mark.skipif(torchvision is None, reason="torchvision unavailable")

# torchvision's published parameter counts (its model documentation tables)
COUNTS = {"resnet50": 25_557_032, "mobilenet_v2": 3_504_872, "vgg11": 132_863_336, "vgg11_bn": 132_868_840,
          "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "vit_b_16": 86_567_656}
# small inputs that still pass through every stage: (builder kwargs, image side)
SMALL = {"resnet50": ({}, 32), "mobilenet_v2": ({}, 32), "vgg11": ({}, 32), "vgg11_bn": ({}, 32), "vgg16": ({}, 32),
         "vgg16_bn": ({}, 32), "vit_b_16": ({"image_size": 32}, 32)}


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_are_torchvisions(name):
    assert _count(getattr(nx.models, name)()) == COUNTS[name]


def test_resnet_takes_torchvisions_arguments_and_the_original_spelling():
    legacy = nx.models.ResNet([1, 1, 1, 1], 10, width=8)
    tv_style = nx.models.ResNet(nx.models.BasicBlock, [1, 1, 1, 1], num_classes=10, width=8)
    assert [(k, v.shape) for k, v in legacy.state_dict().items()] == [(k, v.shape) for k, v in tv_style.state_dict().items()]
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        nx.models.ResNet(nx.models.BasicBlock, [1, 1, 1, 1], groups=2)
    with pytest.raises(ValueError, match="4 stages"):
        nx.models.ResNet(nx.models.Bottleneck, [1, 1, 1])


def test_vit_checks_the_image_size_it_was_built_for():
    model = nx.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    with pytest.raises(ValueError, match="expected 32x32 images"):
        model(torch.randn(1, 3, 48, 48))
    with pytest.raises(ValueError, match="not divisible"):
        nx.models.vit_b_16(image_size=40)
    with pytest.raises(TypeError, match="num_layers"):  # vit_b_16's architecture is fixed, as torchvision's
        nx.models.vit_b_16(num_layers=2)


def test_weights_come_from_torchvisions_builder(monkeypatch):
    """``weights=`` hands the value to torchvision's builder of the same name and loads its state_dict strictly."""
    import neuronix.models.weights as weights_module

    calls = []
    source = nx.models.mobilenet_v2(num_classes=5, width_mult=0.5)
    for p in source.parameters():
        p.data.uniform_()

    class FakeModels:
        @staticmethod
        def mobilenet_v2(weights, progress):
            calls.append((weights, progress))
            return source

    class FakeTorchvision:
        models = FakeModels

    monkeypatch.setitem(__import__("sys").modules, "torchvision", FakeTorchvision)
    model = nx.models.mobilenet_v2(weights="IMAGENET1K_V1", progress=False, num_classes=5, width_mult=0.5)
    assert calls == [("IMAGENET1K_V1", False)]
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k].data, v.data), k
    with pytest.raises(RuntimeError, match="size mismatch"):  # another head than the weights': refused, naming it
        nx.models.mobilenet_v2(weights="IMAGENET1K_V1", num_classes=7, width_mult=0.5)
    assert weights_module.torchvision_weights(model, "mobilenet_v2", None, True) is None


@needs_torchvision
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_same_seed_same_weights_and_outputs_as_torchvision(name):
    kwargs, side = SMALL[name]
    torch.manual_seed(0)
    twin = getattr(torchvision.models, name)(num_classes=10, **kwargs)
    torch.manual_seed(0)
    model = getattr(nx.models, name)(num_classes=10, **kwargs)
    theirs, ours = twin.state_dict(), model.state_dict()
    assert list(theirs) == list(ours)
    for k in theirs:
        assert torch.equal(ours[k].data, theirs[k]), f"{name}: {k} differs from torchvision's default init"
    x = torch.randn(2, 3, side, side)
    twin.eval()
    model.eval()
    torch.testing.assert_close(model(x).data, twin(x).detach(), rtol=1e-5, atol=1e-5)


@needs_torchvision
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "vit_b_16"])
def test_training_step_gradients_match_torchvision_float64(name):
    kwargs, side = SMALL[name]
    if name == "vit_b_16":  # two layers of ViT-B/16's width: the same blocks, a quarter of a minute less
        small = dict(image_size=32, patch_size=16, num_layers=2, num_heads=12, hidden_dim=768, mlp_dim=3072)
        twin = torchvision.models.VisionTransformer(num_classes=4, **small).double().train()
        model = nx.models.VisionTransformer(num_classes=4, **small).double().train()
    else:
        twin = getattr(torchvision.models, name)(num_classes=4, **kwargs).double().train()
        model = getattr(nx.models, name)(num_classes=4, **kwargs).double().train()
    model.load_state_dict(twin.state_dict())  # also the strict key check
    x, y = torch.randn(2, 3, side, side, dtype=torch.float64), torch.tensor([1, 3])
    torch.manual_seed(5)
    torch.nn.functional.cross_entropy(twin(x), y).backward()
    torch.manual_seed(5)
    nx.nn.functional.cross_entropy(model(x), y).backward()
    grads = dict(twin.named_parameters())
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad.data, grads[k].grad, rtol=1e-7, atol=1e-10, msg=f"{name}: grad {k}")
    for k, b in twin.named_buffers():  # running statistics after the train-mode forward
        torch.testing.assert_close(dict(model.named_buffers())[k].data, b, rtol=1e-7, atol=1e-12)
