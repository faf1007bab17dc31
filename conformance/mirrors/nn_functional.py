"""Mirrors of ``nx.nn.functional`` against ``torch.nn.functional``.

Every public function has a plain mirror ``nn.functional.<name>`` drawing across its
options, plus variants that pin the cases four CI examples might miss: groups > 1,
dilation > 1, stride > kernel, ``'same'`` padding, odd spatial sizes, batch of 1,
unbatched and channels-last inputs, every padding mode and every loss option.
Values stay away from kinks (relu at 0, the smooth-l1 / huber switch points) and
max-pooling inputs are distinct, so finite differences and torch's subgradient
choices cannot disagree. Differentiable tensors are positional; class weights,
targets and running statistics travel as constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import neuronix as nx
import neuronix.nn.functional as F
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import NONZERO, POSITIVE, PROB, REAL, Domain, index_tensor, nonempty_shape, tensor, unary


def _name(name: str, variant: str = "") -> str:
    return f"nn.functional.{name}" + (f"[{variant}]" if variant else "")


def _mirror(name: str, sample, variant: str = "", **kw) -> OpMirror:
    return OpMirror(_name(name, variant), getattr(F, name), getattr(TF, name), sample, **kw)


def _layout(draw, x: torch.Tensor, channels_last: bool | None = None) -> torch.Tensor:
    """``x`` as drawn (possibly non-contiguous), or channels-last when asked or drawn so (4-D only)."""
    if x.ndim != 4:
        return x
    if channels_last is None:
        channels_last = draw(st.booleans())
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _distinct(draw, shape, dtype, device) -> torch.Tensor:
    """Values that are pairwise at least 1/numel apart: no max-pooling ties, stable under finite differences."""
    seed = draw(st.integers(0, 2**31 - 1))
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(max(n, 1), generator=torch.Generator().manual_seed(seed))[:n]
    return ((perm.to(torch.float64) / max(n, 1)) * 4 - 2).reshape(shape).to(dtype=dtype, device=device)


# ----- linear ------------------------------------------------------------------------------------------
def _linear(draw, dtype, device):
    fin, fout = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    x = tensor(draw, lead + (fin,), dtype, device)
    w = tensor(draw, (fout, fin), dtype, device)
    b = tensor(draw, (fout,), dtype, device) if draw(st.booleans()) else None
    return Sample((x, w, b))


register(_mirror("linear", _linear))


def _linear_shapes(draw, dtype, device):
    """The shapes torch's linear also accepts: a 1-D weight (one output, feature dim dropped), a 1-D input,
    zero in/out features, an empty batch, and a bias of any shape that broadcasts with the product."""
    fin, fout = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    one_d_weight = draw(st.booleans())
    x = tensor(draw, lead + (fin,), dtype, device)
    w = tensor(draw, (fin,) if one_d_weight else (fout, fin), dtype, device)
    product = lead + (() if one_d_weight else (fout,))
    # a bias broadcasting with the product: a suffix of its shape with some sizes 1 (addmm's rule for 2-D input
    # wants it to broadcast to (N, out) without growing it, which a suffix always does)
    if not product or (len(lead) == 1 and one_d_weight):
        b = None  # torch's 2-D-input path needs a 2-D weight for a bias
    else:
        k = draw(st.integers(0, len(product)))
        bias_shape = tuple(1 if draw(st.booleans()) else s for s in product[len(product) - k:])
        b = tensor(draw, bias_shape, dtype, device) if draw(st.booleans()) else None
    return Sample((x, w, b))


register(_mirror("linear", _linear_shapes, "shapes",
                 note="1-D weight or input, zero features, empty batch, broadcast bias (issue 10, item 16)"))


# ----- convolutions -------------------------------------------------------------------------------------
def _conv(spatial: int, *, groups=(1, 2, 3), dilation=(1, 2), stride=(1, 2, 3), padding=(0, 1, 2), batched=(True, False),
          channels_last=None, same=False, transposed=False):
    def sample(draw, dtype, device):
        g = draw(st.sampled_from(groups))
        cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
        kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
        dil = tuple(draw(st.sampled_from(dilation)) for _ in range(spatial))
        st_ = (1,) * spatial if same else tuple(draw(st.sampled_from(stride)) for _ in range(spatial))
        span = [d * (k - 1) + 1 for d, k in zip(dil, kernel)]
        size = tuple(draw(st.integers(s, s + 4)) for s in span)  # odd and even sizes, output never empty
        n = draw(st.sampled_from((1, 2)))
        batch = draw(st.sampled_from(batched))
        shape = ((n,) if batch else ()) + (cin,) + size
        # an unbatched input is drawn contiguous: torch 2.13's CPU conv1d segfaults on a strided
        # unbatched input with a bias (found by the special-value sweep), so torch has no answer there
        x = _layout(draw, tensor(draw, shape, dtype, device, contiguous=not batch or None), channels_last)
        wshape = (cin, cout // g) + kernel if transposed else (cout, cin // g) + kernel
        w = tensor(draw, wshape, dtype, device)
        b = tensor(draw, (cout,), dtype, device) if draw(st.booleans()) else None
        kwargs = {"stride": st_ if draw(st.booleans()) else st_[0], "dilation": dil, "groups": g}
        if same:
            kwargs["padding"] = draw(st.sampled_from(("same", "valid")))
        else:
            kwargs["padding"] = tuple(draw(st.sampled_from(padding)) for _ in range(spatial))
        if transposed:
            kwargs["padding"] = tuple(min(p, (d * (k - 1)) // 2) for p, d, k in zip(kwargs["padding"], dil, kernel))
            kwargs["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(st_, dil))
            kwargs["stride"] = st_
        return Sample((x, w, b), kwargs)

    return sample


register(
    _mirror("conv1d", _conv(1)),
    _mirror("conv1d", _conv(1, groups=(2, 3)), "groups"),
    _mirror("conv1d", _conv(1, same=True), "same"),
    _mirror("conv2d", _conv(2)),
    _mirror("conv2d", _conv(2, groups=(2, 3)), "groups"),
    _mirror("conv2d", _conv(2, dilation=(2, 3), groups=(1,)), "dilation"),
    _mirror("conv2d", _conv(2, stride=(4, 5), groups=(1,)), "stride>kernel"),
    _mirror("conv2d", _conv(2, same=True), "same"),
    _mirror("conv2d", _conv(2, channels_last=True, batched=(True,)), "channels_last"),
    _mirror("conv2d", _conv(2, batched=(False,)), "unbatched"),
    _mirror("conv_transpose2d", _conv(2, transposed=True)),
    _mirror("conv_transpose2d", _conv(2, transposed=True, groups=(2,)), "groups"),
    _mirror("conv_transpose2d", _conv(2, transposed=True, dilation=(2,), stride=(2, 3)), "dilation+output_padding"),
    _mirror("conv_transpose2d", _conv(2, transposed=True, channels_last=True, batched=(True,)), "channels_last"),
)


# ----- pooling -------------------------------------------------------------------------------------------
def _pool_input(draw, dtype, device, min_size, channels_last=None, distinct=False):
    n, c = draw(st.sampled_from((1, 2))), draw(st.integers(1, 3))
    size = (draw(st.integers(min_size[0], min_size[0] + 4)), draw(st.integers(min_size[1], min_size[1] + 4)))
    shape = ((n,) if draw(st.booleans()) else ()) + (c,) + size
    x = _distinct(draw, shape, dtype, device) if distinct else tensor(draw, shape, dtype, device)
    if not distinct and draw(st.booleans()):
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # a non-contiguous view
    return _layout(draw, x, channels_last)


def _max_pool(*, dilation=(1,), ceil=(False,), stride_gt_kernel=False, indices=False, channels_last=None):
    def sample(draw, dtype, device):
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dil = (draw(st.sampled_from(dilation)), draw(st.sampled_from(dilation)))
        span = [d * (k - 1) + 1 for d, k in zip(dil, kernel)]
        x = _pool_input(draw, dtype, device, span, channels_last, distinct=True)
        kwargs = {"kernel_size": kernel if draw(st.booleans()) else kernel[0], "dilation": dil,
                  "ceil_mode": draw(st.sampled_from(ceil)), "return_indices": indices}
        if isinstance(kwargs["kernel_size"], int):
            x = _pool_input(draw, dtype, device, [span[0]] * 2, channels_last, distinct=True)
            kernel = (kernel[0], kernel[0])
        if stride_gt_kernel:
            kwargs["stride"] = (kernel[0] + 1, kernel[1] + 2)
        elif draw(st.booleans()):
            kwargs["stride"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        kwargs["padding"] = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        return Sample((x,), kwargs)

    return sample


def _avg_pool(*, ceil=(False, True), include=(True, False), divisor=(None,), channels_last=None, stride_gt_kernel=False):
    def sample(draw, dtype, device):
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        x = _pool_input(draw, dtype, device, kernel, channels_last)
        kwargs = {"kernel_size": kernel, "ceil_mode": draw(st.sampled_from(ceil)),
                  "count_include_pad": draw(st.sampled_from(include)), "divisor_override": draw(st.sampled_from(divisor)),
                  "padding": (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))}
        if stride_gt_kernel:
            kwargs["stride"] = (kernel[0] + 2, kernel[1] + 1)
        elif draw(st.booleans()):
            kwargs["stride"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        return Sample((x,), kwargs)

    return sample


def _adaptive(distinct: bool, channels_last=None, indices=None):
    def sample(draw, dtype, device):
        x = _pool_input(draw, dtype, device, (1, 1), channels_last, distinct=distinct)
        h, w = x.shape[-2:]
        kind = draw(st.sampled_from(("int", "pair", "none", "larger")))
        size = {"int": draw(st.integers(1, 3)), "pair": (draw(st.integers(1, h)), draw(st.integers(1, w))),
                "none": (None, draw(st.integers(1, w))), "larger": (h + 1, w + 2)}[kind]
        kwargs = {"output_size": size}
        if indices is not None:
            kwargs["return_indices"] = indices
        return Sample((x,), kwargs)

    return sample


register(
    _mirror("max_pool2d", _max_pool(ceil=(False, True))),
    _mirror("max_pool2d", _max_pool(ceil=(True,)), "ceil_mode"),
    _mirror("max_pool2d", _max_pool(dilation=(2, 3)), "dilation"),
    _mirror("max_pool2d", _max_pool(stride_gt_kernel=True), "stride>kernel"),
    _mirror("max_pool2d", _max_pool(indices=True), "return_indices"),
    _mirror("max_pool2d", _max_pool(channels_last=True), "channels_last"),
    _mirror("avg_pool2d", _avg_pool()),
    _mirror("avg_pool2d", _avg_pool(ceil=(True,), include=(False,)), "ceil_mode,count_include_pad=False"),
    _mirror("avg_pool2d", _avg_pool(divisor=(1, 5)), "divisor_override"),
    _mirror("avg_pool2d", _avg_pool(stride_gt_kernel=True), "stride>kernel"),
    _mirror("avg_pool2d", _avg_pool(channels_last=True), "channels_last"),
    _mirror("adaptive_avg_pool2d", _adaptive(False)),
    _mirror("adaptive_avg_pool2d", _adaptive(False, channels_last=True), "channels_last"),
    _mirror("adaptive_max_pool2d", _adaptive(True)),
    _mirror("adaptive_max_pool2d", _adaptive(True, indices=True), "return_indices"),
)


# ----- normalisation ---------------------------------------------------------------------------------------
def _batch_norm_call(functional, stats_out: bool):
    """batch_norm on copies of the running statistics (each call starts from the drawn ones).

    With ``stats_out`` the updated statistics are returned next to the output, so the in-place
    update is compared too; those mirrors check values only, since the statistics are not
    differentiable outputs (and a finite difference would see them move with the input).
    """

    def call(x, weight=None, bias=None, *, running_mean=None, running_var=None, **kwargs):
        if functional is F:
            copy = lambda t: None if t is None else nx.Tensor(t.data.clone())
        else:
            copy = lambda t: None if t is None else t.clone()
        rm, rv = copy(running_mean), copy(running_var)
        out = functional.batch_norm(x, rm, rv, weight, bias, **kwargs)
        return (out, rm, rv) if stats_out else out

    return call


def _batch_norm(*, training=(True, False), stats=(True, False), affine=(True, False), channels_last=None, momentum=(0.1, 0.5)):
    def sample(draw, dtype, device):
        c = draw(st.integers(1, 3))
        rank = draw(st.integers(2, 4))
        train = draw(st.sampled_from(training))
        # at least four values per channel: fewer make float32 cancellation dominate the comparison
        n = draw(st.sampled_from((1, 2, 3))) if rank > 2 else draw(st.integers(4, 6))
        spatial = tuple(draw(st.integers(2, 4)) for _ in range(rank - 2))
        if rank > 2 and n * spatial[0] * (spatial[1] if rank > 3 else 1) < 4:
            n = 4
        x = _layout(draw, tensor(draw, (n, c) + spatial, dtype, device), channels_last)
        with_stats = draw(st.sampled_from(stats)) or not train
        kwargs = {"training": train, "momentum": draw(st.sampled_from(momentum)), "eps": draw(st.sampled_from((1e-5, 1e-3)))}
        if with_stats:
            kwargs["running_mean"] = tensor(draw, (c,), dtype, device, contiguous=True)
            kwargs["running_var"] = tensor(draw, (c,), dtype, device, POSITIVE, contiguous=True)
        with_affine = draw(st.sampled_from(affine))
        # Contiguous affine parameters: torch 2.13's CPU eval-mode batch-norm backward returns a wrong
        # input gradient for a strided weight (e.g. w = t[::2]; neuronix matches g * w / sqrt(var + eps)).
        w = tensor(draw, (c,), dtype, device, contiguous=True) if with_affine else None
        b = tensor(draw, (c,), dtype, device, contiguous=True) if with_affine else None
        return Sample((x, w, b), kwargs)

    return sample


def _bn_mirror(variant: str, sample, stats_out: bool = False) -> OpMirror:
    kw = {"grad": False, "note": "outputs (y, running_mean, running_var): the in-place update of the statistics"} \
        if stats_out else {}
    return OpMirror(_name("batch_norm", variant), _batch_norm_call(F, stats_out), _batch_norm_call(TF, stats_out), sample,
                    **kw)


register(
    _bn_mirror("", _batch_norm()),
    _bn_mirror("train", _batch_norm(training=(True,), stats=(True,))),
    _bn_mirror("eval", _batch_norm(training=(False,))),
    _bn_mirror("train,no stats,no affine", _batch_norm(training=(True,), stats=(False,), affine=(False,))),
    _bn_mirror("channels_last", _batch_norm(channels_last=True)),
    _bn_mirror("running stats", _batch_norm(stats=(True,), momentum=(0.1, 0.5, 1.0, 0.0)), stats_out=True),
)


def _layer_norm(affine=("both", "weight", "none")):
    def sample(draw, dtype, device):
        shape = nonempty_shape(draw, 1, 4, 4)
        shape = shape[:-1] + (max(shape[-1], 4),)  # at least four normalised values (see batch norm)
        k = draw(st.integers(1, len(shape)))
        normalized = shape[len(shape) - k:]
        x = tensor(draw, shape, dtype, device)
        kind = draw(st.sampled_from(affine))
        w = tensor(draw, normalized, dtype, device) if kind in ("both", "weight") else None
        b = tensor(draw, normalized, dtype, device) if kind == "both" else None
        # torch's own double backward fails for a bias without a weight, so that combination is left out
        return Sample((x, normalized, w, b), {"eps": draw(st.sampled_from((1e-5, 1e-2)))})

    return sample


def _group_norm(channels_last=None, affine=(True, False)):
    def sample(draw, dtype, device):
        groups = draw(st.integers(1, 3))
        rank = draw(st.integers(2, 4))
        # every group normalises at least four values: fewer make float32 cancellation dominate
        c = groups * (draw(st.integers(4, 5)) if rank == 2 else draw(st.integers(1, 2)))
        low = 4 if rank == 3 else 2
        shape = (draw(st.integers(1, 2)), c) + tuple(draw(st.integers(low, low + 1)) for _ in range(rank - 2))
        x = _layout(draw, tensor(draw, shape, dtype, device), channels_last)
        with_affine = draw(st.sampled_from(affine))
        w = tensor(draw, (c,), dtype, device) if with_affine else None
        b = tensor(draw, (c,), dtype, device) if with_affine else None
        return Sample((x, groups, w, b), {"eps": 1e-5})

    return sample


register(
    _mirror("layer_norm", _layer_norm()),
    _mirror("layer_norm", _layer_norm(("none",)), "no affine"),
    _mirror("group_norm", _group_norm()),
    _mirror("group_norm", _group_norm(channels_last=True), "channels_last"),
)


# ----- dropout, embedding, pad ------------------------------------------------------------------------------
def _seeded_dropout(functional):
    """dropout after ``manual_seed(seed)`` (in a forked RNG): torch and neuronix must draw the same mask."""

    def call(x, p=0.5, training=True, *, seed):
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return functional.dropout(x, p, training)

    return call


def _dropout(draw, dtype, device):
    x = tensor(draw, nonempty_shape(draw, 1, 3), dtype, device)
    return Sample((x, draw(st.sampled_from((0.0, 0.2, 0.5, 1.0))), draw(st.booleans())),
                  {"seed": draw(st.integers(0, 2**31 - 1))})


register(OpMirror(_name("dropout"), _seeded_dropout(F), _seeded_dropout(TF), _dropout,
                  note="same seed on both sides: the mask must be torch's"))


def _embedding(padding=(None,), freq=(False,)):
    def sample(draw, dtype, device):
        rows, dim = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        indices = index_tensor(draw, nonempty_shape(draw, 1, 2), rows, device)
        w = tensor(draw, (rows, dim), dtype, device)
        pad = draw(st.sampled_from(padding))
        if pad is not None:
            pad = pad % rows if pad >= 0 else -1 - (-1 - pad) % rows
        return Sample((indices, w), {"padding_idx": pad, "scale_grad_by_freq": draw(st.sampled_from(freq))})

    return sample


# padding_idx and scale_grad_by_freq change the gradient on purpose (torch's definition, not the
# derivative of the lookup), so finite differences do not apply to them.
_NOT_A_DERIVATIVE = "the gradient is torch's definition (padding row frozen / scaled by frequency), not a derivative"
register(
    _mirror("embedding", _embedding()),
    _mirror("embedding", _embedding(padding=(0, 1, -1)), "padding_idx", fd=False, note=_NOT_A_DERIVATIVE),
    # torch's second derivative w.r.t. the upstream gradient ignores the frequency scaling (its
    # embedding_dense_double_backward takes no scale_grad_by_freq): twice the true value for an index
    # used twice. Neuronix's is the adjoint of its own backward, scaled; its other derivatives are checked.
    _mirror("embedding", _embedding(padding=(None, 0), freq=(True,)), "scale_grad_by_freq", fd=False,
            gradgrad_upstream=False, note=_NOT_A_DERIVATIVE + "; torch's d/d(upstream) of the gradient ignores "
                                                                 "the frequency scaling (a torch defect)"),
)


def _pad(mode: str, negative: bool = False):
    """``pad`` amounts in [-2, 2] per side with ``negative`` (crops, mixed with pads), else [0, 2]."""

    def sample(draw, dtype, device):
        dims = draw(st.integers(1, 3)) if mode == "constant" else draw(st.integers(1, 2))
        shape = tuple(draw(st.integers(3, 5)) for _ in range(dims + draw(st.integers(1, 2))))
        x = tensor(draw, shape, dtype, device)
        pads = [draw(st.integers(-2 if negative else 0, 2)) for _ in range(2 * dims)]
        if mode == "circular":
            # torch wraps around what the crops leave, at most once: larger pads read memory it never wrote
            for k in range(dims):
                left, right = pads[2 * k], pads[2 * k + 1]
                kept = shape[-1 - k] - max(-left, 0) - max(-right, 0)
                pads[2 * k], pads[2 * k + 1] = min(left, kept), min(right, kept - max(min(left, kept), 0))
        kwargs = {"mode": mode}
        if mode == "constant":
            kwargs["value"] = draw(st.sampled_from((None, 0.0, -1.5)))
        return Sample((x, tuple(pads)), kwargs)

    return sample


register(
    _mirror("pad", _pad("constant")),
    _mirror("pad", _pad("constant", negative=True), "negative"),
    _mirror("pad", _pad("reflect"), "reflect"),
    _mirror("pad", _pad("reflect", negative=True), "reflect,negative"),
    _mirror("pad", _pad("replicate"), "replicate"),
    _mirror("pad", _pad("replicate", negative=True), "replicate,negative"),
    _mirror("pad", _pad("circular"), "circular"),
    _mirror("pad", _pad("circular", negative=True), "circular,negative"),
)


# ----- activations -------------------------------------------------------------------------------------------
WIDE = Domain(-4.0, 4.0)
ACTIVATIONS = [
    ("relu", unary(NONZERO)),
    ("relu6", unary(Domain(-2.0, 8.0, kinks=(0.0, 6.0), away=0.2))),
    ("gelu", unary(WIDE)),
    ("gelu", unary(WIDE, approximate="tanh"), "tanh"),
    ("tanh", unary(REAL)),
    ("sigmoid", unary(WIDE)),
    ("silu", unary(WIDE)),
    ("elu", unary(Domain(-3.0, 3.0, kinks=(0.0,), away=0.2))),
    ("elu", unary(Domain(-3.0, 3.0, kinks=(0.0,), away=0.2), alpha=0.4), "alpha"),
    ("selu", unary(Domain(-3.0, 3.0, kinks=(0.0,), away=0.2))),
    ("leaky_relu", unary(NONZERO)),
    ("leaky_relu", unary(NONZERO, negative_slope=0.3), "negative_slope"),
    ("softplus", unary(WIDE)),
    ("softplus", unary(Domain(-3.0, 3.0, kinks=(1.0,), away=0.2), beta=2.0, threshold=2.0), "beta,threshold"),
    ("hardtanh", unary(Domain(-2.0, 2.0, kinks=(-1.0, 1.0), away=0.2))),
    ("hardtanh", unary(Domain(-2.0, 2.0, kinks=(-0.5, 1.5), away=0.2), min_val=-0.5, max_val=1.5), "min_val,max_val"),
    ("hardswish", unary(Domain(-5.0, 5.0, kinks=(-3.0, 3.0), away=0.2))),
    ("mish", unary(WIDE)),
]
for _entry in ACTIVATIONS:
    register(_mirror(_entry[0], _entry[1], _entry[2] if len(_entry) > 2 else ""))


def _softmax(dtype_arg: bool):
    def sample(draw, dtype, device):
        shape = nonempty_shape(draw, 1, 4)
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        kwargs = {"dim": dim}
        if dtype_arg:
            kwargs["dtype"] = torch.float64
        return Sample((tensor(draw, shape, dtype, device, WIDE),), kwargs)

    return sample


register(
    _mirror("softmax", _softmax(False)),
    _mirror("softmax", _softmax(True), "dtype"),
    _mirror("log_softmax", _softmax(False)),
    _mirror("log_softmax", _softmax(True), "dtype"),
)


# ----- losses ---------------------------------------------------------------------------------------------
REDUCTIONS = ("none", "mean", "sum")


def _pair_loss(kinks=(), weight=False, **fixed):
    """``loss(input, target)`` with ``input - target`` kept away from ``kinks``."""

    def sample(draw, dtype, device):
        shape = nonempty_shape(draw, 0, 3) if draw(st.booleans()) else nonempty_shape(draw, 1, 3)
        x = tensor(draw, shape, dtype, device)
        diff = tensor(draw, shape, dtype, device, Domain(-2.0, 2.0, kinks=kinks, away=0.15) if kinks else REAL)
        kwargs = {"reduction": draw(st.sampled_from(REDUCTIONS)), **{k: draw(st.sampled_from(v)) for k, v in fixed.items()}}
        if weight and draw(st.booleans()):
            kwargs["weight"] = tensor(draw, shape, dtype, device, POSITIVE)
        return Sample((x, x - diff), kwargs)

    return sample


register(
    _mirror("mse_loss", _pair_loss(weight=True)),
    _mirror("l1_loss", _pair_loss((0.0,), weight=True)),
    _mirror("smooth_l1_loss", _pair_loss((0.0, -1.0, 1.0))),
    _mirror("smooth_l1_loss", _pair_loss((0.0, -0.5, 0.5), beta=(0.5,)), "beta"),
    _mirror("smooth_l1_loss", _pair_loss((0.0,), beta=(0.0,)), "beta=0"),
    _mirror("huber_loss", _pair_loss((0.0, -1.0, 1.0), weight=True)),
    _mirror("huber_loss", _pair_loss((0.0, -0.5, 0.5), delta=(0.5,)), "delta"),
)


def _class_problem(draw, dtype, device, spatial: bool):
    classes = draw(st.integers(2, 5))
    n = draw(st.integers(1, 3))
    extra = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 2)))) if spatial else ()
    unbatched = not spatial and draw(st.integers(0, 4)) == 0
    x_shape = (classes,) if unbatched else (n, classes) + extra
    t_shape = () if unbatched else (n,) + extra
    return classes, x_shape, t_shape


def _class_loss(spatial: bool, *, weight=(False, True), ignore=(False, True), smoothing=(0.0,), probabilities=False,
                log_input=False):
    def sample(draw, dtype, device):
        classes, x_shape, t_shape = _class_problem(draw, dtype, device, spatial)
        x = tensor(draw, x_shape, dtype, device, Domain(-3.0, -0.1) if log_input else WIDE)
        if len(x_shape) == 4:
            # torch's CPU nll_loss2d backward refuses a permuted (transposed, channels-last) input: its grad_input
            # keeps the input's layout and then "must be contiguous"; torch has no gradient to compare with there
            x = x.contiguous()
        kwargs = {"reduction": draw(st.sampled_from(REDUCTIONS))}
        if draw(st.sampled_from(weight)):
            kwargs["weight"] = tensor(draw, (classes,), dtype, device, POSITIVE, contiguous=True)
        ls = draw(st.sampled_from(smoothing))
        if ls:
            kwargs["label_smoothing"] = ls
        if probabilities:
            target = tensor(draw, x_shape, dtype, device, POSITIVE)
            target = target / target.sum(1 if len(x_shape) > 1 else 0, keepdim=True)
            return Sample((x, target), kwargs)
        target = index_tensor(draw, t_shape, classes, device)
        if draw(st.sampled_from(ignore)) and target.numel() > 1:
            ignore_index = draw(st.sampled_from((-100, 0)))
            kwargs["ignore_index"] = ignore_index
            target = target.clone()
            target.view(-1)[0] = ignore_index  # at least one ignored target, at least one kept
            if ignore_index == 0 and not (target != 0).any():
                target.view(-1)[-1] = 1
        return Sample((x, target), kwargs, grad_args=(0,))

    return sample


register(
    _mirror("nll_loss", _class_loss(False, log_input=True)),
    _mirror("nll_loss", _class_loss(True, log_input=True), "spatial"),
    _mirror("cross_entropy", _class_loss(False)),
    _mirror("cross_entropy", _class_loss(True), "spatial"),
    _mirror("cross_entropy", _class_loss(False, smoothing=(0.1, 0.4)), "label_smoothing"),
    _mirror("cross_entropy", _class_loss(True, smoothing=(0.25,)), "spatial,label_smoothing"),
    _mirror("cross_entropy", _class_loss(False, probabilities=True, smoothing=(0.0, 0.2)), "probabilities"),
    _mirror("cross_entropy", _class_loss(True, probabilities=True, smoothing=(0.0, 0.3)), "spatial,probabilities"),
)


def _binary(logits: bool, pos_weight=False):
    def sample(draw, dtype, device):
        shape = nonempty_shape(draw, 1, 3)
        x = tensor(draw, shape, dtype, device, WIDE if logits else Domain(0.05, 0.95))
        target = tensor(draw, shape, dtype, device, Domain(0.0, 1.0))
        kwargs = {"reduction": draw(st.sampled_from(REDUCTIONS))}
        if draw(st.booleans()):
            kwargs["weight"] = tensor(draw, shape[1:], dtype, device, POSITIVE)
        if pos_weight:
            kwargs["pos_weight"] = tensor(draw, shape[-1:], dtype, device, POSITIVE)
        return Sample((x, target), kwargs)

    return sample


register(
    _mirror("binary_cross_entropy", _binary(False)),
    _mirror("binary_cross_entropy_with_logits", _binary(True)),
    _mirror("binary_cross_entropy_with_logits", _binary(True, pos_weight=True), "pos_weight"),
)


def _kl_div(log_target: bool):
    def sample(draw, dtype, device):
        shape = nonempty_shape(draw, 1, 3)
        x = tensor(draw, shape, dtype, device, Domain(-3.0, 0.0))
        target = tensor(draw, shape, dtype, device, Domain(-3.0, 0.0) if log_target else PROB)
        return Sample((x, target), {"reduction": draw(st.sampled_from(REDUCTIONS + ("batchmean",))), "log_target": log_target})

    return sample


register(
    _mirror("kl_div", _kl_div(False)),
    _mirror("kl_div", _kl_div(True), "log_target"),
)
