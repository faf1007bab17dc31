"""Random ops: torch's draws from the same seed or generator (non-contiguous tensors included), torch's
refusals, and torch's derivatives (zero, or none for bernoulli(input, p))."""

from __future__ import annotations

import pytest
import torch

import neuronix as nx

FILLS = [("normal_", (1.0, 2.0)), ("uniform_", (-1.0, 1.0)), ("exponential_", ()), ("geometric_", (0.4,)),
         ("log_normal_", ()), ("cauchy_", ()), ("random_", (3, 9)), ("bernoulli_", (0.3,)), ("bernoulli_", ())]


def _seeded(fn):
    torch.manual_seed(5)
    return fn()


@pytest.mark.parametrize("name, args", FILLS)
def test_fill_on_a_transposed_tensor_draws_what_torch_draws(name, args):
    """The kernel runs on the tensor itself: a non-contiguous tensor is filled in torch's order."""
    x = torch.rand(3, 4)
    expected = _seeded(lambda: getattr(x.clone().t(), name)(*args))
    got = _seeded(lambda: getattr(nx.Tensor(x.clone()).t(), name)(*args))
    assert torch.equal(got.data, expected)


@pytest.mark.parametrize("name, args", FILLS)
def test_fill_refuses_a_leaf_that_requires_grad_and_leaves_it_unchanged(name, args):
    x = torch.rand(3, 4)
    with pytest.raises(RuntimeError):
        getattr(x.clone().requires_grad_(), name)(*args)
    leaf = nx.Tensor(x.clone(), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        getattr(leaf, name)(*args)
    assert torch.equal(leaf.data, x)


@pytest.mark.parametrize("name, args", FILLS)
def test_fill_of_a_view_in_the_graph_gives_the_filled_part_a_zero_gradient(name, args):
    x, weights = torch.rand(3, 4), torch.arange(12.0).reshape(3, 4)
    t_leaf = x.clone().requires_grad_()
    t_y = t_leaf * 2
    _seeded(lambda: getattr(t_y[0], name)(*args))
    expected, = torch.autograd.grad((t_y * weights).sum(), t_leaf)
    n_leaf = nx.Tensor(x.clone(), requires_grad=True)
    n_y = n_leaf * 2
    _seeded(lambda: getattr(n_y[0], name)(*args))
    got, = nx.autograd.grad((n_y * nx.Tensor(weights)).sum(), n_leaf)
    assert torch.equal(n_y.data, t_y.detach())
    assert torch.equal(got.data, expected) and not got.data[0].any()


def _generator():
    return torch.Generator().manual_seed(7)


@pytest.mark.parametrize("call", [
    lambda m, x: m.rand(3, generator=_generator()),
    lambda m, x: m.randn_like(x, generator=_generator()),
    lambda m, x: m.rand_like(x, generator=_generator()),
    lambda m, x: m.randint_like(x, 5, generator=_generator()),
    lambda m, x: m.normal(x, x + 1, generator=_generator()),
    lambda m, x: m.normal(2.0, 3.0, (2, 2), generator=_generator(), dtype=torch.float64),
    lambda m, x: m.poisson(x * 3, _generator()),
    lambda m, x: m.multinomial(x, 2, generator=_generator()),
    lambda m, x: m.bernoulli(x, 0.3, generator=_generator()),
])
def test_generator_objects_give_torchs_draws(call):
    x = torch.rand(3, 4)
    assert torch.equal(call(nx, nx.Tensor(x)).data, call(torch, x))


def test_normal_gives_mean_and_std_a_zero_gradient_as_torch():
    """torch's normal is not reparameterised: derivatives.yaml gives zeros_like for mean and std."""
    mean = torch.rand(3, 1, requires_grad=True)
    std = torch.rand(4, requires_grad=True)
    expected = torch.autograd.grad(torch.normal(mean, std).sum(), (mean, std))
    n_mean, n_std = nx.Tensor(mean.detach(), requires_grad=True), nx.Tensor(std.detach(), requires_grad=True)
    got = nx.autograd.grad(nx.normal(n_mean, n_std).sum(), (n_mean, n_std))
    for g, e in zip(got, expected):
        assert g.shape == e.shape and torch.equal(g.data, e)


def test_bernoulli_with_p_has_no_derivative_and_without_p_a_zero_one():
    x = nx.Tensor(torch.rand(3), requires_grad=True)
    with pytest.raises(RuntimeError):  # torch: "derivative for aten::bernoulli is not implemented"
        torch.bernoulli(x.data.clone().requires_grad_(), 0.5).sum().backward()
    with pytest.raises(RuntimeError):
        nx.bernoulli(x, 0.5).sum().backward()
    grad, = nx.autograd.grad(nx.bernoulli(x).sum(), x)
    assert torch.equal(grad.data, torch.zeros(3))


def test_bernoulli_refuses_a_tensor_p_as_torch():
    with pytest.raises(TypeError):
        torch.bernoulli(torch.rand(2), torch.rand(2))
    with pytest.raises(TypeError, match="bernoulli"):
        nx.bernoulli(nx.rand(2), nx.rand(2))


def test_bernoulli_in_place_without_p_draws_with_one_half_in_the_graph():
    """``x.bernoulli_()`` fills with p = 1/2 (not p = x) also when x is in the graph."""
    x = torch.full((64,), 0.999)
    t_y = x.clone().requires_grad_() * 1
    n_y = nx.Tensor(x.clone(), requires_grad=True) * 1
    assert torch.equal(_seeded(lambda: n_y.bernoulli_()).data, _seeded(lambda: t_y.bernoulli_()).detach())
    assert n_y.requires_grad
