"""Mirrors of the spatial layers of issue 14 against ``torch.nn``: convolutions (3-d, transposed 1-d/3-d, lazy),
pooling in 1, 2 and 3 dims (max, average, power-average, adaptive, fractional, unpooling), padding,
upsampling, shuffles and Fold/Unfold, plus the new functionals (fractional max pooling, native_channel_shuffle).

Draws cover odd sizes, batch of 1, unbatched inputs (where torch accepts them), channels-last layouts,
stride > kernel, dilation, ceil_mode, count_include_pad, divisor_override and return_indices. Lazy layers are
built and materialised by one forward on a zero input inside the builder (after the driver's
``manual_seed``), so their draws at materialisation are what the driver compares with torch's.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, ModuleMirror, OpMirror, Sample, register
from conformance.strategies import POSITIVE, Domain, tensor
from neuronix.nn.functional.fractional import FRACTIONAL_POOL_BACKWARD
from neuronix.ops.registry import apply
from neuronix.tensor import unwrap

ints = st.integers
TF = torch.nn.functional
POOL_DOMAIN = Domain(-3.0, 3.0)


def _mirror(name: str, build, sample, **kw) -> ModuleMirror:
    """``nx.nn.<name>`` vs ``torch.nn.<name>``."""
    return ModuleMirror(f"nn.{name}", getattr(nx.nn, name), getattr(torch.nn, name), build, sample, **kw)


def _size(draw, dims: int, low: int, high: int):
    """An int, or a ``dims``-tuple of ints in ``[low, high]``."""
    if dims == 1 or draw(st.booleans()):
        return draw(ints(low, high))
    return tuple(draw(ints(low, high)) for _ in range(dims))


def _each(value, dims: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _layout(draw, x: torch.Tensor) -> torch.Tensor:
    """Channels-last (4-d) or channels-last-3d (5-d) when drawn so."""
    if x.dim() in (4, 5) and draw(st.booleans()):
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x


def _input(draw, channels: int, spatial, dtype, device, domain=POOL_DOMAIN, unbatched: bool = True):
    """(N, C, *spatial) with N in 1..2, or (C, *spatial) when drawn so."""
    batch = [] if unbatched and draw(ints(0, 3)) == 0 else [draw(ints(1, 2))]
    return _layout(draw, tensor(draw, batch + [channels] + list(spatial), dtype, device, domain))


# ----- convolutions -----------------------------------------------------------------------------------------------
def _conv_build(dims: int, max_kernel: int = 3):
    def build(draw):
        groups = draw(ints(1, 2))
        in_ch, out_ch = groups * draw(ints(1, 2)), groups * draw(ints(1, 2))
        kwargs = {"groups": groups, "bias": draw(st.booleans()), "dilation": draw(ints(1, 2))}
        kind = draw(st.sampled_from(["int", "int", "same", "valid"]))
        if kind == "int":
            kwargs["stride"], kwargs["padding"] = draw(ints(1, 3)), draw(ints(0, 2))
        else:
            kwargs["padding"] = kind
        kwargs["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        return (in_ch, out_ch, _size(draw, dims, 1, max_kernel)), kwargs

    return build


def _conv_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        pad = kwargs["padding"] if isinstance(kwargs["padding"], int) else 2
        spatial = []
        for k in _each(args[2], dims):
            span = kwargs["dilation"] * (k - 1) + 1
            low = max(1, span, pad + 1)  # reflect needs more than the padding; every mode a full window
            spatial.append(draw(ints(low, low + 2)))
        return Sample((_input(draw, args[0], spatial, dtype, device),))

    return sample


def _transpose_build(dims: int):
    def build(draw):
        groups = draw(ints(1, 2))
        in_ch, out_ch = groups * draw(ints(1, 2)), groups * draw(ints(1, 2))
        kernel = _size(draw, dims, 1, 3)
        stride, dilation = draw(ints(1, 3)), draw(ints(1, 2))
        padding = draw(ints(0, dilation * (min(_each(kernel, dims)) - 1) // 2))
        output_padding = draw(ints(0, max(stride, dilation) - 1))
        return (in_ch, out_ch, kernel), {"stride": stride, "padding": padding, "output_padding": output_padding,
                                         "groups": groups, "bias": draw(st.booleans()), "dilation": dilation}

    return build


def _transpose_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        spatial = [draw(ints(1, 4)) for _ in range(dims)]
        x = _input(draw, args[0], spatial, dtype, device)
        if not draw(ints(0, 2)) == 0:
            return Sample((x,))
        # output_size picks the output padding: any size within one stride of the smallest
        sizes = []
        for s, k in zip(spatial, _each(args[2], dims)):
            smallest = (s - 1) * kwargs["stride"] - 2 * kwargs["padding"] + kwargs["dilation"] * (k - 1) + 1
            sizes.append(smallest + draw(ints(0, kwargs["stride"] - 1)))
        full = list(x.shape[: x.dim() - dims]) + sizes if draw(st.booleans()) else sizes
        return Sample((x,), {"output_size": full})

    return sample


register(
    _mirror("Conv3d", _conv_build(3, 2), _conv_sample(3), gradgrad=True),
    _mirror("ConvTranspose1d", _transpose_build(1), _transpose_sample(1), gradgrad=True),
    _mirror("ConvTranspose3d", _transpose_build(3), _transpose_sample(3), gradgrad=True),
)


# ----- lazy layers: built, then materialised by one forward on zeros (the draws are torch's at that point) ------------
def _materialised(lib, name: str, dims: int):
    def build(in_channels, *args, **kwargs):
        module = getattr(lib.nn, name)(*args, **kwargs)
        zeros = torch.zeros((1, in_channels) + (6,) * dims)
        if lib is nx:
            module(nx.Tensor(zeros))
        else:
            with torch.no_grad():
                module(zeros)
        return module

    return build


def _lazy(name: str, dims: int, build, sample) -> ModuleMirror:
    def lazy_build(draw):  # the eager class's (in, out, kernel, ...) with in_channels first for the builder
        args, kwargs = build(draw)
        return args, kwargs

    return ModuleMirror(f"nn.{name}", _materialised(nx, name, dims), _materialised(torch, name, dims), lazy_build,
                        sample, gradgrad=True, note="materialised by a forward on zeros of the drawn channels, then "
                        "compared as the eager class (init after materialising included)")


def _lazy_linear_build(draw):
    return (draw(ints(1, 4)), draw(ints(1, 4))), {"bias": draw(st.booleans())}


def _lazy_linear_sample(draw, args, kwargs, dtype, device):
    batch = [draw(ints(1, 3)) for _ in range(draw(ints(0, 2)))]
    return Sample((tensor(draw, batch + [args[0]], dtype, device),))


register(
    _lazy("LazyLinear", -1, _lazy_linear_build, _lazy_linear_sample),
    _lazy("LazyConv1d", 1, _conv_build(1), _conv_sample(1)),
    _lazy("LazyConv2d", 2, _conv_build(2), _conv_sample(2)),
    _lazy("LazyConv3d", 3, _conv_build(3, 2), _conv_sample(3)),
    _lazy("LazyConvTranspose1d", 1, _transpose_build(1), _transpose_sample(1)),
    _lazy("LazyConvTranspose2d", 2, _transpose_build(2), _transpose_sample(2)),
    _lazy("LazyConvTranspose3d", 3, _transpose_build(3), _transpose_sample(3)),
)


# ----- max, average and power-average pooling ---------------------------------------------------------------------------
def _pool_build(dims: int, kind: str):
    def build(draw):
        kernel = _size(draw, dims, 1, 3)
        small = min(_each(kernel, dims))
        stride = draw(st.one_of(st.none(), ints(1, 4)))  # stride > kernel included
        if kind == "lp":
            return (draw(st.sampled_from([1, 2, 3, 1.5])), kernel), {"stride": stride, "ceil_mode": draw(st.booleans())}
        kwargs = {"stride": stride, "padding": draw(ints(0, small // 2)), "ceil_mode": draw(st.booleans())}
        if kind == "max":
            kwargs.update(dilation=draw(ints(1, 2)), return_indices=draw(st.booleans()))
        elif kind == "avg":
            kwargs["count_include_pad"] = draw(st.booleans())
            if dims > 1:
                kwargs["divisor_override"] = draw(st.sampled_from([None, None, 1, 3]))
        return (kernel,), kwargs

    return build


def _pool_sample(dims: int, kind: str):
    def sample(draw, args, kwargs, dtype, device):
        kernel = _each(args[-1] if kind == "lp" else args[0], dims)
        # at least one full window: a window wholly in the padding (possible from span - 2 * padding) makes
        # torch's max pooling index outside the input, and its backward corrupts memory (torch 2.13: aborts)
        dilation = kwargs.get("dilation", 1)
        spatial = [draw(ints(dilation * (k - 1) + 1, dilation * (k - 1) + 4)) for k in kernel]
        domain = POSITIVE if kind == "lp" and args[0] == 1.5 else POOL_DOMAIN
        return Sample((_input(draw, draw(ints(1, 3)), spatial, dtype, device, domain),))

    return sample


# torch's CPU avg_pool3d has no float16/bfloat16 kernel (2.13 and 2.14: "avg_pool3d_out_frame" not implemented for
# 'Half'); LPPool3d is an average pooling of x^p
_NO_HALF_3D = {"dtypes": FLOATS, "note": "torch's CPU avg_pool3d has no float16/bfloat16 kernel"}
for _dims in (1, 2, 3):
    _half = _NO_HALF_3D if _dims == 3 else {}
    if _dims != 2:  # the 2-d max/avg layers are mirrored in nn_modules.py
        register(
            _mirror(f"MaxPool{_dims}d", _pool_build(_dims, "max"), _pool_sample(_dims, "max"), gradgrad=True),
            _mirror(f"AvgPool{_dims}d", _pool_build(_dims, "avg"), _pool_sample(_dims, "avg"), gradgrad=True, **_half),
        )
    register(_mirror(f"LPPool{_dims}d", _pool_build(_dims, "lp"), _pool_sample(_dims, "lp"), gradgrad=True, **_half))


# ----- max unpooling: the indices come from torch's max pooling of a drawn input ------------------------------------------
def _unpool_build(dims: int):
    def build(draw):
        kernel = _size(draw, dims, 1, 3)
        kwargs = {}
        if draw(st.booleans()):  # stride >= kernel: no index is picked twice (torch's unpooling of those is unordered)
            kwargs["stride"] = max(_each(kernel, dims)) + draw(ints(0, 1))
        kwargs["padding"] = draw(ints(0, min(_each(kernel, dims)) // 2))
        return (kernel,), kwargs

    return build


def _unpool_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        kernel = _each(args[0], dims)
        stride = _each(kwargs.get("stride", args[0]), dims)
        padding = kwargs["padding"]
        spatial = [draw(ints(max(1, k - 2 * padding), k + 4)) for k in kernel]
        batch = [] if draw(ints(0, 3)) == 0 else [draw(ints(1, 2))]  # contiguous: torch's unbatched 3-d pooling
        source = tensor(draw, batch + [draw(ints(1, 3))] + spatial, torch.float64, device, contiguous=True)  # wants it
        pooled, indices = getattr(TF, f"max_pool{dims}d")(source, kernel, stride, padding, return_indices=True)
        x = tensor(draw, pooled.shape, dtype, device)
        # with padding, torch's default unpooled size ((n - 1) stride + kernel - 2 padding) can leave out the last
        # window's maximum (torch 2.13: an error in float32, out-of-bounds in float16's backward): then the
        # pooled input's own size, which is always valid
        if padding or draw(ints(0, 2)) == 0:  # an explicit output_size: spatial, or with N and C
            full = list(source.shape)  # with N and C only for a batched input (torch: dims or dims + 2 entries)
            batched = source.dim() == dims + 2 and draw(st.booleans())
            return Sample((x, indices), {"output_size": full if batched else full[-dims:]}, grad_args=(0,))
        return Sample((x, indices), grad_args=(0,))

    return sample


for _dims in (1, 2, 3):
    register(_mirror(f"MaxUnpool{_dims}d", _unpool_build(_dims), _unpool_sample(_dims), gradgrad=True))


# ----- adaptive pooling ------------------------------------------------------------------------------------------------------
def _adaptive_build(dims: int, max_pool: bool):
    def build(draw):
        if dims > 1 and draw(ints(0, 3)) == 0:  # None keeps that dim
            size = tuple(None if i == 0 else draw(ints(1, 3)) for i in range(dims))
        else:
            size = _size(draw, dims, 1, 4)  # larger than the input included
        return (size,), ({"return_indices": draw(st.booleans())} if max_pool else {})

    return build


def _adaptive_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        return Sample((_input(draw, draw(ints(1, 3)), [draw(ints(1, 5)) for _ in range(dims)], dtype, device),))

    return sample


for _dims in (1, 2, 3):
    if _dims != 2:
        register(_mirror(f"AdaptiveAvgPool{_dims}d", _adaptive_build(_dims, False), _adaptive_sample(_dims), gradgrad=True))
    register(_mirror(f"AdaptiveMaxPool{_dims}d", _adaptive_build(_dims, True), _adaptive_sample(_dims), gradgrad=True))


# ----- fractional max pooling ------------------------------------------------------------------------------------------------
def _fits(size: int, kernel: int, output: int | None, ratio: float | None) -> bool:
    """Whether an input ``size`` holds ``output`` (or ``int(size * ratio)``, at least 1) windows of ``kernel``."""
    out = output if output is not None else int(size * ratio)
    return out >= 1 and out + kernel - 1 < size  # strictly below: torch's 3-d kernel's rule (2-d allows equality)


def _fractional_spatial(draw, dims: int, kernel, output_size, output_ratio) -> list[int]:
    spatial = []
    for d, k in enumerate(_each(kernel, dims)):
        out = None if output_size is None else _each(output_size, dims)[d]
        ratio = None if output_ratio is None else _each(output_ratio, dims)[d]
        low = next(s for s in range(1, 64) if _fits(s, k, out, ratio))
        spatial.append(draw(st.sampled_from([s for s in range(low, low + 5) if _fits(s, k, out, ratio)])))
    return spatial


def _fractional_build(dims: int):
    def build(draw):
        kernel = _size(draw, dims, 1, 3)
        kwargs = {"return_indices": draw(st.booleans())}
        if draw(st.booleans()):
            kwargs["output_size"] = _size(draw, dims, 1, 3)
        else:
            kwargs["output_ratio"] = draw(st.one_of(st.sampled_from([0.5, 0.7]),
                                                    st.tuples(*[st.sampled_from([0.4, 0.6, 0.9])] * dims)))
        if draw(ints(0, 2)) == 0:  # fixed samples (a buffer): then the sample's batch and channels must match them
            n, c = draw(ints(1, 2)), draw(ints(1, 2))
            kwargs["_random_samples"] = torch.rand(n, c, dims, dtype=torch.float64,
                                                   generator=torch.Generator().manual_seed(draw(ints(0, 2**31 - 1))))
        return (kernel,), kwargs

    return build


def _fractional_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        spatial = _fractional_spatial(draw, dims, args[0], kwargs.get("output_size"), kwargs.get("output_ratio"))
        fixed = kwargs.get("_random_samples")
        if fixed is None:
            return Sample((_input(draw, draw(ints(1, 3)), spatial, dtype, device),))
        n, c = fixed.shape[:2]
        shape = ([] if n == 1 and draw(st.booleans()) else [n]) + [c] + spatial
        return Sample((_layout(draw, tensor(draw, shape, dtype, device, POOL_DOMAIN)),))

    return sample


register(
    _mirror("FractionalMaxPool2d", _fractional_build(2), _fractional_sample(2), gradgrad=True,
            note="the driver reseeds torch's RNG before each forward: the drawn window starts must be torch's"),
    _mirror("FractionalMaxPool3d", _fractional_build(3), _fractional_sample(3), gradgrad=True,
            note="the driver reseeds torch's RNG before each forward: the drawn window starts must be torch's"),
)


# ----- padding --------------------------------------------------------------------------------------------------------------
def _pad_build(dims: int, mode: str):
    def build(draw):
        high = 2
        padding = draw(ints(0, high)) if draw(st.booleans()) else tuple(draw(ints(0, high)) for _ in range(2 * dims))
        if mode == "constant":
            return (padding, draw(st.sampled_from([0.0, 1.5, -2.0]))), {}
        return (padding,), {}

    return build


def _pad_sample(dims: int, mode: str):
    def sample(draw, args, kwargs, dtype, device):
        pads = _each(args[0], 2 * dims)
        spatial = []
        for d in range(dims):  # pads run from the last dim: (left, right) of dim -1 first
            before, after = pads[2 * (dims - 1 - d)], pads[2 * (dims - 1 - d) + 1]
            low = {"reflect": max(before, after) + 1, "circular": max(before, after, 1)}.get(mode, 1)
            spatial.append(draw(ints(low, low + 3)))
        return Sample((_input(draw, draw(ints(1, 2)), spatial, dtype, device),))

    return sample


def _pad_twin(mode: str):
    def call(lib, module, inputs):
        value = getattr(module, "value", None) if mode == "constant" else None
        return lib.nn.functional.pad(inputs[0], module.padding, mode, value)

    call.__name__ = f"pad_{mode}"
    return call


for _dims in (1, 2, 3):
    for _prefix, _mode in (("Reflection", "reflect"), ("Replication", "replicate"), ("Zero", "constant"),
                           ("Constant", "constant"), ("Circular", "circular")):
        _build = _pad_build(_dims, "zero" if _prefix == "Zero" else _mode)
        register(_mirror(f"{_prefix}Pad{_dims}d", _build, _pad_sample(_dims, _mode), gradgrad=True,
                         functional=_pad_twin(_mode)))


# ----- upsampling -------------------------------------------------------------------------------------------------------------
_MODES = {1: ("nearest", "nearest-exact", "linear"), 2: ("nearest", "nearest-exact", "bilinear", "bicubic"),
          3: ("nearest", "nearest-exact", "trilinear")}
_RANK_OF_MODE = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _upsample_build(draw):
    dims = draw(ints(1, 3))
    mode = draw(st.sampled_from(_MODES[dims]))
    kwargs = {"mode": mode}
    if draw(st.booleans()):
        kwargs["size"] = _size(draw, dims, 1, 6)
    else:
        kwargs["scale_factor"] = draw(st.one_of(st.sampled_from([0.5, 1.5, 2, 3]),
                                                st.tuples(*[st.sampled_from([0.7, 1.0, 2.0])] * dims)))
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, True, False]))
    if mode not in ("nearest", "nearest-exact"):
        kwargs["align_corners"] = draw(st.booleans())
    return (), kwargs


def _upsample_rank(draw, kwargs) -> int:
    """The spatial rank the drawn arguments name (a tuple's length, the mode's), or any for nearest and scalars."""
    for value in (kwargs.get("size"), kwargs.get("scale_factor")):
        if isinstance(value, tuple):
            return len(value)
    return _RANK_OF_MODE.get(kwargs.get("mode", "nearest")) or draw(ints(1, 3))


def _upsample_sample(draw, args, kwargs, dtype, device):
    spatial = [draw(ints(1, 4)) for _ in range(_upsample_rank(draw, kwargs))]
    return Sample((_input(draw, draw(ints(1, 2)), spatial, dtype, device, unbatched=False),))


def _upsample_build_2d(draw):
    if draw(st.booleans()):
        return (), {"size": _size(draw, 2, 1, 6)}
    return (), {"scale_factor": draw(st.one_of(st.sampled_from([0.5, 2, 3]),
                                               st.tuples(st.sampled_from([1.0, 2.0]), st.sampled_from([0.5, 3.0]))))}


def _upsample_sample_2d(draw, args, kwargs, dtype, device):
    return Sample((_input(draw, draw(ints(1, 2)), [draw(ints(1, 4)), draw(ints(1, 4))], dtype, device, unbatched=False),))


register(
    _mirror("Upsample", _upsample_build, _upsample_sample, gradgrad=True, functional="interpolate"),
    _mirror("UpsamplingNearest2d", _upsample_build_2d, _upsample_sample_2d, gradgrad=True, functional="interpolate"),
    _mirror("UpsamplingBilinear2d", _upsample_build_2d, _upsample_sample_2d, gradgrad=True, functional="interpolate"),
)


# ----- shuffles, Fold, Unfold ------------------------------------------------------------------------------------------------
def _shuffle_sample(draw, args, kwargs, dtype, device):
    r = args[0]
    lead = [draw(ints(1, 2)) for _ in range(draw(ints(0, 2)))]
    return Sample((_layout(draw, tensor(draw, lead + [draw(ints(1, 2)) * r * r, draw(ints(1, 3)), draw(ints(1, 3))],
                                        dtype, device)),))


def _unshuffle_sample(draw, args, kwargs, dtype, device):
    r = args[0]
    lead = [draw(ints(1, 2)) for _ in range(draw(ints(0, 2)))]
    return Sample((_layout(draw, tensor(draw, lead + [draw(ints(1, 2)), r * draw(ints(1, 2)), r * draw(ints(1, 2))],
                                        dtype, device)),))


def _channel_shuffle_sample(draw, args, kwargs, dtype, device):
    g = args[0]
    spatial = [draw(ints(1, 3)) for _ in range(draw(ints(1, 3)))]
    return Sample((_layout(draw, tensor(draw, [draw(ints(1, 2)), g * draw(ints(1, 3))] + spatial, dtype, device)),))


def _unfold_build(draw):
    return (_size(draw, 2, 1, 3),), {"dilation": _size(draw, 2, 1, 2), "padding": _size(draw, 2, 0, 1),
                                     "stride": _size(draw, 2, 1, 3)}


def _unfold_sample(draw, args, kwargs, dtype, device):
    spatial = []
    for k, d, p in zip(_each(args[0], 2), _each(kwargs["dilation"], 2), _each(kwargs["padding"], 2)):
        low = max(1, d * (k - 1) + 1 - 2 * p)
        spatial.append(draw(ints(low, low + 3)))
    return Sample((_input(draw, draw(ints(1, 2)), spatial, dtype, device),))


def _fold_build(draw):
    (kernel,), kwargs = _unfold_build(draw)
    output = []
    for k, d, p in zip(_each(kernel, 2), _each(kwargs["dilation"], 2), _each(kwargs["padding"], 2)):
        low = max(1, d * (k - 1) + 1 - 2 * p)
        output.append(draw(ints(low, low + 3)))
    return (tuple(output) if draw(st.booleans()) or output[0] != output[1] else output[0], kernel), kwargs


def _fold_sample(draw, args, kwargs, dtype, device):
    blocks, k_numel = 1, 1
    for o, k, d, p, s in zip(_each(args[0], 2), _each(args[1], 2), _each(kwargs["dilation"], 2),
                             _each(kwargs["padding"], 2), _each(kwargs["stride"], 2)):
        blocks *= (o + 2 * p - d * (k - 1) - 1) // s + 1
        k_numel *= k
    batch = [] if draw(ints(0, 3)) == 0 else [draw(ints(1, 2))]
    return Sample((tensor(draw, batch + [draw(ints(1, 2)) * k_numel, blocks], dtype, device),))


register(
    _mirror("PixelShuffle", lambda d: ((d(ints(1, 3)),), {}), _shuffle_sample, gradgrad=True),
    _mirror("PixelUnshuffle", lambda d: ((d(ints(1, 3)),), {}), _unshuffle_sample, gradgrad=True),
    _mirror("ChannelShuffle", lambda d: ((d(ints(1, 3)),), {}), _channel_shuffle_sample, gradgrad=True),
    _mirror("Unfold", _unfold_build, _unfold_sample, gradgrad=True),
    _mirror("Fold", _fold_build, _fold_sample, gradgrad=True),
)


# ----- the new functionals -----------------------------------------------------------------------------------------------------
def _distinct(draw, shape, dtype, device) -> torch.Tensor:
    """Pairwise distinct values (no ties between window maxima, stable under finite differences)."""
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(max(n, 1), generator=torch.Generator().manual_seed(draw(ints(0, 2**31 - 1))))[:n]
    return ((perm.to(torch.float64) / max(n, 1)) * 4 - 2).reshape(shape).to(dtype=dtype, device=device)


def _seeded_fractional(space, name: str):
    """The functional after ``manual_seed(seed)`` in a forked RNG: both libraries must draw the same samples."""

    def call(x, *args, seed, **kwargs):
        with torch.random.fork_rng(devices=[x.device.index or 0] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            return getattr(space, name)(x, *args, **kwargs)

    return call


def _fractional_fn_sample(dims: int, indices: bool | None, fixed: bool):
    def sample(draw, dtype, device):
        kernel = _size(draw, dims, 1, 3)
        kwargs = {"seed": draw(ints(0, 2**31 - 1))}
        if indices is not None:
            kwargs["return_indices"] = indices
        if draw(st.booleans()):
            kwargs["output_size"] = _size(draw, dims, 1, 3)
        else:
            kwargs["output_ratio"] = tuple(draw(st.sampled_from([0.4, 0.6, 0.9])) for _ in range(dims))
        spatial = _fractional_spatial(draw, dims, kernel, kwargs.get("output_size"), kwargs.get("output_ratio"))
        batch = [] if draw(ints(0, 3)) == 0 else [draw(ints(1, 2))]
        channels = draw(ints(1, 2))
        x = _layout(draw, _distinct(draw, batch + [channels] + spatial, dtype, device))
        if fixed:
            samples = torch.rand(batch[0] if batch else 1, channels, dims, generator=torch.Generator().manual_seed(
                draw(ints(0, 2**31 - 1))), dtype=torch.float64).to(dtype=dtype, device=device)
            kwargs["_random_samples"] = samples
            return Sample((x, kernel), kwargs, grad_args=(0,))
        return Sample((x, kernel), kwargs)

    return sample


def _fractional_fn(name: str, dims: int, variant: str, indices, fixed=False) -> OpMirror:
    label = f"nn.functional.{name}" + (f"[{variant}]" if variant else "")
    return OpMirror(label, _seeded_fractional(nx.nn.functional, name), _seeded_fractional(TF, name),
                    _fractional_fn_sample(dims, indices, fixed),
                    note="same seed on both sides: the window starts must be torch's")


def _native_shuffle_sample(draw, dtype, device):
    g = draw(ints(1, 3))
    spatial = [draw(ints(1, 3)) for _ in range(draw(ints(1, 2)))]  # torch wants at least 3 dims
    x = _layout(draw, tensor(draw, [draw(ints(1, 2)), g * draw(ints(1, 3))] + spatial, dtype, device))
    return Sample((x, g))


for _dims in (2, 3):
    _fn = f"fractional_max_pool{_dims}d"
    register(
        _fractional_fn(_fn, _dims, "", None),
        _fractional_fn(_fn, _dims, "return_indices", True),
        _fractional_fn(_fn, _dims, "_random_samples", False, fixed=True),
        _fractional_fn(f"{_fn}_with_indices", _dims, "", None),
    )
register(OpMirror("nn.functional.native_channel_shuffle", nx.nn.functional.native_channel_shuffle,
                  TF.native_channel_shuffle, _native_shuffle_sample, grad=False, gradgrad=False,
                  note="torch has no derivative for aten::native_channel_shuffle; neuronix's is channel_shuffle's "
                  "(tests/test_nn_spatial_modules.py compares it with torch's channel_shuffle)"))


# ----- fractional pooling's internal backward op against torch's aten twin ---------------------------------------------
# Its rules run only for a third derivative of the public functions (python -m conformance mutate found its
# recorded-only faults surviving); mirrored itself, as conformance/mirrors/backward_ops.py does for the other pools.
def _fractional_backward_sample(rank: int):
    def sample(draw, dtype, device):
        kernel = tuple(draw(ints(1, 3)) for _ in range(rank))
        size = tuple(draw(ints(1, 3)) for _ in range(rank))
        spatial = _fractional_spatial(draw, rank, kernel, size, None)
        batch = draw(ints(1, 2))
        x = _distinct(draw, [batch, draw(ints(1, 2))] + spatial, dtype, device)
        samples = torch.rand(batch, x.shape[1], rank, generator=torch.Generator().manual_seed(draw(ints(0, 2**31 - 1))),
                             dtype=torch.float64).to(dtype=dtype, device=device)
        out, indices = getattr(TF, f"fractional_max_pool{rank}d")(x, kernel, size, return_indices=True,
                                                                  _random_samples=samples)
        g = tensor(draw, out.shape, dtype, device)
        return Sample((g, x), {"indices": indices, "kernel_size": kernel, "output_size": size})

    return sample


def _fractional_backward_pair(rank: int):
    def nx_fn(g, x, indices, kernel_size, output_size):
        return apply(FRACTIONAL_POOL_BACKWARD, g, x, indices=unwrap(indices), rank=rank)

    def torch_fn(g, x, indices, kernel_size, output_size):
        return getattr(torch.ops.aten, f"fractional_max_pool{rank}d_backward")(g, x, kernel_size, output_size, indices)

    return nx_fn, torch_fn


for _rank in (2, 3):
    register(OpMirror(f"aten.fractional_max_pool{_rank}d_backward", *_fractional_backward_pair(_rank),
                      _fractional_backward_sample(_rank), dtypes=FLOATS,
                      note="the backward op itself: its rules are the public function's third derivative"))
