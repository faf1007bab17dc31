"""ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition"): torchvision's names and init.

Attribute names, and therefore ``state_dict`` keys, are torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``...), so
``model.load_state_dict(torchvision_model.state_dict())`` works directly. ``ResNet(block,
layers, ...)`` takes torchvision's arguments (``groups``, ``width_per_group``,
``replace_stride_with_dilation``, ``norm_layer``); ``ResNet(layers, ...)`` (a list first) is
the original neuronix spelling and means BasicBlocks.

``cifar_stem=True`` is the usual CIFAR variant: a 3x3 stride-1 first convolution and no
max-pool, so a 32x32 image keeps its resolution through ``layer1``. The keys are the
same; only ``conv1.weight``'s shape (3x3 instead of 7x7) differs. ``in_channels`` and
``width`` (the first stage's channels) are further extensions for grey-scale data and small
test models; torchvision's defaults are 3 and 64.

Bottleneck is the "v1.5" block torchvision uses: the stride sits on the 3x3 convolution.
"""

from __future__ import annotations

from neuronix import nn
from neuronix.models.weights import torchvision_weights


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False,
                     dilation=dilation)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64 (torchvision's rule); "
                             f"got groups={groups}, base_width={base_width}: use Bottleneck")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock (torchvision's rule): use Bottleneck")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped, dilated), 1x1 expand by 4; identity or ``downsample`` shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = _conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """A ResNet of ``block`` stages; ``layers`` gives the number of blocks per stage."""

    def __init__(self, block, layers: list[int] | None = None, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None, norm_layer=None, *,
                 cifar_stem: bool = False, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        if isinstance(block, (list, tuple)):  # the original neuronix spelling, ResNet(layers, num_classes, ...)
            if layers is not None:
                num_classes = layers
            block, layers = BasicBlock, list(block)
        if layers is None or len(layers) != 4:
            raise ValueError(f"ResNet: layers must list the blocks of 4 stages, got {layers!r}")
        dilate = replace_stride_with_dilation or [False, False, False]
        if len(dilate) != 3:
            raise ValueError(f"replace_stride_with_dilation should be None or a 3-element tuple, got {dilate}")
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes, self.dilation = width, 1
        self.groups, self.base_width = groups, width_per_group
        stem = dict(kernel_size=3, stride=1, padding=1) if cifar_stem else dict(kernel_size=7, stride=2, padding=3)
        self.conv1 = nn.Conv2d(in_channels, width, bias=False, **stem)
        self.bn1 = self._norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        norm_layer, downsample, previous_dilation = self._norm_layer, None, self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        stage = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                       norm_layer)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes, groups=self.groups, base_width=self.base_width, dilation=self.dilation,
                        norm_layer=norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's scheme, in its order, so one seed gives torchvision's weights
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _resnet(name: str, block, layers: list[int], weights, progress: bool, kwargs: dict) -> ResNet:
    model = ResNet(block, layers, **kwargs)
    torchvision_weights(model, name, weights, progress)
    return model


def resnet18(num_classes: int = 1000, cifar_stem: bool = False, *, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-18: ``BasicBlock`` stages of [2, 2, 2, 2]; torchvision's names and initialisation."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], weights, progress,
                   dict(num_classes=num_classes, cifar_stem=cifar_stem, **kwargs))


def resnet34(num_classes: int = 1000, cifar_stem: bool = False, *, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-34: ``BasicBlock`` stages of [3, 4, 6, 3]; torchvision's names and initialisation."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], weights, progress,
                   dict(num_classes=num_classes, cifar_stem=cifar_stem, **kwargs))


def resnet50(num_classes: int = 1000, cifar_stem: bool = False, *, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-50: ``Bottleneck`` stages of [3, 4, 6, 3] (25.6M parameters); torchvision's names and initialisation."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], weights, progress,
                   dict(num_classes=num_classes, cifar_stem=cifar_stem, **kwargs))
