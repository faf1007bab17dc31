"""The autograd engine against torch autograd: traversal, accumulation, graph lifetime, modes, hooks."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest
import torch

import neuronix as nx


def close(actual, expected, rtol=1e-7, atol=1e-12):
    actual = actual.data if isinstance(actual, nx.Tensor) else actual
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    torch.testing.assert_close(actual, expected.detach(), rtol=rtol, atol=atol)


def pair(*shape, dtype=torch.float64, seed=0):
    """The same random leaf as an nx tensor and a torch tensor."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(*shape, generator=gen, dtype=dtype)
    return nx.Tensor(data.clone(), requires_grad=True), data.clone().requires_grad_()


# ----- traversal ---------------------------------------------------------------------
def test_50000_op_chain_backward_without_recursion():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y + 0.5
    limit = sys.getrecursionlimit()
    (y * 3.0).sum().backward()
    assert sys.getrecursionlimit() == limit
    close(x.grad, torch.tensor([3.0, 3.0]))
    assert y.data.tolist() == [25_001.0, 25_002.0]


def test_dropping_a_50000_op_chain_frees_it_without_recursion_error():
    x = nx.tensor([1.0], requires_grad=True)
    with nx.AutogradGraph() as graph:
        y = x
        for _ in range(50_000):
            y = y * 1.0
        assert graph.live_nodes() == 50_000
        del y
        assert graph.live_nodes() == 0


def test_shared_subexpressions_diamond_match_torch():
    def f(lib, x, w):
        a = x * w
        b = a.exp()
        c = a.sin() * b  # a used three times, b twice
        d = (b + c) * a
        return (d - a.tanh()).sum() + (b * b).mean()

    x, xt = pair(3, 4, seed=1)
    w, wt = pair(4, seed=2)
    f(nx, x, w).backward()
    f(torch, xt, wt).backward()
    close(x.grad, xt.grad)
    close(w.grad, wt.grad)


def test_same_tensor_used_twice_in_one_op():
    x, xt = pair(5)
    (x * x).sum().backward()
    (xt * xt).sum().backward()
    close(x.grad, xt.grad)


def test_gradients_accumulate_into_leaves_across_backward_calls():
    x, xt = pair(4)
    g1, g2 = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    for lib_x, a, b in ((x, nx.Tensor(g1), nx.Tensor(g2)), (xt, g1, g2)):
        (lib_x * lib_x).backward(a)
        lib_x.sin().backward(b)
    close(x.grad, xt.grad)
    close(x.grad, 2 * xt.detach() * g1 + xt.detach().cos() * g2)


def test_broadcast_inputs_get_gradients_of_their_own_shape():
    a, at = pair(3, 1, seed=3)
    b, bt = pair(4, seed=4)
    g = torch.randn(3, 4, dtype=torch.float64)
    (a * b).backward(nx.Tensor(g))
    (at * bt).backward(g)
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    close(a.grad, at.grad)
    close(b.grad, bt.grad)


# ----- retain_graph --------------------------------------------------------------------
def test_second_backward_through_freed_graph_raises_clear_error():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*'mul'.*retain_graph=True"):
        y.backward()


def test_retain_graph_second_backward_accumulates_exactly_once_more():
    x, xt = pair(3)
    y, yt = (x.exp() * x).sum(), (xt.exp() * xt).sum()
    y.backward(retain_graph=True)
    yt.backward(retain_graph=True)
    first = x.grad.data.clone()
    y.backward()
    yt.backward()
    close(x.grad, xt.grad)
    close(x.grad, 2 * first)


def test_graph_without_saved_tensors_can_run_twice_as_torch():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1.0).sum()
    y.backward()
    y.backward()
    close(x.grad, torch.tensor([2.0, 2.0]))


# ----- higher order ------------------------------------------------------------------------
def _composite(x):
    return (x.sin() * x.exp() + x.tanh() / (x * x + 1.0)).sum()


def test_create_graph_second_and_third_derivatives_match_torch():
    x, xt = pair(5, seed=5)
    (g1,) = nx.autograd.grad(_composite(x), x, create_graph=True)
    (g1t,) = torch.autograd.grad(_composite(xt), xt, create_graph=True)
    close(g1, g1t)
    v = torch.randn(5, dtype=torch.float64)
    (g2,) = nx.autograd.grad(g1, x, grad_outputs=nx.Tensor(v), create_graph=True)
    (g2t,) = torch.autograd.grad(g1t, xt, grad_outputs=v, create_graph=True)
    close(g2, g2t)
    (g3,) = nx.autograd.grad(g2.sum(), x)
    (g3t,) = torch.autograd.grad(g2t.sum(), xt)
    close(g3, g3t)
    assert not g3.requires_grad


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_makes_grad_differentiable():
    x, xt = pair(4, seed=6)
    (x * x * x).sum().backward(create_graph=True)
    (xt * xt * xt).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    close(x.grad, xt.grad)
    (gg,) = nx.autograd.grad(x.grad.sum(), x)
    (ggt,) = torch.autograd.grad(xt.grad.sum(), xt)
    close(gg, ggt)


