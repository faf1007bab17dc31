"""``nx.cuda``: torch.cuda's housekeeping functions, so that unchanged programs import and run.

Neuronix keeps its data in torch tensors and runs torch's kernels, so the CUDA runtime, its RNG,
its caching allocator and its streams are torch's: every function here *is* torch.cuda's (one
source of truth; ``nx.cuda.manual_seed(0)`` seeds the generator neuronix's CUDA ops draw from).
On a machine without a GPU they answer as torch's do (``is_available()`` is False,
``device_count()`` is 0, ``manual_seed`` is silently deferred) and raise torch's errors
(``current_device()``: "Torch not compiled with CUDA enabled" / "No CUDA GPUs are available").

``nx.cuda.amp`` is torch's deprecated spelling of the mixed-precision tools: its ``autocast`` and
``GradScaler`` are neuronix's (``nx.amp``) for the CUDA device, resolved on first use, and warn with
torch's FutureWarning.
"""

from __future__ import annotations

import functools
import types
import warnings

import torch
from torch.cuda import (  # noqa: F401  (re-exported: torch's own functions and classes)
    Event,
    OutOfMemoryError,
    Stream,
    current_device,
    current_stream,
    default_stream,
    device,
    device_count,
    device_of,
    empty_cache,
    get_arch_list,
    get_device_capability,
    get_device_name,
    get_device_properties,
    get_rng_state,
    get_rng_state_all,
    init,
    initial_seed,
    ipc_collect,
    is_available,
    is_bf16_supported,
    is_initialized,
    manual_seed,
    manual_seed_all,
    max_memory_allocated,
    max_memory_reserved,
    mem_get_info,
    memory_allocated,
    memory_reserved,
    memory_stats,
    memory_summary,
    reset_accumulated_memory_stats,
    reset_peak_memory_stats,
    seed,
    seed_all,
    set_device,
    set_rng_state,
    set_rng_state_all,
    set_stream,
    stream,
    synchronize,
)

__all__ = [
    "Event", "OutOfMemoryError", "Stream", "amp", "current_device", "current_stream", "default_stream", "device",
    "device_count", "device_of", "empty_cache", "get_arch_list", "get_device_capability", "get_device_name",
    "get_device_properties", "get_rng_state", "get_rng_state_all", "init", "initial_seed", "ipc_collect",
    "is_available", "is_bf16_supported", "is_initialized", "manual_seed", "manual_seed_all", "max_memory_allocated",
    "max_memory_reserved", "mem_get_info", "memory_allocated", "memory_reserved", "memory_stats", "memory_summary",
    "reset_accumulated_memory_stats", "reset_peak_memory_stats", "seed", "seed_all", "set_device", "set_rng_state",
    "set_rng_state_all", "set_stream", "stream", "synchronize",
]
# torch versions add functions here over time: take the ones the installed torch has
for _name in ("is_tf32_supported", "device_memory_used", "utilization", "temperature", "power_draw"):
    if hasattr(torch.cuda, _name):
        globals()[_name] = getattr(torch.cuda, _name)
        __all__.append(_name)


class _CudaAmp(types.ModuleType):
    """``nx.cuda.amp``: ``autocast(enabled, dtype, cache_enabled)`` and ``GradScaler(...)`` for CUDA.

    The names resolve on first use, from ``neuronix.amp`` (owned by the mixed-precision code), so that
    importing ``nx.cuda`` never imports the autocast machinery.
    """

    def __getattr__(self, name: str):
        from neuronix import amp as nx_amp

        if name == "autocast":
            autocast = nx_amp.autocast

            @functools.wraps(autocast)
            def cuda_autocast(enabled: bool = True, dtype: torch.dtype = torch.float16, cache_enabled: bool = True):
                warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated. Please use "
                              "`torch.amp.autocast('cuda', args...)` instead.", FutureWarning, stacklevel=2)
                return autocast("cuda", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)

            return cuda_autocast
        if name == "GradScaler":
            scaler = nx_amp.GradScaler

            @functools.wraps(scaler, updated=())
            def cuda_grad_scaler(*args, **kwargs):
                warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                              "`torch.amp.GradScaler('cuda', args...)` instead.", FutureWarning, stacklevel=2)
                return scaler("cuda", *args, **kwargs)

            return cuda_grad_scaler
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(nx_amp, name)


amp = _CudaAmp("neuronix.cuda.amp", _CudaAmp.__doc__)
del _name
