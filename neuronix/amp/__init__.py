"""``nx.amp``: mixed precision as torch.amp: ``autocast`` regions and ``GradScaler`` loss scaling.

``policy.py`` holds torch's per-op casting lists (one table per device type), ``state.py`` the
thread-local switches and the wrapper ``ops/public.py`` puts around listed ops, ``casting.py`` what
a listed op does under autocast, ``autocast_mode.py`` the context manager, ``grad_scaler.py`` the
scaler. Nothing here imports the ops at import time: ``ops/public.py`` reads the lists while the ops
are being defined.
"""

from __future__ import annotations

from neuronix.amp.autocast_mode import (
    autocast,
    clear_autocast_cache,
    custom_bwd,
    custom_fwd,
    get_autocast_dtype,
    is_autocast_cache_enabled,
    is_autocast_enabled,
    set_autocast_cache_enabled,
    set_autocast_dtype,
    set_autocast_enabled,
)
from neuronix.amp.grad_scaler import GradScaler

__all__ = [
    "GradScaler",
    "autocast",
    "clear_autocast_cache",
    "custom_bwd",
    "custom_fwd",
    "get_autocast_dtype",
    "is_autocast_cache_enabled",
    "is_autocast_enabled",
    "set_autocast_cache_enabled",
    "set_autocast_dtype",
    "set_autocast_enabled",
]
