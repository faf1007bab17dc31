"""Mirrors of ``nx.models``: whole networks against torchvision (ResNets) and ``torch.nn`` (MLP).

Each mirror's module takes ``(images, targets)`` and returns ``(logits, cross-entropy loss)``,
so one case compares the logits, the loss, the input gradient and every parameter gradient,
plus BatchNorm's running statistics, in train and eval mode. torch's weights are loaded into
neuronix through ``load_state_dict``, which is itself the check that the key names and
shapes are torchvision's.

The CIFAR stem is built by swapping ``conv1``/``maxpool`` after construction on both sides
(torchvision has no such option), so the default initialisations agree draw for draw;
``nx.models.resnet18(cifar_stem=True)`` itself is checked against a torch twin in
tests/test_models.py.

torchvision imports only where it matches the installed torch (CI installs both; the CPU
development venv has none): the ResNet mirrors are always registered, and their torch
builder raises ``ModuleNotFoundError("torchvision unavailable ...")`` for the driver to report.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import ModuleMirror, Sample, register
from conformance.strategies import tensor
from neuronix.nn import functional as F

# ----- neuronix side ---------------------------------------------------------------------------


class _NxResNetLoss(nx.models.ResNet):
    """``nx.models.ResNet`` returning ``(logits, cross_entropy(logits, targets))``."""

    def forward(self, x, targets):
        logits = super().forward(x)
        return logits, F.cross_entropy(logits, targets)


class _NxMLPLoss(nx.models.MLP):
    def forward(self, x, targets):
        logits = super().forward(x)
        return logits, F.cross_entropy(logits, targets)


DEPTHS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


def _nx_resnet(depth: str):
    def build(num_classes: int, cifar_stem: bool):
        model = _NxResNetLoss(DEPTHS[depth], num_classes=num_classes)
        if cifar_stem:  # swapped in after construction exactly as on the torch side, so both draw the same weights
            model.conv1 = nx.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nx.nn.Identity()
        return model

    return build


# ----- torch side ---------------------------------------------------------------------------------
def _torchvision():
    try:
        import torchvision
    except Exception as err:  # the CPU-only torch build makes torchvision fail with RuntimeError, not ImportError
        raise ModuleNotFoundError(
            f"torchvision unavailable ({type(err).__name__}: {err}); the ResNet mirrors compare against "
            "torchvision.models.resnet18/34: install torchvision matching the installed torch"
        ) from None
    return torchvision


def _torch_resnet(depth: str):
    def build(num_classes: int, cifar_stem: bool):
        models = _torchvision().models

        class ResNetLoss(models.ResNet):
            def forward(self, x, targets):
                logits = super().forward(x)
                return logits, torch.nn.functional.cross_entropy(logits, targets)

        model = ResNetLoss(models.resnet.BasicBlock, DEPTHS[depth], num_classes=num_classes)
        if cifar_stem:  # the CIFAR variant (nx.models' cifar_stem=True): same keys, 3x3 stride-1 conv1, no max-pool
            model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = torch.nn.Identity()
        return model

    return build


class _TorchMLPLoss(torch.nn.Module):
    """``torch.nn`` twin of ``nx.models.MLP`` (same ``layers.<i>`` keys)."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        for size in hidden:
            layers += [torch.nn.Linear(in_features, size), torch.nn.ReLU()]
            in_features = size
        self.layers = torch.nn.Sequential(*layers, torch.nn.Linear(in_features, num_classes))

    def forward(self, x, targets):
        logits = self.layers(x)
        return logits, torch.nn.functional.cross_entropy(logits, targets)


# ----- drawing -----------------------------------------------------------------------------------
def _build_resnet(draw):
    # the CIFAR stem first: Hypothesis's first example is its simplest draw, and the ci profile runs few examples
    return (), {"num_classes": draw(st.integers(2, 10)), "cifar_stem": draw(st.sampled_from((True, False)))}


def _sample_resnet(draw, args, kwargs, dtype, device):
    # small images keep a full ResNet fast: 8x8 (CIFAR stem) and 16x16 (ImageNet stem) both reach 1x1 by layer4
    side = 8 if kwargs["cifar_stem"] else 16
    batch = 2  # train-mode BatchNorm needs more than one value per channel, even at 1x1
    x = tensor(draw, (batch, 3, side, side), dtype, device)
    targets = torch.tensor(draw(st.lists(st.integers(0, kwargs["num_classes"] - 1), min_size=batch, max_size=batch)),
                           device=device)
    return Sample((x, targets), grad_args=(0,))


