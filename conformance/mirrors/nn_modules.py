"""Mirrors of every public ``nx.nn`` module against the ``torch.nn`` class of the same name.

Each entry draws constructor arguments (``build``) and forward inputs that suit them
(``sample``); the module driver (``conformance/kinds/module.py``) checks the default
initialisation, loads torch's state_dict, and compares outputs, input and parameter
gradients and buffers in train and eval mode, and the module's ``nn.functional`` twin
(derived from the class name; ``functional=`` where the name does not tell). Shapes include batch of 1, odd spatial
sizes, stride > kernel, groups > 1, dilation > 1 and channels-last inputs.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import ModuleMirror, Sample, register
from conformance.strategies import NONZERO, POSITIVE, PROB, REAL, Domain, index_tensor, nonempty_shape, shape, tensor

ints = st.integers
REDUCTIONS = st.sampled_from(["none", "mean", "sum"])


def _mirror(name: str, build, sample, **kw) -> ModuleMirror:
    """``nx.nn.<name>`` vs ``torch.nn.<name>``."""
    return ModuleMirror(f"nn.{name}", getattr(nx.nn, name), getattr(torch.nn, name), build, sample, **kw)


def _maybe_channels_last(draw, x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4 and draw(st.booleans()):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _pair(draw, low: int, high: int):
    """An int or a 2-tuple of ints in ``[low, high]``."""
    return draw(st.one_of(ints(low, high), st.tuples(ints(low, high), ints(low, high))))


def _two(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple) else (v, v)


# ----- Linear, Identity, Flatten, Unflatten ---------------------------------------------------
def _linear_build(draw):
    return (draw(ints(1, 5)), draw(ints(1, 5))), {"bias": draw(st.booleans())}


def _linear_sample(draw, args, kwargs, dtype, device):
    batch = shape(draw, 0, 2, 1, 4)
    return Sample((tensor(draw, batch + (args[0],), dtype, device),))


def _any_sample(domain: Domain = REAL, min_dims: int = 0):
    def sample(draw, args, kwargs, dtype, device):
        return Sample((tensor(draw, shape(draw, min_dims, 4, 0, 4), dtype, device, domain),))

    return sample


def _flatten_build(draw):
    return (), {"start_dim": draw(ints(-2, 1)), "end_dim": draw(st.sampled_from([-1, 2, 3]))}


def _flatten_sample(draw, args, kwargs, dtype, device):
    return Sample((tensor(draw, nonempty_shape(draw, 4, 4, 3), dtype, device),))


def _unflatten_build(draw):
    sizes = draw(st.sampled_from([(2, 3), (3, 2), (-1, 2), (6,), (1, 6), (2, -1, 1)]))
    return (draw(ints(-2, 1)), sizes), {}


def _unflatten_sample(draw, args, kwargs, dtype, device):
    s = list(nonempty_shape(draw, 2, 3, 3))
    s[args[0]] = 6
    return Sample((tensor(draw, s, dtype, device),))


register(
    _mirror("Linear", _linear_build, _linear_sample, gradgrad=True),
    _mirror("Identity", lambda d: ((d(ints(0, 3)),), {"unused": True}), _any_sample(), gradgrad=True),
    _mirror("Flatten", _flatten_build, _flatten_sample, gradgrad=True),
    _mirror("Unflatten", _unflatten_build, _unflatten_sample, gradgrad=True),
)


# ----- convolutions ----------------------------------------------------------------------
def _conv_build(dims: int):
    def build(draw):
        groups = draw(ints(1, 3))
        in_ch, out_ch = groups * draw(ints(1, 2)), groups * draw(ints(1, 2))
        kernel = draw(ints(1, 3)) if dims == 1 else _pair(draw, 1, 3)
        kwargs = {"groups": groups, "bias": draw(st.booleans()), "dilation": draw(ints(1, 2))}
        padding_kind = draw(st.sampled_from(["int", "same", "valid"]))
        if padding_kind == "int":
            kwargs["stride"] = draw(ints(1, 4))  # stride > kernel included
            kwargs["padding"] = draw(ints(0, 2))
        else:
            kwargs["padding"] = padding_kind
        kwargs["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        return (in_ch, out_ch, kernel), kwargs

    return build


def _conv_sample(dims: int):
    def sample(draw, args, kwargs, dtype, device):
        in_ch, _, kernel = args
        kernel = (kernel,) * dims if isinstance(kernel, int) else kernel
        pad = kwargs["padding"] if isinstance(kwargs["padding"], int) else 0
        spatial = []
        for k in kernel:
            span = kwargs["dilation"] * (k - 1) + 1
            low = max(1, span - 2 * pad, pad + 1 if kwargs["padding_mode"] != "zeros" else 1)
            spatial.append(draw(ints(low, low + 4)))
        batch = [] if draw(ints(0, 4)) == 0 else [draw(ints(1, 3))]  # unbatched inputs too
        x = tensor(draw, batch + [in_ch] + spatial, dtype, device)
        return Sample((_maybe_channels_last(draw, x),))

    return sample


def _conv_transpose_build(draw):
    groups = draw(ints(1, 2))
    in_ch, out_ch = groups * draw(ints(1, 2)), groups * draw(ints(1, 2))
    kernel = _pair(draw, 1, 3)
    stride, dilation = draw(ints(1, 3)), draw(ints(1, 2))
    k = min(_two(kernel))
    padding = draw(ints(0, dilation * (k - 1) // 2))
    output_padding = draw(ints(0, max(stride, dilation) - 1))
    return (in_ch, out_ch, kernel), {"stride": stride, "padding": padding, "output_padding": output_padding,
                                     "groups": groups, "bias": draw(st.booleans()), "dilation": dilation}


def _conv_transpose_sample(draw, args, kwargs, dtype, device):
    h, w = draw(ints(1, 5)), draw(ints(1, 5))
    x = _maybe_channels_last(draw, tensor(draw, (draw(ints(1, 3)), args[0], h, w), dtype, device))
    if kwargs["output_padding"] == 0 and kwargs["stride"] > 1 and draw(st.booleans()):
        kh, kw = _two(args[2])
        d, s, p = kwargs["dilation"], kwargs["stride"], kwargs["padding"]
        size = [(n - 1) * s - 2 * p + d * (k - 1) + 1 + draw(ints(0, s - 1)) for n, k in ((h, kh), (w, kw))]
        return Sample((x,), {"output_size": size})
    return Sample((x,))


register(
    _mirror("Conv1d", _conv_build(1), _conv_sample(1), gradgrad=True),
    _mirror("Conv2d", _conv_build(2), _conv_sample(2), gradgrad=True),
    _mirror("ConvTranspose2d", _conv_transpose_build, _conv_transpose_sample, gradgrad=True),
)


# ----- normalisation ---------------------------------------------------------------------
def _bn_build(draw):
    kwargs = {"eps": draw(st.sampled_from([1e-5, 1e-3])), "momentum": draw(st.sampled_from([0.1, 0.5, None])),
              "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}
    if kwargs["affine"] and draw(st.booleans()):
        kwargs["bias"] = False
    return (draw(ints(1, 4)),), kwargs


def _bn_sample(spatial_dims):
    def sample(draw, args, kwargs, dtype, device):
        dims = draw(st.sampled_from(spatial_dims))
        n = draw(ints(2, 4)) if dims == 0 else draw(ints(1, 3))
        s = (n, args[0]) + tuple(draw(ints(2, 4)) for _ in range(dims))
        return Sample((_maybe_channels_last(draw, tensor(draw, s, dtype, device)),))

    return sample


def _ln_build(draw):
    normalized = tuple(draw(st.lists(ints(1, 4), min_size=1, max_size=2)))
    kwargs = {"eps": draw(st.sampled_from([1e-5, 1e-3])), "elementwise_affine": draw(st.booleans()),
              "bias": draw(st.booleans())}
    return (normalized if len(normalized) > 1 or draw(st.booleans()) else normalized[0],), kwargs


def _ln_sample(draw, args, kwargs, dtype, device):
    normalized = args[0] if isinstance(args[0], tuple) else (args[0],)
    return Sample((tensor(draw, shape(draw, 0, 2, 1, 3) + normalized, dtype, device),))


def _gn_build(draw):
    groups = draw(ints(1, 3))
    return (groups, groups * draw(ints(1, 2))), {"eps": draw(st.sampled_from([1e-5, 1e-3])), "affine": draw(st.booleans())}


def _gn_sample(draw, args, kwargs, dtype, device):
    s = (draw(ints(1, 3)), args[1]) + shape(draw, 0, 2, 1, 4)
    if math.prod(s[2:]) * args[1] // args[0] == 1:
        # one value per group: both libraries raise (tests/test_functional.py), nothing to compare
        s = s + (2,)
    return Sample((_maybe_channels_last(draw, tensor(draw, s, dtype, device)),))


def _batch_norm_twin(lib, module, inputs):
    """``F.batch_norm`` as ``nn.BatchNorm*d`` calls it: batch statistics in training or without running ones
    (copies of the running ones, so the twin moves nothing; the momentum only moves them)."""
    mean = None if module.running_mean is None else module.running_mean.clone()
    var = None if module.running_var is None else module.running_var.clone()
    return lib.nn.functional.batch_norm(inputs[0], mean, var, module.weight, module.bias,
                                        module.training or mean is None, 0.1, module.eps)


register(
    _mirror("BatchNorm1d", _bn_build, _bn_sample((0, 1)), gradgrad=True, functional=_batch_norm_twin),
    _mirror("BatchNorm2d", _bn_build, _bn_sample((2,)), gradgrad=True, functional=_batch_norm_twin),
    _mirror("LayerNorm", _ln_build, _ln_sample, gradgrad=True),
    _mirror("GroupNorm", _gn_build, _gn_sample, gradgrad=True),
)


# ----- pooling ---------------------------------------------------------------------------
def _pool_input(draw, kernel, stride, padding, dilation, dtype, device):
    sizes = []
    for k, p, d in zip(_two(kernel), _two(padding), _two(dilation)):
        low = max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(draw(ints(low, low + 4)))
    batch = [] if draw(ints(0, 4)) == 0 else [draw(ints(1, 3))]
    x = tensor(draw, batch + [draw(ints(1, 3))] + sizes, dtype, device, Domain(-3.0, 3.0))
    return _maybe_channels_last(draw, x)


def _max_pool_build(draw):
    kernel, dilation = _pair(draw, 1, 3), draw(ints(1, 2))
    padding = draw(ints(0, min(_two(kernel)) // 2))
    return (kernel,), {"stride": draw(st.one_of(st.none(), ints(1, 4))), "padding": padding, "dilation": dilation,
                       "ceil_mode": draw(st.booleans()), "return_indices": draw(st.booleans())}


def _max_pool_sample(draw, args, kwargs, dtype, device):
    return Sample((_pool_input(draw, args[0], kwargs["stride"], kwargs["padding"], kwargs["dilation"], dtype, device),))


def _avg_pool_build(draw):
    kernel = _pair(draw, 1, 3)
    return (kernel,), {"stride": draw(st.one_of(st.none(), ints(1, 4))), "padding": draw(ints(0, min(_two(kernel)) // 2)),
                       "ceil_mode": draw(st.booleans()), "count_include_pad": draw(st.booleans()),
                       "divisor_override": draw(st.sampled_from([None, None, 1, 3]))}


def _avg_pool_sample(draw, args, kwargs, dtype, device):
    return Sample((_pool_input(draw, args[0], kwargs["stride"], kwargs["padding"], 1, dtype, device),))


def _adaptive_build(draw):
    size = draw(st.one_of(ints(1, 3), st.tuples(ints(1, 3), ints(1, 3)), st.tuples(st.none(), ints(1, 3))))
    return (size,), {}


def _adaptive_sample(draw, args, kwargs, dtype, device):
    return Sample((_pool_input(draw, draw(ints(1, 3)), 1, 0, 1, dtype, device),))


register(
    _mirror("MaxPool2d", _max_pool_build, _max_pool_sample, gradgrad=True),
    _mirror("AvgPool2d", _avg_pool_build, _avg_pool_sample, gradgrad=True),
    _mirror("AdaptiveAvgPool2d", _adaptive_build, _adaptive_sample, gradgrad=True),
)


# ----- Dropout, Embedding ----------------------------------------------------------------
def _embedding_build(draw):
    num, dim = draw(ints(2, 6)), draw(ints(1, 4))
    padding_idx = draw(st.one_of(st.none(), ints(-num, num - 1)))
    return (num, dim), {"padding_idx": padding_idx}


def _embedding_sample(draw, args, kwargs, dtype, device):
    return Sample((index_tensor(draw, shape(draw, 0, 2, 0, 4), args[0], device),))


register(
    _mirror("Dropout", lambda d: ((d(st.sampled_from([0.0, 0.2, 0.5, 1.0])),), {}), _any_sample(), gradgrad=True),
    _mirror("Embedding", _embedding_build, _embedding_sample, gradgrad=True),
)


# ----- activations -----------------------------------------------------------------------
def _const(*args, **kwargs):
    return lambda draw: (args, kwargs)


ACTIVATIONS = {
    "ReLU": (_const(), NONZERO),
    "ReLU6": (_const(), Domain(-8.0, 8.0, (0.0, 6.0), 0.2)),
    "GELU": (lambda d: ((), {"approximate": d(st.sampled_from(["none", "tanh"]))}), REAL),
    "Tanh": (_const(), REAL),
    "Sigmoid": (_const(), REAL),
    "SiLU": (_const(), REAL),
    "ELU": (lambda d: ((), {"alpha": d(st.sampled_from([1.0, 0.5, 2.0]))}), NONZERO),
    "SELU": (_const(), NONZERO),
    "LeakyReLU": (lambda d: ((), {"negative_slope": d(st.sampled_from([0.01, 0.2, -0.5]))}), NONZERO),
    "Softplus": (lambda d: ((), {"beta": d(st.sampled_from([1.0, 2.0, 0.5])), "threshold": d(st.sampled_from([20.0, 1.0]))}),
                 Domain(-2.0, 2.0, (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0), 0.1)),
    "Hardtanh": (lambda d: ((), {"min_val": d(st.sampled_from([-1.0, -0.5])), "max_val": d(st.sampled_from([1.0, 0.5]))}),
                 Domain(-2.0, 2.0, (-1.0, -0.5, 0.5, 1.0), 0.1)),
    "Hardswish": (_const(), Domain(-4.0, 4.0, (-3.0, 3.0), 0.2)),
    "Mish": (_const(), REAL),
}
for _name, (_build, _domain) in ACTIVATIONS.items():
    register(_mirror(_name, _build, _any_sample(_domain), gradgrad=True))


def _softmax_build(draw):
    return (draw(ints(-2, 1)),), {}


def _softmax_sample(draw, args, kwargs, dtype, device):
    return Sample((tensor(draw, shape(draw, 2, 4, 0, 4), dtype, device),))


register(
    _mirror("Softmax", _softmax_build, _softmax_sample, gradgrad=True),
    _mirror("LogSoftmax", _softmax_build, _softmax_sample, gradgrad=True),
)


class TorchSwish(torch.nn.Module):
    """The torch twin of ``nx.nn.Swish``: ``x * sigmoid(beta * x)``, ``beta`` a parameter when learnable."""

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        self.learnable = learnable
        self.beta = torch.nn.Parameter(torch.tensor(float(beta))) if learnable else float(beta)

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


def _swish_build(draw):
    return (), {"beta": draw(st.sampled_from([1.0, 0.5, 1.7])), "learnable": draw(st.booleans())}


register(ModuleMirror("nn.Swish", nx.nn.Swish, TorchSwish, _swish_build, _any_sample(), gradgrad=True))


# ----- losses ----------------------------------------------------------------------------
def _reduction_build(**extra):
    def build(draw):
        kwargs = {"reduction": draw(REDUCTIONS)}
        kwargs.update({k: draw(v) for k, v in extra.items()})
        return (), kwargs

    return build


def _pointwise_sample(target_domain: Domain = REAL, input_domain: Domain = REAL):
    def sample(draw, args, kwargs, dtype, device):
        s = shape(draw, 0, 3, 0, 4)
        return Sample((tensor(draw, s, dtype, device, input_domain), tensor(draw, s, dtype, device, target_domain)))

    return sample


def _class_build(probability_targets: bool):
    def build(draw):
        classes = draw(ints(2, 4))
        kwargs = {"reduction": draw(REDUCTIONS), "ignore_index": draw(st.sampled_from([-100, 0, 1]))}
        if draw(st.booleans()):
            gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
            kwargs["weight"] = torch.rand(classes, generator=gen) + 0.5
        if probability_targets:
            kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.3]))
        return (classes,), kwargs

    return build


def _class_module(cls_name: str):
    """The loss class, constructed without the drawn class count (the first build arg)."""
    return (lambda classes, **kw: getattr(nx.nn, cls_name)(**kw)), (lambda classes, **kw: getattr(torch.nn, cls_name)(**kw))


def _class_sample(allow_probabilities: bool):
    def sample(draw, args, kwargs, dtype, device):
        classes = args[0]
        n = draw(ints(1, 4))
        extra = tuple(draw(st.lists(ints(1, 3), max_size=2)))
        batched = draw(ints(0, 4)) > 0 or extra
        lead = (n,) if batched else ()
        # torch's nll_loss2d backward refuses a non-contiguous input ("grad_input must be contiguous")
        x = tensor(draw, lead + (classes,) + extra, dtype, device, contiguous=not allow_probabilities or None)
        if allow_probabilities and draw(st.booleans()):
            gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
            if kwargs["ignore_index"] != -100:
                # ignore_index with probability targets: both libraries raise (tests/test_functional.py)
                return Sample((x, index_tensor(draw, lead + extra, classes, device)))
            target = torch.rand(x.shape, generator=gen, dtype=torch.float64).softmax(1 if batched else 0)
            return Sample((x, target.to(dtype=dtype, device=device)), grad_args=(0,))
        return Sample((x, index_tensor(draw, lead + extra, classes, device)))

    return sample


_NLL_NX, _NLL_TORCH = _class_module("NLLLoss")
_CE_NX, _CE_TORCH = _class_module("CrossEntropyLoss")


def _bce_build(with_pos_weight: bool):
    def build(draw):
        kwargs = {"reduction": draw(REDUCTIONS)}
        last = draw(ints(1, 3))
        gen = torch.Generator().manual_seed(draw(ints(0, 2**31 - 1)))
        if draw(st.booleans()):
            kwargs["weight"] = torch.rand(last, generator=gen) + 0.5
        if with_pos_weight and draw(st.booleans()):
            kwargs["pos_weight"] = torch.rand(last, generator=gen) * 2
        return (last,), kwargs

    return build


def _bce_sample(input_domain: Domain):
    def sample(draw, args, kwargs, dtype, device):
        s = shape(draw, 0, 2, 1, 3) + (args[0],)
        return Sample((tensor(draw, s, dtype, device, input_domain), tensor(draw, s, dtype, device, PROB)))

    return sample


def _drop_first(cls_name: str):
    return (lambda last, **kw: getattr(nx.nn, cls_name)(**kw)), (lambda last, **kw: getattr(torch.nn, cls_name)(**kw))


def _kl_build(draw):
    return (), {"reduction": draw(st.sampled_from(["none", "mean", "sum", "batchmean"])), "log_target": draw(st.booleans())}


def _kl_sample(draw, args, kwargs, dtype, device):
    s = nonempty_shape(draw, 1, 3, 4)
    target_domain = REAL if kwargs["log_target"] else POSITIVE
    return Sample((tensor(draw, s, dtype, device), tensor(draw, s, dtype, device, target_domain)))


_BCE_NX, _BCE_TORCH = _drop_first("BCELoss")
_BCEL_NX, _BCEL_TORCH = _drop_first("BCEWithLogitsLoss")
register(
    _mirror("MSELoss", _reduction_build(), _pointwise_sample(), gradgrad=True),
    _mirror("L1Loss", _reduction_build(), _pointwise_sample(NONZERO, Domain(4.0, 6.0)), gradgrad=True),
    _mirror("SmoothL1Loss", _reduction_build(beta=st.sampled_from([1.0, 0.5, 2.0])), _pointwise_sample(), gradgrad=True),
    _mirror("HuberLoss", _reduction_build(delta=st.sampled_from([1.0, 0.5, 2.0])), _pointwise_sample(), gradgrad=True),
    ModuleMirror("nn.NLLLoss", _NLL_NX, _NLL_TORCH, _class_build(False), _class_sample(False), gradgrad=True),
    ModuleMirror("nn.CrossEntropyLoss", _CE_NX, _CE_TORCH, _class_build(True), _class_sample(True), gradgrad=True),
    ModuleMirror("nn.BCELoss", _BCE_NX, _BCE_TORCH, _bce_build(False), _bce_sample(PROB), gradgrad=True,
                 functional="binary_cross_entropy"),
    ModuleMirror("nn.BCEWithLogitsLoss", _BCEL_NX, _BCEL_TORCH, _bce_build(True), _bce_sample(REAL), gradgrad=True,
                 functional="binary_cross_entropy_with_logits"),
    _mirror("KLDivLoss", _kl_build, _kl_sample, gradgrad=True),
)


# ----- containers ------------------------------------------------------------------------
def _mlp(lib, sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [lib.nn.Linear(a, b), lib.nn.ReLU()]
    return lib.nn.Sequential(*layers[:-1])


def _list_net(lib, sizes):
    class ListNet(lib.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = lib.nn.ModuleList(lib.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

        def forward(self, x):
            for layer in self.layers[:-1]:
                x = lib.nn.functional.gelu(layer(x))
            return self.layers[-1](x)

    return ListNet()


def _dict_net(lib, sizes):
    class DictNet(lib.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = lib.nn.ModuleDict({"proj": lib.nn.Linear(sizes[0], sizes[1]), "act": lib.nn.Tanh(),
                                             "out": lib.nn.Linear(sizes[1], sizes[2])})

        def forward(self, x):
            for key in ("proj", "act", "out"):
                x = self.blocks[key](x)
            return x

    return DictNet()


def _sizes_build(draw):
    return (tuple(draw(st.lists(ints(1, 4), min_size=3, max_size=4))),), {}


def _sizes_sample(draw, args, kwargs, dtype, device):
    return Sample((tensor(draw, (draw(ints(1, 3)), args[0][0]), dtype, device, NONZERO),))


for _name, _net in (("Sequential", _mlp), ("ModuleList", _list_net), ("ModuleDict", _dict_net)):
    register(ModuleMirror(f"nn.{_name}", lambda sizes, _net=_net: _net(nx, sizes), lambda sizes, _net=_net: _net(torch, sizes),
                          _sizes_build, _sizes_sample, gradgrad=True))
