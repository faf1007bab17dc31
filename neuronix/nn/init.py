"""``nx.nn.init``: in-place weight initialisers with torch's names, formulas and RNG use.

Each function fills ``tensor.data`` outside the graph and returns ``tensor``. The scale
formulas (fans, gains, Glorot and He bounds) are written out here; the random draws are
the same torch kernels torch's own initialisers call (``uniform_``, ``normal_``), in the
same order, so after ``torch.manual_seed(s)`` neuronix and torch produce identical weights.
``trunc_normal_``, ``orthogonal_`` and ``sparse_`` delegate to ``torch.nn.init`` on the raw
tensor: their sampling procedures are torch's, and calling them is the only exact match.
"""

from __future__ import annotations

import math

import torch

from neuronix.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "dirac_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "sparse_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _raw(tensor) -> torch.Tensor:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, torch.Tensor):
        return tensor
    raise TypeError(f"nn.init expects an nx.Tensor (or torch.Tensor), got {type(tensor).__name__}")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``tanh`` 5/3, ``relu`` sqrt(2), ``leaky_relu`` sqrt(2/(1+a^2)), ...)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # the value torch uses (Self-Normalizing Networks, normalised variance)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """Fans of a weight ``(out, in, *kernel)``: ``in * prod(kernel)`` and ``out * prod(kernel)``."""
    t = _raw(tensor)
    if t.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(t.shape[2:]) if t.dim() > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None):
    """Fill with values drawn from U(a, b)."""
    _raw(tensor).uniform_(a, b, generator=generator)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None):
    """Fill with values drawn from N(mean, std^2)."""
    _raw(tensor).normal_(mean, std, generator=generator)
    return tensor


def constant_(tensor, val: float):
    """Fill with ``val``."""
    _raw(tensor).fill_(val)
    return tensor


def ones_(tensor):
    return constant_(tensor, 1.0)


def zeros_(tensor):
    _raw(tensor).zero_()
    return tensor


def eye_(tensor):
    """Fill a 2-D tensor with the identity matrix."""
    t = _raw(tensor)
    if t.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    t.copy_(torch.eye(*t.shape, dtype=t.dtype, device=t.device))
    return tensor


def dirac_(tensor, groups: int = 1):
    """Dirac delta for {3,4,5}-D conv weights (identity convolution), as ``torch.nn.init.dirac_``."""
    torch.nn.init.dirac_(_raw(tensor), groups)
    return tensor


def xavier_uniform_(tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None
):
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan); every nn layer's default weight init uses a=sqrt(5)."""
    if _raw(tensor).numel() == 0:
        return tensor  # torch warns and leaves an empty tensor alone
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None
):
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    if _raw(tensor).numel() == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def trunc_normal_(
    tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator: torch.Generator | None = None
):
    """N(mean, std^2) truncated to [a, b] (torch's inverse-CDF sampler)."""
    torch.nn.init.trunc_normal_(_raw(tensor), mean, std, a, b, generator=generator)
    return tensor


def orthogonal_(tensor, gain: float = 1, generator: torch.Generator | None = None):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, scaled by ``gain``."""
    torch.nn.init.orthogonal_(_raw(tensor), gain, generator=generator)
    return tensor


def sparse_(tensor, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None):
    """A 2-D tensor with a fraction ``sparsity`` of each column zero, the rest N(0, std^2)."""
    torch.nn.init.sparse_(_raw(tensor), sparsity, std, generator=generator)
    return tensor
