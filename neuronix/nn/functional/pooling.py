"""``nn.functional`` pooling over 1, 2 or 3 spatial dims: max, average, adaptive, power-average (lp) and max
unpooling, with torch's top-level twins (``torch.max_pool1d``, ``torch.avg_pool1d``, ...).

Kernel, stride and output-size arguments are normalised and checked here; the ops are ``neuronix.ops.pool``'s.
1-d pooling is the 2-d op on a height of 1 (indices included), exactly as torch computes it, so values,
indices, ties and every derivative are the 2-d op's.
"""

from __future__ import annotations

from neuronix.nn.functional.arguments import int_tuple, shape_of
from neuronix.ops import pool as _pool
from neuronix.ops.public import public
from neuronix.tensor import Tensor

_SIZES = {1: "L", 2: "H, W", 3: "D, H, W"}


def _check_pool_input(op, input, rank, error=RuntimeError):
    """(C, *spatial) or (N, C, *spatial). torch raises RuntimeError; the 2-d names keep the ValueError they
    have always raised (tests/test_functional.py)."""
    if input.ndim not in (rank + 1, rank + 2):
        raise error(
            f"{op}: expected a {rank + 1}-D (C, {_SIZES[rank]}) or {rank + 2}-D (N, C, {_SIZES[rank]}) input, got a "
            f"{input.ndim}-D input of shape {shape_of(input)}"
        )


def _kernel_and_stride(op, rank, kernel_size, stride):
    """``kernel_size`` and ``stride`` as ``rank``-tuples; a missing (None or empty) stride is the kernel size."""
    kernel = int_tuple(kernel_size, rank, op, "kernel_size")
    if stride is None or (not isinstance(stride, int) and len(stride) == 0):
        return kernel, kernel
    return kernel, int_tuple(stride, rank, op, "stride")


def _on_2d(rank, x):
    """A 1-d pooling's input as a 2-d one (height 1); the inverse is ``squeeze(-2)``."""
    return x.unsqueeze(-2) if rank == 1 else x


def _lift(rank, t: tuple, pad: int) -> tuple:
    """A 1-d pooling's parameter as the 2-d op's: ``pad`` for the height."""
    return (pad, *t) if rank == 1 else t


def _max_pool(op, rank, input, kernel_size, stride, padding, dilation, ceil_mode, error=RuntimeError):
    """(output, nx indices) of a ``rank``-d max pooling."""
    _check_pool_input(op, input, rank, error)
    kernel, stride = _kernel_and_stride(op, rank, kernel_size, stride)
    padding = int_tuple(padding, rank, op, "padding")
    dilation = int_tuple(dilation, rank, op, "dilation")
    out, indices = _pool.max_pool(_on_2d(rank, input), _lift(rank, kernel, 1), _lift(rank, stride, 1),
                                  _lift(rank, padding, 0), _lift(rank, dilation, 1), bool(ceil_mode))
    if rank == 1:
        out, indices = out.squeeze(-2), indices.squeeze(-2)
    return out, Tensor(indices)


