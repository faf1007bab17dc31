"""nn.functional: interpolate (and the deprecated upsample names), fold/unfold, pixel and channel shuffles,
affine_grid and grid_sample, with torch's argument handling, defaults, warnings and errors.

The ops are ``neuronix.ops.spatial``'s (torch's kernels, each with its adjoint as its derivative); ``interpolate``
works out the output size and the scale factors exactly as torch's does (its ``.vec`` kernels'
``int(size * scale)``), so the kernel gets the same arguments and returns the same values.
"""

from __future__ import annotations

import numbers
import warnings

import torch

from neuronix.nn.functional.arguments import int_tuple
from neuronix.nn.functional.pooling import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d
from neuronix.ops import spatial as _spatial
from neuronix.ops import spatial_grid as _spatial_grid
from neuronix.ops.public import public

# ----- interpolation --------------------------------------------------------------------------------------
_INTERPOLATING = ("linear", "bilinear", "bicubic", "trilinear", "lanczos")
# (mode, spatial rank) -> torch's kernel
_KERNELS = {
    ("nearest", 1): "upsample_nearest1d", ("nearest", 2): "upsample_nearest2d", ("nearest", 3): "upsample_nearest3d",
    ("nearest-exact", 1): "_upsample_nearest_exact1d", ("nearest-exact", 2): "_upsample_nearest_exact2d",
    ("nearest-exact", 3): "_upsample_nearest_exact3d",
    ("linear", 1): "upsample_linear1d", ("bilinear", 2): "upsample_bilinear2d",
    ("bicubic", 2): "upsample_bicubic2d", ("trilinear", 3): "upsample_trilinear3d",
}
_ANTIALIASED = {"bilinear": "_upsample_bilinear2d_aa", "bicubic": "_upsample_bicubic2d_aa",
                "lanczos": "_upsample_lanczos2d_aa"}
_AREA = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}
_RANK_OF_MODE = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _per_dim(input, value, rank: int, what: str, shape_error: str) -> list:
    """``size`` or ``scale_factor`` as one value per spatial dim (a scalar repeats; a sequence must have ``rank``)."""
    if not isinstance(value, (list, tuple)):
        return [value] * rank
    if len(value) != rank:
        raise ValueError(
            f"Input and {shape_error} must have the same number of spatial dimensions, but got input with spatial "
            f"dimensions of {list(input.shape[2:])} and {what} {list(value) if what == 'output size of' else value}. "
            f"Please provide input tensor in (N, C, d1, d2, ...,dK) format and {what.split(' ')[0]} in "
            f"({', '.join(f'{x}{i}' for x, i in zip(('o' if what == 'output size of' else 's') * 3, ('1', '2', '...')))},"
            f"{'oK' if what == 'output size of' else 'sK'}) format."
        )
    return list(value)


def _unsupported(input, mode: str):
    """torch's error for a mode that does not fit the input's rank (or an unknown mode)."""
    rank = _RANK_OF_MODE.get(mode)
    if rank is not None and input.ndim in (3, 4, 5):
        needs = rank + 2
        return NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {needs}D input")
    return NotImplementedError(
        f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for the modes: nearest | linear "
        f"| bilinear | bicubic | trilinear | lanczos | area | nearest-exact (got {mode})"
    )


