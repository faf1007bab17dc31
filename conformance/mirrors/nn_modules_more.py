"""Mirrors of the issue-14 ``nx.nn`` modules against ``torch.nn``: the remaining normalisations (batch 3d,
sync, instance, RMS, local response, CrossMapLRN2d, the lazy norms), dropouts, activations, distances,
``Bilinear``, ``EmbeddingBag``, the remaining losses and the parameter containers.

The module driver (``conformance/kinds/module.py``) builds both after the same seed (default
initialisation), loads torch's state_dict, reseeds torch's RNG before each forward (dropout masks and
RReLU slopes must be torch's draws) and compares outputs, gradients, buffers and the functional twin.
Inputs stay off each op's kinks (the special-value check probes them); losses whose torch gradient is
no derivative (CTC in log-probabilities) are differentiated the way the functional mirrors do it.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, ModuleMirror, Sample, register
from conformance.mirrors import nn_functional_more as _fm
from conformance.mirrors import nn_modules as _nm
from conformance.strategies import NONZERO, POSITIVE, REAL, Domain, index_tensor, shape, tensor

ints = st.integers
REDUCTIONS = st.sampled_from(["none", "mean", "sum"])
WIDE = Domain(-4.0, 4.0)


def _mirror(name: str, build, sample, **kw) -> ModuleMirror:
    """``nx.nn.<name>`` vs ``torch.nn.<name>``."""
    return ModuleMirror(f"nn.{name}", getattr(nx.nn, name), getattr(torch.nn, name), build, sample, **kw)


def _const(*args, **kwargs):
    return lambda draw: (args, kwargs)


def _any_sample(domain: Domain = REAL, min_dims: int = 0, max_dims: int = 4):
    def sample(draw, args, kwargs, dtype, device):
        return Sample((tensor(draw, shape(draw, min_dims, max_dims, 0, 4), dtype, device, domain),))

    return sample


def _ranked_sample(ranks, domain: Domain = REAL, min_side: int = 1, channels=None):
    """An input of one of ``ranks`` dims; ``channels(args, kwargs, rank)`` gives dim 1's (or dim 0's) size."""

    def sample(draw, args, kwargs, dtype, device):
        rank = draw(st.sampled_from(ranks))
        sizes = [draw(ints(min_side, 4)) for _ in range(rank)]
        if channels is not None:
            dim, size = channels(args, kwargs, rank)
            sizes[dim] = size
        return Sample((_nm._maybe_channels_last(draw, tensor(draw, sizes, dtype, device, domain)),))

    return sample


# ----- activations -------------------------------------------------------------------------------------------
SHRINK = Domain(-2.0, 2.0, kinks=(-0.5, 0.5, -1.0, 1.0), away=0.15)
ACTIVATIONS = {
    "CELU": (lambda d: ((), {"alpha": d(st.sampled_from([1.0, 0.5, 2.0]))}), _fm.ELU_LIKE, {}),
    "Softsign": (_const(), NONZERO, {}),
    "Tanhshrink": (_const(), WIDE, {}),
    "LogSigmoid": (_const(), WIDE, {}),
    "Softshrink": (lambda d: ((), {"lambd": d(st.sampled_from([0.5, 1.0]))}), SHRINK, {}),
    "Hardshrink": (lambda d: ((d(st.sampled_from([0.5, 1.0])),), {}), SHRINK, {}),
    "Threshold": (lambda d: ((0.5, d(st.sampled_from([-3.0, 2.0]))), {}), _fm.THRESHOLD, {}),
    "Hardsigmoid": (_const(), _fm.HARDSIGMOID, {"gradgrad": False}),
    "RReLU": (lambda d: ((), d(st.sampled_from([{}, {"lower": 0.1, "upper": 0.9}, {"lower": 0.3, "upper": 0.3}]))),
              NONZERO, {"dtypes": FLOATS + (torch.bfloat16,), "note": _fm._NO_HALF_RRELU}),
}
for _name, (_build, _domain, _kw) in ACTIVATIONS.items():
    register(_mirror(_name, _build, _any_sample(_domain), **{"gradgrad": True, **_kw}))


def _prelu_build(draw):
    return (), {"num_parameters": draw(st.sampled_from([1, 3])), "init": draw(st.sampled_from([0.25, -0.5]))}


def _prelu_sample(draw, args, kwargs, dtype, device):
    if kwargs["num_parameters"] == 1:
        return Sample((tensor(draw, shape(draw, 0, 4, 1, 3), dtype, device, NONZERO),))
    sizes = [draw(ints(1, 3)), 3] + [draw(ints(1, 3)) for _ in range(draw(ints(0, 2)))]
    return Sample((tensor(draw, sizes, dtype, device, NONZERO),))


def _glu_build(draw):
    return (), {"dim": draw(st.sampled_from([-1, 0, 1]))}


def _glu_sample(draw, args, kwargs, dtype, device):
    sizes = [draw(ints(1, 3)) for _ in range(draw(ints(2, 3)))]
    sizes[kwargs["dim"]] = 2 * draw(ints(1, 3))
    return Sample((tensor(draw, sizes, dtype, device, WIDE),))


def _dim_build(draw):
    return (), {"dim": draw(ints(-2, 1))}


register(
    _mirror("PReLU", _prelu_build, _prelu_sample, gradgrad=True),
    _mirror("GLU", _glu_build, _glu_sample, gradgrad=True),
    _mirror("Softmin", _dim_build, _nm._softmax_sample, gradgrad=True),
    _mirror("Softmax2d", _const(), _ranked_sample((3, 4), WIDE), gradgrad=True, functional=None),
)


# ----- dropout ---------------------------------------------------------------------------------------------------
def _p_build(draw):
    return (draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),), {}


register(
    _mirror("Dropout1d", _p_build, _ranked_sample((2, 3)), gradgrad=True),
    _mirror("Dropout2d", _p_build, _ranked_sample((3, 4)), gradgrad=True),
    _mirror("Dropout3d", _p_build, _ranked_sample((4, 5), min_side=1), gradgrad=True),
    _mirror("AlphaDropout", _p_build, _any_sample(REAL, 1), gradgrad=True),
    _mirror("FeatureAlphaDropout", _p_build, _ranked_sample((2, 3, 4, 5)), gradgrad=True),
)


# ----- distances, Bilinear --------------------------------------------------------------------------------------
def _cosine_build(draw):
    return (), {"dim": draw(st.sampled_from([1, -1, 0])), "eps": draw(st.sampled_from([1e-8, 1e-3]))}


def _cosine_sample(draw, args, kwargs, dtype, device):
    sizes = [draw(ints(1, 3)) for _ in range(draw(ints(2, 3)))]
    sizes[kwargs["dim"]] = draw(ints(2, 4))  # one value: the cosine is +-1, its derivatives rounding noise
    return Sample((tensor(draw, sizes, dtype, device, NONZERO), tensor(draw, sizes, dtype, device, NONZERO)))


def _pairwise_build(draw):
    return (), {"p": draw(st.sampled_from([2.0, 1.0, 3.0])), "eps": draw(st.sampled_from([1e-6, 1e-3])),
                "keepdim": draw(st.booleans())}


def _pairwise_sample(draw, args, kwargs, dtype, device):
    # x2 from a range apart from x1's: x1 - x2 + eps stays off p = 1's kink at 0
    sizes = shape(draw, 1, 2, 1, 4)
    far = draw(st.sampled_from((Domain(2.5, 4.5), Domain(-4.5, -2.5))))
    return Sample((tensor(draw, sizes, dtype, device), tensor(draw, sizes, dtype, device, far)))


def _pairwise_twin(lib, module, inputs):
    """F.pairwise_distance with the module's order, which torch stores as ``norm``."""
    return lib.nn.functional.pairwise_distance(*inputs, module.norm, module.eps, module.keepdim)


