"""Mirrors of the spatial ``nn.functional`` ops of issue 13 and their top-level torch twins: 1-d/3-d and
transposed convolutions, 1-d/3-d pools, unpooling, lp pooling, interpolation, grid sampling, fold/unfold and
pixel/channel shuffles.

The samples draw batched and unbatched inputs, odd and even sizes, strides above and below the kernel, padding,
dilation, ``ceil_mode`` and every mode an op has. Max-pooling inputs are pairwise distinct (no ties that finite
differences could cross); the convolution sampler is ``nn_functional``'s, which is rank-generic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import neuronix as nx
import neuronix.nn.functional as F
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors.nn_functional import _conv, _distinct
from conformance.strategies import Domain, tensor


def _f(name: str, sample, variant: str = "", **kw) -> OpMirror:
    """``nn.functional.<name>[variant]``."""
    return OpMirror(f"nn.functional.{name}" + (f"[{variant}]" if variant else ""), getattr(F, name),
                    getattr(TF, name), sample, **kw)


def _top(name: str, sample, variant: str = "", **kw) -> OpMirror:
    """``<name>[variant]``: the top-level ``torch.<name>``."""
    return OpMirror(name + (f"[{variant}]" if variant else ""), getattr(nx, name), getattr(torch, name), sample, **kw)


# ----- convolutions -------------------------------------------------------------------------------------
register(
    _f("conv3d", _conv(3, groups=(1, 2), stride=(1, 2), padding=(0, 1))),
    _f("conv3d", _conv(3, groups=(2,), dilation=(2,), stride=(1,), padding=(1,)), "groups,dilation"),
    _f("conv3d", _conv(3, same=True, groups=(1,)), "same"),
    _f("conv_transpose1d", _conv(1, transposed=True)),
    _f("conv_transpose1d", _conv(1, transposed=True, groups=(2,), dilation=(2,), stride=(2, 3)),
       "groups,dilation+output_padding"),
    _f("conv_transpose3d", _conv(3, transposed=True, groups=(1, 2), stride=(1, 2), padding=(0, 1))),
    _f("conv_transpose3d", _conv(3, transposed=True, dilation=(2,), stride=(2,), groups=(1,)), "dilation+output_padding"),
    _top("conv1d", _conv(1)),
    _top("conv1d", _conv(1, same=True), "same"),
    _top("conv2d", _conv(2)),
    _top("conv3d", _conv(3, groups=(1, 2), stride=(1, 2), padding=(0, 1))),
    _top("conv_transpose1d", _conv(1, transposed=True)),
    _top("conv_transpose2d", _conv(2, transposed=True)),
    _top("conv_transpose3d", _conv(3, transposed=True, groups=(1, 2), stride=(1, 2), padding=(0, 1))),
)


# ----- pooling -------------------------------------------------------------------------------------------
def _pool_input(draw, dtype, device, min_size, distinct=False, batched=None):
    """(N, C, *spatial) or (C, *spatial), each spatial size in [min, min + 3]."""
    n, c = draw(st.sampled_from((1, 2))), draw(st.integers(1, 3))
    size = tuple(draw(st.integers(m, m + 3)) for m in min_size)
    batch = draw(st.booleans()) if batched is None else batched
    shape = ((n,) if batch else ()) + (c,) + size
    if distinct:
        return _distinct(draw, shape, dtype, device)
    return tensor(draw, shape, dtype, device)


def _ints(draw, rank, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(rank))


def _as_arg(draw, t: tuple):
    """A tuple argument as torch takes it: the tuple, or its one int when all sizes agree (sometimes)."""
    return t[0] if len(set(t)) == 1 and draw(st.booleans()) else t


# torch 2.13's CPU max_pool3d backward raises "Unsupported memory format" for an unbatched input under a
# channels-last upstream gradient, which the harness's upstream-layout check draws for every 4-D output:
# F.max_pool3d(x := torch.randn(3, 3, 8, 3, requires_grad=True), 2).backward(
#     torch.randn(3, 1, 4, 1).contiguous(memory_format=torch.channels_last)). Unbatched 3-d max pooling is drawn
# batched here (torch has no answer to compare with); tests/test_spatial.py checks neuronix's unbatched case.
_MAX3D_BATCHED = "batched inputs only: torch 2.13's unbatched max_pool3d backward refuses a channels-last upstream"


def _max_pool(rank, *, dilation=(1,), ceil=(False, True), stride_gt_kernel=False, indices=None, top=False):
    def sample(draw, dtype, device):
        kernel = _ints(draw, rank, 1, 3)
        dil = tuple(draw(st.sampled_from(dilation)) for _ in range(rank))
        x = _pool_input(draw, dtype, device, [d * (k - 1) + 1 for d, k in zip(dil, kernel)], distinct=True,
                        batched=True if rank == 3 else None)
        kwargs = {"kernel_size": _as_arg(draw, kernel), "dilation": _as_arg(draw, dil),
                  "ceil_mode": draw(st.sampled_from(ceil)),
                  "padding": _as_arg(draw, tuple(draw(st.integers(0, k // 2)) for k in kernel))}
        if stride_gt_kernel:
            kwargs["stride"] = tuple(k + 1 + i % 2 for i, k in enumerate(kernel))
        elif draw(st.booleans()):
            kwargs["stride"] = _as_arg(draw, _ints(draw, rank, 1, 3))
        elif top and draw(st.booleans()):
            kwargs["stride"] = ()  # torch.max_pool*d's default: the kernel size
        if indices is not None:
            kwargs["return_indices"] = indices
        return Sample((x,), kwargs)

    return sample


def _avg_pool(rank, *, divisor=(None,), stride_gt_kernel=False):
    def sample(draw, dtype, device):
        kernel = _ints(draw, rank, 1, 3)
        x = _pool_input(draw, dtype, device, kernel)
        kwargs = {"kernel_size": _as_arg(draw, kernel), "ceil_mode": draw(st.booleans()),
                  "count_include_pad": draw(st.booleans()),
                  "padding": _as_arg(draw, tuple(draw(st.integers(0, k // 2)) for k in kernel))}
        if rank > 1:
            kwargs["divisor_override"] = draw(st.sampled_from(divisor))
        if stride_gt_kernel:
            kwargs["stride"] = tuple(k + 2 - i % 2 for i, k in enumerate(kernel))
        elif draw(st.booleans()):
            kwargs["stride"] = _as_arg(draw, _ints(draw, rank, 1, 3))
        return Sample((x,), kwargs)

    return sample


def _adaptive(rank, *, distinct, indices=None):
    def sample(draw, dtype, device):
        x = _pool_input(draw, dtype, device, (1,) * rank, distinct=distinct)
        sizes = tuple(x.shape[-rank:])
        kind = draw(st.sampled_from(("int", "tuple", "none", "larger")))
        if kind == "int":
            size = draw(st.integers(1, 3))
        elif kind == "tuple":
            size = tuple(draw(st.integers(1, s)) for s in sizes)
        elif kind == "none" and rank > 1:
            size = (None,) + tuple(draw(st.integers(1, s)) for s in sizes[1:])
        else:
            size = tuple(s + 1 + i for i, s in enumerate(sizes))  # larger than the input: windows overlap
        if rank == 1 and isinstance(size, tuple) and draw(st.booleans()):
            size = size[0]
        kwargs = {"output_size": size}
        if indices is not None:
            kwargs["return_indices"] = indices
        return Sample((x,), kwargs)

    return sample


_NO_HALF_AVG3D = {"dtypes": FLOATS, "note": "torch 2.13's CPU avg_pool3d has no float16/bfloat16 kernel "
                                               "(\"avg_pool3d_out_frame\" not implemented for 'Half')"}
register(
    _f("max_pool1d", _max_pool(1)),
    _f("max_pool1d", _max_pool(1, dilation=(2, 3)), "dilation"),
    _f("max_pool1d", _max_pool(1, stride_gt_kernel=True), "stride>kernel"),
    _f("max_pool1d", _max_pool(1, indices=True), "return_indices"),
    _f("max_pool3d", _max_pool(3), note=_MAX3D_BATCHED),
    _f("max_pool3d", _max_pool(3, dilation=(1, 2)), "dilation", note=_MAX3D_BATCHED),
    _f("max_pool3d", _max_pool(3, stride_gt_kernel=True), "stride>kernel", note=_MAX3D_BATCHED),
    _f("max_pool3d", _max_pool(3, indices=True), "return_indices", note=_MAX3D_BATCHED),
    _f("max_pool1d_with_indices", _max_pool(1, dilation=(1, 2))),
    _f("max_pool2d_with_indices", _max_pool(2, dilation=(1, 2))),
    _f("max_pool3d_with_indices", _max_pool(3, dilation=(1, 2)), note=_MAX3D_BATCHED),
    _top("max_pool1d", _max_pool(1, dilation=(1, 2), top=True)),
    _top("max_pool2d", _max_pool(2, dilation=(1, 2), top=True)),
    _top("max_pool3d", _max_pool(3, dilation=(1, 2), top=True), note=_MAX3D_BATCHED),
    _top("max_pool1d_with_indices", _max_pool(1, dilation=(1, 2), top=True)),
    _f("avg_pool1d", _avg_pool(1)),
    _f("avg_pool1d", _avg_pool(1, stride_gt_kernel=True), "stride>kernel"),
    _f("avg_pool3d", _avg_pool(3), **_NO_HALF_AVG3D),
    _f("avg_pool3d", _avg_pool(3, divisor=(1, 5)), "divisor_override", **_NO_HALF_AVG3D),
    _f("avg_pool3d", _avg_pool(3, stride_gt_kernel=True), "stride>kernel", **_NO_HALF_AVG3D),
    _top("avg_pool1d", _avg_pool(1)),
    _f("adaptive_avg_pool1d", _adaptive(1, distinct=False)),
    _f("adaptive_avg_pool3d", _adaptive(3, distinct=False)),
    _top("adaptive_avg_pool1d", _adaptive(1, distinct=False)),
    _f("adaptive_max_pool1d", _adaptive(1, distinct=True)),
    _f("adaptive_max_pool1d", _adaptive(1, distinct=True, indices=True), "return_indices"),
    _f("adaptive_max_pool3d", _adaptive(3, distinct=True)),
    _f("adaptive_max_pool3d", _adaptive(3, distinct=True, indices=True), "return_indices"),
    _f("adaptive_max_pool1d_with_indices", _adaptive(1, distinct=True)),
    _f("adaptive_max_pool2d_with_indices", _adaptive(2, distinct=True)),
    _f("adaptive_max_pool3d_with_indices", _adaptive(3, distinct=True)),
    _top("adaptive_max_pool1d", _adaptive(1, distinct=True)),
)


# ----- max unpooling -----------------------------------------------------------------------------------------
def _max_unpool(rank, *, output_size=False):
    """Unpool the output of a max pooling whose windows do not overlap (stride >= kernel: the indices are
    distinct, as after any max pooling a user unpools); ``output_size`` as spatial sizes or with N and C."""
    def sample(draw, dtype, device):
        kernel = _ints(draw, rank, 1, 3)
        stride = tuple(k + draw(st.integers(0, 1)) for k in kernel)
        padding = tuple(draw(st.integers(0, (k - 1) // 2)) for k in kernel)  # the unpooled size is never 0
        x = _pool_input(draw, torch.float64, device, kernel, distinct=True)
        pool = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}[rank]
        pooled, indices = pool(x, kernel, stride, padding, return_indices=True)
        values = tensor(draw, pooled.shape, dtype, device)
        kwargs = {"kernel_size": _as_arg(draw, kernel), "padding": _as_arg(draw, padding)}
        if stride != kernel or draw(st.booleans()):
            kwargs["stride"] = _as_arg(draw, stride)
        if output_size:
            default = [(pooled.shape[-rank + d] - 1) * stride[d] + kernel[d] - 2 * padding[d] for d in range(rank)]
            size = [s + draw(st.integers(0, stride[d] - 1)) for d, s in enumerate(default)]  # any size pooling to it
            kwargs["output_size"] = tuple(x.shape[:-rank]) + tuple(size) if draw(st.booleans()) else size
        return Sample((values, indices), kwargs, grad_args=(0,))

    return sample


register(
    _f("max_unpool1d", _max_unpool(1)),
    _f("max_unpool1d", _max_unpool(1, output_size=True), "output_size"),
    _f("max_unpool2d", _max_unpool(2)),
    _f("max_unpool2d", _max_unpool(2, output_size=True), "output_size"),
    _f("max_unpool3d", _max_unpool(3)),
    _f("max_unpool3d", _max_unpool(3, output_size=True), "output_size"),
)


# ----- power-average pooling -------------------------------------------------------------------------------------
def _lp_pool(rank, *, norms=(2, 1.5, 3.0), infinite=False):
    """p = 2 on real inputs (x^2 needs no sign), fractional p on positive ones (torch's x^p of a negative x is
    NaN); p = inf is max pooling of |x|, drawn distinct and away from 0 (no ties, no kink of |x|)."""
    def sample(draw, dtype, device):
        kernel = _ints(draw, rank, 1, 3)
        p = draw(st.sampled_from((float("inf"), -float("inf")) if infinite else norms))
        if infinite:
            x = _pool_input(draw, dtype, device, kernel, distinct=True) + 2.5
        else:
            x = _pool_input(draw, dtype, device, kernel)
            if p != 2:
                x = x.abs() + 0.2
        kwargs = {"kernel_size": kernel[0] if rank == 1 else _as_arg(draw, kernel), "ceil_mode": draw(st.booleans())}
        if draw(st.booleans()):
            kwargs["stride"] = _as_arg(draw, _ints(draw, rank, 1, 3))
        return Sample((x, p), kwargs)

    return sample


register(
    _f("lp_pool1d", _lp_pool(1)),
    _f("lp_pool1d", _lp_pool(1, infinite=True), "inf"),
    _f("lp_pool2d", _lp_pool(2)),
    _f("lp_pool2d", _lp_pool(2, infinite=True), "inf"),
    _f("lp_pool3d", _lp_pool(3), **_NO_HALF_AVG3D),
    _f("lp_pool3d", _lp_pool(3, infinite=True), "inf"),
)


# ----- interpolation -------------------------------------------------------------------------------------------
_SCALES = (0.5, 0.75, 1.0, 1.5, 1.7, 2.0, 3.0)
_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _interpolate(modes, *, ranks=(1, 2, 3), antialias=False, how=("size", "scale", "recompute", "per-dim")):
    """``interpolate(x, size | scale_factor, mode, align_corners, recompute_scale_factor, antialias)``: sizes up and
    down, scale factors as one number or one per dim, recomputed or passed on to the kernel."""
    def sample(draw, dtype, device):
        mode = draw(st.sampled_from(modes))
        rank = _RANK.get(mode) or draw(st.sampled_from(ranks))
        x = _pool_input(draw, dtype, device, (2,) * rank, batched=True)
        kwargs = {"mode": mode}
        kind = draw(st.sampled_from(how))
        if kind == "size":
            size = tuple(draw(st.integers(1, 7)) for _ in range(rank))
            kwargs["size"] = size[0] if len(set(size)) == 1 and draw(st.booleans()) else size
        else:
            scales = tuple(draw(st.sampled_from(_SCALES)) for _ in range(rank))
            kwargs["scale_factor"] = scales if kind == "per-dim" else scales[0]
            if kind == "recompute":
                kwargs["recompute_scale_factor"] = True
            elif draw(st.booleans()):
                kwargs["recompute_scale_factor"] = False
        if mode in _RANK or mode == "lanczos":
            kwargs["align_corners"] = False if mode == "lanczos" else draw(st.booleans())
        if antialias:
            kwargs["antialias"] = True
        return Sample((x,), kwargs)

    return sample


def _only(sample, keys):
    """``sample`` with the keywords a deprecated ``upsample*`` name takes (the others are fixed by the name)."""
    def only(draw, dtype, device):
        drawn = sample(draw, dtype, device)
        return Sample(drawn.args, {k: v for k, v in drawn.kwargs.items() if k in keys})

    return only


_UPSAMPLE_KEYS = ("size", "scale_factor", "mode", "align_corners")
register(
    _f("interpolate", _interpolate(("nearest",)), "nearest"),
    _f("interpolate", _interpolate(("nearest-exact",)), "nearest-exact"),
    _f("interpolate", _interpolate(("linear",)), "linear"),
    _f("interpolate", _interpolate(("bilinear",)), "bilinear"),
    _f("interpolate", _interpolate(("bicubic",)), "bicubic"),
    _f("interpolate", _interpolate(("trilinear",)), "trilinear"),
    _f("interpolate", _interpolate(("area",)), "area"),
    _f("interpolate", _interpolate(("bilinear", "bicubic"), antialias=True), "antialias", dtypes=FLOATS,
       note="torch 2.13's CPU antialiased interpolation has no float16/bfloat16 kernel (\"compute_index_ranges_weights\" "
            "not implemented for 'Half')"),
    _f("interpolate", _interpolate(("nearest", "bilinear", "bicubic", "area"), ranks=(2,))),
    _f("upsample", _only(_interpolate(("nearest", "linear", "bilinear", "bicubic", "trilinear")), _UPSAMPLE_KEYS)),
    _f("upsample_nearest", _only(_interpolate(("nearest",)), _UPSAMPLE_KEYS[:2])),
    _f("upsample_bilinear", _only(_interpolate(("bilinear",)), _UPSAMPLE_KEYS[:2])),
)


# ----- fold / unfold ------------------------------------------------------------------------------------------
def _blocks_geometry(draw):
    """kernel, dilation, padding, stride and an image size holding at least one block."""
    kernel, dilation = _ints(draw, 2, 1, 3), _ints(draw, 2, 1, 2)
    padding, stride = tuple(draw(st.integers(0, 1)) for _ in range(2)), _ints(draw, 2, 1, 3)
    image = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3))
                  for k, d, p in zip(kernel, dilation, padding))
    return kernel, dilation, padding, stride, image


def _geometry_kwargs(draw, kernel, dilation, padding, stride):
    return {"kernel_size": _as_arg(draw, kernel), "dilation": _as_arg(draw, dilation),
            "padding": _as_arg(draw, padding), "stride": _as_arg(draw, stride)}


def _unfold(draw, dtype, device):
    kernel, dilation, padding, stride, image = _blocks_geometry(draw)
    x = _pool_input(draw, dtype, device, image)
    x = x[..., : image[0], : image[1]]
    return Sample((x,), _geometry_kwargs(draw, kernel, dilation, padding, stride))


def _fold(draw, dtype, device):
    kernel, dilation, padding, stride, image = _blocks_geometry(draw)
    blocks = 1
    for size, k, d, p, s in zip(image, kernel, dilation, padding, stride):
        blocks *= (size + 2 * p - d * (k - 1) - 1) // s + 1
    c = draw(st.integers(1, 2))
    shape = ((draw(st.integers(1, 2)),) if draw(st.booleans()) else ()) + (c * kernel[0] * kernel[1], blocks)
    return Sample((tensor(draw, shape, dtype, device),),
                  {"output_size": _as_arg(draw, image), **_geometry_kwargs(draw, kernel, dilation, padding, stride)})


register(_f("unfold", _unfold), _f("fold", _fold))


# ----- pixel and channel shuffles -------------------------------------------------------------------------------
def _lead(draw) -> tuple:
    return tuple(draw(st.lists(st.integers(1, 2), max_size=2)))


def _pixel_shuffle(draw, dtype, device):
    r = draw(st.integers(1, 3))
    shape = _lead(draw) + (draw(st.integers(1, 2)) * r * r, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return Sample((tensor(draw, shape, dtype, device), r))


def _pixel_unshuffle(draw, dtype, device):
    r = draw(st.integers(1, 3))
    shape = _lead(draw) + (draw(st.integers(1, 2)), r * draw(st.integers(1, 2)), r * draw(st.integers(1, 2)))
    return Sample((tensor(draw, shape, dtype, device), r))


def _channel_shuffle(draw, dtype, device):
    groups = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    shape = (draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))) + spatial
    return Sample((tensor(draw, shape, dtype, device), groups))


register(
    _f("pixel_shuffle", _pixel_shuffle), _top("pixel_shuffle", _pixel_shuffle),
    _f("pixel_unshuffle", _pixel_unshuffle), _top("pixel_unshuffle", _pixel_unshuffle),
    _f("channel_shuffle", _channel_shuffle), _top("channel_shuffle", _channel_shuffle),
)


# ----- affine grids -------------------------------------------------------------------------------------------------
def _affine_grid(k: int):
    def sample(draw, dtype, device):
        n = draw(st.integers(1, 3))
        theta = tensor(draw, (n, k, k + 1), dtype, device)
        size = (n, draw(st.integers(1, 3))) + _ints(draw, k, 1, 4)
        return Sample((theta, size), {"align_corners": draw(st.booleans())})

    return sample


_NO_HALF_GRID = {"dtypes": FLOATS, "note": "torch 2.13's CPU affine_grid_generator has no float16/bfloat16 kernel "
                                             "(its linspace: \"tensor_cpu\" not implemented for 'Half')"}
register(_f("affine_grid", _affine_grid(2), **_NO_HALF_GRID), _f("affine_grid", _affine_grid(3), "3d", **_NO_HALF_GRID))


# ----- grid sampling -----------------------------------------------------------------------------------------------
# grid values beyond [-1, 1] reach the padding; sampling is continuous (bilinear, bicubic) or jumps between pixels
# (nearest), whose jumps a float64 finite-difference step crosses with negligible probability
_GRID = Domain(-1.3, 1.3)
# _CRASH: torch 2.13's CPU bilinear 2-d grid sampler backward (float32, float64) dies with a segmentation fault
# on a NaN grid value with border or reflection padding, or an infinite one with reflection padding:
# x = torch.randn(1, 1, 3, 4, requires_grad=True); g = torch.full((1, 1, 1, 2), float("nan"), requires_grad=True)
# torch.grid_sampler(x, g, 0, 1, False).sum().backward()  # Segmentation fault
# so both libraries are called with finite grid values there (NaN and infinities become 0.25 and +-1.25 by
# nan_to_num in the call, whose gradient is 0 at the replaced entries in both): a value drawn into the sample
# would not do, since the special-value check and sweep (kinds/special.py) refill the sample's tensors with their
# points after it is drawn. neuronix computes such gradients with its composed sampler instead (ops/spatial_grid.py,
# tests/test_spatial.py).
_PADDINGS = ("zeros", "border", "reflection")


def _crash_safe(lib, fn, k: int):
    """``fn(x, grid, ...)`` of ``lib`` (torch or neuronix) with the grid made finite where torch's backward dies
    (_CRASH: 2-d, bilinear, border or reflection padding, float32/float64); the grid as drawn everywhere else."""

    def call(x, grid, *args, **kwargs):
        if args:  # torch.grid_sampler's integer modes: (interpolation, padding, align_corners)
            mode, padding = ("bilinear", "nearest", "bicubic")[args[0]], _PADDINGS[args[1]]
        else:
            mode, padding = kwargs.get("mode", "bilinear"), kwargs.get("padding_mode", "zeros")
        if k == 2 and mode == "bilinear" and padding != "zeros" and grid.dtype in FLOATS:
            grid = lib.nan_to_num(grid, nan=0.25, posinf=1.25, neginf=-1.25)
        return fn(x, grid, *args, **kwargs)

    return call


def _sampler(name: str, sample, k: int, variant: str = "", functional: bool = True) -> OpMirror:
    """A grid sampler's mirror (``nn.functional.<name>`` or top-level ``torch.<name>``) called through ``_crash_safe``."""
    nx_fn, torch_fn = (getattr(F, name), getattr(TF, name)) if functional else (getattr(nx, name), getattr(torch, name))
    full = (f"nn.functional.{name}" if functional else name) + (f"[{variant}]" if variant else "")
    return OpMirror(full, _crash_safe(nx, nx_fn, k), _crash_safe(torch, torch_fn, k), sample)