def _max_pool_function(rank: int):
    op = f"max_pool{rank}d"
    error = ValueError if rank == 2 else RuntimeError

    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        out, indices = _max_pool(op, rank, input, kernel_size, stride, padding, dilation, ceil_mode, error)
        return (out, indices) if return_indices else out

    def with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        return _max_pool(op, rank, input, kernel_size, stride, padding, dilation, ceil_mode, error)

    def top_level(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
        return _max_pool(op, rank, input, kernel_size, stride, padding, dilation, ceil_mode, error)[0]

    max_pool.__name__, with_indices.__name__, top_level.__name__ = op, f"{op}_with_indices", op
    max_pool.__doc__ = (f"{rank}-d max pooling; ``stride`` defaults to ``kernel_size``; ``return_indices`` also returns "
                        "the argmax indices (flat in each plane, as torch's).")
    with_indices.__doc__ = f"``{op}`` returning ``(output, indices)`` always (``torch.nn.functional.{op}_with_indices``)."
    top_level.__doc__ = f"``torch.{op}``: ``{op}`` without ``return_indices``."
    public(max_pool, namespace="nn.functional")
    public(with_indices, namespace="nn.functional")
    public(top_level, method=False)
    return max_pool


max_pool1d = _max_pool_function(1)
max_pool2d = _max_pool_function(2)
max_pool3d = _max_pool_function(3)


@public(method=False)
def max_pool1d_with_indices(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """``torch.max_pool1d_with_indices``: ``(output, indices)``."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode)


def _adaptive_size(op, input, output_size, rank) -> tuple:
    if isinstance(output_size, int) or output_size is None:
        size = (output_size,) * rank
    else:
        size = tuple(output_size)
    if len(size) != rank:
        raise ValueError(f"{op}: output_size must be an int or a sequence of {rank}, got {output_size!r}")
    return tuple(input.shape[-rank + i] if s is None else int(s) for i, s in enumerate(size))


def _adaptive_max(op, rank, input, output_size, error=RuntimeError):
    _check_pool_input(op, input, rank, error)
    size = _adaptive_size(op, input, output_size, rank)
    out, indices = _pool.adaptive_max_pool(_on_2d(rank, input), _lift(rank, size, 1))
    if rank == 1:
        out, indices = out.squeeze(-2), indices.squeeze(-2)
    return out, Tensor(indices)


def _adaptive_max_function(rank: int):
    op = f"adaptive_max_pool{rank}d"
    error = ValueError if rank == 2 else RuntimeError

    def adaptive_max_pool(input, output_size, return_indices=False):
        out, indices = _adaptive_max(op, rank, input, output_size, error)
        return (out, indices) if return_indices else out

    def with_indices(input, output_size, return_indices=False):
        return _adaptive_max(op, rank, input, output_size, error)

    adaptive_max_pool.__name__, with_indices.__name__ = op, f"{op}_with_indices"
    adaptive_max_pool.__doc__ = f"Adaptive {rank}-d max pooling to ``output_size`` (None keeps that input size)."
    with_indices.__doc__ = f"``{op}`` returning ``(output, indices)`` always."
    public(adaptive_max_pool, namespace="nn.functional")
    public(with_indices, namespace="nn.functional")
    return adaptive_max_pool


adaptive_max_pool1d = _adaptive_max_function(1)
adaptive_max_pool2d = _adaptive_max_function(2)
adaptive_max_pool3d = _adaptive_max_function(3)


@public(method=False, name="adaptive_max_pool1d")
def _torch_adaptive_max_pool1d(input, output_size):
    """``torch.adaptive_max_pool1d``: ``(output, indices)`` always."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size)


def _avg_pool(op, rank, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None,
              error=RuntimeError):
    _check_pool_input(op, input, rank, error)
    kernel, stride = _kernel_and_stride(op, rank, kernel_size, stride)
    padding = int_tuple(padding, rank, op, "padding")
    out = _pool.avg_pool(_on_2d(rank, input), _lift(rank, kernel, 1), _lift(rank, stride, 1), _lift(rank, padding, 0),
                         bool(ceil_mode), bool(count_include_pad), divisor_override)
    return out.squeeze(-2) if rank == 1 else out


@public(namespace="nn.functional")
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-d average pooling; ``stride`` defaults to ``kernel_size``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


@public(method=False, name="avg_pool1d")
def _torch_avg_pool1d(input, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True):
    """``torch.avg_pool1d``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


@public(namespace="nn.functional")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """2-d average pooling; ``stride`` defaults to ``kernel_size``."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, ValueError)


@public(namespace="nn.functional")
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """3-d average pooling; ``stride`` defaults to ``kernel_size``."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive_avg(op, rank, input, output_size, error=RuntimeError):
    _check_pool_input(op, input, rank, error)
    size = _adaptive_size(op, input, output_size, rank)
    out = _pool.adaptive_avg_pool(_on_2d(rank, input), _lift(rank, size, 1))
    return out.squeeze(-2) if rank == 1 else out


@public(namespace="nn.functional")
def adaptive_avg_pool1d(input, output_size):
    """Adaptive 1-d average pooling to ``output_size``."""
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


public(adaptive_avg_pool1d, method=False)  # torch.adaptive_avg_pool1d: the same signature


@public(namespace="nn.functional")
def adaptive_avg_pool2d(input, output_size):
    """Adaptive 2-d average pooling to ``output_size`` (None keeps that input size)."""
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size, ValueError)


@public(namespace="nn.functional")
def adaptive_avg_pool3d(input, output_size):
    """Adaptive 3-d average pooling to ``output_size`` (None keeps that input size)."""
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


# ----- max unpooling ---------------------------------------------------------------------------------------
def _unpool_size(op, input, kernel, stride, padding, output_size) -> tuple:
    """The unpooled spatial size: max pooling's output size inverted, or ``output_size`` (spatial, or with N and C
    in front) when it is one of the sizes that pool to the input's (within one stride of the default)."""
    rank = len(kernel)
    default = [(input.shape[-rank + d] - 1) * stride[d] + kernel[d] - 2 * padding[d] for d in range(rank)]
    if output_size is None:
        size = default
    else:
        size = list(output_size)
        if len(size) == rank + 2:
            size = size[2:]
        if len(size) != rank:
            raise ValueError(f"output_size should be a sequence containing {rank} or {rank + 2} elements, but it has a "
                             f"length of '{len(size)}'")
        for d in range(rank):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < size[d] < high:
                raise ValueError(f'invalid output_size "{size}" (dim {d} must be between {low} and {high})')
    for d, s in enumerate(size):
        if s < 0:
            raise ValueError(f"{op}: output_size must contain non-negative spatial dimensions, but got "
                             f"output_size[{d}]={s}")
    return tuple(int(s) for s in size)


def _max_unpool(op, rank, input, indices, kernel_size, stride, padding, output_size):
    kernel = int_tuple(kernel_size, rank, op, "kernel_size")
    stride = kernel if stride is None else int_tuple(stride, rank, op, "stride")
    padding = int_tuple(padding, rank, op, "padding")
    size = _unpool_size(op, input, kernel, stride, padding, output_size)
    raw = indices.data if isinstance(indices, Tensor) else indices
    if rank == 1:  # torch unpools 1-d as 2-d with a trailing width of 1
        out = _pool.max_unpool(input.unsqueeze(-1), raw.unsqueeze(-1), size + (1,), None, None)
        return out.squeeze(-1)
    return _pool.max_unpool(input, raw, size, stride, padding)


@public(namespace="nn.functional")
def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_pool1d's partial inverse: ``input`` written at ``indices`` of a zero signal, the rest 0."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


@public(namespace="nn.functional")
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_pool2d's partial inverse: ``input`` written at ``indices`` of a zero image, the rest 0."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


@public(namespace="nn.functional")
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_pool3d's partial inverse: ``input`` written at ``indices`` of a zero volume, the rest 0."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


# ----- power-average pooling ----------------------------------------------------------------------------------
def _lp_pool(rank, input, norm_type, kernel_size, stride, ceil_mode):
    """(sum over each window of x^p)^(1/p), composed as torch composes it, so its gradient is torch's to every
    order: an average pool of x^p times the window size, with ``sign(s) * relu(|s|)`` (0 where the sum is 0)."""
    max_pool = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}[rank]
    if isinstance(norm_type, (int, float)) and abs(norm_type) == float("inf"):  # the max of |x| (min for -inf)
        if norm_type > 0:
            return max_pool(input.abs(), kernel_size, stride, 0, 1, ceil_mode)
        return -max_pool(-input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    window = 1
    for k in int_tuple(kernel_size, rank, f"lp_pool{rank}d", "kernel_size"):
        window *= k
    avg = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}[rank]
    out = avg(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * out.abs().relu()).mul(window).pow(1.0 / norm_type)


@public(namespace="nn.functional")
def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """1-d power-average pooling: the p-norm of each window (p = ``norm_type``; inf is max pooling of |x|)."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


@public(namespace="nn.functional")
def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """2-d power-average pooling: the p-norm of each window (p = ``norm_type``; inf is max pooling of |x|)."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


@public(namespace="nn.functional")
def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """3-d power-average pooling: the p-norm of each window (p = ``norm_type``; inf is max pooling of |x|)."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)
