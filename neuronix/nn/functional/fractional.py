"""Fractional max pooling (Graham, 2015) in 2 and 3 spatial dims, and ``native_channel_shuffle``.

Each plane (sample, channel) pools over windows of ``kernel_size`` whose starts are pseudo-random:
along a dim of input size ``n``, output size ``m`` and kernel ``k``, with that plane's sample
``u`` in [0, 1), start ``i`` is ``int((i + u) * a) - int(u * a)`` with ``a = (n - k) / (m - 1)``
(computed in the input's dtype, as torch's kernel does), and the last start is ``n - k``. Without
``_random_samples`` the samples are drawn exactly as torch draws them, ``torch.rand(N, C, rank)``
in the input's dtype, so after the same ``torch.manual_seed`` the windows are torch's. The
samples' last dim is read as torch's kernels read it: (W, H) in 2-d, (T, H, W) in 3-d.

The windows' positions are integer bookkeeping (computed on the raw data, no gradient); the
output is a ``gather`` of the input at each window's maximum, so the gradient goes to the picked
maxima (summed where windows overlap) and every higher derivative is ``gather``'s. The maximum is
torch's: the first largest value of the window in row-major order, or its last NaN.
"""

from __future__ import annotations

import math

import torch

from neuronix.nn.functional.arguments import int_tuple, shape_of
from neuronix.nn.functional.spatial import channel_shuffle
from neuronix.ops.public import public
from neuronix.tensor import Tensor

_SAMPLE_ORDER = {2: (1, 0), 3: (0, 1, 2)}  # which sample column drives each spatial dim


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
    names = {2: ("height", "width"), 3: ("time", "height", "width")}[rank]
    if input.ndim not in (rank + 1, rank + 2) or any(s == 0 for s in shape_of(input)[-rank - 1:]):
        raise RuntimeError(
            f"{op}(): Expected {rank + 1}D or {rank + 2}D tensor with non-zero sizes for the channel and spatial dims, "
            f"but got: {shape_of(input)}"
        )
    for d in range(rank):
        if size[d] + kernel[d] - 1 > input.shape[-rank + d]:
            raise RuntimeError(
                f"{op}(): pool {names[d]} {kernel[d]} too large relative to input {names[d]} "
                f"{input.shape[-rank + d]} and output {names[d]} {size[d]}"
            )
    planes = (input.shape[0] if input.ndim == rank + 2 else 1, input.shape[-rank - 1], rank)
    if tuple(samples.shape) != planes:
        raise RuntimeError(f"{op}(): expected _random_samples of shape {planes}, got {tuple(samples.shape)}")


def _fractional(op, rank, input, kernel_size, output_size, output_ratio, samples):
    """(output, indices) of a ``rank``-d fractional max pooling."""
    kernel = int_tuple(kernel_size, rank, op, "kernel_size")
    size = _output_size(op, rank, input, output_size, output_ratio)
    raw = input.data if isinstance(input, Tensor) else input
    if samples is None:  # torch's draw, in torch's order and dtype
        batch = 1 if raw.dim() == rank + 1 else raw.shape[0]
        samples = torch.rand(batch, raw.shape[-rank - 1], rank, dtype=raw.dtype, device=raw.device)
    samples = samples.data if isinstance(samples, Tensor) else samples
    _check(op, rank, raw, kernel, size, samples)
    spatial = tuple(raw.shape[-rank:])
    planes = samples.reshape(-1, rank)
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
    x = input if isinstance(input, Tensor) else Tensor(input)
    out = x.reshape(lead + (-1,)).gather(-1, Tensor(indices.reshape(lead + (-1,))))
    return out.reshape(lead + size), Tensor(indices.reshape(lead + size))


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