# ----- nx.autograd.grad / backward ---------------------------------------------------------
def test_grad_does_not_touch_leaf_grads():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    (g,) = nx.autograd.grad((x * x).sum(), x)
    close(g, torch.tensor([2.0, 4.0]))
    assert x.grad is None


def test_grad_allow_unused():
    x = nx.tensor([1.0], requires_grad=True)
    unused = nx.tensor([2.0], requires_grad=True)
    y = (x * 3.0).sum()
    with pytest.raises(RuntimeError, match="input 1 .*not have been used.*allow_unused=True"):
        nx.autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = nx.autograd.grad(y, [x, unused], allow_unused=True, retain_graph=True)
    close(gx, torch.tensor([3.0]))
    assert gu is None
    gx, gu = nx.autograd.grad(y, [x, unused], materialize_grads=True)
    close(gu, torch.tensor([0.0]))


def test_grad_with_grad_outputs_multiple_outputs_and_non_leaf_inputs():
    x, xt = pair(3, seed=7)
    gs = [torch.randn(3, dtype=torch.float64) for _ in range(2)]

    def run(lib_x, grad_fn, wrap):
        h = lib_x * 2.0  # a non-leaf input
        out1, out2 = h.exp(), (h * lib_x).sin()
        return grad_fn([out1, out2], [h, lib_x], grad_outputs=[wrap(g) for g in gs])

    gh, gx = run(x, nx.autograd.grad, nx.Tensor)
    ght, gxt = run(xt, torch.autograd.grad, lambda g: g)
    close(gh, ght)
    close(gx, gxt)


def test_grad_on_non_leaf_input_stops_there():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    h = x * 5.0
    (gh,) = nx.autograd.grad((h * h).sum(), h)
    close(gh, 2 * h.data)
    assert x.grad is None


def test_grad_runs_only_the_part_of_the_graph_leading_to_the_inputs():
    calls = []
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    w = nx.tensor([3.0, 4.0], requires_grad=True)
    side = w.exp()
    side.register_hook(lambda g: calls.append("side"))
    y = (x * 2.0).sum() + side.sum()
    (gx,) = nx.autograd.grad(y, x)
    close(gx, torch.tensor([2.0, 2.0]))
    assert calls == []  # the branch to w never ran


def test_autograd_backward_with_inputs_accumulates_only_those():
    x, xt = pair(3, seed=8)
    w, wt = pair(3, seed=9)
    for a, b, lib in ((x, w, nx), (xt, wt, torch)):
        h = a * b
        y = (h * h).sum()
        lib.autograd.backward(y, inputs=[b], retain_graph=True)
        y.backward(inputs=[h])
        assert a.grad is None
        if lib is nx:
            nx_h = h
        else:
            close(nx_h.grad, h.grad)
    close(w.grad, wt.grad)


def test_backward_inputs_runs_leaf_hooks_once():
    calls = []
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: calls.append(1) or g * 2)
    (x * x).sum().backward(inputs=[x])
    close(x.grad, torch.tensor([4.0, 8.0]))
    assert calls == [1]


def test_gradient_seed_with_other_dtype_takes_the_output_dtype_as_torch():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).backward(nx.tensor([1, 1]))
    close(x.grad, torch.tensor([2.0, 2.0]))


# ----- grad modes ----------------------------------------------------------------------------
def test_no_grad_context_records_nothing():
    x = nx.tensor([1.0], requires_grad=True)
    with nx.no_grad():
        y = x * 2.0
        assert not nx.is_grad_enabled()
    assert nx.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_grad_mode_nesting_and_decorators():
    x = nx.tensor([1.0], requires_grad=True)

    @nx.no_grad()
    def off():
        return x * 2.0

    @nx.no_grad
    def off_bare():
        return x * 2.0

    @nx.enable_grad()
    def on():
        return x * 2.0

    assert not off().requires_grad and not off_bare().requires_grad
    with nx.no_grad():
        assert on().requires_grad
        with nx.enable_grad():
            assert (x * 1.0).requires_grad
            with nx.set_grad_enabled(False):
                assert not (x * 1.0).requires_grad
            assert nx.is_grad_enabled()
        assert not nx.is_grad_enabled()
    assert nx.is_grad_enabled()


def test_set_grad_enabled_as_function_and_decorator():
    x = nx.tensor([1.0], requires_grad=True)
    try:
        nx.set_grad_enabled(False)
        assert not (x * 1.0).requires_grad
    finally:
        nx.set_grad_enabled(True)

    @nx.set_grad_enabled(False)
    def off():
        return nx.is_grad_enabled()

    assert nx.is_grad_enabled()  # decorating leaves the mode alone
    assert off() is False
    assert nx.is_grad_enabled()


