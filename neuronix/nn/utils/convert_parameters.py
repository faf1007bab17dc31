"""``parameters_to_vector`` / ``vector_to_parameters``: a model's parameters as one flat vector and back.

``parameters_to_vector`` is a differentiable concatenation of the flattened parameters (neuronix ops, so
a loss of the vector reaches each parameter's ``.grad``); ``vector_to_parameters`` rebinds each
parameter's data to its slice of the vector (a view sharing the vector's storage, as torch's), outside
any graph. Both refuse parameters spread over several devices with torch's TypeError.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from neuronix.tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _device_key(param) -> int:
    """torch's bookkeeping: the GPU index for CUDA (and the privateuse1 backend), -1 for every other device."""
    if param.device.type in ("cuda", torch._C._get_privateuse1_backend_name()):
        return param.device.index if param.device.index is not None else torch.cuda.current_device()
    return -1


def _check_same_device(param, first: int | None) -> int:
    """The first parameter's device key; raises when ``param`` sits on another GPU, or GPU vs not (torch's rule)."""
    key = _device_key(param)
    if first is not None and key != first:
        raise TypeError("Found two parameters on different devices, this is currently not supported.")
    return key


def parameters_to_vector(parameters: Iterable) -> Tensor:
    """One 1-D tensor holding every parameter flattened, in iteration order (differentiable)."""
    from neuronix.ops.movement import cat

    device = None
    flat = []
    for param in parameters:
        device = _check_same_device(param, device)
        flat.append(param.view(-1))
    return cat(flat)


def vector_to_parameters(vec, parameters: Iterable) -> None:
    """Point each parameter's data at its slice of ``vec`` (in order), reshaped to the parameter's shape."""
    if not isinstance(vec, (Tensor, torch.Tensor)):
        raise TypeError(f"expected torch.Tensor, but got: {torch.typename(vec)}")
    data = vec.data if isinstance(vec, Tensor) else vec.detach()
    device = None
    pointer = 0
    for param in parameters:
        device = _check_same_device(param, device)
        count = param.numel()
        param.data = data[pointer : pointer + count].view_as(param.data)
        pointer += count
