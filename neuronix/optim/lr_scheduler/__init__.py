"""``nx.optim.lr_scheduler``: learning-rate schedulers (mirrors ``torch.optim.lr_scheduler``).

Each scheduler rewrites ``group["lr"]`` of an ``nx.optim`` optimizer. Per epoch (or batch,
for ``OneCycleLR``/``CyclicLR``) call ``optimizer.step()`` and then ``scheduler.step()``
(``scheduler.step(val_loss)`` for ``ReduceLROnPlateau``).
"""

from neuronix.optim.lr_scheduler.base import LRScheduler
from neuronix.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from neuronix.optim.lr_scheduler.cosine import CosineAnnealingLR, CosineAnnealingWarmRestarts
from neuronix.optim.lr_scheduler.cyclic import CyclicLR, OneCycleLR
from neuronix.optim.lr_scheduler.plateau import ReduceLROnPlateau
from neuronix.optim.lr_scheduler.simple import (
    ConstantLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
