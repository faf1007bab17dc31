"""The layers of ``nx.nn``, one file per family; ``nx.nn`` re-exports every public class."""

from neuronix.nn.modules.activation import (
    ELU,
    GELU,
    SELU,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Swish,
    Tanh,
)
from neuronix.nn.modules.containers import ModuleDict, ModuleList, Sequential
from neuronix.nn.modules.conv import Conv1d, Conv2d, ConvTranspose2d
from neuronix.nn.modules.dropout import Dropout
from neuronix.nn.modules.linear import Flatten, Identity, Linear, Unflatten
from neuronix.nn.modules.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from neuronix.nn.modules.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from neuronix.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from neuronix.nn.modules.sparse import Embedding

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d",
    "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "ELU", "Embedding", "Flatten", "GELU", "GroupNorm", "Hardswish",
    "Hardtanh", "HuberLoss", "Identity", "KLDivLoss", "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax",
    "MSELoss", "MaxPool2d", "Mish", "ModuleDict", "ModuleList", "NLLLoss", "ReLU", "ReLU6", "SELU", "Sequential",
    "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softplus", "Swish", "Tanh", "Unflatten",
]
