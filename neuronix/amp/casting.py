"""Running one op under autocast: its policy (``policy.py``) applied to its arguments, as torch applies it.

The casts are recorded Neuronix ops (``Tensor.to``), so the gradient of each input comes back in that
input's own dtype, as torch's. Which tensors are cast is torch's rule (``is_eligible`` in
``ATen/autocast_mode.h``): floating-point tensors on the autocast device that are not float64.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from neuronix.amp.policy import BY_ARGUMENTS, POLICIES
from neuronix.amp.state import STATE
from neuronix.tensor import Tensor


def _tensors(value):
    if isinstance(value, (Tensor, torch.Tensor)):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, (Tensor, torch.Tensor)):
                yield v


def _device_type(args, kwargs) -> str | None:
    """The device type whose autocast handles the call: CUDA's where a CUDA tensor takes part (its dispatch
    key outranks CPU's), else the first tensor's."""
    first = None
    for value in (*args, *kwargs.values()):
        for t in _tensors(value):
            kind = t.device.type
            if kind == "cuda":
                return kind
            first = first or kind
    return first


def _eligible(t, device: str) -> bool:
    return t.device.type == device and t.dtype.is_floating_point and t.dtype != torch.float64


def _cast(value, dtype: torch.dtype, device: str):
    if isinstance(value, (Tensor, torch.Tensor)):
        if _eligible(value, device) and value.dtype != dtype:
            return value.to(dtype)  # recorded for a Neuronix tensor; a torch tensor is a constant
        return value
    if isinstance(value, (list, tuple)) and any(isinstance(v, (Tensor, torch.Tensor)) for v in value):
        return type(value)(_cast(v, dtype, device) for v in value)
    return value


def _widest(op: str, args, kwargs, device: str, lower: torch.dtype) -> torch.dtype:
    """torch's ``promote_type``: float32 if any eligible input is float32, else the autocast dtype."""
    widest = lower
    for value in (*args, *kwargs.values()):
        for t in _tensors(value):
            if not _eligible(t, device):
                continue
            if t.dtype == torch.float32:
                widest = torch.float32
            elif t.dtype != lower:
                raise RuntimeError(
                    f"neuronix.{op} under {device} autocast to {lower}: an input is {t.dtype}, which autocast cannot "
                    f"promote together with {lower} (torch: 'Unexpected floating ScalarType in "
                    f"at::autocast::prioritize'); convert it to float32 or {lower} first"
                )
    return widest


_DTYPE_POSITION: dict[Callable, int | None] = {}


def _dtype_given(fn: Callable, args, kwargs) -> bool:
    if kwargs.get("dtype") is not None:
        return True
    if fn not in _DTYPE_POSITION:
        params = list(inspect.signature(fn).parameters)
        _DTYPE_POSITION[fn] = params.index("dtype") if "dtype" in params else None
    position = _DTYPE_POSITION[fn]
    return position is not None and len(args) > position and args[position] is not None


def _region(device: str | None) -> torch.dtype | None:
    """The autocast dtype of the region open for ``device``: Neuronix's, or else torch's own ``torch.autocast``
    (adopted, so that a program that kept ``torch.autocast`` gets recorded casts, not torch's unrecorded ones
    inside Neuronix's kernels), or None."""
    if device is None:
        return None
    if STATE.enabled.get(device):
        return STATE.dtypes[device]
    if device in POLICIES and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


def run_with_policy(op: str, fn: Callable, args: tuple, kwargs: dict):
    """Call ``fn(*args, **kwargs)`` with ``op``'s casting policy for the device its tensors are on."""
    if STATE.running:  # inside an autocast-handled op (reached here through torch's region on another device)
        return fn(*args, **kwargs)
    device = _device_type(args, kwargs)
    lower = _region(device)
    if op in BY_ARGUMENTS:
        op = BY_ARGUMENTS[op](args, kwargs)
    policy = POLICIES[device].get(op) if lower is not None else None
    if policy is None:  # not on this device's lists: the op runs as called, its own ops still autocast
        return fn(*args, **kwargs)
    if policy == "banned":
        raise RuntimeError(
            f"neuronix.nn.functional.{op} and nn.BCELoss are unsafe to autocast (as in torch): many models use a "
            "sigmoid layer right before the binary cross entropy layer; combine the two with "
            "nn.functional.binary_cross_entropy_with_logits or nn.BCEWithLogitsLoss, which are safe to autocast"
        )
    STATE.running = True  # torch's ExcludeDispatchKeyGuard: the op's own ops are not cast again
    STATE.active = False
    torch_region = torch.is_autocast_enabled(device)
    if torch_region:  # torch's own autocast must not cast again, unrecorded, inside the kernels
        torch.set_autocast_enabled(device, False)
    try:
        if policy == "fp32_dtype":
            first = args[0] if args else None
            if isinstance(first, (Tensor, torch.Tensor)) and _eligible(first, device) and not _dtype_given(fn, args, kwargs):
                kwargs = {**kwargs, "dtype": torch.float32}
        else:
            dtype = {"lower": lower, "fp32": torch.float32}.get(policy) or _widest(op, args, kwargs, device, lower)
            args = tuple(_cast(a, dtype, device) for a in args)
            kwargs = {k: _cast(v, dtype, device) for k, v in kwargs.items()}
        return fn(*args, **kwargs)
    finally:
        if torch_region:
            torch.set_autocast_enabled(device, True)
        STATE.running = False
        STATE.refresh()
