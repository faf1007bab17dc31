"""Padding layers: reflection, replication, zero, constant and circular padding of 1, 2 or 3 trailing dims.

``padding`` is an int (the same on every side) or a tuple of 2, 4 or 6 ints ``(left, right, top, bottom,
front, back)``, stored as a tuple as torch stores it. The padding itself is ``F.pad``'s, which checks sizes
and ranks; the circular layers also check the rank first, with torch's ``ValueError``.
"""

from __future__ import annotations

from neuronix.nn import functional as F
from neuronix.nn.module import Module

__all__ = [
    "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
]


def _sides(padding, dims: int) -> tuple:
    """torch's ``_pair``/``_quadruple``/``_ntuple(6)``: a sequence as a tuple (unchecked), an int on all sides."""
    return tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * (2 * dims)


class _PadNd(Module):
    _dims: int
    _mode: str

    def __init__(self, padding) -> None:
        super().__init__()
        self.padding = _sides(padding, self._dims)

    def _check_length(self, input) -> None:
        # torch's F.pad raises these as RuntimeError (neuronix's F.pad raises ValueError): the layers follow torch
        n = len(self.padding)
        if n % 2:
            raise RuntimeError("Padding length must be divisible by 2")
        if n // 2 > input.ndim:
            raise RuntimeError(
                f"Padding length should be less than or equal to two times the input dimension but got padding length "
                f"{n} and input of dimension {input.ndim}"
            )

    def forward(self, input):
        self._check_length(input)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _CircularPadNd(_PadNd):
    _mode = "circular"

    def forward(self, input):
        low = self._dims + 1
        if input.ndim not in (low, low + 1):
            raise ValueError(f"expected {low}D or {low + 1}D input (got {input.ndim}D input)")
        return super().forward(input)


class CircularPad1d(_CircularPadNd):
    """Wrap-around padding of the last dim of ``(N, C, W)`` or ``(C, W)``, as ``torch.nn.CircularPad1d``."""

    _dims = 1


class CircularPad2d(_CircularPadNd):
    """Wrap-around padding of the last 2 dims of ``(N, C, H, W)`` or ``(C, H, W)``, as ``torch.nn.CircularPad2d``."""

    _dims = 2


class CircularPad3d(_CircularPadNd):
    """Wrap-around padding of the last 3 dims of ``(N, C, D, H, W)`` or ``(C, D, H, W)``, as torch."""

    _dims = 3


class _ReflectionPadNd(_PadNd):
    _mode = "reflect"


class ReflectionPad1d(_ReflectionPadNd):
    """Mirror padding (edge not repeated) of the last dim, as ``torch.nn.ReflectionPad1d``."""

    _dims = 1


class ReflectionPad2d(_ReflectionPadNd):
    """Mirror padding (edge not repeated) of the last 2 dims, as ``torch.nn.ReflectionPad2d``."""

    _dims = 2


class ReflectionPad3d(_ReflectionPadNd):
    """Mirror padding (edge not repeated) of the last 3 dims, as ``torch.nn.ReflectionPad3d``."""

    _dims = 3


class _ReplicationPadNd(_PadNd):
    _mode = "replicate"


class ReplicationPad1d(_ReplicationPadNd):
    """Edge-value padding of the last dim, as ``torch.nn.ReplicationPad1d``."""

    _dims = 1


class ReplicationPad2d(_ReplicationPadNd):
    """Edge-value padding of the last 2 dims, as ``torch.nn.ReplicationPad2d``."""

    _dims = 2


class ReplicationPad3d(_ReplicationPadNd):
    """Edge-value padding of the last 3 dims, as ``torch.nn.ReplicationPad3d``."""

    _dims = 3


class _ConstantPadNd(_PadNd):
    _mode = "constant"

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, input):
        self._check_length(input)
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim with ``value``, as ``torch.nn.ConstantPad1d``."""

    _dims = 1


class ConstantPad2d(_ConstantPadNd):
    """Pads the last 2 dims with ``value``, as ``torch.nn.ConstantPad2d``."""

    _dims = 2


class ConstantPad3d(_ConstantPadNd):
    """Pads the last 3 dims with ``value``, as ``torch.nn.ConstantPad3d``."""

    _dims = 3


class _ZeroPad:
    """``ConstantPad*d`` with value 0 (torch's ``ZeroPad*d`` are those subclasses, with a shorter repr)."""

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(_ZeroPad, ConstantPad1d):
    """Pads the last dim with zeros, as ``torch.nn.ZeroPad1d``."""


class ZeroPad2d(_ZeroPad, ConstantPad2d):
    """Pads the last 2 dims with zeros, as ``torch.nn.ZeroPad2d``."""


class ZeroPad3d(_ZeroPad, ConstantPad3d):
    """Pads the last 3 dims with zeros, as ``torch.nn.ZeroPad3d``."""
