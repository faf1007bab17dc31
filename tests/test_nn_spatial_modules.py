"""The spatial layers of issue 14 against torch.nn: values, gradients (second order too), init under the same seed,
state_dict keys, reprs, errors; lazy modules (materialisation, class change, state_dict loading); fractional max
pooling (seeded samples, picks, NaN, gradients); padding, upsampling, shuffles, fold/unfold edge cases."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F
from neuronix.nn.modules.lazy import is_lazy


def _raw(t):
    return t.data if isinstance(t, nx.Tensor) else t


def _flat(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _pair(name: str, *args, seed: int = 0, **kwargs):
    """``nx.nn.<name>`` and ``torch.nn.<name>`` built after the same seed; torch's state loaded into neuronix's."""
    torch.manual_seed(seed)
    t_mod = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    n_mod = getattr(nx.nn, name)(*args, **kwargs)
    return n_mod, t_mod


def _check(n_mod, t_mod, *inputs, gradgrad: bool = False, seed: int = 1, **forward_kwargs):
    """Same outputs, gradients of the float inputs and parameters (and a second derivative) as torch."""
    n_mod.load_state_dict(t_mod.state_dict())
    t_in = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    n_in = [nx.Tensor(x.detach().clone(), requires_grad=x.is_floating_point()) for x in inputs]
    torch.manual_seed(seed)
    t_out = _flat(t_mod(*t_in, **forward_kwargs))
    torch.manual_seed(seed)
    n_out = _flat(n_mod(*n_in, **forward_kwargs))
    assert len(t_out) == len(n_out)
    for a, b in zip(n_out, t_out):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(_raw(a), b.detach(), rtol=1e-6, atol=1e-7, equal_nan=True)
    t_wrt = [x for x in t_in if x.requires_grad] + [p for p in t_mod.parameters()]
    n_wrt = [x for x in n_in if x.requires_grad] + [p for p in n_mod.parameters()]
    up = torch.randn_like(t_out[0].detach())
    t_up, n_up = up.clone().requires_grad_(gradgrad), nx.Tensor(up.clone(), requires_grad=gradgrad)
    t_g = torch.autograd.grad(t_out[0], t_wrt, t_up, create_graph=gradgrad, allow_unused=True)
    n_g = nx.autograd.grad(n_out[0], n_wrt, n_up, create_graph=gradgrad, allow_unused=True)
    for a, b in zip(n_g, t_g):
        assert (a is None) == (b is None)
        if b is not None:
            torch.testing.assert_close(_raw(a), b.detach(), rtol=1e-6, atol=1e-7)
    if gradgrad:  # the derivative of <grad, v> in the first input and in the upstream gradient
        used = [k for k, g in enumerate(t_g) if g is not None]
        vs = [torch.randn_like(t_g[k]) for k in used]
        t_dot = sum((t_g[k] * v).sum() for k, v in zip(used, vs))
        n_dot = sum((n_g[k] * nx.Tensor(v)).sum() for k, v in zip(used, vs))
        t_gg = torch.autograd.grad(t_dot, [t_wrt[0], t_up], allow_unused=True)
        n_gg = nx.autograd.grad(n_dot, [n_wrt[0], n_up], allow_unused=True)
        for a, b in zip(n_gg, t_gg):
            if b is None:
                assert a is None or not _raw(a).any()
            else:
                torch.testing.assert_close(_raw(a), b, rtol=1e-6, atol=1e-7)
    return n_out, t_out


def _same_state(n_mod, t_mod):
    n_sd, t_sd = n_mod.state_dict(), t_mod.state_dict()
    assert list(n_sd) == list(t_sd)
    for k in t_sd:
        assert torch.equal(_raw(n_sd[k]), t_sd[k]), k


# ----- convolutions ---------------------------------------------------------------------------------------------
CONVS = [
    ("Conv3d", (2, 4, (2, 3, 1)), {"stride": 2, "padding": 1, "padding_mode": "circular"}, (2, 2, 5, 6, 4)),
    ("Conv3d", (2, 2, 3), {"padding": "same", "groups": 2, "dilation": 2, "bias": False}, (2, 5, 5, 6)),
    ("Conv3d", (1, 3, 2), {"padding": 1, "padding_mode": "reflect", "stride": 3}, (1, 1, 3, 4, 3)),
    ("ConvTranspose1d", (2, 4, 3), {"stride": 2, "output_padding": 1}, (2, 2, 5)),
    ("ConvTranspose1d", (3, 3, 2), {"groups": 3, "dilation": 3, "padding": 1}, (3, 4)),
    ("ConvTranspose3d", (2, 4, 3), {"stride": 2, "groups": 2, "dilation": 2, "bias": False}, (2, 2, 3, 3, 2)),
    ("ConvTranspose3d", (1, 2, (1, 2, 3)), {"stride": (1, 2, 3), "padding": (0, 1, 1)}, (1, 2, 3, 2)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", CONVS)
def test_convolutions_match_torch_init_values_and_gradients(name, args, kwargs, shape):
    n_mod, t_mod = _pair(name, *args, **kwargs)
    _same_state(n_mod, t_mod)  # default init drawn as torch's
    assert repr(n_mod) == repr(t_mod)
    x = torch.randn(shape, dtype=torch.float64)
    _check(n_mod.double(), t_mod.double(), x, gradgrad=True)


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_transpose_output_size_as_torch(rank):
    n_mod, t_mod = _pair(f"ConvTranspose{rank}d", 2, 3, 3, stride=3, padding=1)
    x = torch.randn((1, 2) + (4,) * rank)
    for size in ([10] * rank, [11] * rank, [1, 3] + [12] * rank):  # every size within one stride, N and C leading
        _check(n_mod, t_mod, x, output_size=size)
    for bad in ([9] * rank, [13] * rank, [2] * (rank + 1)):
        with pytest.raises(ValueError) as t_err:
            t_mod(x, output_size=bad)
        with pytest.raises(ValueError) as n_err:
            n_mod(nx.Tensor(x), output_size=bad)
        assert ("output_size must have" in str(t_err.value)) == ("output_size must have" in str(n_err.value))
    unbatched = torch.randn((2,) + (4,) * rank)  # (C, *spatial): output_size may lead with C only
    _check(n_mod, t_mod, unbatched, output_size=[3] + [11] * rank)


def test_conv_transpose_refuses_what_torch_refuses():
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        torch.nn.ConvTranspose1d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose1d'):
        nx.nn.ConvTranspose1d(2, 2, 3, padding_mode="reflect")
    # torch refuses these at the first forward (RuntimeError / TypeError); neuronix already at construction, with a
    # ValueError naming the arguments (kept from ConvTranspose2d, tests/test_layers.py)
    for kwargs in ({"output_padding": 2, "stride": 2}, {"padding": "same"}):
        with pytest.raises((RuntimeError, TypeError)):
            torch.nn.ConvTranspose1d(2, 2, 3, **kwargs)(torch.randn(1, 2, 5))
        with pytest.raises(ValueError):
            nx.nn.ConvTranspose1d(2, 2, 3, **kwargs)
    with pytest.raises(ValueError, match="ConvTranspose3d"):
        nx.nn.ConvTranspose3d(2, 2, 3)(nx.randn(2, 4, 4))


def test_conv3d_rejects_wrong_rank_and_channels():
    conv = nx.nn.Conv3d(2, 2, 1)
    with pytest.raises(ValueError, match=r"D, H, W"):
        conv(nx.randn(2, 3, 3))
    with pytest.raises(ValueError, match="2 channels"):
        conv(nx.randn(1, 3, 2, 2, 2))


# ----- lazy modules ----------------------------------------------------------------------------------------------
LAZY = [
    ("LazyLinear", (3,), {}, (2, 5)),
    ("LazyLinear", (2,), {"bias": False}, (4,)),
    ("LazyConv1d", (4, 3), {"padding_mode": "reflect", "padding": 1}, (2, 3, 6)),
    ("LazyConv2d", (4, 3), {"padding": "same", "groups": 2}, (1, 2, 5, 5)),
    ("LazyConv3d", (2, 2), {"stride": 2}, (3, 4, 4, 4)),
    ("LazyConvTranspose1d", (4, 3), {"stride": 2}, (2, 3, 5)),
    ("LazyConvTranspose2d", (2, 3), {"groups": 2, "output_padding": 1, "stride": 2}, (2, 4, 3, 3)),
    ("LazyConvTranspose3d", (4, 3), {"bias": False}, (3, 2, 2, 2)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", LAZY)
def test_lazy_modules_materialise_as_torch_and_become_the_eager_class(name, args, kwargs, shape):
    n_mod, t_mod = _pair(name, *args, **kwargs)
    assert repr(n_mod) == repr(t_mod)
    assert n_mod.has_uninitialized_params() and all(is_lazy(p) for p in n_mod.parameters())
    x = torch.randn(shape)
    torch.manual_seed(5)
    t_out = t_mod(x)
    torch.manual_seed(5)
    n_out = n_mod(nx.Tensor(x))
    assert type(n_mod).__name__ == type(t_mod).__name__ == name.replace("Lazy", "")
    assert repr(n_mod) == repr(t_mod)
    _same_state(n_mod, t_mod)  # reset_parameters after materialising drew what torch's drew
    torch.testing.assert_close(n_out.data, t_out.detach())
    _check(n_mod, t_mod, x)  # and it is now the ordinary layer


def test_lazy_state_dict_round_trips_as_torch():
    t_src = torch.nn.LazyConv2d(4, 3)
    t_src(torch.randn(1, 2, 5, 5))
    lazy = nx.nn.LazyConv2d(4, 3)
    lazy.load_state_dict(t_src.state_dict())  # materialises from the checkpoint's shapes, as torch
    assert not lazy.has_uninitialized_params() and type(lazy).__name__ == "LazyConv2d"
    assert lazy.weight.shape == (4, 2, 3, 3) and torch.equal(lazy.weight.data, t_src.weight.detach())
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(lazy(nx.Tensor(x)).data, t_src(x).detach())
    assert type(lazy).__name__ == "Conv2d"
    # a still-lazy checkpoint leaves a lazy module lazy; its state_dict holds the placeholders, as torch's
    fresh, other = nx.nn.LazyLinear(3), nx.nn.LazyLinear(3)
    sd = other.state_dict()
    assert list(sd) == list(torch.nn.LazyLinear(3).state_dict()) and all(is_lazy(v) for v in sd.values())
    result = fresh.load_state_dict(sd)
    assert not result.missing_keys and not result.unexpected_keys and fresh.has_uninitialized_params()
    t_fresh = torch.nn.LazyLinear(3)
    t_fresh.load_state_dict(torch.nn.LazyLinear(3).state_dict())
    assert t_fresh.has_uninitialized_params()  # torch's behaviour too
    with pytest.raises(RuntimeError, match="size mismatch"):  # a placeholder cannot fill a shaped parameter
        nx.nn.Linear(2, 3).load_state_dict(sd)
    # inside a container too (the parent's load_state_dict reaches the lazy child)
    net = nx.nn.Sequential(nx.nn.LazyLinear(2), nx.nn.ReLU())
    t_net = torch.nn.Sequential(torch.nn.Linear(5, 2), torch.nn.ReLU())
    net.load_state_dict(t_net.state_dict())
    assert net[0].weight.shape == (2, 5)


def test_uninitialized_parameter_behaves_as_torchs():
    p = nx.nn.parameter.UninitializedParameter(dtype=torch.float64)
    t = torch.nn.parameter.UninitializedParameter(dtype=torch.float64)
    assert repr(p) == repr(t) == "<UninitializedParameter>"
    with pytest.raises(RuntimeError, match="Can't access the shape of an uninitialized parameter"):
        p.shape  # noqa: B018
    with pytest.raises(RuntimeError, match="shape of an uninitialized"):
        t.shape  # noqa: B018
    clone = copy.deepcopy(p)
    assert type(clone) is type(p) and clone.dtype == torch.float64 and clone.requires_grad
    p.materialize((2, 3))
    assert type(p) is nx.nn.Parameter and p.shape == (2, 3) and p.dtype == torch.float64 and p.requires_grad
    b = nx.nn.parameter.UninitializedBuffer()
    assert not b.requires_grad and nx.nn.parameter.is_lazy(b)
    b.materialize(4, dtype=torch.float16)
    assert type(b) is nx.Tensor and b.shape == (4,) and b.dtype == torch.float16
    assert nx.nn.UninitializedParameter is nx.nn.parameter.UninitializedParameter


def test_lazy_module_follows_to_and_dtype_before_materialising():
    n_mod = nx.nn.LazyConv1d(2, 3, dtype=torch.float64)
    n_mod(nx.randn(1, 4, 5, dtype=torch.float64))
    assert n_mod.weight.dtype == torch.float64 and n_mod.weight.shape == (2, 4, 3)
    moved = nx.nn.LazyLinear(3).double()
    moved(nx.randn(2, 4, dtype=torch.float64))
    assert moved.weight.dtype == torch.float64


def test_lazy_errors_as_torch():
    for mod, x, err in ((nx.nn.LazyConv2d(2, 3), nx.randn(3, 5), RuntimeError),
                        (nx.nn.LazyConv2d(2, 1, groups=2), nx.randn(1, 3, 4, 4), ValueError)):
        t_mod = getattr(torch.nn, type(mod).__name__)(2, mod.kernel_size, groups=mod.groups)
        with pytest.raises(err) as t_err:
            t_mod(x.data)
        with pytest.raises(err) as n_err:
            mod(x)
        assert str(t_err.value).split(",")[0][:30] == str(n_err.value).split(",")[0][:30]
    with pytest.raises(RuntimeError, match="DataParallel"):
        nx.nn.LazyLinear(2)._replicate_for_data_parallel()


# ----- pooling -----------------------------------------------------------------------------------------------------
POOLS = [
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True, "return_indices": True}, (2, 3, 9)),
    ("MaxPool1d", (2,), {"stride": 5}, (3, 7)),  # stride > kernel, unbatched
    ("MaxPool3d", ((2, 1, 3),), {"padding": (1, 0, 1), "return_indices": True}, (1, 2, 3, 4, 5)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, (2, 2, 8)),
    ("AvgPool3d", (2,), {"stride": 1, "padding": 1, "divisor_override": 3}, (1, 1, 3, 4, 3)),
    ("AvgPool3d", (3,), {"ceil_mode": True, "count_include_pad": False}, (2, 4, 5, 4)),
    ("LPPool1d", (2, 3), {"stride": 2}, (2, 3, 7)),
    ("LPPool2d", (1.5, (2, 3)), {"ceil_mode": True}, (1, 2, 5, 7)),
    ("LPPool3d", (3, 2), {}, (2, 4, 4, 5)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 7)),
    ("AdaptiveAvgPool3d", ((None, 2, 5),), {}, (1, 2, 3, 4, 3)),
    ("AdaptiveMaxPool1d", (3,), {"return_indices": True}, (2, 5)),
    ("AdaptiveMaxPool2d", ((2, None),), {"return_indices": True}, (1, 2, 5, 3)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 1, 3, 5, 4)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", POOLS)
def test_pools_match_torch(name, args, kwargs, shape):
    n_mod, t_mod = _pair(name, *args, **kwargs)
    assert repr(n_mod) == repr(t_mod)
    x = torch.rand(shape, dtype=torch.float64) + 0.1  # distinct values: no ties; positive for the 1.5-norm
    _check(n_mod, t_mod, x, gradgrad=True)
    for attr in ("kernel_size", "stride", "padding", "output_size", "norm_type", "ceil_mode"):
        if hasattr(t_mod, attr):
            assert getattr(n_mod, attr) == getattr(t_mod, attr), attr


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool_inverts_max_pool_as_torch(rank):
    n_pool, t_pool = _pair(f"MaxPool{rank}d", 2, stride=2, padding=1, return_indices=True)
    n_unpool, t_unpool = _pair(f"MaxUnpool{rank}d", 2, stride=2, padding=1)
    assert repr(n_unpool) == repr(t_unpool) and n_unpool.kernel_size == t_unpool.kernel_size
    x = torch.randn((2, 2) + (6,) * rank, dtype=torch.float64)  # the default unpooled size is the input's
    (_, t_idx), (_, n_idx) = t_pool(x), n_pool(nx.Tensor(x))
    assert torch.equal(n_idx.data, t_idx)
    pooled = torch.randn(t_idx.shape, dtype=torch.float64)
    _check(n_unpool, t_unpool, pooled, t_idx, gradgrad=True)
    _check(n_unpool, t_unpool, pooled, t_idx, output_size=list(x.shape[-rank:]))


def test_avg_pool1d_stores_tuples_and_has_no_divisor_override():
    n_mod, t_mod = _pair("AvgPool1d", 3, padding=1)
    assert n_mod.kernel_size == t_mod.kernel_size == (3,) and n_mod.stride == (3,) and n_mod.padding == (1,)
    assert not hasattr(n_mod, "divisor_override") and not hasattr(t_mod, "divisor_override")


def _raises_as_torch(name: str, args: tuple, x: torch.Tensor) -> None:
    """The module ``name(*args)`` refuses ``x`` in torch and in neuronix with the same exception type."""
    n_mod, t_mod = _pair(name, *args)
    with pytest.raises(Exception) as t_err:
        t_mod(x)
    with pytest.raises(type(t_err.value)):
        n_mod(nx.Tensor(x))


@pytest.mark.parametrize("name,args,x", [("MaxPool1d", (2,), torch.randn(2, 2, 2, 4)),
                                         ("AvgPool3d", (2,), torch.randn(2, 4, 4)),
                                         ("AdaptiveMaxPool3d", (2,), torch.randn(4, 4)),
                                         ("LPPool1d", (2, 2), torch.randn(1, 1, 1, 4))])
def test_pools_refuse_wrong_ranks_with_torchs_error_type(name, args, x):
    _raises_as_torch(name, args, x)


# ----- fractional max pooling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank,shape,kwargs", [
    (2, (2, 3, 9, 7), {"kernel_size": 2, "output_size": (4, 5)}),
    (2, (3, 10, 11), {"kernel_size": (3, 2), "output_ratio": (0.5, 0.7)}),
    (2, (1, 1, 5, 5), {"kernel_size": 3, "output_size": 3}),  # overlapping windows: gradients add up
    (3, (2, 2, 7, 8, 9), {"kernel_size": 2, "output_size": (3, 4, 5)}),
    (3, (2, 7, 8, 9), {"kernel_size": (2, 3, 1), "output_ratio": 0.5}),
])
def test_fractional_max_pool_draws_torchs_windows(rank, shape, kwargs):
    x = torch.randn(shape, dtype=torch.float64)
    n_mod, t_mod = _pair(f"FractionalMaxPool{rank}d", return_indices=True, **kwargs)
    assert n_mod.kernel_size == t_mod.kernel_size and n_mod.output_ratio == t_mod.output_ratio
    n_out, t_out = _check(n_mod, t_mod, x, gradgrad=True, seed=7)  # the same seed before each forward
    assert torch.equal(n_out[1].data, t_out[1])
    # the functional draws torch.rand(N, C, rank) in the input's dtype: the same samples given explicitly agree
    torch.manual_seed(3)
    samples = torch.rand(shape[0] if len(shape) == rank + 2 else 1, shape[-rank - 1], rank, dtype=torch.float64)
    fn = f"fractional_max_pool{rank}d"
    t_val, t_idx = getattr(TF, fn)(x, return_indices=True, _random_samples=samples, **kwargs)
    torch.manual_seed(3)
    n_val, n_idx = getattr(F, fn)(nx.Tensor(x), return_indices=True, **kwargs)
    assert torch.equal(n_val.data, t_val) and torch.equal(n_idx.data, t_idx)
    fixed = getattr(nx.nn, f"FractionalMaxPool{rank}d")(_random_samples=samples, **kwargs)
    assert torch.equal(fixed(nx.Tensor(x)).data, t_val) and "_random_samples" in fixed.state_dict()


def test_fractional_max_pool_picks_torchs_maximum_among_ties_nan_and_inf():
    x = torch.zeros(2, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = float("nan")  # several NaNs in a window: torch keeps the last
    x[0, 1, 4, :] = 1.0  # ties: the first
    x[1, 0] = float("-inf")  # all -inf: the window's first element
    x[1, 1, 3, 3] = float("inf")
    for seed in range(5):
        torch.manual_seed(seed)
        xt = x.clone().requires_grad_()
        t_out, t_idx = TF.fractional_max_pool2d(xt, 3, output_size=2, return_indices=True)
        torch.manual_seed(seed)
        xn = nx.Tensor(x.clone(), requires_grad=True)
        n_out, n_idx = F.fractional_max_pool2d(xn, 3, output_size=2, return_indices=True)
        assert torch.equal(n_idx.data, t_idx)
        torch.testing.assert_close(n_out.data, t_out.detach(), equal_nan=True)
        up = torch.full_like(t_out, float("inf"))
        t_out.backward(up)
        n_out.backward(nx.Tensor(up))
        torch.testing.assert_close(xn.grad.data, xt.grad, equal_nan=True)


def test_fractional_gradient_is_in_the_inputs_graph_as_torchs():
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    xt, xn = x.clone().requires_grad_(), nx.Tensor(x.clone(), requires_grad=True)
    torch.manual_seed(0)
    (gt,) = torch.autograd.grad(TF.fractional_max_pool2d(xt, 2, output_size=3).sum(), xt, create_graph=True)
    torch.manual_seed(0)
    (gn,) = nx.autograd.grad(F.fractional_max_pool2d(xn, 2, output_size=3).sum(), xn, create_graph=True)
    assert gt.requires_grad and gn.requires_grad  # a gradient penalty gets zeros, not an error
    (ggt,) = torch.autograd.grad(gt.pow(2).sum(), xt)
    (ggn,) = nx.autograd.grad(gn.pow(2).sum(), xn)
    assert torch.equal(ggn.data, ggt) and not ggt.any()


@pytest.mark.parametrize("call", [
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 1, 1, 4, 4), 2, output_size=4),
    lambda lib: lib.nn.functional.fractional_max_pool3d(lib_randn(lib, 1, 1, 4, 4, 4), 2, output_size=3),
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 4, 4), 2, output_size=2),
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 1, 0, 4, 4), 2, output_size=2),
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 1, 1, 4, 4), 2),
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 1, 1, 4, 4), 2, output_ratio=0.5),
    lambda lib: lib.nn.functional.fractional_max_pool2d(lib_randn(lib, 1, 1, 4, 4), 2, output_size=2,
                                                        _random_samples=torch.rand(1, 2, 2)),
    lambda lib: lib.nn.FractionalMaxPool2d(2),
    lambda lib: lib.nn.FractionalMaxPool2d(2, output_size=2, output_ratio=0.5),
    lambda lib: lib.nn.FractionalMaxPool3d(2, output_ratio=1.5),
    lambda lib: lib.nn.FractionalMaxPool3d(0, output_size=1),
])
def test_fractional_errors_are_torchs(call):
    with pytest.raises(Exception) as t_err:
        call(torch)
    with pytest.raises(type(t_err.value)) as n_err:
        call(nx)
    assert str(t_err.value)[:25] == str(n_err.value)[:25]


def lib_randn(lib, *shape):
    return lib.randn(*shape)


def test_native_channel_shuffle_is_channel_shuffle():
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    assert torch.equal(F.native_channel_shuffle(nx.Tensor(x), 3).data, torch.native_channel_shuffle(x, 3))
    xt, xn = x.clone().requires_grad_(), nx.Tensor(x.clone(), requires_grad=True)
    up = torch.randn(2, 6, 3, dtype=torch.float64)
    TF.channel_shuffle(xt, 3).backward(up)  # torch's native op has no derivative; channel_shuffle's is the one
    F.native_channel_shuffle(xn, 3).backward(nx.Tensor(up))
    assert torch.equal(xn.grad.data, xt.grad)


# ----- padding -------------------------------------------------------------------------------------------------------
PADS = [(prefix, dims, padding, shape)
        for prefix in ("Reflection", "Replication", "Zero", "Constant", "Circular")
        for dims, padding, shape in ((1, 2, (2, 3, 4)), (1, (0, 3), (3, 5)), (2, (1, 0, 2, 1), (1, 2, 4, 3)),
                                     (2, 1, (2, 3, 3)), (3, (1, 2, 0, 1, 1, 0), (1, 1, 3, 4, 3)), (3, 1, (2, 2, 3, 2)))]


@pytest.mark.parametrize("prefix,dims,padding,shape", PADS)
def test_padding_layers_match_torch(prefix, dims, padding, shape):
    args = (padding, 1.5) if prefix == "Constant" else (padding,)
    n_mod, t_mod = _pair(f"{prefix}Pad{dims}d", *args)
    assert repr(n_mod) == repr(t_mod) and n_mod.padding == t_mod.padding
    _check(n_mod, t_mod, torch.randn(shape, dtype=torch.float64), gradgrad=True)


@pytest.mark.parametrize("name,args,x", [("CircularPad2d", (1,), torch.randn(4, 4)),
                                         ("CircularPad1d", (1,), torch.randn(1, 1, 1, 4)),
                                         ("ReflectionPad1d", (3,), torch.randn(1, 2, 3)),
                                         ("ReflectionPad2d", (1,), torch.randn(5)),
                                         ("ReplicationPad3d", (1,), torch.randn(3, 3)),
                                         ("ConstantPad2d", ((1, 2, 3), 0.0), torch.randn(1, 2, 3))])
def test_padding_errors_are_torchs(name, args, x):
    _raises_as_torch(name, args, x)


def test_zero_pad_is_a_constant_pad_as_torch():
    assert issubclass(nx.nn.ZeroPad2d, nx.nn.ConstantPad2d) and nx.nn.ZeroPad3d(1).value == 0.0


# ----- upsampling, shuffles, fold ------------------------------------------------------------------------------------
SPATIAL = [
    ("Upsample", (), {"scale_factor": 2, "mode": "nearest"}, (1, 2, 3, 3)),
    ("Upsample", (), {"size": 5, "mode": "linear", "align_corners": True}, (2, 1, 3)),
    ("Upsample", (), {"scale_factor": (1.5, 0.7, 2.0), "mode": "trilinear", "recompute_scale_factor": True},
     (1, 1, 3, 4, 2)),
    ("Upsample", (), {"size": (4, 7), "mode": "bicubic"}, (1, 1, 3, 3)),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, (2, 1, 2, 3)),
    ("UpsamplingBilinear2d", (), {"size": (5, 4)}, (1, 2, 3, 2)),
    ("PixelShuffle", (2,), {}, (2, 8, 2, 3)),
    ("PixelShuffle", (3,), {}, (9, 1, 1)),
    ("PixelUnshuffle", (2,), {}, (1, 1, 4, 6)),
    ("ChannelShuffle", (3,), {}, (2, 6, 2, 2)),
    ("Unfold", ((2, 3),), {"dilation": 2, "padding": 1, "stride": (2, 1)}, (2, 2, 5, 6)),
    ("Unfold", (2,), {}, (3, 3, 3)),
    ("Fold", ((4, 5), 2), {"stride": 1}, (1, 8, 12)),
    ("Fold", (3, 2), {"padding": 1, "dilation": 2}, (4, 9)),  # unbatched
]


@pytest.mark.parametrize("name,args,kwargs,shape", SPATIAL)
def test_spatial_layers_match_torch(name, args, kwargs, shape):
    n_mod, t_mod = _pair(name, *args, **kwargs)
    assert repr(n_mod) == repr(t_mod)
    _check(n_mod, t_mod, torch.randn(shape, dtype=torch.float64), gradgrad=True)


def test_upsample_stores_scale_factors_as_torch():
    for scale in (2, (2, 3), 0.5, None):
        n_mod, t_mod = _pair("Upsample", size=None if scale else 4, scale_factor=scale)
        assert n_mod.scale_factor == t_mod.scale_factor and type(n_mod.scale_factor) is type(t_mod.scale_factor)
        assert n_mod.name == t_mod.name == "Upsample"
    assert nx.nn.UpsamplingBilinear2d(2).align_corners is True and nx.nn.UpsamplingNearest2d(2).mode == "nearest"


def test_empty_batch_and_batch_of_one():
    for name, args, shape in (("MaxPool1d", (2,), (0, 2, 4)), ("AvgPool3d", (2,), (0, 1, 2, 2, 2)),
                              ("ReplicationPad1d", (1,), (0, 2, 3)), ("PixelShuffle", (2,), (0, 4, 2, 2)),
                              ("Conv3d", (1, 2, 1), (0, 1, 2, 2, 2)), ("Conv3d", (1, 2, 1), (1, 1, 2, 2, 2))):
        n_mod, t_mod = _pair(name, *args)
        x = torch.randn(shape)
        try:
            expected = t_mod(x)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                n_mod(nx.Tensor(x))
            continue
        n_mod.load_state_dict(t_mod.state_dict())
        assert n_mod(nx.Tensor(x)).shape == expected.shape


def test_hostile_calls_retain_graph_layouts_and_modes():
    x = torch.randn(2, 2, 5, 6, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
    for name, args in (("Conv3d", (2, 3, 2)), ("MaxPool3d", (2,)), ("FractionalMaxPool3d", (2,)),
                       ("ReplicationPad3d", (1,)), ("AdaptiveAvgPool3d", (3,))):
        kwargs = {"output_size": 2} if name.startswith("Fractional") else {}
        n_mod, t_mod = _pair(name, *args, **kwargs)
        n_mod.double()
        t_mod.double()
        for mode in (True, False):  # no layer here behaves differently in eval
            n_mod.train(mode)
            t_mod.train(mode)
            _check(n_mod, t_mod, x, seed=4)
    # backward twice through a retained graph accumulates as torch's
    xt, xn = x.clone().requires_grad_(), nx.Tensor(x.clone(), requires_grad=True)
    torch.manual_seed(2)
    yt = TF.fractional_max_pool3d(xt, 2, output_size=2)
    torch.manual_seed(2)
    yn = F.fractional_max_pool3d(xn, 2, output_size=2)
    up = torch.randn_like(yt)
    for _ in range(2):
        yt.backward(up, retain_graph=True)
        yn.backward(nx.Tensor(up), retain_graph=True)
    assert torch.equal(xn.grad.data, xt.grad)
