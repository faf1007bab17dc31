"""Regression tests for the special-point defects of issue 10 (items 2, 3, 10, 12), torch as the oracle.

Each test pins one reported case; ``test_special_values.py`` sweeps the same classes over every op.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F
from neuronix.ops.conventions import TABLE, convention

INF, NAN = math.inf, math.nan


def _both(fn_torch, fn_nx, *values, upstream=None, create_graph=False, dtype=torch.float64):
    """Gradients of ``fn(*inputs)`` under ``upstream`` (default ones) from torch and from neuronix."""
    raw = [torch.tensor(v, dtype=dtype) for v in values]
    t_in = [r.clone().requires_grad_() for r in raw]
    n_in = [nx.Tensor(r.clone(), requires_grad=True) for r in raw]
    t_out, n_out = fn_torch(*t_in), fn_nx(*n_in)
    u = torch.ones_like(t_out) if upstream is None else torch.tensor(upstream, dtype=dtype).expand(t_out.shape)
    t_g = torch.autograd.grad(t_out, t_in, u, allow_unused=True, create_graph=create_graph)
    n_g = nx.autograd.grad(n_out, n_in, nx.Tensor(u.clone()), allow_unused=True, create_graph=create_graph)
    return t_g, n_g


def _assert_same(t_grads, n_grads):
    for t, n in zip(t_grads, n_grads):
        if t is None:
            assert n is None or not n.data.any()
            continue
        torch.testing.assert_close(n.data, t.detach(), equal_nan=True, rtol=1e-7, atol=1e-12)


# ----- item 2: binary_cross_entropy_with_logits at a zero logit -------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_with_logits_at_a_zero_logit_matches_torch(reduction, with_weight, with_pos_weight):
    weight = torch.tensor([2.0, 0.5, 1.5], dtype=torch.float64) if with_weight else None
    pos_weight = torch.tensor([2.0, 3.0, 0.5], dtype=torch.float64) if with_pos_weight else None

    def call(lib, functional):
        wrap = (lambda t: t) if lib is torch else (lambda t: None if t is None else nx.Tensor(t))
        return lambda x, t: functional.binary_cross_entropy_with_logits(x, t, weight=wrap(weight), reduction=reduction,
                                                                        pos_weight=wrap(pos_weight))

    t_g, n_g = _both(call(torch, TF), call(nx, F), [0.0, 0.0, 0.0], [0.0, 0.5, 1.0], create_graph=True)
    _assert_same(t_g, n_g)
    if not with_weight and not with_pos_weight and reduction == "mean":
        assert n_g[0].data.tolist() == pytest.approx([0.5 / 3, 0.0, -0.5 / 3])  # the numbers
    # second derivatives (input and target) through the recorded gradients
    raw = [torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)]
    t_x, t_t = (r.clone().requires_grad_() for r in raw)
    n_x, n_t = (nx.Tensor(r.clone(), requires_grad=True) for r in raw)
    t_first = torch.autograd.grad(call(torch, TF)(t_x, t_t).sum(), [t_x, t_t], create_graph=True)
    n_first = nx.autograd.grad(call(nx, F)(n_x, n_t).sum(), [n_x, n_t], create_graph=True)
    t_second = torch.autograd.grad((t_first[0] * t_first[0]).sum() + t_first[1].sum(), [t_x, t_t], allow_unused=True)
    n_second = nx.autograd.grad((n_first[0] * n_first[0]).sum() + n_first[1].sum(), [n_x, n_t], allow_unused=True)
    _assert_same(t_second, n_second)


def test_bce_with_logits_weights_are_not_differentiable_as_in_torch():
    x, t = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    pos_weight = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError):
        TF.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight)
    with pytest.raises(RuntimeError):
        F.binary_cross_entropy_with_logits(nx.Tensor(x), nx.Tensor(t), pos_weight=nx.Tensor(pos_weight.detach(),
                                                                                              requires_grad=True))


# ----- item 3: masked gradients stay 0 under an infinite or NaN upstream gradient ----------------------
MASKED = {
    "clamp(min=0).sqrt()": (lambda x: x.clamp(min=0).sqrt(), lambda x: x.clamp(min=0).sqrt()),
    "where(x > 0, x, 0).sqrt()": (lambda x: torch.where(x > 0, x, 0.0).sqrt(), lambda x: nx.where(x > 0, x, 0.0).sqrt()),
    "maximum(x, 0).sqrt()": (lambda x: torch.maximum(x, torch.zeros(())).sqrt(),
                             lambda x: nx.maximum(x, nx.zeros((), dtype=torch.float64)).sqrt()),
    "minimum(-x, 0)": (lambda x: torch.minimum(-x, torch.zeros(())).neg().sqrt(),
                       lambda x: nx.minimum(-x, nx.zeros((), dtype=torch.float64)).neg().sqrt()),
    "relu(x).sqrt()": (lambda x: x.relu().sqrt(), lambda x: x.relu().sqrt()),
    "hardtanh(x, 0, 1).sqrt()": (lambda x: TF.hardtanh(x, 0.0, 1.0).sqrt(), lambda x: F.hardtanh(x, 0.0, 1.0).sqrt()),
    "max(dim)": (lambda x: x.unsqueeze(0).expand(2, -1).max(1).values, lambda x: x.unsqueeze(0).expand(2, -1).max(1).values),
}


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("case", sorted(MASKED))
def test_masked_gradients_do_not_leak_inf_or_nan(case, create_graph):
    fn_torch, fn_nx = MASKED[case]
    t_g, n_g = _both(fn_torch, fn_nx, [-1.0, 4.0], create_graph=create_graph)
    _assert_same(t_g, n_g)
    assert n_g[0].data[0].item() == 0.0  # sqrt's infinite derivative at 0 must not reach the masked input


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign", "frac"])
@pytest.mark.parametrize("upstream", [INF, NAN])
def test_piecewise_constant_ops_give_an_exact_zero_gradient(name, upstream, create_graph):
    t_g, n_g = _both(getattr(torch, name), getattr(nx, name), [-1.5, 0.0, 0.3, 2.0], upstream=upstream,
                     create_graph=create_graph)
    _assert_same(t_g, n_g)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@pytest.mark.parametrize("values", [[1.0, NAN, 3.0], [3.0, 1.0, 3.0], [NAN, 2.0, NAN], [-INF, 1.0, INF]])
@pytest.mark.parametrize("upstream", [1.0, INF])
def test_full_max_min_route_the_gradient_as_torch(name, values, upstream):
    """max()/min() share it among ties and give it to the NaN; amax/amin divide by the tie count."""
    t_g, n_g = _both(getattr(torch, name), getattr(nx, name), values, upstream=upstream)
    _assert_same(t_g, n_g)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("values", [[[1.0, NAN, 3.0]], [[3.0, 1.0, 3.0]], [[2.0, 2.0, 2.0]]])
def test_max_min_along_a_dim_send_the_gradient_to_the_index(name, values):
    t_g, n_g = _both(lambda x: getattr(torch, name)(x, 1).values, lambda x: getattr(nx, name)(x, 1).values, values,
                     upstream=INF)
    _assert_same(t_g, n_g)


def test_masked_gradient_is_differentiable_in_the_upstream_gradient():
    """Double backward through clamp: the masked gradient stays in the graph of its upstream gradient."""
    for lib in (torch, nx):
        x = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
        x = x.requires_grad_() if lib is torch else nx.Tensor(x, requires_grad=True)
        y = (x.clamp(min=0.0) ** 3).sum()
        (g,) = lib.autograd.grad(y, [x], create_graph=True)
        assert g.requires_grad
        (h,) = lib.autograd.grad(g.sum(), [x])
        h = h if lib is torch else h.data
        assert h.tolist() == [0.0, 3.0, 12.0]


# ----- item 10: kinks and special points ---------------------------------------------------------------
@pytest.mark.parametrize("p", [0.5, 0.25, 3.0, 2.0, 1.0, INF, -1.0])
@pytest.mark.parametrize("upstream", [1.0, INF])
def test_norm_at_a_zero_element(p, upstream):
    t_g, n_g = _both(lambda x: x.norm(p), lambda x: x.norm(p), [0.0, 3.0, -2.0], upstream=upstream, create_graph=True)
    _assert_same(t_g, n_g)


ACTIVATIONS = {
    "hardswish": ([-3.0, 3.0, -4.0, 0.0, 4.0, NAN], {}),
    "elu": ([0.0, -0.0, -1.0, 1.0], {}),
    "selu": ([0.0, -1.0, 1.0], {}),
    "softplus": ([20.0, 0.0, 21.0], {}),
    "relu6": ([0.0, 6.0, 3.0], {}),
    "hardtanh": ([-1.0, 1.0, 0.0, NAN], {}),
    "leaky_relu": ([0.0, -1.0, 1.0], {"negative_slope": 0.0}),
    "gelu": ([INF, -INF, 20.0, 0.0], {"approximate": "tanh"}),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("upstream", [1.0, INF])
def test_create_graph_keeps_the_first_derivative_at_kinks(name, upstream):
    values, kwargs = ACTIVATIONS[name]
    fn_t = lambda x: getattr(TF, name)(x, **kwargs)  # noqa: E731
    fn_n = lambda x: getattr(F, name)(x, **kwargs)  # noqa: E731
    plain = _both(fn_t, fn_n, values, upstream=upstream)
    recorded = _both(fn_t, fn_n, values, upstream=upstream, create_graph=True)
    _assert_same(plain[0], plain[1])
    _assert_same(recorded[0], recorded[1])
    torch.testing.assert_close(recorded[1][0].data, plain[1][0].data, equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["elu", "selu", "hardswish", "softplus"])
def test_second_derivatives_at_kinks(name):
    values = {"elu": [0.0, -1.0, 1.0], "selu": [0.0, -1.0], "hardswish": [-3.0, 3.0, 0.0], "softplus": [20.0, 0.0]}[name]
    seconds = []
    for lib, functional in ((torch, TF), (nx, F)):
        raw = torch.tensor(values, dtype=torch.float64)
        x = raw.requires_grad_() if lib is torch else nx.Tensor(raw, requires_grad=True)
        (g,) = lib.autograd.grad(getattr(functional, name)(x).sum(), [x], create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), [x])
        seconds.append(h if lib is torch else h.data)
    torch.testing.assert_close(seconds[1], seconds[0], equal_nan=True)


PIECEWISE_LINEAR = {
    "relu": (lambda x: x.relu(), lambda x: x.relu()),
    "leaky_relu": (lambda x: TF.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
    "hardtanh": (TF.hardtanh, F.hardtanh),
    "relu6": (TF.relu6, F.relu6),
    "pad reflect": (lambda x: TF.pad(x, (1, 1), mode="reflect"), lambda x: F.pad(x, (1, 1), mode="reflect")),
    "pad replicate": (lambda x: TF.pad(x, (2, 1), mode="replicate"), lambda x: F.pad(x, (2, 1), mode="replicate")),
    "max_pool2d": (lambda x: TF.max_pool2d(x.reshape(1, 2, 2), 2), lambda x: F.max_pool2d(x.reshape(1, 2, 2), 2)),
    "avg_pool2d": (lambda x: TF.avg_pool2d(x.reshape(1, 2, 2), 2), lambda x: F.avg_pool2d(x.reshape(1, 2, 2), 2)),
    "adaptive_avg_pool2d": (lambda x: TF.adaptive_avg_pool2d(x.reshape(1, 2, 2), (1, 2)),
                            lambda x: F.adaptive_avg_pool2d(x.reshape(1, 2, 2), (1, 2))),
    "adaptive_max_pool2d": (lambda x: TF.adaptive_max_pool2d(x.reshape(1, 2, 2), 1),
                            lambda x: F.adaptive_max_pool2d(x.reshape(1, 2, 2), 1)),
}


@pytest.mark.parametrize("name", sorted(PIECEWISE_LINEAR))
def test_gradient_penalty_through_piecewise_linear_ops_gives_zeros(name):
    """Under create_graph the gradient is in the input's graph, as torch's: a penalty on it differentiates to 0."""
    fn_t, fn_n = PIECEWISE_LINEAR[name]
    values = torch.tensor([[-1.5, 0.5, 2.0, 0.25]], dtype=torch.float64)
    results = []
    for lib, fn in ((torch, fn_t), (nx, fn_n)):
        x = values.clone().requires_grad_() if lib is torch else nx.Tensor(values.clone(), requires_grad=True)
        (g,) = lib.autograd.grad(fn(x).sum(), [x], create_graph=True)
        assert g.requires_grad, f"{lib.__name__}: the gradient is not in the graph"
        (h,) = lib.autograd.grad((g * g).sum(), [x])
        results.append(h if lib is torch else h.data)
    torch.testing.assert_close(results[1], results[0])
    assert not results[1].any()


def test_pow_with_a_zero_base():
    # scalar base 0: 0^-1 = inf, so d/dx 0^x = inf * log 0 = -inf there; 0 for x >= 0
    t_g, n_g = _both(lambda x: torch.pow(0.0, x), lambda x: nx.pow(0.0, x), [-1.0, 0.0, 1.0, 2.0], create_graph=True)
    _assert_same(t_g, n_g)
    assert n_g[0].data[0].item() == -INF
    t_g, n_g = _both(torch.pow, nx.pow, [0.0, 0.0, 0.0, -0.0], [-1.0, 0.0, 1.0, 0.5], create_graph=True)
    _assert_same(t_g, n_g)
    t_g, n_g = _both(lambda x: x ** 0, lambda x: x ** 0, [0.0, 2.0], upstream=INF)
    _assert_same(t_g, n_g)


def test_bce_target_gradient_at_inputs_zero_and_one():
    values = ([0.0, 1.0, -0.0, 0.5], [0.3, 0.5, 1.0, 0.0])
    t_g, n_g = _both(lambda x, t: TF.binary_cross_entropy(x, t, reduction="sum"),
                     lambda x, t: F.binary_cross_entropy(x, t, reduction="sum"), *values)
    _assert_same(t_g, n_g)
    assert n_g[1].data[:2].tolist() == [INF, -INF]  # log(1 - x) - log(x), not clamped at +-100


@pytest.mark.parametrize("x", [[0.0, 1.0, 0.5, -0.5, 2.0, NAN]])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.5, 0.5), (0.0, None), (None, 1.0), (1.0, 0.0)])
def test_clamp_exactly_at_number_bounds(x, bounds):
    lo, hi = bounds
    t_g, n_g = _both(lambda v: v.clamp(lo, hi), lambda v: v.clamp(lo, hi), x, upstream=INF)
    _assert_same(t_g, n_g)


@pytest.mark.parametrize("x", [[0.0, 1.0, 0.5, 0.3, 1.0, 2.0, -1.0, NAN]])
@pytest.mark.parametrize("which", ["both", "min", "max"])
def test_clamp_exactly_at_tensor_bounds(x, which):
    lo = [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, -1.0, 0.0]
    hi = [1.0, 1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 1.0]
    if which == "both":
        t_g, n_g = _both(torch.clamp, nx.clamp, x, lo, hi, upstream=INF)
    elif which == "min":
        t_g, n_g = _both(lambda v, b: v.clamp(min=b), lambda v, b: v.clamp(min=b), x, lo, upstream=INF)
    else:
        t_g, n_g = _both(lambda v, b: v.clamp(max=b), lambda v, b: v.clamp(max=b), x, hi, upstream=INF)
    _assert_same(t_g, n_g)


def test_conventions_table_matches_the_installed_torch():
    """Each version-dependent convention has the value the installed torch actually uses."""
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    (g,) = torch.autograd.grad(x.clamp(0.0, 1.0).sum(), [x])
    assert convention("clamp_scalar_bounds_closed") == bool((g == 1).all())
    assert convention("clamp_scalar_bounds_closed", (2, 13)) is True
    assert convention("clamp_scalar_bounds_closed", (2, 14)) is False
    x, lo = torch.tensor([0.0], requires_grad=True), torch.tensor([0.0], requires_grad=True)
    (gx,) = torch.autograd.grad(x.clamp(min=lo).sum(), [x])
    assert convention("clamp_tensor_bounds_split_ties") == bool(gx == 0.5)


_GRID = (-1.0, 0.0, 1.0, NAN)


@pytest.mark.parametrize("upstream", [1.0, INF])
def test_clamp_with_tensor_bounds_on_a_grid_of_ties_and_nans(upstream):
    """Every (x, min, max) over {-1, 0, 1, NaN} (and each bound alone): the installed torch's gradients exactly."""
    cases = [(x, lo, hi) for x in _GRID for lo in (*_GRID, None) for hi in (*_GRID, None) if (lo, hi) != (None, None)]
    for x, lo, hi in cases:
        results = []
        for lib in (torch, nx):
            leaves = [None if v is None else lib.tensor([v], dtype=torch.float64, requires_grad=True) for v in (x, lo, hi)]
            out = leaves[0].clamp(leaves[1], leaves[2])
            seed = torch.tensor([upstream], dtype=torch.float64)
            grads = lib.autograd.grad(out, [t for t in leaves if t is not None], seed if lib is torch else nx.Tensor(seed))
            results.append(torch.cat([g.data if lib is nx else g for g in grads]))
        torch.testing.assert_close(results[1], results[0], equal_nan=True, msg=f"clamp({x}, {lo}, {hi})")
    assert all(c.why for c in TABLE.values())