def _grid_sample(k: int, modes, *, enums=False):
    def sample(draw, dtype, device):
        n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        x = tensor(draw, (n, c) + _ints(draw, k, 1, 4), dtype, device)
        grid = tensor(draw, (n,) + _ints(draw, k, 1, 3) + (k,), dtype, device, _GRID)
        mode, padding, corners = draw(st.sampled_from(modes)), draw(st.sampled_from(_PADDINGS)), draw(st.booleans())
        if enums:  # torch.grid_sampler's integer modes
            return Sample((x, grid, ("bilinear", "nearest", "bicubic").index(mode), _PADDINGS.index(padding), corners))
        return Sample((x, grid), {"mode": mode, "padding_mode": padding, "align_corners": corners})

    return sample


register(
    _sampler("grid_sample", _grid_sample(2, ("bilinear",)), 2),
    _sampler("grid_sample", _grid_sample(2, ("nearest",)), 2, "nearest"),
    _sampler("grid_sample", _grid_sample(2, ("bicubic",)), 2, "bicubic"),
    _sampler("grid_sample", _grid_sample(3, ("bilinear", "nearest")), 3, "3d"),
    _sampler("grid_sampler", _grid_sample(2, ("bilinear", "nearest", "bicubic"), enums=True), 2, functional=False),
    _sampler("grid_sampler", _grid_sample(3, ("bilinear", "nearest"), enums=True), 3, "3d", functional=False),
)


