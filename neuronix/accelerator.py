"""``nx.accelerator``: torch.accelerator's device-agnostic queries (is_available, current_accelerator, ...).

The accelerator (CUDA, MPS, XPU, ...) is the one torch runs neuronix's kernels on, so each function
here is torch's own: ``nx.accelerator.current_accelerator()`` is a ``torch.device`` or None,
``device_count()`` is 0 on a CPU-only machine.
"""

from __future__ import annotations

import torch

__all__: list[str] = []
# the names the installed torch has (torch.accelerator grows between versions)
for _name in ("current_accelerator", "current_device_idx", "current_device_index", "current_stream", "device_count",
              "device_index", "empty_cache", "get_device_capability", "get_memory_info", "is_available",
              "max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved", "memory_stats",
              "reset_accumulated_memory_stats", "reset_peak_memory_stats", "set_device_idx", "set_device_index",
              "set_stream", "synchronize"):
    if hasattr(getattr(torch, "accelerator", None), _name):
        globals()[_name] = getattr(torch.accelerator, _name)
        __all__.append(_name)
del _name