def test_decorated_function_restores_mode_on_exception():
    @nx.no_grad()
    def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert nx.is_grad_enabled()


# ----- hooks -----------------------------------------------------------------------------------
def test_leaf_hook_modifies_grad_and_handle_removes_it():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.data.clone()) or g * 10)
    (x * 3.0).sum().backward()
    close(x.grad, torch.tensor([30.0, 30.0]))
    close(seen[0], torch.tensor([3.0, 3.0]))
    handle.remove()
    x.grad = None
    (x * 3.0).sum().backward()
    close(x.grad, torch.tensor([3.0, 3.0]))
    assert len(seen) == 1


def test_non_leaf_hook_changes_what_flows_below_as_torch():
    x, xt = pair(3, seed=10)
    for a in (x, xt):
        h = a.exp()
        h.register_hook(lambda g: g * 2)
        (h * a).sum().backward()
    close(x.grad, xt.grad)


def test_hook_returning_none_keeps_grad():
    x = nx.tensor([1.0], requires_grad=True)
    x.register_hook(lambda g: None)
    (x * 4.0).sum().backward()
    close(x.grad, torch.tensor([4.0]))


def test_retain_grad_on_non_leaf():
    x, xt = pair(3, seed=11)
    for a in (x, xt):
        h = a * a
        h.retain_grad()
        (h.sin()).sum().backward()
        if a is x:
            nx_h = h
        else:
            close(nx_h.grad, h.grad)
    assert not nx_h.grad.requires_grad


def test_register_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        nx.tensor([1.0]).register_hook(lambda g: g)


# ----- in-place safety (torch version counters) --------------------------------------------------
def test_modifying_a_saved_tensor_in_place_raises_like_torch():
    x, xt = pair(3, seed=12)
    for a in (x, xt):
        h = a * 2.0
        y = (h * a).sum()  # mul saves h
        with (nx if a is x else torch).no_grad():
            h.mul_(3.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()


def test_version_error_names_the_op_and_versions():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp saves its output
    with nx.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match=r"its output of 'exp' \(shape \(2,\).*version 1; expected version 0"):
        y.sum().backward()


def test_modifying_an_unsaved_input_does_not_raise_as_torch():
    a, at = pair(3, seed=13)
    b, bt = pair(3, seed=14)
    for p, q, lib in ((a, b, nx), (at, bt, torch)):
        y = (p + q).sum()  # add saves nothing
        with lib.no_grad():
            p.mul_(2.0)
        y.backward()
    close(a.grad, at.grad)
    close(b.grad, bt.grad)


# ----- memory ------------------------------------------------------------------------------------
def _graph(x, w):
    a = x * w
    b = a.exp()
    c = (b * a).tanh() + b.sigmoid()
    return c.sum(), [weakref.ref(t) for t in (a, b, c)]


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("run_backward", [True, False], ids=["after_backward", "dropped_without_backward"])
def test_reference_counting_alone_frees_the_graph(no_gc, run_backward):
    x = nx.randn(4, requires_grad=True)
    w = nx.randn(4, requires_grad=True)
    with nx.AutogradGraph() as graph:
        loss, tensors = _graph(x, w)
        nodes = [weakref.ref(n) for n in graph.nodes()]
        assert graph.live_nodes() == len(nodes) > 5
        if run_backward:
            loss.backward()
        loss_ref = weakref.ref(loss)
        del loss
    assert graph.live_nodes() == 0
    assert all(r() is None for r in nodes + tensors + [loss_ref])
    if run_backward:
        assert x.grad is not None and x.grad.grad_fn is None


def test_create_graph_grads_free_with_their_graph(no_gc):
    x = nx.randn(3, requires_grad=True)
    with nx.AutogradGraph() as graph:
        (g,) = nx.autograd.grad((x.exp() * x).sum(), x, create_graph=True)
        g.sum().backward()
        assert graph.live_nodes() > 0
        del g
    assert graph.live_nodes() == 0


def test_backward_releases_saved_tensors():
    x = nx.randn(1000, requires_grad=True)
    h = x * 2.0
    y = h.exp()
    saved = weakref.ref(h.data)
    loss = (y * h).sum()
    del h
    loss.backward()
    assert saved() is None  # the node held h's data only for the backward pass


