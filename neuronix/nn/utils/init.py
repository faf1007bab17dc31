"""``skip_init``: build a module without running its initialisation, as ``torch.nn.utils.skip_init``.

The module is built on the ``meta`` device (no memory, no RNG draws: its initialisers run on shapes
only), then given uninitialised storage on the requested device — torch's recipe; the caller fills it.
"""

from __future__ import annotations

import inspect

import torch

from neuronix.nn.module import Module

__all__ = ["skip_init"]


def skip_init(module_cls, *args, **kwargs):
    """``module_cls(*args, **kwargs)`` with uninitialised parameters and buffers on ``device`` (default cpu)."""
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise RuntimeError(f"Expected a Module; got {module_cls}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError("Module must support a 'device' arg to skip initialization")
    final_device = kwargs.pop("device", "cpu")
    kwargs["device"] = "meta"
    module = module_cls(*args, **kwargs)
    return module._apply(lambda t: torch.empty_like(t, device=final_device))
