"""``convert_conv2d_weight_memory_format`` / ``3d``: store every (transposed) convolution's weight in a memory
format (e.g. ``torch.channels_last``) in place, recursively, as torch's."""

from __future__ import annotations

import torch

__all__ = ["convert_conv2d_weight_memory_format", "convert_conv3d_weight_memory_format"]


def _convert(module, memory_format: torch.memory_format, names: tuple[str, ...]):
    import neuronix.nn as nn

    classes = tuple(getattr(nn, n) for n in names if hasattr(nn, n))
    for m in module.modules():
        if isinstance(m, classes):
            m.weight.data = m.weight.data.clone(memory_format=memory_format)
    return module


def convert_conv2d_weight_memory_format(module, memory_format: torch.memory_format):
    """Every ``Conv2d``/``ConvTranspose2d`` weight under ``module`` in ``memory_format``; returns ``module``."""
    return _convert(module, memory_format, ("Conv2d", "ConvTranspose2d"))


def convert_conv3d_weight_memory_format(module, memory_format: torch.memory_format):
    """Every ``Conv3d``/``ConvTranspose3d`` weight under ``module`` in ``memory_format``; returns ``module``."""
    return _convert(module, memory_format, ("Conv3d", "ConvTranspose3d"))
