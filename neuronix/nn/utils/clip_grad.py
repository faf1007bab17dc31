"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm``, ``clip_grads_with_norm_``.

Clipping rescales the accumulated ``.grad`` of each parameter in place, after backward and outside any
graph (as torch's run under ``no_grad``), so it works on the gradients' torch data with torch's kernels,
in torch's arithmetic order, to give torch's numbers bit for bit: one norm per gradient (``vector_norm``,
or ``_foreach_norm`` where torch would use it), the norm of those norms, then
``clip_coef = max_norm / (total_norm + 1e-6)`` clamped to 1 and multiplied into every gradient (also when
it is 1: no data-dependent branch, as torch, so no GPU sync). The total norm comes back as an
``nx.Tensor`` (torch returns a tensor). ``parameters`` is one tensor or an iterable (a generator too) of
neuronix or torch tensors; parameters without a gradient are skipped.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable

import torch
from torch.utils._foreach_utils import _device_has_foreach_support, _group_tensors_by_device_and_dtype

from neuronix.tensor import Tensor, unwrap

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

TensorOrTensors = Tensor | torch.Tensor | Iterable


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, (Tensor, torch.Tensor)) else list(tensors)


def _grads(parameters: list) -> list[torch.Tensor]:
    """The torch data of each parameter's gradient (those that have one)."""
    return [unwrap(p.grad) for p in parameters if p.grad is not None]


def _by_device_and_dtype(tensors: list[torch.Tensor]) -> dict[tuple, list[torch.Tensor]]:
    """Tensors grouped as torch's foreach kernels need them, by torch's own grouping: its group order (a hash
    map's, not the order of appearance) is the order the per-group norms are stacked in, so it fixes the bits."""
    return {key: lists[0] for key, (lists, _) in _group_tensors_by_device_and_dtype([tensors]).items()}


def _use_foreach(foreach: bool | None, device: torch.device, tensors: list[torch.Tensor]) -> bool:
    """torch's rule: ``None`` takes the foreach kernels where the device has them (torch's own list for the
    installed version) for plain tensors; ``True`` insists, and raises where the device has none."""
    supported = _device_has_foreach_support(device)
    if foreach is None:
        return supported and all(type(t) is torch.Tensor for t in tensors)
    if foreach and not supported:
        raise RuntimeError(f"foreach=True was passed, but can't use the foreach API on {device.type} tensors")
    return bool(foreach)


def get_total_norm(tensors: TensorOrTensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The ``norm_type``-norm of ``tensors`` viewed as one vector (``'inf'`` for the max-norm), as torch's.

    Raises RuntimeError when ``error_if_nonfinite`` and the norm is NaN or infinite; no tensors give ``tensor(0.)``.
    """
    tensors = [unwrap(t) for t in _as_list(tensors)]
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(torch.tensor(0.0))
    first_device = tensors[0].device
    norms: list[torch.Tensor] = []
    with torch.no_grad():
        for (device, _), group in _by_device_and_dtype(tensors).items():
            if _use_foreach(foreach, device, group):
                norms.extend(torch._foreach_norm(group, norm_type))
            else:
                norms.extend(torch.linalg.vector_norm(t, norm_type) for t in group)
        total_norm = torch.linalg.vector_norm(torch.stack([n.to(first_device) for n in norms]), norm_type)
    if error_if_nonfinite and torch.logical_or(total_norm.isnan(), total_norm.isinf()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return Tensor(total_norm)


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float, total_norm, foreach: bool | None = None) -> None:
    """Scale every gradient in place by ``min(max_norm / (total_norm + 1e-6), 1)`` (a precomputed ``total_norm``)."""
    grads = _grads(_as_list(parameters))
    max_norm = float(max_norm)
    if not grads:
        return
    with torch.no_grad():
        clip_coef = max_norm / (unwrap(total_norm) + 1e-6)
        clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
        for (device, _), group in _by_device_and_dtype(grads).items():
            coef = clip_coef_clamped.to(device)
            if _use_foreach(foreach, device, group):
                torch._foreach_mul_(group, coef)
            else:
                for g in group:
                    g.mul_(coef)


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Rescale the gradients so that their total ``norm_type``-norm is at most ``max_norm``; return that norm.

    As ``torch.nn.utils.clip_grad_norm_``: ``get_total_norm`` of the gradients then ``clip_grads_with_norm_``.
    """
    if isinstance(parameters, (Tensor, torch.Tensor)):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)  # a generator is read once, for both steps
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=2)
    total_norm = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters: TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Deprecated spelling of ``clip_grad_norm_`` (FutureWarning, as torch)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient in place to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    grads = _grads(_as_list(parameters))
    with torch.no_grad():
        for (device, _), group in _by_device_and_dtype(grads).items():
            if _use_foreach(foreach, device, group):
                torch._foreach_clamp_min_(group, -clip_value)
                torch._foreach_clamp_max_(group, clip_value)
            else:
                for g in group:
                    g.clamp_(min=-clip_value, max=clip_value)
