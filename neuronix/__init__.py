"""Neuronix: a deep-learning framework with its own reverse-mode autograd on torch kernels.

``import neuronix as nx`` and use it as ``torch``: ``nx.tensor``, ``nx.exp``, ``x.sum()``,
``y.backward()``, ``nx.autograd.grad``, ``nx.no_grad()``. Every differentiable op is
declared once in ``neuronix.ops`` with its forward, its VJPs and the torch function it
mirrors; the conformance harness (``python -m conformance``) checks each against torch.
"""

from __future__ import annotations

import torch as _torch

from neuronix import autograd, ops
from neuronix import models, nn, optim  # noqa: F401
from neuronix import func  # noqa: F401  (nx.func: torch.func's transforms)
from neuronix import fft, linalg, special  # noqa: F401  (torch.fft, torch.linalg, torch.special)
from neuronix.autograd import AutogradGraph, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from neuronix.ops.public import exported as _exported
from neuronix.tensor import CustomTensor, Tensor
from neuronix import factories  # noqa: F401  (registers the factories as public functions)
from neuronix.serialization import save, load
from neuronix import distributed
from neuronix import interop  # noqa: F401  (nx.Tensor speaks torch's __torch_function__)
# torch's housekeeping namespaces, so that unchanged programs import (issue 14)
from neuronix import accelerator, amp, backends, compiler, cuda, utils  # noqa: F401
from neuronix.compiler import compile  # noqa: A004  (torch's name)
from neuronix.amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: F401  (torch.autocast, ...)
from neuronix.defaults import get_default_device, inference_mode, is_inference_mode_enabled, set_default_device

__version__ = "0.1.0"

globals().update(_exported(""))  # every @public function (ops/public.py)

# dtypes and devices are torch's own objects
from torch import (  # noqa: E402
    bfloat16,
    bool,
    device,
    dtype,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
    manual_seed,
    get_default_dtype,
    set_default_dtype,
)

float = float32
double = float64
half = float16
long = int64
int = int32

__all__ = [
    "AutogradGraph",
    "CustomTensor",
    "Tensor",
    "autograd",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "ops",
    "set_grad_enabled",
    *sorted(_exported("")),
]
del _torch
