"""Autocast's thread-local state, and the wrapper ``ops/public.py`` puts around the ops autocast handles.

torch keeps autocast's switches in thread-local storage (a region entered in one thread does not
reach another), so does this. ``active`` folds one thread's state into one flag: some device type's
autocast is enabled and no autocast-handled op is running already (torch excludes its autocast
dispatch keys while such an op runs, so the ops it is made of are not cast again). ``REGIONS`` counts
the threads with autocast enabled, so that an op on the lists pays one read of a module global, not
of a thread-local, while no region is open anywhere (the common case: no autocast at all), plus torch's
own "is any autocast enabled" flag: a program that kept ``torch.autocast`` gets Neuronix's recorded casts
(torch's would happen unrecorded inside Neuronix's kernels, and the backward would then mix dtypes).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import torch

REGIONS = 0  # threads whose autocast is enabled for some device type
# torch's own autocast switch (a C call): a program that kept torch.autocast gets the same recorded casts
_torch_autocast = torch._C._is_any_autocast_enabled
_REGIONS_LOCK = threading.Lock()

# torch's default autocast dtype per device type (get_autocast_dtype before any region set one)
DEFAULT_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}


class AutocastState(threading.local):
    """One thread's autocast switches (``threading.local`` calls ``__init__`` once per thread)."""

    def __init__(self) -> None:
        self.enabled: dict[str, bool] = {}
        self.dtypes: dict[str, torch.dtype] = dict(DEFAULT_DTYPES)
        self.cache_enabled = True
        self.nesting = 0
        self.running = False  # inside an autocast-handled op
        self.active = False
        self.counted = False  # this thread is counted in REGIONS

    def refresh(self) -> None:
        global REGIONS
        enabled = any(self.enabled.values())
        self.active = enabled and not self.running
        if enabled != self.counted:
            with _REGIONS_LOCK:
                REGIONS += 1 if enabled else -1
            self.counted = enabled


STATE = AutocastState()


def autocast_wrapper(fn: Callable, op: str) -> Callable:
    """``fn`` (a public function that torch's autocast lists name as ``op``), casting under autocast."""
    if getattr(fn, "__autocast_op__", None) is not None:  # an alias of an op wrapped already
        return fn

    @functools.wraps(fn)
    def autocasting(*args, **kwargs):
        if (not REGIONS or not STATE.active) and not _torch_autocast():
            return fn(*args, **kwargs)
        from neuronix.amp.casting import run_with_policy  # first call inside a region: the ops are loaded

        return run_with_policy(op, fn, args, kwargs)

    autocasting.__autocast_op__ = op
    return autocasting
