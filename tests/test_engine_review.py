"""Hostile review of the rewritten engine: each test compares neuronix with torch and fails today.

Every test runs the same program on torch and on neuronix and asserts the same outcome
(values, or the same exception type).
"""

import pytest
import torch

import neuronix as nx


def _run(fn):
    """(torch outcome, neuronix outcome): a list of plain values, or the exception type."""
    out = []
    for lib in (torch, nx):
        try:
            value = fn(lib)
        except Exception as err:  # noqa: BLE001
            value = type(err)
        out.append(_plain(value))
    return out


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, nx.Tensor):
        v = v.data
    if isinstance(v, torch.Tensor):
        return v.detach().tolist()
    return v


def _same(fn):
    t, n = _run(fn)
    assert n == t, f"torch: {t}\nneuronix: {n}"


# 1. grad() w.r.t. a non-leaf runs that node (no input of it is needed) and frees its saved
#    tensors, so a later pass through the rest of the graph fails; torch stops at the capture.
def test_grad_wrt_nonleaf_does_not_free_that_nodes_saved_tensors():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * x
        z = y * 3
        lib.autograd.grad(z.sum(), [y])
        return list(lib.autograd.grad(y.sum(), [x]))

    _same(f)


# 2. Version checks: a saved input that no needed rule reads must not raise (torch saves `other`
#    of mul only when `self` requires grad, and so on).
@pytest.mark.parametrize("expr", ["x * c", "c * x", "x / c", "x @ c2", "x.neg()"])
def test_inplace_on_a_saved_tensor_no_rule_reads_does_not_raise(expr):
    def f(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        c = lib.tensor([3.0, 4.0])  # noqa: F841 (read by eval)
        c2 = lib.tensor([[3.0, 4.0], [5.0, 6.0]])  # noqa: F841 (read by eval)
        x = a * 1
        y = eval(expr)
        x.add_(1)
        y.sum().backward()
        return a.grad

    _same(f)


def test_inplace_after_create_graph_on_a_tensor_the_double_graph_does_not_need():
    def f(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        x = a * 1
        y = x * x
        (g,) = lib.autograd.grad(y.sum(), a, create_graph=True)
        x.add_(1)
        g.sum().backward()
        return a.grad

    _same(f)


# 3. Freeing: torch frees index/mask tensors saved by indexing ops (a second backward raises)
#    and keeps nodes that saved nothing (neg) runnable.
@pytest.mark.parametrize("expr", ["x[idx]", "x.gather(0, idx)", "x.index_select(0, idx)", "x.masked_fill(m, 0.)",
                                  "x.neg()"])
def test_second_backward_without_retain_graph_as_torch(expr):
    def f(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        idx = lib.tensor([2, 0])  # noqa: F841 (read by eval)
        m = lib.tensor([True, False, True])  # noqa: F841 (read by eval)
        y = eval(expr).sum()
        y.backward()
        y.backward()
        return x.grad

    _same(f)


# 4. A plain backward after a create_graph one accumulates into the existing .grad in place
#    (torch's AccumulateGrad under no grad mode): same object, still requires grad.
def test_plain_backward_after_create_graph_accumulates_in_place():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward(create_graph=True)
        held = x.grad
        (x * x).sum().backward()
        return [x.grad, held, x.grad is held, x.grad.requires_grad]

    _same(f)


# 5. backward(inputs=[non-leaf]) makes the non-leaf retain its grad (torch), so a later pass
#    through it accumulates into its .grad.
def test_backward_inputs_nonleaf_retains_grad():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        w = lib.tensor([3.0, 4.0], requires_grad=True)
        y = x * w
        z = (y * y).sum()
        z.backward(inputs=[y], retain_graph=True)
        z.backward(inputs=[w])
        return [y.grad, w.grad]

    _same(f)


# 6. grad(materialize_grads=True): torch rejects allow_unused=False, and under create_graph the
#    materialized zeros require grad.
def test_materialize_grads_with_allow_unused_false_raises():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        u = lib.tensor([1.0], requires_grad=True)
        return list(lib.autograd.grad((x * 2).sum(), [x, u], allow_unused=False, materialize_grads=True))

    _same(f)


def test_materialized_zeros_require_grad_under_create_graph():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        u = lib.tensor([1.0], requires_grad=True)
        g = lib.autograd.grad((x * 2).sum(), [x, u], materialize_grads=True, create_graph=True)
        return [g[1].requires_grad]

    _same(f)


# 7. Module full backward hooks on a graph walked twice (retain_graph, or double backward):
#    (was an IndexError in nn/hooks.py on the second pass).
def test_full_backward_hook_retain_graph_twice():
    def f(lib):
        torch.manual_seed(0)
        lin = lib.nn.Linear(3, 2)
        seen = []
        lin.register_full_backward_hook(lambda m, gi, go: seen.append(go[0].tolist()))
        x = lib.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        y = lin(x).sum()
        y.backward(retain_graph=True)
        y.backward()
        return [x.grad, seen]

    _same(f)


def test_full_backward_hook_double_backward():
    def f(lib):
        torch.manual_seed(0)
        lin = lib.nn.Linear(3, 2)
        lin.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))
        x = lib.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        y = lin(x)
        (g,) = lib.autograd.grad((y * y).sum(), x, create_graph=True)
        return [g, lib.autograd.grad(g.sum(), x)[0]]

    t, n = _run(f)
    assert not isinstance(n, type), f"neuronix raised {n}"
    assert torch.allclose(torch.tensor(n), torch.tensor(t), atol=1e-5), f"torch: {t}\nneuronix: {n}"
