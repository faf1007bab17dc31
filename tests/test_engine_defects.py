"""Regression tests for the engine-level silent wrong answers of issue 10 (torch is the oracle).

Each test failed before its fix: stale fused gradients on a retained graph, unversioned index
and mask tensors, process-global grad mode, ``.grad`` aliasing the seed, complex inputs,
``.data`` reassignment, and hooks/grads of the wrong shape.
"""

from __future__ import annotations

import threading

import pytest
import torch

import neuronix as nx


# ----- 1. no gradient computed for one upstream gradient outlives its backward step -------------
@pytest.mark.parametrize("norm", ["layer", "batch", "group"])
def test_norm_layers_give_fresh_gradients_through_a_retained_graph(norm):
    """GradNorm/PCGrad: grad(loss1, [norm.weight], retain_graph) then (loss1 + loss2).backward()."""
    x_value = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))

    def run(lib):
        torch.manual_seed(1)
        linear = lib.nn.Linear(3, 3)
        layer = {"layer": lambda: lib.nn.LayerNorm(3), "batch": lambda: lib.nn.BatchNorm1d(6),
                 "group": lambda: lib.nn.GroupNorm(2, 6)}[norm]()
        x = (torch.Tensor if lib is torch else nx.Tensor)(x_value.clone()).requires_grad_()
        y = layer(linear(x))
        loss1, loss2 = (y * y).sum(), (y * y.detach().sin()).sum()
        g, = lib.autograd.grad(loss1, [layer.weight], retain_graph=True)
        (loss1 + loss2).backward()
        return [t.data.clone() for t in (linear.weight.grad, x.grad, g, layer.weight.grad)]

    for mine, theirs in zip(run(nx), run(torch)):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_each_input_alone_then_all_through_one_graph():
    x = nx.randn(5, 4, requires_grad=True)
    w, b = nx.randn(4, requires_grad=True), nx.randn(4, requires_grad=True)
    y = nx.nn.functional.layer_norm(x, (4,), w, b)
    u1, u2 = torch.randn(5, 4), torch.randn(5, 4)
    alone = [nx.autograd.grad(y, [t], nx.Tensor(u1), retain_graph=True)[0] for t in (x, w, b)]
    together = nx.autograd.grad(y, [x, w, b], nx.Tensor(u2), retain_graph=True)
    again = nx.autograd.grad(y, [x, w, b], nx.Tensor(u1))
    for a, c in zip(alone, again):
        torch.testing.assert_close(a.data, c.data)
    assert not torch.allclose(together[0].data, again[0].data)


# ----- 4. index and mask tensors are version-checked --------------------------------------------
@pytest.mark.parametrize("use", [
    lambda lib, x, i, m: x[i],
    lambda lib, x, i, m: lib.gather(x, 0, i),
    lambda lib, x, i, m: lib.index_select(x, 0, i),
    lambda lib, x, i, m: x.masked_fill(m, 0.0) * x,
    lambda lib, x, i, m: lib.scatter(x, 0, i, x[:2] * 2),
    lambda lib, x, i, m: lib.scatter_add(x, 0, i, x[:2] * 2),
])
def test_changing_an_index_after_use_raises_as_torch(use):
    for lib in (torch, nx):
        x = lib.arange(4.0).requires_grad_()
        index, mask = torch.tensor([0, 1]), torch.tensor([True, False, True, False])
        wrap = (lambda t: t) if lib is torch else nx.Tensor
        y = use(lib, x, wrap(index), wrap(mask))
        index.add_(1)
        mask.logical_not_()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


# ----- 7. grad mode is thread-local ---------------------------------------------------------------
def test_no_grad_in_another_thread_does_not_stop_recording_here():
    inside, release = threading.Event(), threading.Event()

    def worker():
        with nx.no_grad():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    try:
        x = nx.ones(2, requires_grad=True)
        assert (x * 2).requires_grad and nx.is_grad_enabled()
    finally:
        release.set()
        thread.join()