def _bilinear_build(draw):
    return (draw(ints(1, 4)), draw(ints(1, 4)), draw(ints(1, 4))), {"bias": draw(st.booleans())}


def _bilinear_sample(draw, args, kwargs, dtype, device):
    lead = tuple(draw(st.lists(ints(1, 3), max_size=2)))
    return Sample((tensor(draw, lead + (args[0],), dtype, device), tensor(draw, lead + (args[1],), dtype, device)))


register(
    _mirror("CosineSimilarity", _cosine_build, _cosine_sample, gradgrad=True),
    _mirror("PairwiseDistance", _pairwise_build, _pairwise_sample, gradgrad=True, functional=_pairwise_twin),
    _mirror("Bilinear", _bilinear_build, _bilinear_sample, gradgrad=True),
)


# ----- EmbeddingBag ----------------------------------------------------------------------------------------------
def _bag_build(draw):
    num, dim = draw(ints(1, 6)), draw(ints(1, 4))
    kwargs = {"mode": draw(st.sampled_from(["sum", "mean", "max"])), "include_last_offset": draw(st.booleans()),
              "padding_idx": draw(st.sampled_from([None, 0, -1]))}
    if draw(ints(0, 3)) == 0:
        kwargs["max_norm"] = draw(st.sampled_from([1.0, 2.0]))
    return (num, dim), kwargs