# ----- torch autograd is never used ----------------------------------------------------------------
def test_everything_works_under_torch_no_grad():
    with torch.no_grad():
        x = nx.tensor([0.5, -1.0, 2.0], requires_grad=True)
        w = nx.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0]], requires_grad=True)
        y = ((x @ w).tanh() * x.sum()).sum()
        y.backward()
        (gx,) = nx.autograd.grad((x.exp() * x).sum(), x, create_graph=True)
        (ggx,) = nx.autograd.grad(gx.sum(), x)
    xt = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    wt = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0]], requires_grad=True)
    ((xt @ wt).tanh() * xt.sum()).sum().backward()
    close(x.grad, xt.grad, rtol=1e-6, atol=1e-6)
    close(w.grad, wt.grad, rtol=1e-6, atol=1e-6)
    e = torch.tensor([0.5, -1.0, 2.0]).exp()
    close(gx, e * (torch.tensor([0.5, -1.0, 2.0]) + 1), rtol=1e-6, atol=1e-6)
    close(ggx, e * (torch.tensor([0.5, -1.0, 2.0]) + 2), rtol=1e-6, atol=1e-6)
    assert not x.data.requires_grad and not x.grad.data.requires_grad


# ----- type promotion -------------------------------------------------------------------------------
def test_int_plus_float_promotes_and_grad_is_float():
    i = nx.tensor([1, 2, 3])
    f = nx.tensor([0.5, 0.5, 0.5], requires_grad=True)
    y = i + f
    assert y.dtype == torch.float32
    (y * i).sum().backward()
    close(f.grad, torch.tensor([1.0, 2.0, 3.0]))


def test_mixed_float_dtypes_give_grads_in_each_inputs_dtype():
    a = nx.tensor([1.0, 2.0], dtype=torch.float32, requires_grad=True)
    b = nx.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    at = torch.tensor([1.0, 2.0], dtype=torch.float32, requires_grad=True)
    bt = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    y, yt = a * b, at * bt
    assert y.dtype == yt.dtype == torch.float64
    y.sum().backward()
    yt.sum().backward()
    close(a.grad, at.grad)
    close(b.grad, bt.grad)


@pytest.mark.parametrize(
    "fn",
    [lambda x: 2.0 * x, lambda x: x * 2, lambda x: 1.0 - x, lambda x: x - 1, lambda x: 3.0 / x, lambda x: x / 4, lambda x: 2 ** x,
     lambda x: x ** 2],
)
def test_python_scalars_on_either_side(fn):
    x, xt = pair(3, seed=15)
    y, yt = fn(x), fn(xt)
    assert isinstance(y, nx.Tensor) and y.dtype == torch.float64
    y.sum().backward()
    yt.sum().backward()
    close(x.grad, xt.grad)


def test_torch_tensor_on_the_left_returns_nx_tensor():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    t = torch.tensor([10.0, 20.0])
    for y, sign in ((t - x, -1.0), (t + x, 1.0), (t * x, None)):
        assert isinstance(y, nx.Tensor) and y.requires_grad
        x.grad = None
        y.sum().backward()
        close(x.grad, t if sign is None else torch.full((2,), sign))


def test_integer_tensors_cannot_require_grad():
    for make in (
        lambda: nx.tensor([1, 2], requires_grad=True),
        lambda: nx.Tensor(torch.tensor([1, 2]), requires_grad=True),
        lambda: nx.arange(3).requires_grad_(),
        lambda: nx.zeros(2, dtype=torch.int64, requires_grad=True),
    ):
        with pytest.raises(RuntimeError, match=r"only floating point tensors.*torch\.int64"):
            make()


# ----- buffers are summed in place only when nobody else can see them ----------------------------------
def test_seed_and_hook_results_are_never_modified_in_place():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    seed = nx.ones(2)
    (x + x).backward(seed)  # add passes the seed itself to both edges
    (x + x).backward(seed)
    assert seed.tolist() == [1.0, 1.0]
    close(x.grad, torch.tensor([4.0, 4.0]))
    kept = nx.tensor([5.0, 5.0])
    w = nx.tensor([1.0, 1.0], requires_grad=True)
    h = w * 1.0
    h.register_hook(lambda g: kept)
    (h + h * 2.0).sum().backward()
    assert kept.tolist() == [5.0, 5.0]
    close(w.grad, torch.tensor([5.0, 5.0]))


def test_diamond_sums_stay_differentiable_under_create_graph():
    x, xt = pair(3, seed=16)
    grads = []
    for a, lib in ((x, nx), (xt, torch)):
        h = a.sin()
        y = (h * h + h + h.exp() * h).sum()  # four consumers of h: a summed buffer
        (g,) = lib.autograd.grad(y, a, create_graph=True)
        (gg,) = lib.autograd.grad(g.sum(), a)
        grads.append((g, gg))
    close(grads[0][0], grads[1][0])
    close(grads[0][1], grads[1][1])


def test_leaf_grad_is_not_aliased_to_a_gradient_still_in_use():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    (y + y.detach() * 0.0).backward(nx.ones(2))  # y's buffer flows through mul to x
    first = x.grad
    (x * 3.0).sum().backward()
    assert first is x.grad
    close(x.grad, torch.tensor([4.0, 4.0]))
