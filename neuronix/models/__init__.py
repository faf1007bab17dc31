"""``nx.models``: reference architectures with torchvision's parameter names."""

from neuronix.models.mlp import MLP, mlp
from neuronix.models.resnet import BasicBlock, ResNet, resnet18, resnet34

__all__ = ["MLP", "BasicBlock", "ResNet", "mlp", "resnet18", "resnet34"]
