"""Pooling layers over 1, 2 or 3 spatial dims: max, average, power-average, adaptive, fractional and max unpooling.

Each class keeps torch's constructor arguments as attributes (stored the way torch stores them: as given,
or as tuples where torch normalises them) and calls its ``nn.functional`` twin, which checks the input and
raises torch's errors. ``MaxPool2d``, ``AvgPool2d`` and ``AdaptiveAvgPool2d`` also check the rank up front
(the ``ValueError`` naming the layer they have always raised).
"""

from __future__ import annotations

from neuronix.nn import functional as F
from neuronix.nn.module import Module
from neuronix.nn.modules._check import check_input

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d",
    "MaxUnpool3d",
]

_LAYOUTS = "(N, C, H, W) or (C, H, W)"


def _ntuple(value, n: int) -> tuple:
    """torch's ``_single``/``_pair``/``_triple``: a sequence as a tuple, anything else repeated ``n`` times."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


# ----- max pooling -------------------------------------------------------------------------------------------
class _MaxPoolNd(Module):
    _functional: str

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return getattr(F, self._functional)(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over ``kernel_size`` windows of ``(N, C, L)`` or ``(C, L)``, as ``torch.nn.MaxPool1d``."""

    _functional = "max_pool1d"


class MaxPool2d(_MaxPoolNd):
    """Max over ``kernel_size`` windows (``stride`` defaults to ``kernel_size``), as ``torch.nn.MaxPool2d``."""

    _functional = "max_pool2d"

    def forward(self, input):
        check_input(self, input, (3, 4), _LAYOUTS)
        return super().forward(input)


class MaxPool3d(_MaxPoolNd):
    """Max over ``kernel_size`` windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``, as ``torch.nn.MaxPool3d``."""

    _functional = "max_pool3d"


# ----- max unpooling -----------------------------------------------------------------------------------------
class _MaxUnpoolNd(Module):
    _dims: int
    _functional: str

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        n = self._dims
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride if stride is not None else kernel_size, n)
        self.padding = _ntuple(padding, n)

    def forward(self, input, indices, output_size=None):
        return getattr(F, self._functional)(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """``MaxPool1d``'s partial inverse: ``forward(input, indices, output_size=None)``, the rest zeros."""

    _dims, _functional = 1, "max_unpool1d"


class MaxUnpool2d(_MaxUnpoolNd):
    """``MaxPool2d``'s partial inverse: ``forward(input, indices, output_size=None)``, the rest zeros."""

    _dims, _functional = 2, "max_unpool2d"


class MaxUnpool3d(_MaxUnpoolNd):
    """``MaxPool3d``'s partial inverse: ``forward(input, indices, output_size=None)``, the rest zeros."""

    _dims, _functional = 3, "max_unpool3d"


# ----- average pooling ---------------------------------------------------------------------------------------
class _AvgPoolNd(Module):
    _functional: str

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return getattr(F, self._functional)(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over ``kernel_size`` windows of ``(N, C, L)`` or ``(C, L)``, as ``torch.nn.AvgPool1d``.

    As torch, it has no ``divisor_override`` and stores its sizes as 1-tuples.
    """

    _functional = "avg_pool1d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(_ntuple(kernel_size, 1), _ntuple(stride if stride is not None else kernel_size, 1),
                         _ntuple(padding, 1), ceil_mode, count_include_pad)
        del self.divisor_override

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over ``kernel_size`` windows, as ``torch.nn.AvgPool2d``."""

    _functional = "avg_pool2d"

    def forward(self, input):
        check_input(self, input, (3, 4), _LAYOUTS)
        return super().forward(input)


class AvgPool3d(_AvgPoolNd):
    """Mean over ``kernel_size`` windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``, as ``torch.nn.AvgPool3d``."""

    _functional = "avg_pool3d"


# ----- power-average pooling ---------------------------------------------------------------------------------
class _LPPoolNd(Module):
    _functional: str

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return getattr(F, self._functional)(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class LPPool1d(_LPPoolNd):
    """The p-norm (p = ``norm_type``) of each ``kernel_size`` window, as ``torch.nn.LPPool1d``."""

    _functional = "lp_pool1d"


class LPPool2d(_LPPoolNd):
    """The p-norm (p = ``norm_type``) of each ``kernel_size`` window, as ``torch.nn.LPPool2d``."""

    _functional = "lp_pool2d"


class LPPool3d(_LPPoolNd):
    """The p-norm (p = ``norm_type``) of each ``kernel_size`` window, as ``torch.nn.LPPool3d``."""

    _functional = "lp_pool3d"


# ----- adaptive pooling --------------------------------------------------------------------------------------
class _AdaptiveAvgPoolNd(Module):
    _functional: str

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return getattr(F, self._functional)(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean pooling of ``(N, C, L)`` or ``(C, L)`` to a fixed ``output_size``, as ``torch.nn.AdaptiveAvgPool1d``."""

    _functional = "adaptive_avg_pool1d"


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Mean pooling to a fixed ``output_size`` (``None`` keeps that dim), as ``torch.nn.AdaptiveAvgPool2d``."""

    _functional = "adaptive_avg_pool2d"

    def forward(self, input):
        check_input(self, input, (3, 4), _LAYOUTS)
        return super().forward(input)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Mean pooling to a fixed ``output_size`` (``None`` keeps that dim), as ``torch.nn.AdaptiveAvgPool3d``."""

    _functional = "adaptive_avg_pool3d"


class _AdaptiveMaxPoolNd(Module):
    _functional: str

    def __init__(self, output_size, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input):
        return getattr(F, self._functional)(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``output_size`` (``return_indices`` for ``MaxUnpool1d``), as torch."""

    _functional = "adaptive_max_pool1d"


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``output_size`` (``None`` keeps that dim; ``return_indices``), as torch."""

    _functional = "adaptive_max_pool2d"


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``output_size`` (``None`` keeps that dim; ``return_indices``), as torch."""

    _functional = "adaptive_max_pool3d"


# ----- fractional max pooling --------------------------------------------------------------------------------
class _FractionalMaxPoolNd(Module):
    """Pseudo-random window starts, drawn per forward from torch's RNG unless ``_random_samples`` fixes them."""

    _dims: int
    _functional: str

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                 _random_samples=None) -> None:
        super().__init__()
        n, name = self._dims, type(self).__name__
        if n == 3 and any(k <= 0 for k in _ntuple(kernel_size, n)):  # torch checks this for the 3-d class only
            raise ValueError(f"kernel_size must be greater than 0, but got {kernel_size}")
        self.kernel_size = _ntuple(kernel_size, n)
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        self.output_size = _ntuple(output_size, n) if output_size is not None else None
        self.output_ratio = _ntuple(output_ratio, n) if output_ratio is not None else None
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} requires specifying either an output size, or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        if self.output_ratio is not None and not all(0 < r < 1 for r in self.output_ratio):
            raise ValueError(f"output_ratio must be between 0 and 1 (got {output_ratio})")

    def forward(self, input):
        return getattr(F, self._functional)(input, self.kernel_size, self.output_size, self.output_ratio,
                                            self.return_indices, _random_samples=self._random_samples)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Fractional max pooling of ``(N, C, H, W)`` or ``(C, H, W)`` (Graham, 2015), as ``torch.nn.FractionalMaxPool2d``."""

    _dims, _functional = 2, "fractional_max_pool2d"


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """Fractional max pooling of ``(N, C, T, H, W)`` or ``(C, T, H, W)``, as ``torch.nn.FractionalMaxPool3d``."""

    _dims, _functional = 3, "fractional_max_pool3d"