def _bag_sample(draw, args, kwargs, dtype, device):
    rows = args[0]
    if draw(st.booleans()):  # 2-D input: one bag per row (include_last_offset plays no part)
        indices = index_tensor(draw, (draw(ints(1, 3)), draw(ints(0, 3))), rows, device)
        forward = {}
    else:
        indices = index_tensor(draw, (draw(ints(0, 6)),), rows, device)
        starts = sorted(draw(st.lists(ints(0, indices.numel()), min_size=1, max_size=4)))
        starts[0] = 0
        if kwargs["include_last_offset"]:
            starts.append(indices.numel())
        forward = {"offsets": torch.tensor(starts, device=device)}
    if kwargs["mode"] == "sum" and draw(st.booleans()):
        weights = tensor(draw, tuple(indices.shape), dtype, device)
        return Sample((indices, forward.get("offsets"), weights), grad_args=(2,))
    return Sample((indices,) + ((forward["offsets"],) if forward else ()))


_BAG_NOTE = ("torch's embedding_bag backward is not differentiable (no second derivative); max_norm renormalises the "
             "weight rows in place in both libraries")
register(_mirror("EmbeddingBag", _bag_build, _bag_sample, note=_BAG_NOTE, functional="embedding_bag"))


# ----- normalisation ---------------------------------------------------------------------------------------------
def _channels_at_1(args, kwargs, rank):
    return 1, args[0]


register(
    _mirror("BatchNorm3d", _nm._bn_build, _ranked_sample((5,), min_side=2, channels=_channels_at_1), gradgrad=True,
            functional=_nm._batch_norm_twin),
    _mirror("SyncBatchNorm", _nm._bn_build, _ranked_sample((2, 3, 4, 5), min_side=2, channels=_channels_at_1),
            gradgrad=True, functional=_nm._batch_norm_twin,
            note="one process: torch's SyncBatchNorm falls back to batch norm (no process group is initialised)"),
)


