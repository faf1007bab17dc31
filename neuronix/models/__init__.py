"""``nx.models``: reference architectures with torchvision's names, parameter names and initialisation."""

from neuronix.models.mlp import MLP, mlp
from neuronix.models.mobilenet import MobileNetV2, mobilenet_v2
from neuronix.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from neuronix.models.vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn
from neuronix.models.vit import VisionTransformer, vit_b_16

__all__ = [
    "MLP", "BasicBlock", "Bottleneck", "MobileNetV2", "ResNet", "VGG", "VisionTransformer", "mlp", "mobilenet_v2",
    "resnet18", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vit_b_16",
]
