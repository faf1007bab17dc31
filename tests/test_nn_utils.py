"""``nx.nn.utils`` against ``torch.nn.utils``: clipping, parameter vectors, weight/spectral norm, parametrize.

Clipping must give torch's numbers bit for bit (same kernels, same order); the reparametrizations must
give torch's state_dict keys, torch's random u/v after the same seed, torch's values, gradients and
buffers, and torch's errors.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch

import neuronix as nx
from neuronix.nn.utils.weight_norm import norm_except_dim

U, TU = nx.nn.utils, torch.nn.utils


def _twin_params(grads):
    """torch and neuronix parameters holding the same gradients (None: no gradient)."""
    t_params, n_params = [], []
    for g in grads:
        like = torch.zeros(3) if g is None else torch.zeros_like(g)
        t, n = torch.nn.Parameter(like.clone()), nx.nn.Parameter(like.clone())
        if g is not None:
            t.grad, n.grad = g.clone(), g.clone()
        t_params.append(t)
        n_params.append(n)
    return t_params, n_params


def _grads(dtype=torch.float32, scale=5.0):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(3, 4, generator=gen, dtype=dtype) * scale, None, torch.randn(7, generator=gen, dtype=dtype),
            torch.randn(2, 1, 3, generator=gen, dtype=dtype)]


def _same_grads(t_params, n_params):
    for t, n in zip(t_params, n_params):
        assert (t.grad is None) == (n.grad is None)
        if t.grad is not None:
            assert torch.equal(t.grad, n.grad.data)


# ----- clipping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, 0.5, 0, float("inf"), "inf", -float("inf")])
@pytest.mark.parametrize("foreach", [None, True, False])
def test_clip_grad_norm_is_torchs_bit_for_bit(dtype, norm_type, foreach):
    t_params, n_params = _twin_params(_grads(dtype))
    expected = TU.clip_grad_norm_(t_params, 1.0, norm_type, foreach=foreach)
    total = U.clip_grad_norm_(n_params, 1.0, norm_type, foreach=foreach)
    assert isinstance(total, nx.Tensor) and total.dtype == expected.dtype
    assert torch.equal(total.data, expected)
    _same_grads(t_params, n_params)


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])
def test_clip_grad_norm_scales_down_only(max_norm):
    t_params, n_params = _twin_params(_grads())
    before = [p.grad.data.clone() for p in n_params if p.grad is not None]
    total = U.clip_grad_norm_(n_params, max_norm)
    TU.clip_grad_norm_(t_params, max_norm)
    _same_grads(t_params, n_params)
    after = [p.grad.data for p in n_params if p.grad is not None]
    new_total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in after]))
    if max_norm < total.item():
        assert new_total.item() == pytest.approx(max_norm, rel=1e-5)
    else:  # clip_coef clamped to 1: the gradients are untouched
        assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_clip_grad_norm_inputs_single_tensor_generator_and_mixed_dtypes():
    t, n = _twin_params([torch.tensor([3.0, 4.0])])
    assert torch.equal(U.clip_grad_norm_(n[0], 1.0).data, TU.clip_grad_norm_(t[0], 1.0))
    _same_grads(t, n)
    model_t, model_n = torch.nn.Linear(3, 2), nx.nn.Linear(3, 2)
    model_n.load_state_dict(model_t.state_dict())
    x = torch.randn(4, 3)
    model_t(x).pow(2).sum().backward()
    model_n(nx.Tensor(x)).pow(2).sum().backward()
    total = U.clip_grad_norm_(model_n.parameters(), 0.1)  # a generator: read once for both steps
    assert torch.allclose(total.data, TU.clip_grad_norm_(model_t.parameters(), 0.1))
    assert all(torch.allclose(a.grad, b.grad.data) for a, b in zip(model_t.parameters(), model_n.parameters()))
    mixed = [torch.randn(4, dtype=torch.float64), torch.randn(3, dtype=torch.float32)]
    t, n = _twin_params(mixed)
    assert torch.equal(U.clip_grad_norm_(n, 0.5).data, TU.clip_grad_norm_(t, 0.5))
    _same_grads(t, n)


def test_clip_grad_norm_without_gradients_and_empty_generator():
    total = U.clip_grad_norm_([nx.nn.Parameter(torch.ones(2))], 1.0)
    assert isinstance(total, nx.Tensor) and torch.equal(total.data, torch.tensor(0.0))
    assert torch.equal(U.clip_grad_norm_([], 1.0).data, TU.clip_grad_norm_([], 1.0))
    with pytest.warns(UserWarning, match="empty generator"):
        U.clip_grad_norm_((p for p in []), 1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_clip_grad_norm_nonfinite(bad):
    grads = [torch.tensor([1.0, bad, 2.0]), torch.tensor([0.5])]
    t, n = _twin_params(grads)
    with pytest.raises(RuntimeError, match="non-finite") as caught:
        U.clip_grad_norm_(n, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as torch_caught:
        TU.clip_grad_norm_(t, 1.0, error_if_nonfinite=True)
    assert str(caught.value) == str(torch_caught.value)
    # without the flag both scale by the non-finite norm (NaN where torch gets NaN)
    total = U.clip_grad_norm_(n, 1.0)
    expected = TU.clip_grad_norm_(t, 1.0)
    assert torch.equal(total.data.isnan(), expected.isnan()) and (expected.isnan() or total.data == expected)
    for a, b in zip(t, n):
        assert torch.equal(a.grad.nan_to_num(7.0), b.grad.data.nan_to_num(7.0))


def test_clip_grad_norm_errors_as_torch():
    # an empty gradient has no inf-norm: torch's kernel error, from the same kernel
    t, n = _twin_params([torch.randn(3), torch.randn(0)])
    with pytest.raises(RuntimeError) as torch_caught:
        TU.clip_grad_norm_(t, 1.0, "inf", foreach=False)
    with pytest.raises(RuntimeError) as caught:
        U.clip_grad_norm_(n, 1.0, "inf", foreach=False)
    assert str(caught.value) == str(torch_caught.value)
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        U.clip_grad_norm(n[:1], 1.0)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("foreach", [None, False])
def test_get_total_norm_and_clip_grads_with_norm(norm_type, foreach):
    grads = [g for g in _grads() if g is not None]
    total = U.get_total_norm([nx.Tensor(g) for g in grads], norm_type, foreach=foreach)
    expected = TU.get_total_norm(grads, norm_type, foreach=foreach)
    assert torch.equal(total.data, expected)
    t, n = _twin_params(grads)
    U.clip_grads_with_norm_(n, 2.0, total, foreach=foreach)
    TU.clip_grads_with_norm_(t, 2.0, expected, foreach=foreach)
    _same_grads(t, n)


@pytest.mark.parametrize("foreach", [None, True, False])
def test_clip_grad_value(foreach):
    grads = _grads() + [torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5])]
    t, n = _twin_params(grads)
    assert U.clip_grad_value_(n, 0.75, foreach=foreach) is None
    TU.clip_grad_value_(t, 0.75, foreach=foreach)
    for a, b in zip(t, n):
        if a.grad is not None:
            assert torch.equal(a.grad.nan_to_num(9.0), b.grad.data.nan_to_num(9.0))
    single_t, single_n = _twin_params([torch.tensor([-3.0, 0.1, 3.0])])
    U.clip_grad_value_(single_n[0], 1)
    TU.clip_grad_value_(single_t[0], 1)
    _same_grads(single_t, single_n)


def test_clipping_works_after_backward_with_create_graph():
    w = nx.nn.Parameter(torch.tensor([3.0, 4.0]))
    (w * w).sum().backward(create_graph=True)  # .grad has a history: clipping scales its data in place
    U.clip_grad_norm_([w], 1.0)
    assert torch.allclose(w.grad.data, torch.tensor([0.6, 0.8]), atol=1e-6)


# ----- parameter vectors ---------------------------------------------------------------------------
def test_parameters_to_vector_and_back():
    torch.manual_seed(0)
    t_model, n_model = torch.nn.Linear(3, 2), nx.nn.Linear(3, 2)
    n_model.load_state_dict(t_model.state_dict())
    vec = U.parameters_to_vector(n_model.parameters())
    assert torch.equal(vec.data, TU.parameters_to_vector(t_model.parameters()).detach())
    weights = torch.arange(8.0)
    (vec * nx.Tensor(weights)).sum().backward()  # differentiable: each slice's weights reach each parameter
    assert torch.equal(n_model.weight.grad.data, weights[:6].view(2, 3))
    assert torch.equal(n_model.bias.grad.data, weights[6:])
    new = nx.arange(8.0) * 2
    U.vector_to_parameters(new, n_model.parameters())
    TU.vector_to_parameters(torch.arange(8.0) * 2, t_model.parameters())
    assert all(torch.equal(a.detach(), b.data) for a, b in zip(t_model.parameters(), n_model.parameters()))
    new.data[0] = 100.0  # the parameters are views of the vector, as torch's
    assert n_model.weight.data[0, 0].item() == 100.0
    assert isinstance(n_model.weight, nx.nn.Parameter) and n_model.weight.requires_grad


def test_vector_to_parameters_refuses_a_non_tensor():
    with pytest.raises(TypeError, match="expected torch.Tensor, but got: list"):
        U.vector_to_parameters([1.0, 2.0], nx.nn.Linear(1, 1).parameters())


# ----- weight norm and spectral norm, both APIs ----------------------------------------------------
LAYERS = [
    ("Linear", (4, 3), (5, 4)),
    ("Conv2d", (2, 3, 2), (2, 2, 4, 4)),
    ("ConvTranspose2d", (2, 3, 2), (1, 2, 3, 3)),
]
CASES = [
    ("weight_norm", {}), ("weight_norm", {"dim": None}), ("weight_norm", {"dim": 1}), ("weight_norm", {"dim": -2}),
    ("spectral_norm", {}), ("spectral_norm", {"n_power_iterations": 3, "eps": 1e-4}), ("spectral_norm", {"dim": 1}),
    ("parametrizations.weight_norm", {}), ("parametrizations.weight_norm", {"dim": None}),
    ("parametrizations.weight_norm", {"dim": -1}),
    ("parametrizations.spectral_norm", {}), ("parametrizations.spectral_norm", {"n_power_iterations": 2, "dim": -1}),
]


def _util(lib, path: str):
    fn = lib.nn.utils
    for part in path.split("."):
        fn = getattr(fn, part)
    return fn


def _build_pair(layer, args, util, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.manual_seed(0)
        t = _util(torch, util)(getattr(torch.nn, layer)(*args), **kwargs)
        torch.manual_seed(0)
        n = _util(nx, util)(getattr(nx.nn, layer)(*args), **kwargs)
    return t, n


@pytest.mark.parametrize("layer, args, x_shape", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("util, kwargs", CASES, ids=[f"{u}{k}" for u, k in CASES])
def test_reparametrized_layer_matches_torch(layer, args, x_shape, util, kwargs):
    t, n = _build_pair(layer, args, util, kwargs)
    assert type(n).__name__ == type(t).__name__
    t_state, n_state = t.state_dict(), n.state_dict()
    assert list(n_state) == list(t_state)  # torch's keys, in torch's order
    for key in t_state:  # same seed: same init, same u/v draws and warm-up power iterations
        assert torch.equal(n_state[key], t_state[key]), key
    t.double()
    n.double()
    x = torch.randn(*x_shape, dtype=torch.float64)
    for mode in ("train", "eval", "train"):
        t.train(mode == "train")
        n.train(mode == "train")
        xt, xn = x.clone().requires_grad_(), nx.Tensor(x, requires_grad=True)
        yt, yn = t(xt), n(xn)
        assert torch.allclose(yn.data, yt, rtol=1e-12, atol=1e-12), mode
        up = torch.randn_like(yt)
        wrt_t = [xt, *t.parameters()]
        wrt_n = [xn, *n.parameters()]
        for a, b in zip(torch.autograd.grad(yt, wrt_t, up), nx.autograd.grad(yn, wrt_n, nx.Tensor(up))):
            assert torch.allclose(b.data, a, rtol=1e-10, atol=1e-12), mode
        for (name, a), b in zip(t.named_buffers(), n.buffers()):  # the power method's u, v
            assert torch.allclose(b.data, a, rtol=1e-12, atol=1e-14), (mode, name)


@pytest.mark.parametrize("util, kwargs", CASES, ids=[f"{u}{k}" for u, k in CASES])
def test_torch_checkpoints_load_strictly_both_ways(util, kwargs):
    t, n = _build_pair("Linear", (3, 4), util, kwargs)
    torch.manual_seed(5)
    t2 = _build_pair("Linear", (3, 4), util, kwargs)[0]
    with torch.no_grad():
        for p in t2.parameters():
            p.add_(1.0)
    n.load_state_dict(t2.state_dict())  # strict
    t.load_state_dict(n.state_dict())
    x = torch.randn(2, 3)
    t.eval(), n.eval(), t2.eval()
    assert torch.allclose(n(nx.Tensor(x)).data, t2(x), atol=1e-6)
    assert torch.allclose(t(x), t2(x), atol=1e-6)


def test_weight_norm_second_derivative_is_the_composite_formulas():
    # torch's fused _weight_norm (dim 0 / last) fails gradgradcheck; its composite v * (g / ||v||) is the reference
    torch.manual_seed(0)
    for dim in (0, 1, -1):
        v = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        g = torch.norm_except_dim(v, 2, dim).detach().requires_grad_()
        up, probe_v, probe_g = torch.randn(3, 4, dtype=torch.float64), torch.randn_like(v), torch.randn_like(g)
        w = v * (g / torch.norm_except_dim(v, 2, dim))
        gv, gg = torch.autograd.grad(w, (v, g), up, create_graph=True)
        expected = torch.autograd.grad((gv * probe_v).sum() + (gg * probe_g).sum(), (v, g))
        nv, ng = nx.Tensor(v.detach(), requires_grad=True), nx.Tensor(g.detach(), requires_grad=True)
        module = nx.nn.utils.parametrizations._WeightNorm(dim)
        nw = module(ng, nv)
        a, b = nx.autograd.grad(nw, (nv, ng), nx.Tensor(up), create_graph=True)
        got = nx.autograd.grad((a * nx.Tensor(probe_v)).sum() + (b * nx.Tensor(probe_g)).sum(), (nv, ng))
        for x, y in zip(got, expected):
            assert torch.allclose(x.data, y, rtol=1e-10, atol=1e-12), dim
    assert nx.autograd.gradgradcheck(lambda v, g: nx.nn.utils.parametrizations._WeightNorm(0)(g, v),
                                     (nx.randn(2, 3, dtype=torch.float64, requires_grad=True),
                                      nx.rand(2, 1, dtype=torch.float64, requires_grad=True) + 0.5))


def test_norm_except_dim_is_torchs():
    for shape in [(2, 3, 3, 3), (5,), (4, 6), (2, 3, 4)]:
        v = torch.randn(*shape)
        for dim in range(-len(shape), len(shape)):
            assert torch.equal(norm_except_dim(nx.Tensor(v), 2, dim).data, torch.norm_except_dim(v, 2, dim))


def test_spectral_norm_double_backward_matches_torch():
    t, n = _build_pair("Linear", (3, 4), "parametrizations.spectral_norm", {})
    t.double()
    n.double()
    x = torch.randn(2, 3, dtype=torch.float64)
    t.eval()
    n.eval()
    yt, yn = t(x), n(nx.Tensor(x))
    up = torch.randn_like(yt)
    (gt,) = torch.autograd.grad(yt, [t.parametrizations.weight.original], up, create_graph=True)
    (gn,) = nx.autograd.grad(yn, [n.parametrizations.weight.original], nx.Tensor(up), create_graph=True)
    probe = torch.randn_like(gt)
    (ggt,) = torch.autograd.grad((gt * probe).sum(), [t.parametrizations.weight.original])
    (ggn,) = nx.autograd.grad((gn * nx.Tensor(probe)).sum(), [n.parametrizations.weight.original])
    assert torch.allclose(ggn.data, ggt, rtol=1e-10, atol=1e-12)


def test_hook_based_remove_restores_a_plain_parameter():
    for util, remove in (("weight_norm", "remove_weight_norm"), ("spectral_norm", "remove_spectral_norm")):
        t, n = _build_pair("Linear", (3, 4), util, {})
        x = torch.randn(2, 3)
        t(x), n(nx.Tensor(x))
        getattr(TU, remove)(t)
        getattr(U, remove)(n)
        assert list(n.state_dict()) == list(t.state_dict()) == ["bias", "weight"]
        assert isinstance(n.weight, nx.nn.Parameter) and not n._forward_pre_hooks
        assert torch.allclose(n.weight.data, t.weight.detach(), atol=1e-7)
        with pytest.raises(ValueError, match=f"{util} of 'weight' not found in"):
            getattr(U, remove)(n)


def test_hook_based_errors_as_torch():
    with pytest.warns(FutureWarning, match="deprecated in favor of"):
        m = U.weight_norm(nx.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks on the same parameter weight"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U.weight_norm(m, "weight_v")
            U.weight_norm(m, "weight_v")
    m = U.spectral_norm(nx.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="Cannot register two spectral_norm hooks on the same parameter weight"):
        U.spectral_norm(m)
    with pytest.raises(ValueError, match="Expected n_power_iterations to be positive, but got n_power_iterations=0"):
        U.spectral_norm(nx.nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="cannot be applied as parameter `bias` is None"):
        U.spectral_norm(nx.nn.Linear(2, 2, bias=False), name="bias")
    with pytest.raises(ValueError, match="The module passed to `SpectralNorm` can't have uninitialized parameters"):
        U.spectral_norm(nx.nn.LazyLinear(3))
    with pytest.raises(ValueError, match="The module passed to `WeightNorm` can't have uninitialized parameters"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            U.weight_norm(nx.nn.LazyLinear(3))


def test_spectral_norm_default_dim_is_one_for_transposed_convs():
    t, n = _build_pair("ConvTranspose2d", (2, 5, 1), "spectral_norm", {})
    assert n.weight_u.shape == t.weight_u.shape == (5,)
    t, n = _build_pair("ConvTranspose2d", (2, 5, 1), "parametrizations.spectral_norm", {})
    assert n.parametrizations.weight[0].dim == t.parametrizations.weight[0].dim == 1


def test_parametrizations_spectral_norm_of_a_vector_and_its_errors():
    t, n = _build_pair("Linear", (3, 4), "parametrizations.spectral_norm", {})
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\] but got 2\)"):
        U.parametrizations.spectral_norm(nx.nn.Linear(2, 2), dim=2)
    with pytest.raises(ValueError, match="has no parameter or buffer with name 'nope'"):
        U.parametrizations.spectral_norm(nx.nn.Linear(2, 2), name="nope")
    torch.manual_seed(0)
    tb = TU.parametrizations.spectral_norm(torch.nn.Linear(3, 4), name="bias")
    torch.manual_seed(0)
    nb = U.parametrizations.spectral_norm(nx.nn.Linear(3, 4), name="bias")  # 1-D: plain normalisation
    assert list(nb.state_dict()) == list(tb.state_dict())
    assert torch.allclose(nb.bias.data, tb.bias.detach())


# ----- parametrize -------------------------------------------------------------------------------
class _Symmetric:
    """``X -> triu(X) + triu(X, 1)^T`` with ``right_inverse`` keeping the upper triangle, in either library."""

    @staticmethod
    def make(lib):
        base = lib.nn.Module

        class Symmetric(base):
            def forward(self, X):
                return X.triu() + X.triu(1).transpose(-1, -2)

            def right_inverse(self, A):
                return A.triu()

        return Symmetric()


class _Double:
    @staticmethod
    def make(lib):
        class Double(lib.nn.Module):
            def forward(self, X):
                return 2 * X

            def right_inverse(self, A):
                return A / 2

        return Double()


def _symmetric_pair():
    torch.manual_seed(0)
    t = torch.nn.Linear(3, 3)
    n = nx.nn.Linear(3, 3)
    n.load_state_dict(t.state_dict())
    torch.nn.utils.parametrize.register_parametrization(t, "weight", _Symmetric.make(torch))
    U.parametrize.register_parametrization(n, "weight", _Symmetric.make(nx))
    return t, n


def test_register_parametrization_recomputes_at_each_read_and_gradients_reach_the_original():
    t, n = _symmetric_pair()
    P = U.parametrize
    assert type(n).__name__ == "ParametrizedLinear" and P.type_before_parametrizations(n) is nx.nn.Linear
    assert P.is_parametrized(n) and P.is_parametrized(n, "weight") and not P.is_parametrized(n, "bias")
    assert list(n.state_dict()) == list(t.state_dict()) == ["bias", "parametrizations.weight.original"]
    assert torch.equal(n.weight.data, t.weight.detach()) and torch.equal(n.weight.data, n.weight.data.T)
    x = torch.randn(2, 3)
    up = torch.randn(2, 3)
    (t(x) * up).sum().backward()
    (n(nx.Tensor(x)) * nx.Tensor(up)).sum().backward()
    original_t, original_n = t.parametrizations.weight.original, n.parametrizations.weight.original
    assert torch.allclose(original_n.grad.data, original_t.grad)
    with torch.no_grad():
        original_t.add_(1.0)
    original_n.data.add_(1.0)  # a change of the original shows at the next read
    assert torch.equal(n.weight.data, t.weight.detach())
    assert isinstance(nx.nn.Linear(3, 3).weight, nx.nn.Parameter)  # other instances keep the plain class


def test_assignment_goes_through_right_inverse_and_chaining():
    t, n = _symmetric_pair()
    value = torch.arange(9.0).view(3, 3)
    t.weight = value.clone()
    n.weight = nx.Tensor(value.clone())
    assert torch.equal(n.parametrizations.weight.original.data, t.parametrizations.weight.original.detach())
    torch.nn.utils.parametrize.register_parametrization(t, "weight", _Double.make(torch))
    U.parametrize.register_parametrization(n, "weight", _Double.make(nx))
    assert list(n.state_dict()) == list(t.state_dict())
    assert torch.equal(n.weight.data, t.weight.detach())
    n.weight = nx.Tensor(value.clone())
    t.weight = value.clone()
    assert torch.equal(n.parametrizations.weight.original.data, t.parametrizations.weight.original.detach())
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        n.weight = nx.nn.Parameter(torch.zeros(3, 3))


def test_remove_parametrizations_leaves_value_or_original():
    for leave in (True, False):
        t, n = _symmetric_pair()
        original = n.parametrizations.weight.original
        torch.nn.utils.parametrize.remove_parametrizations(t, "weight", leave_parametrized=leave)
        U.parametrize.remove_parametrizations(n, "weight", leave_parametrized=leave)
        assert type(n) is nx.nn.Linear and "parametrizations" not in n._modules
        assert n.weight is original  # the same Parameter object: an optimizer holding it keeps working
        assert torch.equal(n.weight.data, t.weight.detach())
        assert list(n.state_dict()) == list(t.state_dict())
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        U.parametrize.remove_parametrizations(nx.nn.Linear(2, 2), "weight")
    n = U.parametrizations.weight_norm(nx.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Cannot leave unparametrized"):
        U.parametrize.remove_parametrizations(n, "weight", leave_parametrized=False)
    value = n.weight.data.clone()
    U.parametrize.remove_parametrizations(n, "weight")
    assert isinstance(n.weight, nx.nn.Parameter) and torch.allclose(n.weight.data, value)


def test_register_parametrization_errors_as_torch():
    P = U.parametrize

    class Shrink(nx.nn.Module):
        def forward(self, X):
            return X[:1]

    class Cast(nx.nn.Module):
        def forward(self, X):
            return X.double()

    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized element with name 'w'"):
        P.register_parametrization(nx.nn.Linear(2, 2), "w", Shrink())
    with pytest.raises(ValueError, match="may not change the shape of the tensor, unless `unsafe` flag is enabled"):
        P.register_parametrization(nx.nn.Linear(2, 2), "weight", Shrink())
    with pytest.raises(ValueError, match="may not change the dtype of the tensor"):
        P.register_parametrization(nx.nn.Linear(2, 2), "weight", Cast())
    m = P.register_parametrization(nx.nn.Linear(2, 2), "weight", Shrink(), unsafe=True)
    assert m.weight.shape == (1, 2)
    with pytest.raises(ValueError, match="requires one or more modules"):
        P.ParametrizationList([], nx.nn.Parameter(torch.zeros(2)))


def test_cached_computes_each_parametrized_tensor_once():
    t, n = _symmetric_pair()
    calls = []
    n.parametrizations.weight[0].register_forward_hook(lambda *a: calls.append(1))
    with U.parametrize.cached():
        first, second = n.weight, n.weight
        assert first is second
    assert len(calls) == 1
    assert n.weight is not n.weight  # outside: recomputed at each read


def test_buffers_can_be_parametrized_and_deepcopy_works_but_pickle_refuses():
    m = nx.nn.BatchNorm1d(3)
    U.parametrize.register_parametrization(m, "running_var", _Double.make(nx))
    assert "parametrizations.running_var.original" in m.state_dict()
    assert not m.parametrizations.running_var.original.requires_grad
    t, n = _symmetric_pair()
    clone = copy.deepcopy(n)
    assert type(clone).__name__ == "ParametrizedLinear" and torch.equal(clone.weight.data, n.weight.data)
    clone.parametrizations.weight.original.data.add_(1.0)
    assert not torch.equal(clone.weight.data, n.weight.data)
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(n)


def test_parametrized_module_trains_with_an_optimizer():
    m = U.parametrizations.weight_norm(nx.nn.Linear(3, 2))
    opt = nx.optim.SGD(m.parameters(), lr=0.1)
    before = [p.data.clone() for p in m.parameters()]
    m(nx.randn(4, 3)).pow(2).sum().backward()
    opt.step()
    assert all(not torch.equal(a, p.data) for a, p in zip(before, m.parameters()))


def test_transfer_parametrizations_and_params():
    source = U.parametrizations.weight_norm(nx.nn.Linear(3, 2))
    target = nx.nn.Linear(3, 2)
    U.parametrize.transfer_parametrizations_and_params(source, target)
    assert U.parametrize.is_parametrized(target, "weight")
    assert target.parametrizations.weight.original0 is source.parametrizations.weight.original0
    assert torch.equal(target.weight.data, source.weight.data)


# ----- orthogonal ----------------------------------------------------------------------------------------
ORTHOGONAL_SHAPES = [(3, 3), (3, 5), (5, 3), (1, 4)]


@pytest.mark.parametrize("in_features, out_features", ORTHOGONAL_SHAPES)
@pytest.mark.parametrize("orthogonal_map", [None, "matrix_exp", "cayley", "householder"])
@pytest.mark.parametrize("use_trivialization", [True, False])
def test_orthogonal_matches_torch(in_features, out_features, orthogonal_map, use_trivialization):
    modules = []
    for lib in (torch, nx):
        torch.manual_seed(0)
        module = lib.nn.Linear(in_features, out_features).double()
        torch.manual_seed(1)  # the random completion of a non-square weight is drawn here
        lib.nn.utils.parametrizations.orthogonal(module, orthogonal_map=orthogonal_map,
                                                 use_trivialization=use_trivialization)
        modules.append(module)
    t, n = modules
    assert list(n.state_dict()) == list(t.state_dict())
    for key, value in t.state_dict().items():
        assert torch.equal(n.state_dict()[key], value), key
    W = n.weight.data
    gram = W.mT @ W if in_features <= out_features else W @ W.mT
    assert torch.allclose(gram, torch.eye(min(in_features, out_features), dtype=torch.float64), atol=1e-12)
    x = torch.randn(4, in_features, dtype=torch.float64)
    yt, yn = t(x), n(nx.Tensor(x))
    assert torch.allclose(yn.data, yt, atol=1e-14)
    up = torch.randn_like(yt)
    for a, b in zip(torch.autograd.grad(yt, list(t.parameters()), up),
                    nx.autograd.grad(yn, list(n.parameters()), nx.Tensor(up))):
        assert torch.allclose(b.data, a, atol=1e-13)
    value = torch.randn(out_features, in_features, dtype=torch.float64)
    outcomes = []
    for module, wrap in ((t, lambda v: v), (n, nx.Tensor)):
        try:
            module.weight = wrap(value.clone())
            outcomes.append(None)
        except NotImplementedError as err:  # matrix_exp/cayley cannot be assigned to without trivialization
            outcomes.append(str(err))
    assert outcomes[0] == outcomes[1]
    if outcomes[0] is None:
        assert torch.allclose(n.weight.data, t.weight.detach(), atol=1e-12)


def test_orthogonal_second_derivative_and_errors():
    module = U.parametrizations.orthogonal(nx.nn.Linear(3, 3).double(), orthogonal_map="cayley")
    original = module.parametrizations.weight.original
    assert nx.autograd.gradgradcheck(lambda w: module.parametrizations.weight[0](w), (original.detach().requires_grad_(),))
    with pytest.raises(ValueError, match="Expected a matrix or batch of matrices. Got a tensor of 1 dimensions."):
        U.parametrizations.orthogonal(nx.nn.Linear(3, 3), name="bias")
    with pytest.raises(ValueError, match='orthogonal_map has to be one of "matrix_exp", "cayley", "householder"'):
        U.parametrizations.orthogonal(nx.nn.Linear(3, 3), orthogonal_map="qr")
    with pytest.raises(ValueError, match="Expected a matrix or batch of matrices of shape"):
        module.parametrizations.weight[0].right_inverse(torch.zeros(2, 2))


# ----- fusion, skip_init, memory formats -----------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("layer, bn, args, transpose",
                         [("Conv2d", "BatchNorm2d", (2, 3, 3), False), ("ConvTranspose2d", "BatchNorm2d", (2, 3, 3), True),
                          ("Conv1d", "BatchNorm1d", (2, 3, 2), False), ("Linear", "BatchNorm1d", (4, 3), None)])
def test_fusion_is_torchs_bit_for_bit(bias, affine, layer, bn, args, transpose):
    torch.manual_seed(0)
    t_layer, t_bn = getattr(torch.nn, layer)(*args, bias=bias), getattr(torch.nn, bn)(3, affine=affine)
    with torch.no_grad():
        t_bn.running_mean.uniform_(-1, 1)
        t_bn.running_var.uniform_(0.5, 2.0)
        if affine:
            t_bn.weight.uniform_(0.5, 2.0)
            t_bn.bias.uniform_(-1, 1)
    n_layer, n_bn = getattr(nx.nn, layer)(*args, bias=bias), getattr(nx.nn, bn)(3, affine=affine)
    n_layer.load_state_dict(t_layer.state_dict())
    n_bn.load_state_dict(t_bn.state_dict())
    for m in (t_layer, t_bn, n_layer, n_bn):
        m.eval()
    if transpose is None and not affine:  # torch's linear fusion multiplies by the absent BatchNorm weight
        with pytest.raises(TypeError):
            TU.fuse_linear_bn_eval(t_layer, t_bn)
        with pytest.raises(TypeError):
            U.fuse_linear_bn_eval(n_layer, n_bn)
        return
    if transpose is None:
        t_fused, n_fused = TU.fuse_linear_bn_eval(t_layer, t_bn), U.fuse_linear_bn_eval(n_layer, n_bn)
    else:
        t_fused, n_fused = (TU.fuse_conv_bn_eval(t_layer, t_bn, transpose=transpose),
                            U.fuse_conv_bn_eval(n_layer, n_bn, transpose=transpose))
    assert type(n_fused) is type(n_layer) and n_fused is not n_layer
    assert list(n_fused.state_dict()) == list(t_fused.state_dict())
    for key, value in t_fused.state_dict().items():
        assert torch.equal(n_fused.state_dict()[key], value), key
    assert [p.requires_grad for p in n_fused.parameters()] == [p.requires_grad for p in t_fused.parameters()]
    x = torch.randn(2, 2, 5, 5) if layer.endswith("2d") else torch.randn(2, 2, 5) if layer == "Conv1d" else torch.randn(2, 4)
    assert torch.allclose(n_fused(nx.Tensor(x)).data, n_bn(n_layer(nx.Tensor(x))).data, atol=1e-5)


def test_fusion_refuses_training_mode_as_torch():
    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        U.fuse_conv_bn_eval(nx.nn.Conv2d(1, 2, 1), nx.nn.BatchNorm2d(2))
    with pytest.raises(AssertionError, match="linear.out_features == bn.num_features"):
        U.fuse_linear_bn_eval(nx.nn.Linear(2, 3).eval(), nx.nn.BatchNorm1d(4).eval())


def test_skip_init_draws_nothing_and_allocates_on_the_device():
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    m = U.skip_init(nx.nn.Linear, 3, 4, bias=False)
    assert torch.equal(state, torch.random.get_rng_state())  # no initialiser drew from torch's RNG
    assert isinstance(m.weight, nx.nn.Parameter) and m.weight.device.type == "cpu" and m.weight.shape == (4, 3)
    assert list(m.state_dict()) == list(TU.skip_init(torch.nn.Linear, 3, 4, bias=False).state_dict())
    with pytest.raises(RuntimeError, match="Expected a Module; got <class 'int'>"):
        U.skip_init(int)


def test_convert_conv_weight_memory_format():
    model = nx.nn.Sequential(nx.nn.Conv2d(2, 3, 3), nx.nn.ReLU(), nx.nn.Sequential(nx.nn.ConvTranspose2d(3, 2, 2)))
    weights = [model[0].weight, model[2][0].weight]
    assert U.convert_conv2d_weight_memory_format(model, torch.channels_last) is model
    for w in weights:  # same Parameter objects (an optimizer holds them), data in the new layout
        assert w.data.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight is weights[0]


@pytest.mark.parametrize("util", ["weight_norm", "parametrizations.weight_norm", "spectral_norm",
                                  "parametrizations.spectral_norm"])
def test_a_zero_weight_gives_torchs_nans(util):
    # a zero direction row (weight norm) or a zero weight (spectral norm: sigma = 0) divides by zero in both
    t, n = _build_pair("Linear", (3, 2), util, {})
    state = t.state_dict()
    for key, value in state.items():
        if key.endswith(("weight_v", "original1")):
            value[0].zero_()
        elif key.endswith(("weight_orig", "weight.original")):
            value.zero_()
    t.load_state_dict(state)
    n.load_state_dict(state)
    x = torch.randn(2, 3)
    yt, yn = t(x), n(nx.Tensor(x))
    assert yt.isnan().any() and torch.allclose(yn.data, yt.detach(), equal_nan=True)
    for a, b in zip(torch.autograd.grad(yt.sum(), list(t.parameters())),
                    nx.autograd.grad(yn.sum(), list(n.parameters()))):
        assert torch.allclose(b.data, a, rtol=1e-5, atol=1e-6, equal_nan=True)
