"""Mirrors of the nn.functional activations, distances, normalisations, attention and losses that
``nn_functional.py`` does not hold (issue 13), with their torch top-level twins and ``F.<name>_`` forms.

Inputs stay away from each op's kinks for the finite differences (the special-value check probes
them); the in-place forms run on a non-leaf copy of the input, so the gradient reaches the leaf.
Random ops (rrelu in training, gumbel_softmax) run after the same ``manual_seed`` on both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import neuronix as nx
import neuronix.nn.functional as F
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors import nn_functional as _nnf
from conformance.strategies import (
    NONZERO,
    POSITIVE,
    REAL,
    Domain,
    broadcast_shapes,
    index_tensor,
    method,
    nonempty_shape,
    shape,
    tensor,
    unary,
)

WIDE = Domain(-4.0, 4.0)


def _name(name: str, variant: str = "") -> str:
    return f"nn.functional.{name}" + (f"[{variant}]" if variant else "")


def _mirror(name: str, sample, variant: str = "", **kw) -> OpMirror:
    return OpMirror(_name(name, variant), getattr(F, name), getattr(TF, name), sample, **kw)


def _top(name: str, sample, variant: str = "", **kw) -> OpMirror:
    """``nx.<name>`` against ``torch.<name>``."""
    return OpMirror(name + (f"[{variant}]" if variant else ""), getattr(nx, name), getattr(torch, name), sample, **kw)


def _on_copy(fn):
    """``fn`` (an in-place function) applied to a non-leaf copy of the first input: a leaf that requires
    grad cannot change in place, and the copy carries the gradient to it."""

    def call(x, *args, **kwargs):
        return fn(x.clone(), *args, **kwargs)

    call.__name__ = getattr(fn, "__name__", "in_place")
    return call


def _in_place(name: str, sample, namespace=(F, TF), prefix: str = "nn.functional.", **kw) -> OpMirror:
    nx_ns, torch_ns = namespace
    return OpMirror(prefix + name, _on_copy(getattr(nx_ns, name)), _on_copy(getattr(torch_ns, name)), sample, **kw)


def _seeded(fn):
    """``fn`` after ``manual_seed(seed)`` in a forked RNG: both libraries must draw the same numbers."""

    def call(*args, seed, **kwargs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn(*args, **kwargs)

    return call


def _seed(draw) -> int:
    return draw(st.integers(0, 2**31 - 1))


# ----- activations ----------------------------------------------------------------------------------------
ELU_LIKE = Domain(-3.0, 3.0, kinks=(0.0,), away=0.2)
HARDSIGMOID = Domain(-5.0, 5.0, kinks=(-3.0, 3.0), away=0.2)
SHRINK = Domain(-2.0, 2.0, kinks=(-0.5, 0.5), away=0.15)
SHRINK_1 = Domain(-2.0, 2.0, kinks=(-1.0, 1.0), away=0.15)
THRESHOLD = Domain(-2.0, 2.0, kinks=(0.5,), away=0.15)

register(
    _mirror("celu", unary(ELU_LIKE)),
    _mirror("celu", unary(ELU_LIKE, alpha=0.5), "alpha"),
    _top("celu", unary(ELU_LIKE, alpha=2.0)),
    _top("selu", unary(ELU_LIKE)),
    _mirror("hardsigmoid", unary(HARDSIGMOID), gradgrad=False,
            note="torch has no second derivative (derivative for aten::hardsigmoid_backward is not implemented)"),
    _mirror("softshrink", unary(SHRINK)),
    _mirror("softshrink", unary(SHRINK_1, lambd=1.0), "lambd"),
    _mirror("hardshrink", unary(SHRINK)),
    _mirror("hardshrink", unary(SHRINK_1, lambd=1.0), "lambd"),
    _top("hardshrink", unary(SHRINK)),
    OpMirror("Tensor.hardshrink", method("hardshrink"), method("hardshrink"), unary(SHRINK_1, lambd=1.0)),
    _mirror("threshold", unary(THRESHOLD, threshold=0.5, value=-3.0)),
    _top("threshold", unary(THRESHOLD, threshold=0.5, value=2.0)),
    _mirror("softsign", unary(NONZERO)),
    _mirror("tanhshrink", unary(WIDE)),
    _mirror("logsigmoid", unary(WIDE)),
    _mirror("rrelu", unary(NONZERO)),
    _mirror("rrelu", unary(NONZERO, lower=0.2, upper=0.6, training=False), "lower,upper"),
    _top("rrelu", unary(NONZERO, lower=0.05, upper=0.5)),
)

# the F.<name>_ in-place forms and torch's top-level in-place twins
register(
    _in_place("celu_", unary(ELU_LIKE, alpha=0.7)),
    _in_place("selu_", unary(ELU_LIKE)),
    _in_place("relu_", unary(NONZERO)),
    _in_place("elu_", unary(ELU_LIKE, alpha=0.4)),
    _in_place("leaky_relu_", unary(NONZERO, negative_slope=0.2)),
    _in_place("hardtanh_", unary(Domain(-2.0, 2.0, kinks=(-0.5, 1.5), away=0.2), min_val=-0.5, max_val=1.5)),
    _in_place("threshold_", unary(THRESHOLD, threshold=0.5, value=1.0)),
    _in_place("rrelu_", unary(NONZERO, lower=0.1, upper=0.3)),
    *(_in_place(n, s, (nx, torch), prefix="") for n, s in (
        ("celu_", unary(ELU_LIKE)), ("selu_", unary(ELU_LIKE)), ("relu_", unary(NONZERO)),
        ("threshold_", unary(THRESHOLD, threshold=0.5, value=-1.0)), ("rrelu_", unary(NONZERO)))),
)


def _rrelu_train(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device, NONZERO)
    lower, upper = draw(st.sampled_from(((1.0 / 8, 1.0 / 3), (0.1, 0.9), (0.3, 0.3))))
    return Sample((x, lower, upper, True), {"seed": _seed(draw)})


_NO_HALF_RRELU = "torch's CPU rrelu_with_noise kernel has no float16"
register(
    OpMirror(_name("rrelu", "training"), _seeded(F.rrelu), _seeded(TF.rrelu), _rrelu_train,
             dtypes=FLOATS + (torch.bfloat16,),
             note="same seed on both sides: each negative input's slope must be torch's draw; " + _NO_HALF_RRELU),
    OpMirror(_name("rrelu_", "training"), _seeded(_on_copy(F.rrelu_)), _seeded(_on_copy(TF.rrelu_)), _rrelu_train,
             dtypes=FLOATS + (torch.bfloat16,), note="same seed on both sides; " + _NO_HALF_RRELU),
)


def _prelu(draw, dtype, device):
    per_channel = draw(st.booleans())
    rank = draw(st.integers(2, 4)) if per_channel else draw(st.integers(0, 4))
    sizes = nonempty_shape(draw, rank, rank, 4) if rank else ()
    x = tensor(draw, sizes, dtype, device, NONZERO)
    w = tensor(draw, (sizes[1],) if per_channel else (1,), dtype, device, Domain(-1.0, 1.0))
    return Sample((x, w))


register(
    _mirror("prelu", _prelu),
    _top("prelu", _prelu),
    OpMirror("Tensor.prelu", method("prelu"), method("prelu"), _prelu),
)


def _softmin(dtype_arg: bool):
    def sample(draw, dtype, device):
        sizes = nonempty_shape(draw, 1, 4)
        kwargs = {"dim": draw(st.integers(-len(sizes), len(sizes) - 1))}
        if dtype_arg:
            kwargs["dtype"] = torch.float64
        return Sample((tensor(draw, sizes, dtype, device, WIDE),), kwargs)

    return sample


def _glu(draw, dtype, device):
    sizes = list(nonempty_shape(draw, 1, 4))
    dim = draw(st.integers(-len(sizes), len(sizes) - 1))
    sizes[dim] = 2 * draw(st.integers(1, 3))
    x = tensor(draw, sizes, dtype, device, WIDE)
    return Sample((x,), {"dim": dim} if draw(st.booleans()) or dim != -1 else {})


def _gumbel(hard: bool):
    def sample(draw, dtype, device):
        sizes = nonempty_shape(draw, 1, 3)
        kwargs = {"tau": draw(st.sampled_from((1.0, 0.5, 2.0))), "hard": hard,
                  "dim": draw(st.integers(-len(sizes), len(sizes) - 1)), "seed": _seed(draw)}
        return Sample((tensor(draw, sizes, dtype, device, REAL),), kwargs)

    return sample


register(
    _mirror("softmin", _softmin(False)),
    _mirror("softmin", _softmin(True), "dtype"),
    _mirror("glu", _glu),
    OpMirror(_name("gumbel_softmax"), _seeded(F.gumbel_softmax), _seeded(TF.gumbel_softmax), _gumbel(False),
             note="same seed on both sides: the Gumbel noise must be torch's draw"),
    OpMirror(_name("gumbel_softmax", "hard"), _seeded(F.gumbel_softmax), _seeded(TF.gumbel_softmax), _gumbel(True), fd=False,
             note="no finite differences: the value is the piecewise-constant one-hot, the gradient the soft sample's "
                  "(straight-through, by definition); same seed on both sides"),
)


# ----- distances ------------------------------------------------------------------------------------------
def _normalize(draw, dtype, device):
    sizes = nonempty_shape(draw, 1, 4)
    p = draw(st.sampled_from((2.0, 1.0, 3.0, float("inf"))))
    x = tensor(draw, sizes, dtype, device, NONZERO)
    return Sample((x,), {"p": p, "dim": draw(st.integers(-len(sizes), len(sizes) - 1))})


def _broadcast_pair(draw, dtype, device, domain=REAL, min_dims=1):
    (sa, sb), result = broadcast_shapes(draw, 2, min_dims=min_dims, min_side=1)
    return tensor(draw, sa, dtype, device, domain), tensor(draw, sb, dtype, device, domain), result


def _cosine(draw, dtype, device):
    # the reduced dim holds two or more values: over one value the cosine is the constant +-1, whose derivatives
    # are rounding noise in both libraries (and compare as such)
    a, b, result = _broadcast_pair(draw, dtype, device, NONZERO)
    dims = [d for d, n in enumerate(result) if n >= 2]
    if not dims:
        a, b, dims = tensor(draw, (2, 3), dtype, device, NONZERO), tensor(draw, (3,), dtype, device, NONZERO), [0, 1]
        result = (2, 3)
    dim = draw(st.sampled_from(dims))
    kwargs = {"dim": dim - len(result) if draw(st.booleans()) else dim}
    if draw(st.booleans()):
        kwargs["eps"] = draw(st.sampled_from((1e-8, 1e-3)))
    return Sample((a, b), kwargs)


def _pairwise(draw, dtype, device):
    # x2 from a range apart from x1's (either side), so x1 - x2 + eps stays off p = 1's kink at 0 (the special-value
    # check meets it) and a finite difference never straddles it
    (sa, sb), _ = broadcast_shapes(draw, 2, min_dims=0, min_side=1)
    a = tensor(draw, sa, dtype, device, REAL)
    b = tensor(draw, sb, dtype, device, draw(st.sampled_from((Domain(2.5, 4.5), Domain(-4.5, -2.5)))))
    return Sample((a, b), {"p": draw(st.sampled_from((2.0, 1.0, 3.0))), "keepdim": draw(st.booleans())})


def _pdist(draw, dtype, device):
    # at least one row: torch 2.13's pdist backward segfaults on a (0, m) input
    # (x = torch.randn(0, 1, requires_grad=True); torch.autograd.grad(torch.pdist(x), x, torch.randn(0)))
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x = _distinct(draw, (n, m), dtype, device)
    return Sample((x,), {"p": draw(st.sampled_from((2.0, 1.0, 3.0, 0.5)))} if draw(st.booleans()) else {})


def _distinct(draw, sizes, dtype, device):
    """Pairwise distinct values (no zero differences: the p-norm's kinks), drawn from a permutation."""
    seed = _seed(draw)
    n = 1
    for s in sizes:
        n *= s
    perm = torch.randperm(max(n, 1), generator=torch.Generator().manual_seed(seed))[:n]
    return ((perm.to(torch.float64) / max(n, 1)) * 4 - 2).reshape(sizes).to(dtype=dtype, device=device)


_PDIST_NO_GRADGRAD = ("torch has no second derivative (the derivative for '_pdist_backward' is not implemented); "
                      "torch's CPU pdist has no bfloat16 and its backward no float16")
register(
    _mirror("normalize", _normalize),
    _mirror("cosine_similarity", _cosine),
    _top("cosine_similarity", _cosine),
    _mirror("pairwise_distance", _pairwise),
    _top("pairwise_distance", _pairwise),
    _mirror("pdist", _pdist, gradgrad=False, dtypes=FLOATS, note=_PDIST_NO_GRADGRAD),
    _top("pdist", _pdist, gradgrad=False, dtypes=FLOATS, note=_PDIST_NO_GRADGRAD),
)


# ----- rms, instance and local-response norm --------------------------------------------------------------
def _rms_norm(draw, dtype, device):
    sizes = nonempty_shape(draw, 1, 4, 4)
    sizes = sizes[:-1] + (max(sizes[-1], 2),)
    k = draw(st.integers(1, len(sizes)))
    normalized = sizes[len(sizes) - k:]
    x = tensor(draw, sizes, dtype, device)
    w = tensor(draw, normalized, dtype, device) if draw(st.booleans()) else None
    return Sample((x, normalized, w), {"eps": draw(st.sampled_from((None, 1e-5, 1e-2)))})


def _instance_call(functional, stats_out: bool):
    """instance_norm on copies of the running statistics; with ``stats_out`` they are outputs too."""

    def call(x, weight=None, bias=None, *, running_mean=None, running_var=None, **kwargs):
        copy = (lambda t: None if t is None else nx.Tensor(t.data.clone())) if functional is F else \
            (lambda t: None if t is None else t.clone())
        rm, rv = copy(running_mean), copy(running_var)
        out = functional.instance_norm(x, rm, rv, weight, bias, **kwargs)
        return (out, rm, rv) if stats_out else out

    return call


def _instance_norm(draw, dtype, device):
    c = draw(st.integers(1, 3))
    # 3-d and 5-d inputs: for a 4-d input torch 2.13's input gradient depends on the upstream gradient's layout (a
    # torch defect: x = torch.randn(1, 3, 2, 5, dtype=torch.float64).transpose(-1, -2), rm = torch.randn(3),
    # rv = torch.rand(3) + 0.5, g channels-last of shape (1, 3, 5, 2): F.instance_norm(x, rm, rv,
    # use_input_stats=False)'s gradient under g differs by 2.2 from the one under g.contiguous(), which is the true
    # g / sqrt(rv + eps), neuronix's); the harness's channels-last upstream-gradient variant meets it on 4-d outputs
    rank = draw(st.sampled_from((3, 5)))
    # at least four values per (sample, channel): fewer make float32 cancellation dominate (see batch norm)
    spatial = (draw(st.integers(4, 6)),) + tuple(draw(st.integers(2, 3)) for _ in range(rank - 3))
    x = tensor(draw, (draw(st.integers(1, 2)), c) + spatial, dtype, device)
    use_input_stats = draw(st.booleans())
    kwargs = {"use_input_stats": use_input_stats, "momentum": draw(st.sampled_from((0.1, 0.5))),
              "eps": draw(st.sampled_from((1e-5, 1e-3)))}
    if not use_input_stats or draw(st.booleans()):
        kwargs["running_mean"] = tensor(draw, (c,), dtype, device, contiguous=True)
        kwargs["running_var"] = tensor(draw, (c,), dtype, device, POSITIVE, contiguous=True)
    affine = draw(st.booleans())
    w = tensor(draw, (c,), dtype, device, contiguous=True) if affine else None
    b = tensor(draw, (c,), dtype, device, contiguous=True) if affine else None
    return Sample((x, w, b), kwargs)


def _lrn(ranks):
    return lambda draw, dtype, device: _lrn_sample(draw, dtype, device, draw(st.sampled_from(ranks)))


def _lrn_sample(draw, dtype, device, rank):
    sizes = (draw(st.integers(1, 2)), draw(st.integers(1, 5))) + tuple(draw(st.integers(1, 3)) for _ in range(rank - 2))
    # inputs of 4 or more dims contiguous: torch views them (x.view(N, 1, C, H, -1)), which a strided one refuses
    x = tensor(draw, sizes, dtype, device, contiguous=rank > 3 or None)
    kwargs = {"size": draw(st.integers(1, 4))}
    if draw(st.booleans()):
        kwargs.update(alpha=draw(st.sampled_from((1e-4, 0.5))), beta=draw(st.sampled_from((0.75, 1.5))),
                      k=draw(st.sampled_from((1.0, 2.0))))
    return Sample((x,), kwargs)


register(
    _mirror("rms_norm", _rms_norm),
    _top("rms_norm", _rms_norm),
    OpMirror(_name("instance_norm"), _instance_call(F, False), _instance_call(TF, False), _instance_norm),
    OpMirror(_name("instance_norm", "running stats"), _instance_call(F, True), _instance_call(TF, True),
             _instance_norm, grad=False,
             note="outputs (y, running_mean, running_var): the in-place update of the statistics"),
    _mirror("local_response_norm", _lrn((3,))),
    _mirror("local_response_norm", _lrn((4, 5)), "4-d,5-d", dtypes=FLOATS,
            note="torch pools inputs of 4 or more dims with avg_pool3d, whose CPU kernel has no float16/bfloat16"),
)


def _instance_top(draw, dtype, device):
    s = _instance_norm(draw, dtype, device)
    k = s.kwargs
    return Sample((s.args[0], s.args[1], s.args[2], k.get("running_mean"), k.get("running_var"),
                   k["use_input_stats"], k["momentum"], k["eps"], False),
                  grad_args=(0, 1, 2) if s.args[1] is not None else (0,))  # the running statistics are constants


register(_top("instance_norm", _instance_top))


# ----- one_hot, bilinear -----------------------------------------------------------------------------------
def _one_hot(draw, dtype, device):
    classes = draw(st.integers(1, 5))
    indices = index_tensor(draw, shape(draw, 0, 3, 0, 4), classes, device)
    return Sample((indices,), {"num_classes": draw(st.sampled_from((-1, classes, classes + 2)))}
                  if indices.numel() else {"num_classes": classes})


def _bilinear(draw, dtype, device):
    i, j, o = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    x1, x2 = tensor(draw, lead + (i,), dtype, device), tensor(draw, lead + (j,), dtype, device)
    w = tensor(draw, (o, i, j), dtype, device)
    b = tensor(draw, (o,), dtype, device) if draw(st.booleans()) else None
    return Sample((x1, x2, w, b))


register(
    _mirror("one_hot", _one_hot, grad=False, dtypes=(torch.float64,), note="int64 indices in, int64 out"),
    _mirror("bilinear", _bilinear),
    _top("bilinear", _bilinear),
)


# ----- losses ---------------------------------------------------------------------------------------------
REDUCTIONS = ("none", "mean", "sum")
ENUM = {"none": 0, "mean": 1, "sum": 2}


def _reduction(draw) -> str:
    return draw(st.sampled_from(REDUCTIONS))


def _signs(draw, sizes, dtype, device, values=(1.0, -1.0)):
    """A float target of ``values`` (torch's +-1 labels), drawn per element."""
    seed = _seed(draw)
    index = torch.randint(0, len(values), tuple(sizes), generator=torch.Generator().manual_seed(seed))
    return torch.tensor(values, dtype=dtype)[index].to(device)


def _legacy(draw, kwargs):
    """The reduction as torch's deprecated ``size_average``/``reduce`` flags instead, sometimes."""
    if draw(st.integers(0, 3)):
        return kwargs
    kwargs = {k: v for k, v in kwargs.items() if k != "reduction"}
    flags = draw(st.sampled_from(({"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True})))
    return {**kwargs, **flags}


def _poisson(top: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw, 0, 3, 1, 4)
        log_input, full = draw(st.booleans()), draw(st.booleans())
        x = tensor(draw, sizes, dtype, device, REAL if log_input else POSITIVE)
        # Stirling's term applies where target > 1: the target stays off that switch
        t = tensor(draw, sizes, dtype, device, Domain(0.2, 4.0, kinks=(1.0,), away=0.1))
        if top:
            return Sample((x, t, log_input, full, 1e-8, ENUM[_reduction(draw)]))
        return Sample((x, t), _legacy(draw, {"log_input": log_input, "full": full, "reduction": _reduction(draw)}))

    return sample


def _gaussian(draw, dtype, device):
    sizes = nonempty_shape(draw, 1, 3, 4)
    x, t = tensor(draw, sizes, dtype, device), tensor(draw, sizes, dtype, device)
    kind = draw(st.sampled_from(("same", "homoscedastic", "one dim 1", "float")))
    if kind == "float":
        var = draw(st.sampled_from((0.5, 2.0)))
    else:
        var_shape = {"same": sizes, "homoscedastic": sizes[:-1]}.get(kind)
        if var_shape is None:
            k = draw(st.integers(0, len(sizes) - 1))
            var_shape = sizes[:k] + (1,) + sizes[k + 1:]
        var = tensor(draw, var_shape, dtype, device, POSITIVE)
    kwargs = {"full": draw(st.booleans()), "reduction": _reduction(draw)}
    if draw(st.booleans()):
        kwargs["eps"] = 1e-3
    return Sample((x, t, var), kwargs)


def _margin_ranking(top: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw, 0, 3, 1, 4)
        margin = draw(st.sampled_from((0.0, 0.5)))
        x1 = tensor(draw, sizes, dtype, device)
        # the hinge's kink is at x1 - x2 == +-margin
        diff = tensor(draw, sizes, dtype, device, Domain(-2.0, 2.0, kinks=(-margin, margin), away=0.15))
        x2, t = (x1 - diff).to(dtype), _signs(draw, sizes, dtype, device)
        if top:
            return Sample((x1, x2, t, margin, ENUM[_reduction(draw)]))
        return Sample((x1, x2, t), _legacy(draw, {"margin": margin, "reduction": _reduction(draw)}))

    return sample


def _hinge_embedding(top: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw, 0, 3, 1, 4)
        margin = draw(st.sampled_from((1.0, 0.5)))
        x = tensor(draw, sizes, dtype, device, Domain(-2.0, 3.0, kinks=(margin,), away=0.15))
        t = _signs(draw, sizes, dtype, device, (1.0, -1.0, 1.0, -1.0, 0.0))
        if top:
            return Sample((x, t, margin, ENUM[_reduction(draw)]), grad_args=(0,))
        return Sample((x, t), _legacy(draw, {"margin": margin, "reduction": _reduction(draw)}), grad_args=(0,))

    return sample


def _soft_margin(draw, dtype, device):
    sizes = shape(draw, 0, 3, 1, 4)
    x = tensor(draw, sizes, dtype, device, WIDE)
    return Sample((x, _signs(draw, sizes, dtype, device)), _legacy(draw, {"reduction": _reduction(draw)}),
                  grad_args=(0,))


def _multilabel_soft(draw, dtype, device):
    classes = draw(st.integers(1, 4))
    sizes = (draw(st.integers(1, 3)), classes) if draw(st.integers(0, 3)) else (classes,)
    x, t = tensor(draw, sizes, dtype, device, WIDE), tensor(draw, sizes, dtype, device, Domain(0.0, 1.0))
    kwargs = {"reduction": _reduction(draw)}
    if draw(st.booleans()):
        kwargs["weight"] = tensor(draw, (classes,), dtype, device, POSITIVE)
    return Sample((x, t), _legacy(draw, kwargs))


def _cosine_embedding(top: bool):
    def sample(draw, dtype, device):
        d = draw(st.integers(2, 4))
        batched = draw(st.integers(0, 3)) > 0
        sizes = (draw(st.integers(1, 3)), d) if batched else (d,)
        x1, x2 = tensor(draw, sizes, dtype, device, NONZERO), tensor(draw, sizes, dtype, device, NONZERO)
        t = _signs(draw, sizes[:1] if batched else (), dtype, device)
        margin = draw(st.sampled_from((0.0, 0.3, -0.2)))
        if top:
            return Sample((x1, x2, t, margin, ENUM[_reduction(draw)]), grad_args=(0, 1))
        return Sample((x1, x2, t), _legacy(draw, {"margin": margin, "reduction": _reduction(draw)}), grad_args=(0, 1))

    return sample


def _multi_margin(draw, dtype, device):
    classes = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(("batched", "batched", "vector", "scalar")))
    if kind == "scalar":
        x, t = tensor(draw, (), dtype, device), torch.tensor(0, device=device)
        classes = 1
    else:
        n = draw(st.integers(1, 3))
        x = tensor(draw, (n, classes) if kind == "batched" else (classes,), dtype, device)
        t = index_tensor(draw, (n,) if kind == "batched" else (), classes, device)
    kwargs = {"p": draw(st.sampled_from((1, 2))), "margin": draw(st.sampled_from((1.0, 0.5))),
              "reduction": _reduction(draw)}
    if draw(st.booleans()):
        kwargs["weight"] = tensor(draw, (classes,), dtype, device, POSITIVE)
    return Sample((x, t), _legacy(draw, kwargs), grad_args=(0,))


def _multilabel_margin(draw, dtype, device):
    classes = draw(st.integers(1, 4))
    batched = draw(st.integers(0, 3)) > 0
    n = draw(st.integers(1, 3)) if batched else 1
    x = tensor(draw, (n, classes) if batched else (classes,), dtype, device)
    gen = torch.Generator().manual_seed(_seed(draw))
    rows = []
    for _ in range(n):  # a prefix of distinct labels (possibly all, possibly none), -1, then anything
        count = int(torch.randint(0, classes + 1, (), generator=gen))
        row = torch.randperm(classes, generator=gen)
        row[count:] = torch.randint(-1, classes, (classes - count,), generator=gen)
        if count < classes:
            row[count] = -1
        rows.append(row)
    t = torch.stack(rows).to(device)
    return Sample((x, t if batched else t[0]), _legacy(draw, {"reduction": _reduction(draw)}), grad_args=(0,))


def _triplet(top: bool):
    def sample(draw, dtype, device):
        d = draw(st.integers(1, 4))
        sizes = (draw(st.integers(1, 3)), d) if draw(st.integers(0, 3)) else (d,)
        # positive and negative from ranges apart from the anchor's: the distances stay off p = 1's kinks
        a = tensor(draw, sizes, dtype, device)
        p, n = (tensor(draw, sizes, dtype, device, draw(st.sampled_from((Domain(2.5, 4.5), Domain(-4.5, -2.5)))))
                for _ in range(2))
        margin, norm = draw(st.sampled_from((1.0, 0.3))), draw(st.sampled_from((2.0, 1.0, 3.0)))
        swap = draw(st.booleans())
        if top:
            return Sample((a, p, n, margin, norm, 1e-6, swap, ENUM[_reduction(draw)]))
        return Sample((a, p, n), _legacy(draw, {"margin": margin, "p": norm, "swap": swap, "reduction": _reduction(draw)}))

    return sample


_DISTANCES = {
    "default": (None, None),
    "cosine": (lambda a, b: 1.0 - F.cosine_similarity(a, b, dim=-1), lambda a, b: 1.0 - TF.cosine_similarity(a, b, dim=-1)),
    "l1": (lambda a, b: F.pairwise_distance(a, b, p=1.0), lambda a, b: TF.pairwise_distance(a, b, p=1.0)),
}


def _with_distance(functional, side: int):
    def call(anchor, positive, negative, *, distance, **kwargs):
        fn = _DISTANCES[distance][side]
        return functional.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=fn, **kwargs)

    return call


def _triplet_distance(draw, dtype, device):
    s = _triplet(False)(draw, dtype, device)
    kwargs = {k: v for k, v in s.kwargs.items() if k in ("margin", "swap")}
    return Sample(s.args, {**kwargs, "reduction": _reduction(draw),
                           "distance": draw(st.sampled_from(tuple(_DISTANCES)))})


_NO_LOSS_GRADGRAD = ("torch has no second derivative (the derivative for aten::{}_backward is not implemented); "
                     "torch's CPU kernel has no float16/bfloat16")
register(
    _mirror("poisson_nll_loss", _poisson(False)),
    _top("poisson_nll_loss", _poisson(True)),
    _mirror("gaussian_nll_loss", _gaussian),
    _mirror("margin_ranking_loss", _margin_ranking(False)),
    _top("margin_ranking_loss", _margin_ranking(True)),
    _mirror("hinge_embedding_loss", _hinge_embedding(False)),
    _top("hinge_embedding_loss", _hinge_embedding(True)),
    _mirror("soft_margin_loss", _soft_margin),
    _mirror("multilabel_soft_margin_loss", _multilabel_soft),
    _mirror("cosine_embedding_loss", _cosine_embedding(False)),
    _top("cosine_embedding_loss", _cosine_embedding(True)),
    _mirror("multi_margin_loss", _multi_margin, gradgrad=False, dtypes=FLOATS,
            note=_NO_LOSS_GRADGRAD.format("multi_margin_loss")),
    _mirror("multilabel_margin_loss", _multilabel_margin, gradgrad=False, dtypes=FLOATS,
            note=_NO_LOSS_GRADGRAD.format("multilabel_margin_loss")),
    _mirror("triplet_margin_loss", _triplet(False)),
    _top("triplet_margin_loss", _triplet(True)),
    OpMirror(_name("triplet_margin_with_distance_loss"), _with_distance(F, 0), _with_distance(TF, 1), _triplet_distance),
)


# ----- scaled dot-product attention ---------------------------------------------------------------------------
def _attention_sample(four_d: bool):
    """3-d (batch or heads, L, E) inputs, or with ``four_d`` (batch, heads, L, E) ones. The mirrors draw 3-d ones:
    torch differentiates 4-d inputs with its CPU flash-attention kernel instead of the math path, which has no second
    derivative and keeps its own copies of q, k, v (changing them in place after the forward is no error there);
    neuronix always runs the math path (its values agree with the flash kernel's to rounding)."""

    def sample(draw, dtype, device):
        gqa = draw(st.booleans())
        kv_heads = draw(st.integers(1, 2))
        q_heads = kv_heads * (draw(st.integers(1, 2)) if gqa else 1)
        q_len, kv_len, e, ev = (draw(st.integers(1, 4)) for _ in range(4))
        lead = (draw(st.integers(1, 2)),) if four_d else ()
        q = tensor(draw, lead + (q_heads, q_len, e), dtype, device)
        k = tensor(draw, lead + (kv_heads, kv_len, e), dtype, device)
        v = tensor(draw, lead + (kv_heads, kv_len, ev), dtype, device)
        kwargs = {}
        mask = draw(st.sampled_from(("none", "bool", "float", "causal")))
        if mask == "bool":
            kwargs["attn_mask"] = index_tensor(draw, (q_len, kv_len), 2, device).bool()
        elif mask == "float":
            kwargs["attn_mask"] = tensor(draw, (q_len, kv_len), dtype, device)
        elif mask == "causal":
            kwargs["is_causal"] = True
        if draw(st.booleans()):
            kwargs["scale"] = draw(st.sampled_from((0.5, -0.3, 2.0)))
        if gqa:
            kwargs["enable_gqa"] = True
        return Sample((q, k, v), kwargs)

    return sample


_attention = _attention_sample(False)


def _torch_math_attention(*args, **kwargs):
    """torch's scaled_dot_product_attention on its math backend, the path neuronix implements: torch 2.13 takes it
    for the mirrors' 3-d inputs on CPU, torch 2.14 takes its CPU flash-attention kernel (no second derivative)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        return TF.scaled_dot_product_attention(*args, **kwargs)


def _attention_dropout(draw, dtype, device):
    s = _attention(draw, dtype, device)
    return Sample(s.args, {**s.kwargs, "dropout_p": draw(st.sampled_from((0.2, 0.5))), "seed": _seed(draw)})


register(
    OpMirror(_name("scaled_dot_product_attention"), F.scaled_dot_product_attention, _torch_math_attention, _attention,
             note="torch's side runs its math backend (sdpa_kernel(SDPBackend.MATH)): neuronix's path"),
    OpMirror(_name("scaled_dot_product_attention", "dropout"), _seeded(F.scaled_dot_product_attention),
             _seeded(_torch_math_attention), _attention_dropout,
             note="same seed on both sides: the dropout mask must be torch's draw (torch's math path)"),
)


# ----- ctc_loss ---------------------------------------------------------------------------------------------------
def _ctc_call(functional):
    """ctc_loss of ``log_softmax(logits)``: torch's gradient in log_probs is the derivative through a log_softmax
    (it assumes normalised rows), so the differentiated input is the logits, as in torch's own gradcheck."""

    def call(logits, targets, input_lengths, target_lengths, **kwargs):
        return functional.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths, **kwargs)

    return call


def _ctc(draw, dtype, device):
    classes, batch = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    batched = draw(st.integers(0, 3)) > 0
    batch = batch if batched else 1
    time = draw(st.integers(1, 6))
    blank = draw(st.sampled_from((0, classes - 1)))
    labels = [c for c in range(classes) if c != blank]
    input_lengths = [draw(st.integers(1, time)) for _ in range(batch)]
    # mostly feasible target lengths (an infeasible one has an infinite loss: zero_infinity's case)
    target_lengths = [draw(st.integers(0, max(1, n // 2 + draw(st.integers(0, 2))))) for n in input_lengths]
    gen = torch.Generator().manual_seed(_seed(draw))
    width = max(target_lengths + [1])
    padded = torch.tensor(labels)[torch.randint(0, len(labels), (batch, width), generator=gen)]
    concatenated = draw(st.booleans())
    if not batched:
        targets = padded[0, :target_lengths[0]]
    elif concatenated:
        targets = torch.cat([padded[b, :n] for b, n in enumerate(target_lengths)])
    else:
        targets = padded
    logits = tensor(draw, (time, batch, classes) if batched else (time, classes), dtype, device, Domain(-3.0, 3.0))
    as_tensors = draw(st.booleans())
    il = torch.tensor(input_lengths) if as_tensors else tuple(input_lengths)
    tl = torch.tensor(target_lengths) if as_tensors else tuple(target_lengths)
    if not batched and as_tensors:
        il, tl = il[0], tl[0]
    kwargs = {"blank": blank, "reduction": _reduction(draw), "zero_infinity": draw(st.booleans())}
    return Sample((logits, targets.to(device), il, tl), kwargs, grad_args=(0,))


register(OpMirror(_name("ctc_loss"), _ctc_call(F), _ctc_call(TF), _ctc, gradgrad=False, dtypes=FLOATS,
                  note="torch has no second derivative (the derivative for '_ctc_loss_backward' is not implemented); "
                       "torch's CPU ctc kernel has no float16/bfloat16; differentiated through log_softmax"))
def _ctc_top(draw, dtype, device):
    s = _ctc(draw, dtype, device)
    return Sample(s.args, {**s.kwargs, "reduction": ENUM[s.kwargs["reduction"]]}, grad_args=(0,))


register(OpMirror("ctc_loss", _ctc_call(nx), _ctc_call(torch), _ctc_top, gradgrad=False, dtypes=FLOATS,
                  note="torch.ctc_loss, the same kernel as nn.functional.ctc_loss"))


# ----- torch's top-level twins of nn_functional.py's functions (its samplers, torch's positional signatures) -------
def _enum_reduction(sampler, position: int):
    """``sampler``'s sample with its ``reduction`` keyword moved to torch's enum at ``position``."""

    def sample(draw, dtype, device):
        s = sampler(draw, dtype, device)
        kwargs = dict(s.kwargs)
        reduction = ENUM.get(kwargs.pop("reduction", "mean"), None)
        if reduction is None:  # 'batchmean' is F.kl_div's alone
            reduction = 2
        args = s.args + (None,) * (position - len(s.args))
        return Sample(args[:position] + (reduction,), kwargs)

    return sample


def _bce_top(draw, dtype, device):
    s = _nnf._binary(True, pos_weight=draw(st.booleans()))(draw, dtype, device)
    k = s.kwargs
    return Sample((s.args[0], s.args[1], k.get("weight"), k.get("pos_weight"), ENUM[k["reduction"]]), grad_args=(0, 1))


def _batch_norm_top(functional):
    """``torch.batch_norm`` on copies of the drawn running statistics (each call starts from the same ones)."""

    def call(x, weight, bias, running_mean, running_var, *rest):
        copy = (lambda t: None if t is None else nx.Tensor(t.data.clone())) if functional is nx else \
            (lambda t: None if t is None else t.clone())
        return functional.batch_norm(x, weight, bias, copy(running_mean), copy(running_var), *rest)

    return call


def _batch_norm_top_sample(draw, dtype, device):
    s = _nnf._batch_norm(stats=(True,))(draw, dtype, device)
    k = s.kwargs
    x, w, b = s.args
    return Sample((x, w, b, k["running_mean"], k["running_var"], k["training"], k["momentum"], k["eps"], False),
                  grad_args=tuple(i for i, t in enumerate((x, w, b)) if t is not None))


register(
    _top("kl_div", _enum_reduction(_nnf._kl_div(False), 2)),
    _top("kl_div", _enum_reduction(_nnf._kl_div(True), 2), "log_target"),
    _top("binary_cross_entropy_with_logits", _bce_top),
    _top("layer_norm", _nnf._layer_norm()),
    _top("group_norm", _nnf._group_norm()),
    OpMirror("batch_norm", _batch_norm_top(nx), _batch_norm_top(torch), _batch_norm_top_sample),
)


# ----- alpha and feature dropout (seeded: the mask must be torch's draw) -------------------------------------------
def _dropout_sample(min_dims: int, max_dims: int):
    def sample(draw, dtype, device):
        x = tensor(draw, nonempty_shape(draw, min_dims, max_dims, 4), dtype, device)
        p, train = draw(st.sampled_from((0.0, 0.2, 0.5, 1.0))), draw(st.sampled_from((True, True, False)))
        return Sample((x, p, train), {"seed": _seed(draw)})

    return sample


_SAME_SEED = "same seed on both sides: the mask must be torch's draw"
register(
    OpMirror(_name("alpha_dropout"), _seeded(F.alpha_dropout), _seeded(TF.alpha_dropout), _dropout_sample(0, 3),
             note=_SAME_SEED),
    OpMirror(_name("feature_alpha_dropout"), _seeded(F.feature_alpha_dropout), _seeded(TF.feature_alpha_dropout),
             _dropout_sample(2, 4), note=_SAME_SEED),
    OpMirror(_name("dropout1d"), _seeded(F.dropout1d), _seeded(TF.dropout1d), _dropout_sample(2, 3), note=_SAME_SEED),
    OpMirror(_name("dropout2d"), _seeded(F.dropout2d), _seeded(TF.dropout2d), _dropout_sample(4, 4), note=_SAME_SEED),
    OpMirror(_name("dropout2d", "3-d"), _seeded(F.dropout2d), _seeded(TF.dropout2d), _dropout_sample(3, 3),
             note=_SAME_SEED + "; a 3-d input is (N, C, L), with torch's warning"),
    OpMirror(_name("dropout3d"), _seeded(F.dropout3d), _seeded(TF.dropout3d), _dropout_sample(4, 5), note=_SAME_SEED),
)
for _name_, _dims in (("dropout", (0, 3)), ("alpha_dropout", (0, 3)), ("feature_dropout", (2, 4)),
                      ("feature_alpha_dropout", (2, 4))):
    register(
        OpMirror(_name_, _seeded(getattr(nx, _name_)), _seeded(getattr(torch, _name_)), _dropout_sample(*_dims),
                 note=_SAME_SEED),
        OpMirror(_name_ + "_", _seeded(_on_copy(getattr(nx, _name_ + "_"))),
                 _seeded(_on_copy(getattr(torch, _name_ + "_"))), _dropout_sample(*_dims), note=_SAME_SEED),
    )


# ----- linear_cross_entropy -------------------------------------------------------------------------------------------
def _linear_cross_entropy(draw, dtype, device):
    classes, features = draw(st.integers(2, 4)), draw(st.integers(1, 4))
    batched = draw(st.integers(0, 3)) > 0
    n = draw(st.integers(1, 3))
    k_dims = (draw(st.integers(1, 2)),) if batched and draw(st.integers(0, 2)) == 0 else ()
    x = tensor(draw, ((n,) if batched else ()) + (features,), dtype, device)
    w = tensor(draw, (classes, *k_dims, features), dtype, device)
    kwargs = {"reduction": _reduction(draw)}
    if draw(st.booleans()):
        kwargs["linear_bias"] = tensor(draw, (classes, *k_dims), dtype, device)
    if draw(st.booleans()):
        kwargs["weight"] = tensor(draw, (classes,), dtype, device, POSITIVE, contiguous=True)
    if draw(st.booleans()):
        kwargs["label_smoothing"] = 0.2
    logits_shape = ((n,) if batched else ()) + (classes, *k_dims)
    if draw(st.integers(0, 3)) == 0:  # class probabilities
        probs = tensor(draw, logits_shape, dtype, device, POSITIVE)
        return Sample((x, w, probs / probs.sum(1 if batched else 0, keepdim=True)), kwargs, grad_args=(0, 1))
    target = index_tensor(draw, ((n,) if batched else ()) + k_dims, classes, device)
    if draw(st.booleans()) and target.numel() > 1:
        kwargs["ignore_index"] = 0
        if not (target != 0).any():
            target = target.clone()
            target.view(-1)[0] = 1
    return Sample((x, w, target), kwargs, grad_args=(0, 1))


register(_mirror("linear_cross_entropy", _linear_cross_entropy))


# ----- embedding_bag ---------------------------------------------------------------------------------------------------
def _embedding_bag(freq: bool):
    def sample(draw, dtype, device):
        rows, dim = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        mode = draw(st.sampled_from(("sum", "mean") if freq else ("sum", "mean", "max")))
        weight = _distinct(draw, (rows, dim), dtype, device)  # no ties for max mode
        include_last = False
        if draw(st.booleans()):
            indices, offsets = index_tensor(draw, (draw(st.integers(1, 3)), draw(st.integers(0, 3))), rows, device), None
        else:
            indices = index_tensor(draw, (draw(st.integers(0, 6)),), rows, device)
            starts = sorted(draw(st.lists(st.integers(0, indices.numel()), min_size=1, max_size=4)))
            starts[0] = 0
            include_last = draw(st.booleans())
            offsets = torch.tensor(starts + ([indices.numel()] if include_last else []), device=device)
        psw = tensor(draw, tuple(indices.shape), dtype, device) if mode == "sum" and draw(st.booleans()) else None
        padding = draw(st.sampled_from((None, 0, -1)))
        args = (indices, weight, offsets, None, 2, freq, mode, False, psw, include_last, padding)
        return Sample(args, grad_args=(1, 8) if psw is not None else (1,))

    return sample


_BAG_NOTE = ("torch's embedding_bag backward is not differentiable (no second derivative); the per-sample-weight "
             "gradient's derivative is not implemented in torch")
register(
    _mirror("embedding_bag", _embedding_bag(False), gradgrad=False, note=_BAG_NOTE),
    _mirror("embedding_bag", _embedding_bag(True), "scale_grad_by_freq", gradgrad=False, fd=False,
            note=_BAG_NOTE + "; the frequency-scaled gradient is torch's definition, not a derivative"),
)


def _embedding_top(draw, dtype, device):
    # padding_idx and scale_grad_by_freq are nn.functional.embedding's mirror variants (the same kernel; torch's
    # forward AD follows another convention there: kinds/forward_mode.py)
    s = _nnf._embedding()(draw, dtype, device)
    indices, weight = s.args
    return Sample((weight, indices), grad_args=(0,))


register(_top("embedding", _embedding_top))


def _embedding_bag_top(draw, dtype, device):
    s = _embedding_bag(False)(draw, dtype, device)
    indices, weight, offsets, _, _, freq, mode, _, psw, include_last, padding = s.args
    if offsets is None:  # torch.embedding_bag takes the 1-D form only
        offsets = torch.arange(0, indices.numel(), max(indices.shape[1], 1), device=device)[:indices.shape[0]]
        indices, include_last = indices.reshape(-1), False
        psw = None if psw is None else psw.reshape(-1)
    mode_enum = {"sum": 0, "mean": 1, "max": 2}[mode]
    return Sample((weight, indices, offsets, freq, mode_enum, False, psw, include_last, padding),
                  grad_args=(0, 6) if psw is not None else (0,))


register(_top("embedding_bag", _embedding_bag_top, gradgrad=False,
              note=_BAG_NOTE + "; outputs (bags, offset2bag, bag_size, max_indices)"))
