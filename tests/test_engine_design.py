"""The engine's shape (issue 11): rules are plain math the engine runs in one of two ways,
fast backward kernels are a registry feature, and no rule chooses a path by grad mode."""

from __future__ import annotations

import itertools
import pathlib
import re

import torch

import neuronix as nx
from neuronix.ops.registry import apply, defop

_ids = itertools.count()


def _probe(rule, **options):
    """A fresh primitive ``y = 3 * x`` whose rule is ``rule`` (a unique name per call: the registry is global)."""
    return defop(f"_probe_{next(_ids)}", lambda x: x * 3, rule, **options)


def test_a_plain_backward_runs_the_rules_on_raw_torch_tensors_and_create_graph_on_recorded_ones():
    seen = []

    def rule(g, out, x):
        seen.append((type(g), type(x), nx.is_grad_enabled()))
        return g * 3

    spec = _probe(rule)
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    apply(spec, x).sum().backward()
    (g,) = nx.autograd.grad(apply(spec, x).sum(), x, create_graph=True)
    assert seen == [(torch.Tensor, torch.Tensor, False), (nx.Tensor, nx.Tensor, True)]
    assert x.grad.tolist() == g.tolist() == [3.0, 3.0]


def test_an_op_on_raw_tensors_inside_a_rule_returns_a_raw_tensor_and_records_nothing():
    kinds = []

    def rule(g, out, x):
        y = nx.exp(x) * g  # a neuronix op on raw tensors (plain pass) or recorded ones (create_graph)
        kinds.append(type(y))
        return y

    spec = _probe(rule)
    x = nx.tensor([0.5], requires_grad=True)
    with nx.AutogradGraph() as graph:
        apply(spec, x).sum().backward()
    assert kinds == [torch.Tensor] and graph.live_nodes() == 0
    assert torch.allclose(x.grad.data, torch.exp(torch.tensor([0.5])))


def test_the_fused_kernel_gives_a_plain_pass_its_values_and_none_falls_back_to_the_rule():
    calls = []

    def kernel(g, out, x, needs):
        calls.append(needs)
        return (g * 30,)  # distinguishable from the rule's value on purpose

    x = nx.tensor([1.0], requires_grad=True)
    apply(_probe(lambda g, out, x: g * 3, fused=kernel), x).sum().backward()
    assert x.grad.tolist() == [30.0] and calls == [[True]]
    x.grad = None
    apply(_probe(lambda g, out, x: g * 3, fused=lambda g, out, x, needs: (None,)), x).sum().backward()
    assert x.grad.tolist() == [3.0]


def test_under_create_graph_the_rules_give_the_graph_and_the_kernel_the_value_unless_told_otherwise():
    x = nx.tensor([2.0], requires_grad=True)
    exact = _probe(lambda g, out, x: g * 3 * (x / x), fused=lambda g, out, x, needs: (g * 3,))
    (g,) = nx.autograd.grad(apply(exact, x).sum(), x, create_graph=True)
    assert g.requires_grad and g.tolist() == [3.0]
    by_rule = _probe(lambda g, out, x: g * 4, fused=lambda g, out, x, needs: (g * 3,), fused_values_recorded=False)
    (g,) = nx.autograd.grad(apply(by_rule, x).sum(), x, create_graph=True)
    assert g.tolist() == [4.0]  # torch's own backward differs by mode for such ops (prod at zeros)


def test_hooks_on_a_plain_pass_see_neuronix_tensors_with_recording_off():
    seen = []
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: seen.append((type(g), nx.is_grad_enabled())))
    x.register_hook(lambda g: seen.append((type(g), nx.is_grad_enabled())))
    y.sum().backward()
    assert seen == [(nx.Tensor, False), (nx.Tensor, False)]


def test_no_rule_reads_the_grad_mode():
    """A rule that picks its path by grad mode is how stale and wrong gradients hid (issue 10):
    the fast path is ``defop(fused=...)``. Only the forward's recording decision reads the mode."""
    ops = pathlib.Path(nx.__file__).parent / "ops"
    allowed = {"registry.py", "inplace.py"}  # apply/record decide whether to record a forward
    offenders = [f"{p.name}:{i}" for p in sorted(ops.glob("*.py")) if p.name not in allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"is_grad_enabled|grad_enabled|mode\.state\(", line)]
    assert offenders == []


def test_a_root_that_feeds_another_root_counts_its_inputs_once():
    results = []
    for lib in (torch, nx):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        lib.autograd.backward([y, y.sum()], [lib.tensor([1.0, 10.0]), lib.tensor(3.0)])
        results.append(x.grad.tolist())
    assert results[0] == results[1] == [8.0, 26.0]


def test_an_op_keeps_only_what_the_rules_of_its_inputs_in_the_graph_read():
    """``defop(reads=)``: a linear layer with a frozen weight keeps the weight alone, as torch's, so an
    in-place change of its input after the forward is no error, and the gradient is unchanged."""
    results = []
    for lib in (torch, nx):
        w = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        x0 = lib.ones(4, 3, requires_grad=True)
        x = x0 * 1
        y = lib.nn.functional.linear(x, w).sum()
        x.add_(1)
        y.backward()
        results.append(x0.grad.tolist())
    assert results[0] == results[1] == [[5.0, 7.0, 9.0]] * 4
