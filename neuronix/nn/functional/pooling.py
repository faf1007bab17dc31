"""``nn.functional`` 2-d pooling: kernel, stride and output-size arguments normalised and checked."""

from __future__ import annotations

from neuronix.nn.functional.arguments import int_tuple, shape_of
from neuronix.ops import pool as _pool
from neuronix.ops.public import public
from neuronix.tensor import Tensor


def _check_pool_input(op, input):
    if input.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got a {input.ndim}-D input of shape {shape_of(input)}"
        )


@public(namespace="nn.functional")
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-d max pooling; ``stride`` defaults to ``kernel_size``; ``return_indices`` also returns the argmax indices."""
    _check_pool_input("max_pool2d", input)
    kernel = int_tuple(kernel_size, 2, "max_pool2d", "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    out, indices = _pool.max_pool2d(input, kernel, int_tuple(stride, 2, "max_pool2d", "stride"),
                                    int_tuple(padding, 2, "max_pool2d", "padding"),
                                    int_tuple(dilation, 2, "max_pool2d", "dilation"), bool(ceil_mode))
    return (out, Tensor(indices)) if return_indices else out


def _adaptive_size(op, input, output_size) -> tuple:
    size = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    return tuple(input.shape[-2 + i] if s is None else int(s) for i, s in enumerate(size))


@public(namespace="nn.functional")
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive 2-d max pooling to ``output_size`` (None keeps that input size)."""
    _check_pool_input("adaptive_max_pool2d", input)
    out, indices = _pool.adaptive_max_pool2d(input, _adaptive_size("adaptive_max_pool2d", input, output_size))
    return (out, Tensor(indices)) if return_indices else out


@public(namespace="nn.functional")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """2-d average pooling; ``stride`` defaults to ``kernel_size``."""
    _check_pool_input("avg_pool2d", input)
    kernel = int_tuple(kernel_size, 2, "avg_pool2d", "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    return _pool.avg_pool2d(input, kernel, int_tuple(stride, 2, "avg_pool2d", "stride"),
                            int_tuple(padding, 2, "avg_pool2d", "padding"), bool(ceil_mode), bool(count_include_pad),
                            divisor_override)


@public(namespace="nn.functional")
def adaptive_avg_pool2d(input, output_size):
    """Adaptive 2-d average pooling to ``output_size`` (None keeps that input size)."""
    _check_pool_input("adaptive_avg_pool2d", input)
    return _pool.adaptive_avg_pool2d(input, _adaptive_size("adaptive_avg_pool2d", input, output_size))

