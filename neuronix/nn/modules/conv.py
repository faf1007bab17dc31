"""Convolutions over 1, 2 or 3 spatial dims, plain and transposed, and their lazy forms (torch's attributes, init
and repr).

One ``_ConvNd`` holds what every convolution shares (parameters, init, padding modes, repr); ``_Conv`` and
``_ConvTransposeNd`` add the two forwards, and each public class only names its rank and functional.
"""

from __future__ import annotations

import math

import torch

from neuronix.nn import functional as F
from neuronix.nn import init
from neuronix.nn.module import Module
from neuronix.nn.modules._check import check_input
from neuronix.nn.modules.lazy import LazyModuleMixin, UninitializedParameter
from neuronix.nn.parameter import Parameter

__all__ = [
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d",
]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
        return tuple(value)
    return (value,) * n


class _ConvNd(Module):
    """Shared by every convolution: parameters, init, padding modes and repr."""

    _dims: int

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed, output_padding,
                 groups, bias, padding_mode, device=None, dtype=None) -> None:
        super().__init__()
        n = self._dims
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels={in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels={out_channels}, groups={groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got padding_mode='{padding_mode}'")
        kernel_size = _tuple(kernel_size, n, "kernel_size")
        stride = _tuple(stride, n, "stride")
        dilation = _tuple(dilation, n, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _tuple(padding, n, "padding")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = _tuple(output_padding, n, "output_padding")
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad takes (left, right) pairs starting from the last dim
        if isinstance(padding, str):
            pads = []
            if padding == "same":
                for d, k in zip(reversed(dilation), reversed(kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
            else:
                pads = [0, 0] * n
        else:
            pads = [p for p in reversed(padding) for _ in range(2)]
        self._reversed_padding_repeated_twice = pads
        shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(torch.empty(shape + kernel_size, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(torch.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check(self, input) -> None:
        c, spatial = self.in_channels, {1: "L", 2: "H, W", 3: "D, H, W"}[self._dims]
        check_input(self, input, (self._dims + 1, self._dims + 2), f"(N, {c}, {spatial}) or ({c}, {spatial})",
                    {self._dims + 1: 0, self._dims + 2: 1}, c)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    _functional: str  # the name of the functional in nx.nn.functional

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                         padding_mode, device, dtype)

    def _conv_forward(self, input, weight, bias):
        conv = getattr(F, self._functional)
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        self._check(input)
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_Conv):
    """1-D convolution over ``(N, C_in, L)`` (or unbatched ``(C_in, L)``) inputs, as ``torch.nn.Conv1d``."""

    _dims = 1
    _functional = "conv1d"


class Conv2d(_Conv):
    """2-D convolution over ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``) inputs, as ``torch.nn.Conv2d``."""

    _dims = 2
    _functional = "conv2d"


class Conv3d(_Conv):
    """3-D convolution over ``(N, C_in, D, H, W)`` (or unbatched ``(C_in, D, H, W)``) inputs, as ``torch.nn.Conv3d``."""

    _dims = 3
    _functional = "conv3d"


class _ConvTransposeNd(_ConvNd):
    """Transposed convolution ("deconvolution"); ``forward(input, output_size=None)`` as torch.

    ``output_size`` picks the ``output_padding`` that yields that spatial size, since strided
    convolutions map several input sizes to the same output size.
    """

    _functional: str

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not support string padding {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding, groups,
                         bias, padding_mode, device, dtype)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"output padding must be smaller than either stride or dilation, got output_padding={self.output_padding}, "
                    f"stride={self.stride}, dilation={self.dilation}"
                )

    def _output_padding(self, input, output_size) -> tuple[int, ...]:
        if output_size is None:
            return self.output_padding
        n = self._dims
        sizes = [int(s) for s in output_size]
        # as torch: the sizes may lead with the non-spatial dims the input has (N and C, or C unbatched)
        leading = 2 if input.ndim == n + 2 else 1
        if len(sizes) == n + leading:
            sizes = sizes[leading:]
        if len(sizes) != n:
            raise ValueError(
                f"{type(self).__name__}: for {input.ndim}D input, output_size must have {n} or {n + leading} elements "
                f"(got {len(output_size)}: {tuple(output_size)})"
            )
        spatial = tuple(input.shape[-n:])
        result = []
        for i in range(n):
            smallest = (spatial[i] - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            largest = smallest + self.stride[i] - 1
            if not smallest <= sizes[i] <= largest:
                raise ValueError(
                    f"{type(self).__name__}: requested an output size of {tuple(sizes)}, but valid sizes range from "
                    f"{smallest} to {largest} in dim {i} (for an input of spatial size {spatial})"
                )
            result.append(sizes[i] - smallest)
        return tuple(result)

    def forward(self, input, output_size=None):
        self._check(input)
        output_padding = self._output_padding(input, output_size)
        return getattr(F, self._functional)(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                            self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution over ``(N, C_in, L)`` (or ``(C_in, L)``), as ``torch.nn.ConvTranspose1d``."""

    _dims = 1
    _functional = "conv_transpose1d"


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution over ``(N, C_in, H, W)`` (or ``(C_in, H, W)``), as ``torch.nn.ConvTranspose2d``."""

    _dims = 2
    _functional = "conv_transpose2d"


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution over ``(N, C_in, D, H, W)`` (or ``(C_in, D, H, W)``), as ``torch.nn.ConvTranspose3d``."""

    _dims = 3
    _functional = "conv_transpose3d"


# ----- lazy convolutions: in_channels read from the first input ------------------------------------------
class _LazyConvMixin(LazyModuleMixin):
    """``in_channels`` (and the weight's shape) from the first input's channel dim, then torch's init."""

    def _make_lazy(self, out_channels: int, bias: bool, device, dtype) -> None:
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_channels = out_channels
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def _get_in_channels(self, input) -> int:
        batched, unbatched = self._dims + 2, self._dims + 1
        if input.ndim not in (unbatched, batched):
            raise RuntimeError(
                f"Expected {unbatched}D (unbatched) or {batched}D (batched) input to {type(self).__name__}, "
                f"but got input of size: {tuple(input.shape)}"
            )
        return input.shape[1] if input.ndim == batched else input.shape[0]

    def initialize_parameters(self, input, *args, **kwargs) -> None:
        if not self.has_uninitialized_params():
            # materialised by load_state_dict: torch leaves in_channels 0 here; neuronix reads it from the weight,
            # since its forward checks the input's channels against in_channels
            if self.in_channels == 0:
                self.in_channels = self.weight.shape[0] if self.transposed else self.weight.shape[1] * self.groups
            return
        self.in_channels = self._get_in_channels(input)
        if self.in_channels % self.groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels={self.in_channels}, groups={self.groups})")
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups)
        else:
            shape = (self.out_channels, self.in_channels // self.groups)
        self.weight.materialize(shape + tuple(self.kernel_size))
        if self.bias is not None:
            self.bias.materialize((self.out_channels,))
        self.reset_parameters()


def _lazy_conv(eager: type) -> type:
    """``Lazy<eager>``: ``eager``'s signature without ``in_channels``; becomes ``eager`` after the first forward."""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        eager.__init__(self, 0, 0, kernel_size, stride, padding, dilation, groups, False, padding_mode, device, dtype)
        self._register_lazy_hook()
        self._make_lazy(out_channels, bias, device, dtype)

    def __init_transposed__(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                            groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                            dtype=None) -> None:
        eager.__init__(self, 0, 0, kernel_size, stride, padding, output_padding, groups, False, dilation, padding_mode,
                       device, dtype)
        self._register_lazy_hook()
        self._make_lazy(out_channels, bias, device, dtype)

    name = f"Lazy{eager.__name__}"
    body = {"__init__": __init_transposed__ if issubclass(eager, _ConvTransposeNd) else __init__,
            "cls_to_become": eager, "__module__": __name__,
            "__doc__": f"``{eager.__name__}`` whose ``in_channels`` is read from the first input (``torch.nn.{name}``)."}
    return type(name, (_LazyConvMixin, eager), body)


LazyConv1d = _lazy_conv(Conv1d)
LazyConv2d = _lazy_conv(Conv2d)
LazyConv3d = _lazy_conv(Conv3d)
LazyConvTranspose1d = _lazy_conv(ConvTranspose1d)
LazyConvTranspose2d = _lazy_conv(ConvTranspose2d)
LazyConvTranspose3d = _lazy_conv(ConvTranspose3d)
