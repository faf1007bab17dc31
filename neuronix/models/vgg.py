"""VGG (Simonyan & Zisserman 2015) with torchvision's names, configurations and initialisation.

``features`` is one ``Sequential`` of 3x3 convolutions (each followed by BatchNorm in the
``_bn`` variants, then ReLU) and 2x2 max-pools, ``avgpool`` an adaptive 7x7 average pool,
``classifier`` three Linear layers with ReLU and dropout: the keys are torchvision's
(``features.0.weight``, ``classifier.6.bias``), so its state_dicts load directly.
"""

from __future__ import annotations

from neuronix import nn
from neuronix.models.weights import torchvision_weights

# channels per 3x3 convolution, "M" a max-pool; torchvision names them A, B, D, E
CONFIGS: dict[str, list] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(config: list, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The ``features`` stack for one configuration."""
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` -> 7x7 adaptive average pool -> flatten -> ``classifier`` (4096-4096-num_classes)."""

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:  # torchvision's scheme, in its order, so one seed gives torchvision's weights
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(name: str, batch_norm: bool, weights, progress: bool, kwargs: dict) -> VGG:
    if weights is not None:
        kwargs["init_weights"] = False  # torchvision skips the initialisation it is about to overwrite
    model = VGG(make_layers(CONFIGS[name], batch_norm), **kwargs)
    torchvision_weights(model, name + ("_bn" if batch_norm else ""), weights, progress)
    return model


def vgg11(*, weights=None, progress: bool = True, **kwargs) -> VGG:
    """VGG-11 (configuration A)."""
    return _vgg("vgg11", False, weights, progress, kwargs)


def vgg11_bn(*, weights=None, progress: bool = True, **kwargs) -> VGG:
    """VGG-11 with BatchNorm after each convolution."""
    return _vgg("vgg11", True, weights, progress, kwargs)


def vgg16(*, weights=None, progress: bool = True, **kwargs) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg("vgg16", False, weights, progress, kwargs)


def vgg16_bn(*, weights=None, progress: bool = True, **kwargs) -> VGG:
    """VGG-16 with BatchNorm after each convolution."""
    return _vgg("vgg16", True, weights, progress, kwargs)