def _affine_grid_generator(draw, dtype, device):
    drawn = _affine_grid(draw(st.sampled_from((2, 3))))(draw, dtype, device)
    return Sample((*drawn.args, drawn.kwargs["align_corners"]))


register(_top("affine_grid_generator", _affine_grid_generator, **_NO_HALF_GRID))


# ----- the remaining top-level convolution and sampler entry points ------------------------------------------
def _convolution(draw, dtype, device):
    """torch.convolution: a batched conv1d/2d/3d or transposed one, every parameter a list."""
    spatial, transposed = draw(st.integers(1, 3)), draw(st.booleans())
    drawn = _conv(spatial, groups=(1, 2), stride=(1, 2), padding=(0, 1), batched=(True,), transposed=transposed)(
        draw, dtype, device)
    a = drawn.kwargs
    listed = [list(v) if isinstance(v, tuple) else [v] * spatial
              for v in (a["stride"], a["padding"], a["dilation"], a.get("output_padding", 0))]
    return Sample((*drawn.args, listed[0], listed[1], listed[2], transposed, listed[3], a["groups"]))


def _conv_tbc(draw, dtype, device):
    t, b, cin, cout, k = (draw(st.integers(1, 3)) for _ in range(5))
    pad = draw(st.integers(0, 2)) if draw(st.booleans()) else None
    t = max(t, k - 2 * (pad or 0))  # at least one output step
    return Sample((tensor(draw, (t, b, cin), dtype, device), tensor(draw, (k, cin, cout), dtype, device),
                   tensor(draw, (cout,), dtype, device)), {} if pad is None else {"pad": pad})


register(
    _top("convolution", _convolution),
    _top("conv_tbc", _conv_tbc),
    _f("conv_tbc", _conv_tbc),
    _sampler("grid_sampler_2d", _grid_sample(2, ("bilinear", "nearest", "bicubic"), enums=True), 2, functional=False),
    _sampler("grid_sampler_3d", _grid_sample(3, ("bilinear", "nearest"), enums=True), 3, functional=False),
)
