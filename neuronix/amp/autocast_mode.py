"""``nx.autocast`` / ``nx.amp.autocast``: regions where ops run in torch's per-op mixed precision.

Inside ``with nx.autocast("cpu"):`` (or ``"cuda"``) each op that torch's autocast lists name runs with
its inputs cast as torch casts them (``policy.py`` holds the lists, ``casting.py`` applies them); every
other op runs in its inputs' dtypes. The casts are recorded ops, so backward needs no region of its
own. Context manager and decorator, nestable (``enabled=False`` opens a full-precision hole), and
thread-local, as torch's.
"""

from __future__ import annotations

import functools
import warnings

import torch

from neuronix.amp.policy import POLICIES
from neuronix.amp.state import STATE

_SUPPORTED_DTYPES = (torch.bfloat16, torch.float16)


def _known_device(device_type: str) -> str:
    if device_type not in POLICIES:
        raise RuntimeError(
            f"User specified an unsupported autocast device_type '{device_type}': neuronix's autocast has torch's "
            f"casting lists for {' and '.join(repr(d) for d in POLICIES)}"
        )
    return device_type


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is enabled for ``device_type`` in this thread (torch's default device type: cuda)."""
    return STATE.enabled.get(_known_device(device_type), False)


def set_autocast_enabled(device_type: str, enabled: bool) -> None:
    STATE.enabled[_known_device(device_type)] = bool(enabled)
    STATE.refresh()


def get_autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype ops on the lower-precision list run in for ``device_type`` (bfloat16 on cpu, float16 on cuda)."""
    return STATE.dtypes[_known_device(device_type)]


def set_autocast_dtype(device_type: str, dtype: torch.dtype) -> None:
    STATE.dtypes[_known_device(device_type)] = dtype


def is_autocast_cache_enabled() -> bool:
    return STATE.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    STATE.cache_enabled = bool(enabled)


def clear_autocast_cache() -> None:
    """torch clears its cache of weight casts here; Neuronix keeps none (see ``autocast``), so nothing to do."""


class autocast:  # noqa: N801  (torch's name)
    """``torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``.

    ``dtype`` defaults to ``get_autocast_dtype(device_type)``. As torch: a dtype other than float16 and
    bfloat16 warns and disables the region; ``"cuda"`` without CUDA warns and disables it.
    ``cache_enabled`` is accepted and kept in the state: torch caches the lower-precision copy of each
    float32 leaf weight within a region for speed; Neuronix casts each time (the same values).
    """

    def __init__(self, device_type: str, dtype: torch.dtype | None = None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device = _known_device(device_type)
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        name = device_type.upper()
        if enabled:
            if device_type == "cuda" and not torch.cuda.is_available():
                warnings.warn("CUDA is not available or torch_xla is imported. Disabling autocast.", stacklevel=2)
                enabled = False
            elif device_type == "cuda" and self.fast_dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
                raise RuntimeError("Current CUDA Device does not support bfloat16. Please switch dtype to float16.")
            elif device_type != "cuda" and self.fast_dtype not in _SUPPORTED_DTYPES:
                warnings.warn(
                    f"In {name} autocast, but the target dtype is not supported. Disabling autocast.\n"
                    f"{name} Autocast only supports dtypes of {', '.join(map(str, _SUPPORTED_DTYPES))} currently.",
                    stacklevel=2,
                )
                enabled = False
        self._enabled = enabled

    def __enter__(self):
        self.prev_cache_enabled = is_autocast_cache_enabled()
        self.prev = is_autocast_enabled(self.device)
        self.prev_fastdtype = get_autocast_dtype(self.device)
        set_autocast_dtype(self.device, self.fast_dtype)
        set_autocast_enabled(self.device, self._enabled)
        set_autocast_cache_enabled(self._cache_enabled)
        STATE.nesting += 1
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> bool:
        STATE.nesting -= 1
        if STATE.nesting == 0:
            clear_autocast_cache()
        set_autocast_enabled(self.device, self.prev)
        set_autocast_dtype(self.device, self.prev_fastdtype)
        set_autocast_cache_enabled(self.prev_cache_enabled)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(
                f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you mean to use autocast "
                f"as a context manager? For example:\n    with nx.autocast(device_type=...):\n        output = model(input)"
            )

        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return decorate_autocast


def _cast_floats(value, device_type: str, dtype: torch.dtype):
    """``value`` with its floating-point tensors on ``device_type`` (not float64) cast to ``dtype``, recursively."""
    from neuronix.amp.casting import _eligible
    from neuronix.tensor import Tensor

    if isinstance(value, (Tensor, torch.Tensor)):
        return value.to(dtype) if _eligible(value, device_type) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_floats(v, device_type, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast_floats(v, device_type, dtype) for k, v in value.items()}
    return value


def custom_fwd(fwd=None, *, device_type: str, cast_inputs: torch.dtype | None = None):
    """``torch.amp.custom_fwd``: for the ``forward`` of an ``nx.autograd.Function``. With ``cast_inputs``, inside
    an autocast region the forward runs with autocast off on its floating inputs cast to that dtype; the
    autocast state it saw is kept on ``ctx`` for ``custom_bwd``."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        ctx = args[0]
        ctx._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            ctx._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        ctx._fwd_used_autocast = False
        if not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        with autocast(device_type=device_type, enabled=False):
            return fwd(ctx, *_cast_floats(args[1:], device_type, cast_inputs), **_cast_floats(kwargs, device_type, cast_inputs))

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """``torch.amp.custom_bwd``: the ``backward`` runs under the autocast state its ``forward`` ran under."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        ctx = args[0]
        with autocast(device_type=device_type, enabled=ctx._fwd_used_autocast, dtype=ctx._dtype):
            return bwd(*args, **kwargs)

    return decorate_bwd


__all__ = [
    "autocast",
    "custom_bwd",
    "custom_fwd",
    "clear_autocast_cache",
    "get_autocast_dtype",
    "is_autocast_cache_enabled",
    "is_autocast_enabled",
    "set_autocast_cache_enabled",
    "set_autocast_dtype",
    "set_autocast_enabled",
]
