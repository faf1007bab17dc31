"""ResNet-18/34 (He et al. 2016, "Deep Residual Learning for Image Recognition") with BasicBlocks.

Attribute names, and therefore ``state_dict`` keys, are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``...), so
``model.load_state_dict(torchvision_model.state_dict())`` works directly.

``cifar_stem=True`` is the usual CIFAR variant: a 3x3 stride-1 first convolution and no
max-pool, so a 32x32 image keeps its resolution through ``layer1``. The keys are the
same; only ``conv1.weight``'s shape (3x3 instead of 7x7) differs.
"""

from __future__ import annotations

from neuronix import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """A ResNet of ``BasicBlock`` stages; ``layers`` gives the number of blocks per stage.

    ``in_channels`` (3) and ``width`` (64, the first stage's channels; later stages double
    it) are extensions over torchvision for grey-scale data and small test models.
    """

    def __init__(self, layers: list[int], num_classes: int = 1000, cifar_stem: bool = False,
                 zero_init_residual: bool = False, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.inplanes = width
        stem = dict(kernel_size=3, stride=1, padding=1) if cifar_stem else dict(kernel_size=7, stride=2, padding=3)
        self.conv1 = nn.Conv2d(in_channels, width, bias=False, **stem)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * BasicBlock.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        stage = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        stage += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's scheme, in its order, so one seed gives torchvision's weights
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000, cifar_stem: bool = False, **kwargs) -> ResNet:
    """ResNet-18: ``BasicBlock`` stages of [2, 2, 2, 2]; torchvision's names and initialisation."""
    return ResNet([2, 2, 2, 2], num_classes=num_classes, cifar_stem=cifar_stem, **kwargs)


def resnet34(num_classes: int = 1000, cifar_stem: bool = False, **kwargs) -> ResNet:
    """ResNet-34: ``BasicBlock`` stages of [3, 4, 6, 3]; torchvision's names and initialisation."""
    return ResNet([3, 4, 6, 3], num_classes=num_classes, cifar_stem=cifar_stem, **kwargs)
