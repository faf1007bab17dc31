"""Fractional max pooling (Graham, 2015) in 2 and 3 spatial dims, and ``native_channel_shuffle``.

Each plane (sample, channel) pools over windows of ``kernel_size`` whose starts are pseudo-random:
along a dim of input size ``n``, output size ``m`` and kernel ``k``, with that plane's sample
``u`` in [0, 1), start ``i`` is ``int((i + u) * a) - int(u * a)`` with ``a = (n - k) / (m - 1)``
(computed in the input's dtype, as torch's kernel does), and the last start is ``n - k``. Without
``_random_samples`` the samples are drawn exactly as torch draws them, ``torch.rand(N, C, rank)``
in the input's dtype, so after the same ``torch.manual_seed`` the windows are torch's. The
samples' last dim is read as torch's kernels read it: (W, H) in 2-d, (T, H, W) in 3-d.

The windows' positions are integer bookkeeping (computed on the raw data, no gradient); the
output gathers the input at each window's maximum (torch's pick: the first largest value of the
window in row-major order, or its last NaN). Two primitives carry it, as torch's kernel pair does:
``fractional_max_pool`` (the gather) and ``fractional_max_pool_backward`` (its adjoint, a
scatter-add of the upstream gradient to the picked maxima, summed where windows overlap). The
backward takes the pooled input too and has derivative 0 there (``zero_gradient``), so under
create_graph the gradient is in the input's graph as torch's is (a gradient penalty through the
layer gets zeros, not an error); its derivative in the upstream gradient is the gather again, so
every order works.
"""

from __future__ import annotations

import math

import torch

from neuronix.nn.functional.arguments import int_tuple, shape_of
from neuronix.nn.functional.spatial import channel_shuffle
from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.public import public
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

_SAMPLE_ORDER = {2: (1, 0), 3: (0, 1, 2)}  # which sample column drives each spatial dim


def _gather(x: torch.Tensor, indices: torch.Tensor, rank: int) -> torch.Tensor:
    """``x``'s values at the flat in-plane ``indices`` (shape lead + output size)."""
    return x.flatten(-rank).gather(-1, indices.flatten(-rank)).view(indices.shape)


def _scatter(g: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, rank: int) -> torch.Tensor:
    """``g`` added into zeros shaped like ``x`` at the flat in-plane ``indices`` (repeats accumulate)."""
    out = g.new_zeros(x.shape)
    out.flatten(-rank).scatter_add_(-1, indices.flatten(-rank), g.flatten(-rank))
    return out


FRACTIONAL_POOL_BACKWARD = defop(
    "fractional_max_pool_backward",
    lambda g, x, indices, rank: _scatter(g, x, indices, rank),
    lambda h, out, g, x, indices, rank: apply(FRACTIONAL_POOL, h, indices=indices, rank=rank),  # adjoint: the gather
    zero_gradient,  # x: only its shape is read
    saves=(),
)
FRACTIONAL_POOL = defop(
    "fractional_max_pool",
    lambda x, indices, rank: _gather(x, indices, rank),
    lambda g, out, x, indices, rank: apply(FRACTIONAL_POOL_BACKWARD, g, x, indices=indices, rank=rank),
    saves=(0,),
)


def _starts(samples: torch.Tensor, in_size: int, out_size: int, kernel: int) -> torch.Tensor:
    """(P, out_size) window starts along one dim, one row per plane's sample."""
    planes = samples.shape[0]
    starts = torch.empty(planes, out_size, dtype=torch.long, device=samples.device)
    if out_size > 1:
        alpha = torch.tensor(in_size - kernel, dtype=samples.dtype) / (out_size - 1)
        steps = torch.arange(out_size - 1, dtype=samples.dtype, device=samples.device)
        u = samples.unsqueeze(1)
        starts[:, :-1] = ((steps + u) * alpha).long() - (u * alpha).long()
    if out_size > 0:
        starts[:, -1] = in_size - kernel
    return starts


def _output_size(op, rank, input, output_size, output_ratio) -> tuple:
    if output_size is None and output_ratio is None:
        raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
    if output_size is not None:
        return int_tuple(output_size, rank, op, "output_size")
    if rank == 2 and len(output_ratio) > 2:  # torch takes len() of the ratio here (a bare float is a TypeError)
        raise ValueError(f"{op} requires output_ratio to either be a single Int or tuple of Ints.")
    ratio = tuple(output_ratio) if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * rank
    if len(ratio) == 1:
        ratio = ratio * rank
    return tuple(int(input.shape[-rank + d] * ratio[d]) for d in range(rank))