def _instance_build(draw):
    return (draw(ints(1, 3)),), {"eps": draw(st.sampled_from([1e-5, 1e-3])), "momentum": draw(st.sampled_from([0.1, 0.5])),
                                 "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}


def _instance_sample(spatial_dims: int):
    def sample(draw, args, kwargs, dtype, device):
        batched = draw(ints(0, 3)) > 0
        # at least four values per (sample, channel): fewer make float32 cancellation dominate (see batch norm)
        spatial = [draw(ints(4, 6))] + [draw(ints(1, 3)) for _ in range(spatial_dims - 1)]
        sizes = ([draw(ints(1, 2))] if batched else []) + [args[0]] + spatial
        return Sample((tensor(draw, sizes, dtype, device),))

    return sample


for _dims in (1, 2, 3):
    register(_mirror(f"InstanceNorm{_dims}d", _instance_build, _instance_sample(_dims), gradgrad=True))


def _rms_build(draw):
    normalized = tuple(draw(st.lists(ints(1, 4), min_size=1, max_size=2)))
    normalized = normalized[:-1] + (max(normalized[-1], 2),)
    return ((normalized if len(normalized) > 1 or draw(st.booleans()) else normalized[0],),
            {"eps": draw(st.sampled_from([None, 1e-5, 1e-2])), "elementwise_affine": draw(st.booleans())})


def _rms_sample(draw, args, kwargs, dtype, device):
    normalized = args[0] if isinstance(args[0], tuple) else (args[0],)
    return Sample((tensor(draw, shape(draw, 0, 2, 1, 3) + normalized, dtype, device),))


def _lrn_build(draw):
    kwargs = {}
    if draw(st.booleans()):
        kwargs = {"alpha": draw(st.sampled_from([1e-4, 0.5])), "beta": draw(st.sampled_from([0.75, 1.5])),
                  "k": draw(st.sampled_from([1.0, 2.0]))}
    return (draw(ints(1, 4)),), kwargs


def _lrn_sample(draw, args, kwargs, dtype, device):
    return Sample((_fm._lrn_sample(draw, dtype, device, draw(st.sampled_from((3, 4)))).args[0],))


def _cross_map_build(draw):
    return (draw(ints(2, 5)),), {"alpha": draw(st.sampled_from([1e-4, 0.5])), "beta": draw(st.sampled_from([0.75, 1.5])),
                                 "k": draw(st.sampled_from([1, 2.0]))}


register(
    _mirror("RMSNorm", _rms_build, _rms_sample, gradgrad=True),
    _mirror("LocalResponseNorm", _lrn_build, _lrn_sample, gradgrad=True, dtypes=FLOATS,
            note="torch pools 4-d inputs with avg_pool3d, whose CPU kernel has no float16/bfloat16"),
    _mirror("CrossMapLRN2d", _cross_map_build, _ranked_sample((4,), min_side=1), dtypes=FLOATS,
            note="torch's legacy autograd Function: its backward is not the derivative of its forward (gradcheck "
                 "fails on it), neuronix reproduces both; its out= arguments refuse a second derivative; size >= 2 "
                 "(torch's backward fails for size 1)"),
)


# ----- lazy norms: built, then materialised by one eval-mode forward on zeros (torch's draws at that point) ----------
def _materialised(lib, name: str, rank: int):
    def build(channels, *args, **kwargs):
        module = getattr(lib.nn, name)(*args, **kwargs)
        zeros = torch.zeros((2, channels) + (4,) * (rank - 2))
        module.eval()  # eval: the running statistics stay as reset
        if lib is nx:
            module(nx.Tensor(zeros))
        else:
            with torch.no_grad():
                module(zeros)
        return module.train()

    return build


def _lazy(name: str, rank: int, build, sample) -> ModuleMirror:
    return ModuleMirror(f"nn.{name}", _materialised(nx, name, rank), _materialised(torch, name, rank), build, sample,
                        gradgrad=True, functional=_nm._batch_norm_twin if "Batch" in name else None,
                        note="materialised by an eval forward on zeros of the drawn channels, then compared as the "
                             "eager class")


for _dims, _rank in ((1, 3), (2, 4), (3, 5)):
    register(
        _lazy(f"LazyBatchNorm{_dims}d", _rank, _nm._bn_build, _ranked_sample((_rank,), min_side=2, channels=_channels_at_1)),
        _lazy(f"LazyInstanceNorm{_dims}d", _rank, _instance_build, _instance_sample(_dims)),
    )


# ----- losses ----------------------------------------------------------------------------------------------------
def _reduction_build(**extra):
    def build(draw):
        kwargs = {"reduction": draw(REDUCTIONS)}
        kwargs.update({k: draw(v) for k, v in extra.items()})
        return (), kwargs

    return build


def _poisson_sample(draw, args, kwargs, dtype, device):
    sizes = shape(draw, 0, 3, 1, 4)
    x = tensor(draw, sizes, dtype, device, REAL if kwargs["log_input"] else POSITIVE)
    # Stirling's term applies where target > 1: the target stays off that switch
    return Sample((x, tensor(draw, sizes, dtype, device, Domain(0.2, 4.0, kinks=(1.0,), away=0.1))))


def _gaussian_sample(draw, args, kwargs, dtype, device):
    return Sample(_fm._gaussian(draw, dtype, device).args)


def _margin_ranking_sample(draw, args, kwargs, dtype, device):
    sizes = shape(draw, 0, 3, 1, 4)
    margin = kwargs["margin"]
    x1 = tensor(draw, sizes, dtype, device)
    diff = tensor(draw, sizes, dtype, device, Domain(-2.0, 2.0, kinks=(-margin, margin), away=0.15))
    return Sample((x1, (x1 - diff).to(dtype), _fm._signs(draw, sizes, dtype, device)), grad_args=(0, 1))


def _hinge_sample(draw, args, kwargs, dtype, device):
    sizes = shape(draw, 0, 3, 1, 4)
    x = tensor(draw, sizes, dtype, device, Domain(-2.0, 3.0, kinks=(kwargs["margin"],), away=0.15))
    return Sample((x, _fm._signs(draw, sizes, dtype, device, (1.0, -1.0, 1.0, -1.0, 0.0))), grad_args=(0,))


def _soft_margin_sample(draw, args, kwargs, dtype, device):
    sizes = shape(draw, 0, 3, 1, 4)
    return Sample((tensor(draw, sizes, dtype, device, WIDE), _fm._signs(draw, sizes, dtype, device)), grad_args=(0,))


def _cosine_embedding_sample(draw, args, kwargs, dtype, device):
    return Sample(_fm._cosine_embedding(False)(draw, dtype, device).args, grad_args=(0, 1))


def _classes_build(with_p: bool):
    def build(draw):
        classes = draw(ints(1, 4))
        kwargs = {"reduction": draw(REDUCTIONS)}
        if with_p:
            kwargs.update(p=draw(st.sampled_from([1, 2])), margin=draw(st.sampled_from([1.0, 0.5])))
        if draw(st.booleans()):
            gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
            kwargs["weight"] = torch.rand(classes, generator=gen, dtype=torch.float64) + 0.5
        return (classes,), kwargs

    return build


def _multilabel_soft_sample(draw, args, kwargs, dtype, device):
    classes = args[0]
    sizes = (draw(ints(1, 3)), classes) if draw(ints(0, 3)) else (classes,)
    return Sample((tensor(draw, sizes, dtype, device, WIDE), tensor(draw, sizes, dtype, device, Domain(0.0, 1.0))))


def _multi_margin_sample(draw, args, kwargs, dtype, device):
    classes = args[0]
    batched = draw(ints(0, 3)) > 0
    n = draw(ints(1, 3))
    x = tensor(draw, (n, classes) if batched else (classes,), dtype, device)
    return Sample((x, index_tensor(draw, (n,) if batched else (), classes, device)), grad_args=(0,))


def _multilabel_margin_sample(draw, args, kwargs, dtype, device):
    return Sample(_fm._multilabel_margin(draw, dtype, device).args, grad_args=(0,))


def _triplet_sample(draw, args, kwargs, dtype, device):
    return Sample(_fm._triplet(False)(draw, dtype, device).args)


_DISTANCES = {
    "default": (None, None),
    "cosine": (lambda a, b: 1.0 - nx.nn.functional.cosine_similarity(a, b, dim=-1),
               lambda a, b: 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)),
    "pairwise module": (nx.nn.PairwiseDistance(p=1.0), torch.nn.PairwiseDistance(p=1.0)),
}


