"""Dropout layers: zero elements (``Dropout``) or whole channels (``Dropout1d/2d/3d``) with probability ``p`` in
training mode; ``AlphaDropout``/``FeatureAlphaDropout`` keep SELU's self-normalising mean and variance.

Each calls the ``nx.nn.functional`` function of its name, which draws its mask from torch's RNG as torch
does, so a seeded run drops the same elements as torch. In eval mode every layer is the identity.
"""

from __future__ import annotations

from neuronix.nn import functional as F
from neuronix.nn.module import Module

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    """Holds ``p`` (checked to lie in [0, 1], as torch) and ``inplace``; subclasses pick the functional."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """During training, zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; identity in eval."""

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zero whole channels of an ``(N, C, L)`` or ``(C, L)`` input."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of an ``(N, C, H, W)`` or ``(C, H, W)`` input (a 3-D input: torch's warning and 1-D behaviour)."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zero whole channels of an ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout to SELU's negative saturation, rescaled to keep zero mean and unit variance (``inplace`` unused, as torch)."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """``AlphaDropout`` of whole channels (``inplace`` unused, as torch)."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