@public(namespace="nn.functional")
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resize by ``size`` or ``scale_factor`` with torch's modes: nearest, nearest-exact, linear, bilinear, bicubic,
    trilinear, area (adaptive average pooling) and the antialiased bilinear/bicubic/lanczos (4-D input)."""
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    rank = input.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        output_size = _per_dim(input, size, rank, "output size of", "output")
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in output_size):
            raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] or Tuple[int, int, int], "
                            f"but got size with types {[type(s) for s in output_size]}")
        output_size, scales = [int(s) for s in output_size], None
    elif scale_factor is not None:
        output_size, scales = None, [float(s) for s in _per_dim(input, scale_factor, rank, "scale_factor of shape",
                                                                 "scale_factor")]
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" and output_size is None:
        recompute_scale_factor = True  # area pooling takes a size: torch reuses this path
    if recompute_scale_factor:
        # the size from the scales, then the kernel recomputes the scales from the sizes
        output_size, scales = [int(input.shape[2 + i] * scales[i]) for i in range(rank)], None
    if antialias and not (mode in _ANTIALIASED and input.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                         "tensor as input")
    if mode == "area" and rank in _AREA:
        return _AREA[rank](input, output_size)
    if mode == "lanczos" and input.ndim == 4:
        if align_corners:
            raise ValueError("Lanczos mode does not support align_corners=True")
        if not antialias:
            raise ValueError("Lanczos mode requires antialias=True")
    kernel = _ANTIALIASED[mode] if antialias else _KERNELS.get((mode, rank))
    if kernel is None:
        raise _unsupported(input, mode)
    if output_size is None:  # the .vec kernels' output size: each input size times its scale, truncated
        output_size = [int(input.shape[2 + i] * scales[i]) for i in range(rank)]
    return _spatial.upsample(kernel, input, output_size, align_corners, scales or (None,) * rank)


@public(namespace="nn.functional")
def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of ``interpolate`` (torch warns the same)."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


@public(namespace="nn.functional")
def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='nearest')``."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


@public(namespace="nn.functional")
def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ----- fold / unfold ------------------------------------------------------------------------------------------
@public(namespace="nn.functional")
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding (C, kH, kW) blocks of a (N, C, H, W) or (C, H, W) input as columns (torch's im2col)."""
    return _spatial.im2col(input, *(int_tuple(v, 2, "unfold", what) for v, what in (
        (kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"), (stride, "stride"))))


@public(namespace="nn.functional")
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Columns of blocks summed back into a (N, C, H, W) or (C, H, W) image (torch's col2im), unfold's adjoint."""
    return _spatial.col2im(input, *(int_tuple(v, 2, "fold", what) for v, what in (
        (output_size, "output_size"), (kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"),
        (stride, "stride"))))


# ----- pixel and channel shuffles ----------------------------------------------------------------------------
@public(namespace="nn.functional")
def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    return _spatial.apply(_spatial.PIXEL_SHUFFLE, input, upscale_factor=int(upscale_factor))


@public(namespace="nn.functional")
def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), pixel_shuffle's inverse."""
    return _spatial.apply(_spatial.PIXEL_UNSHUFFLE, input, downscale_factor=int(downscale_factor))


@public(namespace="nn.functional")
def channel_shuffle(input, groups):
    """(N, C, *) with the C channels split into ``groups`` groups, interleaved: (N, g, C / g, *) -> (N, C / g, g, *)."""
    return _spatial.apply(_spatial.CHANNEL_SHUFFLE, input, groups=int(groups))


for _fn in (pixel_shuffle, pixel_unshuffle, channel_shuffle):  # torch.pixel_shuffle, ...: the same at the top level
    public(_fn, method=False)


# ----- affine grids ----------------------------------------------------------------------------------------------
_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. Please "
                  "specify align_corners=True if the old behavior is desired. See the documentation of grid_sample for "
                  "details.")


def _steps(n: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """The normalised coordinates of ``n`` pixel centres (corners with ``align_corners``) in [-1, 1], as torch's
    affine_grid_generator makes them (a lone pixel sits at 0)."""
    if n <= 1:
        return torch.zeros((), dtype=like.dtype, device=like.device)
    steps = torch.linspace(-1, 1, n, dtype=like.dtype, device=like.device)
    return steps if align_corners else steps * (n - 1) / n


def _base_grid(theta: torch.Tensor, spatial: list, align_corners: bool) -> torch.Tensor:
    """(N, *spatial, k + 1): each output position's (x, y[, z], 1), x along the last dim."""
    n, k = theta.shape[0], len(spatial)
    base = torch.empty((n, *spatial, k + 1), dtype=theta.dtype, device=theta.device)
    for axis in range(k):  # axis 0 is x, the last spatial dim
        steps = _steps(spatial[k - 1 - axis], align_corners, theta)
        base[..., axis] = steps.reshape(steps.shape + (1,) * axis) if steps.ndim else steps
    base[..., k] = 1
    return base


@public(namespace="nn.functional")
def affine_grid(theta, size, align_corners=None):
    """The sampling grid of a batch of affine maps ``theta`` (N, 2, 3) or (N, 3, 4) for an output of ``size``
    (N, C, H, W) or (N, C, D, H, W): each output position's normalised (x, y[, z]) mapped by theta."""
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    if not theta.is_floating_point():
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = list(size)
    if len(size) not in (4, 5):
        raise NotImplementedError("affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    k = len(size) - 2
    if theta.ndim != 3 or tuple(theta.shape[-2:]) != (k, k + 1):
        raise ValueError(f"Expected a batch of {k}D affine matrices of shape Nx{k}x{k + 1} for size {size}. "
                         f"Got {theta.shape}.")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the documentation of "
                      "affine_grid for details.", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid: theta has {theta.shape[0]} matrices but size asks for a batch of {size[0]}")
    return affine_grid_generator(theta, size, align_corners)


# ----- grid sampling --------------------------------------------------------------------------------------------
@public(namespace="nn.functional")
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """``input`` (N, C, H, W) or (N, C, D, H, W) sampled at ``grid``'s normalised (x, y[, z]) positions in [-1, 1]
    with bilinear, nearest or (2-D) bicubic interpolation and zeros, border or reflection padding."""
    if mode not in _spatial_grid.MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but "
                         f"got: '{mode}'")
    if padding_mode not in _spatial_grid.PADDINGS:
        raise ValueError("nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or 'reflection', "
                         f"but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    return _spatial_grid.grid_sample(input, grid, _spatial_grid.MODES[mode], _spatial_grid.PADDINGS[padding_mode],
                                     align_corners)


@public(method=False)
def grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners):
    """``torch.grid_sampler``: grid_sample with the modes as torch's enum values (bilinear 0, nearest 1, bicubic 2;
    zeros 0, border 1, reflection 2)."""
    return _spatial_grid.grid_sample(input, grid, int(interpolation_mode), int(padding_mode), align_corners)


@public(method=False)
def affine_grid_generator(theta, size, align_corners):
    """``torch.affine_grid_generator``: affine_grid without its argument checks and warnings."""
    k = len(size) - 2
    base = _base_grid(theta.data, list(size[2:]), align_corners)
    # (N, P, k + 1) @ (N, k + 1, k): each position's homogeneous coordinates through its batch's map
    return (base.reshape(size[0], -1, k + 1) @ theta.transpose(1, 2)).reshape((size[0], *size[2:], k))


def _check_sampler_rank(op: str, input, grid, rank: int) -> None:
    if input.ndim != rank or grid.ndim != rank:
        raise RuntimeError(f"{op}(): expected {rank}D input and grid with same number of dimensions, but got input "
                           f"with sizes {list(input.shape)} and grid with sizes {list(grid.shape)}")


@public(method=False)
def grid_sampler_2d(input, grid, interpolation_mode, padding_mode, align_corners):
    """``torch.grid_sampler_2d``: ``grid_sampler`` of a 4-D input."""
    _check_sampler_rank("grid_sampler_2d", input, grid, 4)
    return grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)


@public(method=False)
def grid_sampler_3d(input, grid, interpolation_mode, padding_mode, align_corners):
    """``torch.grid_sampler_3d``: ``grid_sampler`` of a 5-D input."""
    _check_sampler_rank("grid_sampler_3d", input, grid, 5)
    return grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)