def _with_distance(side: int):
    def build(distance: str, **kwargs):
        lib = nx if side == 0 else torch
        return lib.nn.TripletMarginWithDistanceLoss(distance_function=_DISTANCES[distance][side], **kwargs)

    return build


def _triplet_distance_build(draw):
    return (draw(st.sampled_from(tuple(_DISTANCES))),), {"margin": draw(st.sampled_from([1.0, 0.3])),
                                                          "swap": draw(st.booleans()), "reduction": draw(REDUCTIONS)}


def _drop_first(name: str):
    """The loss class, constructed without the drawn first build arg (a size the sample needs)."""
    return (lambda first, **kw: getattr(nx.nn, name)(**kw)), (lambda first, **kw: getattr(torch.nn, name)(**kw))


def _weighted_mirror(name: str, build, sample, **kw) -> ModuleMirror:
    nx_build, torch_build = _drop_first(name)
    return ModuleMirror(f"nn.{name}", nx_build, torch_build, build, sample, **kw)


_NO_GRADGRAD = "torch has no second derivative of its {} kernel; its CPU kernel has no float16/bfloat16"
register(
    _mirror("PoissonNLLLoss", _reduction_build(log_input=st.booleans(), full=st.booleans(),
                                               eps=st.sampled_from([1e-8, 1e-3])), _poisson_sample, gradgrad=True),
    _mirror("GaussianNLLLoss", _reduction_build(full=st.booleans(), eps=st.sampled_from([1e-6, 1e-3])), _gaussian_sample,
            gradgrad=True),
    _mirror("MarginRankingLoss", _reduction_build(margin=st.sampled_from([0.0, 0.5])), _margin_ranking_sample,
            gradgrad=True),
    _mirror("HingeEmbeddingLoss", _reduction_build(margin=st.sampled_from([1.0, 0.5])), _hinge_sample, gradgrad=True),
    _mirror("SoftMarginLoss", _reduction_build(), _soft_margin_sample, gradgrad=True),
    _mirror("CosineEmbeddingLoss", _reduction_build(margin=st.sampled_from([0.0, 0.3, -0.2])), _cosine_embedding_sample,
            gradgrad=True),
    _weighted_mirror("MultiLabelSoftMarginLoss", _classes_build(False), _multilabel_soft_sample, gradgrad=True),
    _weighted_mirror("MultiMarginLoss", _classes_build(True), _multi_margin_sample, dtypes=FLOATS,
                     note=_NO_GRADGRAD.format("multi_margin_loss")),
    _mirror("MultiLabelMarginLoss", _reduction_build(), _multilabel_margin_sample, dtypes=FLOATS,
            note=_NO_GRADGRAD.format("multilabel_margin_loss")),
    _mirror("TripletMarginLoss", _reduction_build(margin=st.sampled_from([1.0, 0.3]), p=st.sampled_from([2.0, 1.0, 3.0]),
                                                  swap=st.booleans()), _triplet_sample, gradgrad=True),
    ModuleMirror("nn.TripletMarginWithDistanceLoss", _with_distance(0), _with_distance(1), _triplet_distance_build,
                 _triplet_sample, gradgrad=True, functional=None),
    ModuleMirror("nn.NLLLoss2d", *_nm._class_module("NLLLoss2d"), _nm._class_build(False), _nm._class_sample(False),
                 gradgrad=True),
)