def test_a_backward_running_in_another_thread_leaves_this_threads_mode_alone():
    inside, release = threading.Event(), threading.Event()
    grads = []

    def pause(g):  # holds the other thread's backward open while this thread records
        inside.set()
        release.wait(5)
        return g

    def worker():
        w = nx.ones(3, requires_grad=True)
        w.register_hook(pause)
        (w * w).sum().backward()
        grads.append(w.grad.tolist())

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    try:
        x = nx.ones(3, requires_grad=True)
        assert (x * 2).requires_grad and nx.is_grad_enabled()
    finally:
        release.set()
        thread.join()
    assert grads == [[2.0, 2.0, 2.0]]


def test_a_new_thread_starts_with_recording_on():
    seen = []
    with nx.no_grad():
        thread = threading.Thread(target=lambda: seen.append(nx.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


# ----- 8. .grad never aliases a tensor the caller holds -----------------------------------------
def test_grad_under_create_graph_does_not_alias_the_seed():
    x = nx.ones(3, requires_grad=True)
    seed = nx.tensor([1.0, 2.0, 3.0])
    (x + 0).backward(seed, create_graph=True)
    x.grad.data.add_(1)
    x.grad.zero_()
    assert seed.tolist() == [1.0, 2.0, 3.0]
    (x + 0).backward(seed)
    assert seed.tolist() == [1.0, 2.0, 3.0]


# ----- 9. complex autograd is refused, never silently different ----------------------------------
def test_complex_inputs_that_require_grad_are_refused():
    with pytest.raises(RuntimeError, match="complex tensors cannot require gradients"):
        nx.tensor([1 + 1j, 2.0], requires_grad=True)
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"neuronix\.tan: the result is complex"):  # no complex rules
        (x * nx.tensor([1 + 2j, 3j])).tan()
    assert (nx.tensor([1 + 2j]) * 2).tolist() == [2 + 4j]  # without grad, complex values work as in torch


# ----- 11. .data reassigned between forward and backward ----------------------------------------
@pytest.mark.parametrize("create_graph", [False, True])
def test_backward_reads_a_reassigned_data(create_graph):
    results = []
    for lib in (torch, nx):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        x.data = torch.tensor([5.0, 7.0])
        g, = lib.autograd.grad(y, [x], create_graph=create_graph)
        results.append(g.tolist())
    assert results[0] == results[1] == [10.0, 14.0]


# ----- 17. hooks and grads of the wrong shape, hook order, decorated generators ------------------
def test_a_hook_that_changes_the_shape_or_dtype_is_refused():
    x = nx.ones(3, requires_grad=True)
    x.register_hook(lambda g: g[:2])
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        x.sum().backward()
    y = nx.ones(3, requires_grad=True)
    y.register_hook(lambda g: g.double())
    with pytest.raises(RuntimeError, match="has changed the type of value"):
        (y * 2).sum().backward()


def test_assigning_a_grad_of_another_shape_or_dtype_is_refused():
    x = nx.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="different size"):
        x.grad = nx.ones(2)
    with pytest.raises(RuntimeError, match="different type"):
        x.grad = nx.ones(3, dtype=torch.float64)
    x.grad = torch.ones(3)
    assert isinstance(x.grad, nx.Tensor)


def test_retain_grad_sees_the_value_after_every_hook():
    for lib in (torch, nx):
        x = lib.ones(3, requires_grad=True)
        y = x * 2
        y.retain_grad()
        y.register_hook(lambda g: g * 10)
        y.sum().backward()
        assert y.grad.tolist() == [10.0, 10.0, 10.0]


def test_no_grad_decorates_a_generator_body():
    x = nx.ones(2, requires_grad=True)

    @nx.no_grad()
    def steps():
        for _ in range(2):
            yield (x * 2).requires_grad

    outside = []
    for inside in steps():
        outside.append(((x * 2).requires_grad, inside))
    assert outside == [(True, False), (True, False)]