# ----- item 12: pad with negative amounts -----------------------------------------------------------------
def test_circular_pad_with_negative_amounts_the_reported_case():
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pad = (-1, 1, -2, 1)
    up = torch.randn(TF.pad(x, pad, mode="circular").shape, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(1))
    t_g, n_g = _both(lambda v: TF.pad(v, pad, mode="circular"), lambda v: F.pad(v, pad, mode="circular"), x.tolist(),
                     upstream=up.tolist())
    _assert_same(t_g, n_g)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate", "constant"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_pad_with_any_mix_of_signs(mode, spatial):
    rng = random.Random(f"{mode}{spatial}")
    checked = 0
    for _ in range(60):
        shape = (1, 2) + tuple(rng.randint(3, 5) for _ in range(spatial))
        pad = [rng.randint(-2, 2) for _ in range(2 * spatial)]
        if mode == "circular" and any(  # torch reads memory it never wrote when a pad wraps more than once
            max(pad[2 * k], 0) + max(pad[2 * k + 1], 0) > shape[-1 - k] - max(-pad[2 * k], 0) - max(-pad[2 * k + 1], 0)
            for k in range(spatial)
        ):
            continue
        x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(rng.randint(0, 999)))
        try:
            out = TF.pad(x, tuple(pad), mode=mode)
        except RuntimeError:
            continue
        if out.numel() == 0:
            continue
        up = torch.randn(out.shape, dtype=torch.float64)
        amounts = tuple(pad)
        t_g, n_g = _both(lambda v, a=amounts: TF.pad(v, a, mode=mode), lambda v, a=amounts: F.pad(v, a, mode=mode),
                         x.tolist(), upstream=up.tolist(), create_graph=True)
        _assert_same(t_g, n_g)
        checked += 1
    assert checked >= 10


def test_an_anchor_larger_than_the_selection_gets_a_zero_gradient_of_its_own_shape():
    """``select(..., anchor)``: the anchor's gradient is zeros shaped as the anchor, even when it is larger."""
    from neuronix.ops.elementwise import anchored, select

    anchor = nx.ones(4, 1, requires_grad=True)
    value = nx.ones(1, requires_grad=True)
    for out in (select(torch.tensor(True), value * 2, 0.0, anchor), anchored(value * 2, anchor)):
        g_value, g_anchor = nx.autograd.grad(out.sum(), [value, anchor])
        assert g_value.tolist() == [2.0] and g_anchor.tolist() == [[0.0]] * 4