# ----- CTCLoss: differentiated in the logits (torch's gradient in log_probs assumes normalised rows) -----------------
class _LogSoftmaxThen:
    """Builds ``lib``'s module whose forward is ``loss(logits.log_softmax(-1), *rest)``; ``loss`` is its child."""

    def __init__(self, lib) -> None:
        self.lib = lib

    def __call__(self, **kwargs):
        lib = self.lib

        class LogSoftmaxThenCTC(lib.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.loss = lib.nn.CTCLoss(**kwargs)

            def forward(self, logits, *rest):
                return self.loss(logits.log_softmax(-1), *rest)

        return LogSoftmaxThenCTC()


def _ctc_build(draw):
    return (), {"reduction": draw(REDUCTIONS), "zero_infinity": draw(st.booleans())}


def _ctc_sample(draw, args, kwargs, dtype, device):
    s = _fm._ctc(draw, dtype, device)
    logits, targets, il, tl = s.args
    if s.kwargs["blank"] != 0:  # the module's blank is its default here: relabel the targets away from 0
        targets = torch.where(targets == 0, torch.full_like(targets, s.kwargs["blank"]), targets)
    return Sample((logits, targets, il, tl), grad_args=(0,))


def _ctc_twin(lib, module, inputs):
    loss = module.loss
    return lib.nn.functional.ctc_loss(inputs[0].log_softmax(-1), *inputs[1:], loss.blank, loss.reduction, loss.zero_infinity)


register(ModuleMirror("nn.CTCLoss", _LogSoftmaxThen(nx), _LogSoftmaxThen(torch), _ctc_build, _ctc_sample, dtypes=FLOATS,
                      functional=_ctc_twin,
                      note="through log_softmax, as the functional mirror; " + _NO_GRADGRAD.format("ctc_loss")))


# ----- AdaptiveLogSoftmaxWithLoss, LinearCrossEntropyLoss ------------------------------------------------------------
def _adaptive_build(draw):
    n_classes = draw(ints(3, 8))
    cuts = sorted(draw(st.sets(ints(1, n_classes - 1), min_size=1, max_size=3)))
    return (draw(ints(2, 8)), n_classes, cuts), {"div_value": draw(st.sampled_from([4.0, 2.0, 1.0])),
                                                 "head_bias": draw(st.booleans())}


def _adaptive_sample(draw, args, kwargs, dtype, device):
    in_features, n_classes = args[0], args[1]
    if draw(ints(0, 3)) == 0:  # unbatched: a 1-d input and a 0-d target
        return Sample((tensor(draw, (in_features,), dtype, device), index_tensor(draw, (), n_classes, device)))
    n = draw(ints(1, 5))
    return Sample((tensor(draw, (n, in_features), dtype, device), index_tensor(draw, (n,), n_classes, device)))


def _adaptive_method(lib, method: str):
    """A module whose forward is ``AdaptiveLogSoftmaxWithLoss.<method>`` (the driver calls forward)."""

    def build(*args, **kwargs):
        class Method(lib.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.asm = lib.nn.AdaptiveLogSoftmaxWithLoss(*args, **kwargs)

            def forward(self, x):
                return getattr(self.asm, method)(x)

        return Method()

    return build


def _adaptive_rows(draw, args, kwargs, dtype, device):
    return Sample((tensor(draw, (draw(ints(1, 5)), args[0]), dtype, device),))


def _lce_build(draw):
    classes = draw(ints(2, 4))
    kwargs = {"out_features": draw(st.sampled_from([(), (), (2,), (2, 1)])), "bias": draw(st.booleans()),
              "reduction": draw(REDUCTIONS), "label_smoothing": draw(st.sampled_from([0.0, 0.2])),
              "ignore_index": draw(st.sampled_from([None, 0]))}
    if draw(st.booleans()):
        gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
        kwargs["weight"] = torch.rand(classes, generator=gen, dtype=torch.float64) + 0.5
    return (draw(ints(1, 4)), classes), kwargs


def _lce_sample(draw, args, kwargs, dtype, device):
    in_features, classes = args
    out = kwargs["out_features"]
    batched = bool(out) or draw(ints(0, 3)) > 0
    lead = (draw(ints(1, 3)),) if batched else ()
    x = tensor(draw, lead + (in_features,), dtype, device)
    if kwargs["ignore_index"] is None and draw(st.booleans()):  # probabilities (ignore_index refuses them)
        gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
        probs = torch.rand(lead + (classes,) + out, generator=gen, dtype=torch.float64).softmax(len(lead))
        return Sample((x, probs.to(dtype=dtype, device=device)), grad_args=(0,))
    return Sample((x, index_tensor(draw, lead + out, classes, device)))


def _tuple(result):
    return tuple(result)


register(
    _mirror("AdaptiveLogSoftmaxWithLoss", _adaptive_build, _adaptive_sample, gradgrad=True, output=_tuple),
    ModuleMirror("nn.AdaptiveLogSoftmaxWithLoss[log_prob]", _adaptive_method(nx, "log_prob"),
                 _adaptive_method(torch, "log_prob"), _adaptive_build, _adaptive_rows, gradgrad=True),
    ModuleMirror("nn.AdaptiveLogSoftmaxWithLoss[predict]", _adaptive_method(nx, "predict"),
                 _adaptive_method(torch, "predict"), _adaptive_build, _adaptive_rows),
    _mirror("LinearCrossEntropyLoss", _lce_build, _lce_sample, gradgrad=True),
)


# ----- containers ------------------------------------------------------------------------------------------------
def _parameter_list_net(lib, sizes):
    class ParameterListNet(lib.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = lib.nn.ParameterList(torch.randn(a, b) / b for a, b in zip(sizes, sizes[1:]))
            self.weights.append(torch.zeros(sizes[-1]))  # a plain tensor: wrapped in a Parameter

        def forward(self, x):
            for w in self.weights[:-1]:
                x = (x @ w).tanh()
            return x + self.weights[-1]

    return ParameterListNet()


def _parameter_dict_net(lib, sizes):
    class ParameterDictNet(lib.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # a plain dict: added in sorted key order, as torch
            self.params = lib.nn.ParameterDict({"w2": torch.randn(sizes[1], sizes[2]), "w1": torch.randn(sizes[0], sizes[1])})
            self.params.update([("b", lib.nn.Parameter(torch.zeros(sizes[2])))])

        def forward(self, x):
            return (x @ self.params["w1"]).sigmoid() @ self.params["w2"] + self.params["b"]

    return ParameterDictNet()


def _container_net(lib, sizes):
    class ContainerNet(lib.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            import warnings

            with warnings.catch_warnings():  # deprecated in torch (FutureWarning), as in neuronix
                warnings.simplefilter("ignore", FutureWarning)
                self.body = lib.nn.Container(first=lib.nn.Linear(sizes[0], sizes[1]), act=lib.nn.Tanh(),
                                             last=lib.nn.Linear(sizes[1], sizes[2]))

        def forward(self, x):
            return self.body.last(self.body.act(self.body.first(x)))

    return ContainerNet()


def _data_parallel(lib, sizes):
    return lib.nn.DataParallel(_nm._mlp(lib, sizes))


for _name, _net in (("ParameterList", _parameter_list_net), ("ParameterDict", _parameter_dict_net),
                    ("Container", _container_net), ("DataParallel", _data_parallel)):
    register(ModuleMirror(f"nn.{_name}", lambda sizes, _net=_net: _net(nx, sizes), lambda sizes, _net=_net: _net(torch, sizes),
                          _nm._sizes_build, _nm._sizes_sample, gradgrad=True, functional=None))