def _build_mlp(draw):
    return (draw(st.integers(1, 12)), draw(st.integers(2, 6))), {"hidden": tuple(draw(st.lists(st.integers(1, 8), max_size=2)))}


def _sample_mlp(draw, args, kwargs, dtype, device):
    batch = draw(st.integers(1, 4))
    x = tensor(draw, (batch, args[0]), dtype, device)
    targets = torch.tensor(draw(st.lists(st.integers(0, args[1] - 1), min_size=batch, max_size=batch)), device=device)
    return Sample((x, targets), grad_args=(0,))


# A ResNet example costs seconds, almost all of it proportional to the 11M (21M) parameters: initialising, converting,
# loading and comparing them and their gradients twice (train, eval). The ci profile runs two ResNet-18 examples per
# dtype (the CIFAR stem, then a drawn one) and one ResNet-34; every example still compares every gradient and buffer.
register(
    ModuleMirror("models.resnet18", _nx_resnet("resnet18"), _torch_resnet("resnet18"), _build_resnet, _sample_resnet,
                 examples={"ci": 2},
                 note="torchvision.models.resnet18 (conv1/maxpool swapped for the CIFAR stem); logits and loss"),
    # resnet34 is resnet18's blocks, deeper: float64 checks its wiring; float32 rounding of the same blocks is resnet18's
    # case, and a 21M-parameter float32 case would double this entry's CI cost for no new kernel
    ModuleMirror("models.resnet34", _nx_resnet("resnet34"), _torch_resnet("resnet34"), _build_resnet, _sample_resnet,
                 dtypes=(torch.float64,), examples={"ci": 1},
                 note="torchvision.models.resnet34 (conv1/maxpool swapped for the CIFAR stem); logits and loss; float64"),
    ModuleMirror("models.mlp", _NxMLPLoss, _TorchMLPLoss, _build_mlp, _sample_mlp, gradgrad=True, note="logits and loss"),
)


# ----- torchvision's other architectures (issue 14) --------------------------------------------------
class _WithLoss:
    """``(images, targets) -> (logits, cross_entropy)`` around a model built by ``lib``'s ``name``; same keys both sides."""

    @staticmethod
    def make(lib, base, name: str):
        builder = getattr(nx.models, name) if lib is nx else getattr(_torchvision().models, name)

        class WithLoss(base):
            def __init__(self, **kwargs):
                super().__init__()
                self.model = builder(**kwargs)

            def forward(self, x, targets):
                logits = self.model(x)
                return logits, lib.nn.functional.cross_entropy(logits, targets)

        return WithLoss


def _tv_mirror(name: str, build_kwargs: dict, side: int, note: str) -> ModuleMirror:
    def sample(draw, args, kwargs, dtype, device):
        batch = 2  # train-mode BatchNorm needs more than one value per channel, even at 1x1
        x = tensor(draw, (batch, 3, side, side), dtype, device)
        targets = torch.tensor(draw(st.lists(st.integers(0, kwargs["num_classes"] - 1), min_size=batch, max_size=batch)),
                               device=device)
        return Sample((x, targets), grad_args=(0,))

    def build(draw):
        return (), {**build_kwargs, "num_classes": draw(st.integers(2, 10))}

    return ModuleMirror(
        f"models.{name}", lambda **kw: _WithLoss.make(nx, nx.nn.Module, name)(**kw),
        lambda **kw: _WithLoss.make(torch, torch.nn.Module, name)(**kw), build, sample,
        # tens of millions of parameters each: float32 and one example per CI run check the wiring, the keys, the
        # initialisation draw for draw and every gradient; the kernels themselves are the layer mirrors' cases
        dtypes=(torch.float32,), examples={"ci": 1}, note=f"torchvision.models.{name}; {note}; logits and loss",
    )


register(
    _tv_mirror("resnet50", {}, 32, "Bottleneck blocks, 32x32 images reach 1x1 in layer4"),
    _tv_mirror("vgg11", {}, 32, "32x32 images: the 7x7 adaptive pool upsamples layer 5's 1x1"),
    _tv_mirror("vgg11_bn", {}, 32, "BatchNorm variant"),
    _tv_mirror("vgg16", {}, 32, "configuration D"),
    _tv_mirror("vgg16_bn", {}, 32, "configuration D with BatchNorm"),
    _tv_mirror("mobilenet_v2", {}, 32, "inverted residuals, depthwise convolutions, ReLU6"),
    _tv_mirror("vit_b_16", {"image_size": 32}, 32, "image_size=32: 4 patches and the class token"),
)