def _check(op, rank, input, kernel, size, samples) -> None:
    """torch's checks and messages; the 3-d kernel wants ``output + kernel - 1`` strictly below the input size,
    the 2-d one allows equality (both torch 2.13 and 2.14)."""
    names = {2: ("height", "width"), 3: ("time", "height", "width")}[rank]
    shape = shape_of(input)
    if input.ndim not in (rank + 1, rank + 2):
        raise RuntimeError(f"{op}(): Expected {rank + 1}D or {rank + 2}D tensor, but got: {shape}")
    for d in range(1 if input.ndim == rank + 2 else 0, input.ndim):
        if shape[d] == 0:
            raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch dimensions, but got"
                               f"{list(shape)} with dimension {d} being empty.")
    kernel_name = f"{op}_out" if rank == 3 else op
    for d in range(rank):
        needed = size[d] + kernel[d] - 1
        if needed > shape[-rank + d] or (rank == 3 and needed == shape[-rank + d]):
            raise RuntimeError(f"{kernel_name}(): pool {names[d]} {kernel[d]} too large relative to input {names[d]} "
                               f"{shape[-rank + d]}")
    batch = shape[0] if input.ndim == rank + 2 else 1
    if samples.dim() != 3:
        raise RuntimeError(f"{op}(): expected _random_samples of shape (N, C, {rank}), got {tuple(samples.shape)}")
    if samples.shape[2] != rank:
        raise RuntimeError(f"Expect _random_samples.size(2) equals to {rank}; got {samples.shape[2]}.")
    if samples.shape[1] != shape[-rank - 1]:
        raise RuntimeError("Expect _random_samples.size(1) equals to input channel size.")
    if samples.shape[0] < batch:
        raise RuntimeError("Expect _random_samples.size(0) no less then input batch size.")


def _fractional(op, rank, input, kernel_size, output_size, output_ratio, samples):
    """(output, indices) of a ``rank``-d fractional max pooling."""
    kernel = int_tuple(kernel_size, rank, op, "kernel_size")
    size = _output_size(op, rank, input, output_size, output_ratio)
    raw = input.data if isinstance(input, Tensor) else input
    if samples is None:  # torch's draw, in torch's order and dtype (raw.size: torch's IndexError for too few dims)
        batch = 1 if raw.dim() == rank + 1 else raw.size(0)
        samples = torch.rand(batch, raw.size(-rank - 1), rank, dtype=raw.dtype, device=raw.device)
    samples = samples.data if isinstance(samples, Tensor) else samples
    _check(op, rank, raw, kernel, size, samples)
    spatial = tuple(raw.shape[-rank:])
    planes = samples[: shape_of(raw)[0] if raw.dim() == rank + 2 else 1].reshape(-1, rank)
    # flat (within-plane) input position of every window element: (P, *size, *kernel)
    flat = torch.zeros((planes.shape[0],) + size + kernel, dtype=torch.long, device=raw.device)
    for d in range(rank):
        starts = _starts(planes[:, _SAMPLE_ORDER[rank][d]], spatial[d], size[d], kernel[d])
        offsets = torch.arange(kernel[d], device=raw.device)
        pos = starts.view((-1,) + (1,) * d + (size[d],) + (1,) * (2 * rank - d - 1))
        pos = pos + offsets.view((1,) * (rank + 1 + d) + (kernel[d],) + (1,) * (rank - d - 1))
        flat = flat + pos * math.prod(spatial[d + 1:])
    windows = flat.reshape(flat.shape[: rank + 1] + (-1,))  # (P, *size, K)
    lead = shape_of(raw)[:-rank]
    values = raw.reshape(-1, math.prod(spatial)).gather(1, windows.reshape(windows.shape[0], -1)).view(windows.shape)
    # torch's pick: the first largest value, or the last NaN when the window holds one
    k = windows.shape[-1]
    order = torch.arange(k, device=raw.device)
    nan = values.isnan()
    first_max = torch.where(values == values.amax(-1, keepdim=True), order, k).amin(-1)
    last_nan = torch.where(nan, order, -1).amax(-1)
    pick = torch.where(nan.any(-1), last_nan, first_max)
    indices = windows.gather(-1, pick.unsqueeze(-1)).squeeze(-1)  # (P, *size)
    indices = indices.reshape(lead + size)
    x = input if isinstance(input, Tensor) else Tensor(input)
    return apply(FRACTIONAL_POOL, x, indices=indices, rank=rank), Tensor(indices)


def _fractional_function(rank: int):
    op = f"fractional_max_pool{rank}d"

    def fractional_max_pool(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                            _random_samples=None):
        out, indices = _fractional(op, rank, input, kernel_size, output_size, output_ratio, _random_samples)
        return (out, indices) if return_indices else out

    def with_indices(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                     _random_samples=None):
        return _fractional(op, rank, input, kernel_size, output_size, output_ratio, _random_samples)

    fractional_max_pool.__name__, with_indices.__name__ = op, f"{op}_with_indices"
    fractional_max_pool.__doc__ = (
        f"{rank}-d fractional max pooling to ``output_size`` (or ``output_ratio`` of the input size) with "
        "pseudo-random window starts; ``return_indices`` also returns the flat in-plane argmax indices.")
    with_indices.__doc__ = f"``{op}`` returning ``(output, indices)`` always."
    public(fractional_max_pool, namespace="nn.functional")
    public(with_indices, namespace="nn.functional")
    return fractional_max_pool


fractional_max_pool2d = _fractional_function(2)
fractional_max_pool3d = _fractional_function(3)


@public(namespace="nn.functional")
def native_channel_shuffle(input, groups):
    """``channel_shuffle`` as torch's native kernel (the same result and gradient)."""
    return channel_shuffle(input, groups)
