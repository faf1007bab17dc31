"""End-to-end: a small CNN and a transformer block written once, run by neuronix and torch.

The neuronix model is built from the same code as its torch twin (only the library
differs), loaded with the twin's state_dict, and must give the same loss and the same
gradient for every parameter; a few optimizer steps must follow the same trajectory.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx
from conformance.mirrors.models_e2e import small_cnn, transformer_block

TOL = {torch.float32: {"rtol": 1e-6, "atol": 1e-6}, torch.float64: {"rtol": 1e-7, "atol": 1e-12}}


def _inputs(kind: str, dtype):
    g = torch.Generator().manual_seed(11)
    if kind == "cnn":
        return torch.randn(4, 3, 8, 8, generator=g, dtype=dtype), torch.randint(0, 5, (4,), generator=g)
    return torch.randint(0, 11, (3, 8), generator=g), torch.randint(0, 11, (3, 8), generator=g)


def _twins(kind: str, dtype):
    build = small_cnn if kind == "cnn" else transformer_block
    torch.manual_seed(0)
    t = build(torch).to(dtype)
    torch.manual_seed(0)
    n = build(nx).to(dtype)
    return n, t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_loss_and_every_gradient_match_torch(kind, dtype):
    n, t = _twins(kind, dtype)
    init_n, init_t = n.state_dict(), t.state_dict()
    assert list(init_n) == list(init_t) and all(torch.equal(init_n[k], init_t[k]) for k in init_t)  # same default init
    n.load_state_dict(t.state_dict())
    a, b = _inputs(kind, dtype)
    n_a = nx.Tensor(a, requires_grad=a.is_floating_point())
    t_a = a.clone().requires_grad_(a.is_floating_point())
    n_loss, t_loss = n(n_a, nx.Tensor(b)), t(t_a, b)
    n_loss.backward()
    t_loss.backward()
    torch.testing.assert_close(n_loss.data, t_loss.detach(), **TOL[dtype])
    if a.is_floating_point():
        torch.testing.assert_close(n_a.grad.data, t_a.grad, **TOL[dtype])
    t_params = dict(t.named_parameters())
    assert [k for k, _ in n.named_parameters()] == list(t_params)
    for name, p in n.named_parameters():
        torch.testing.assert_close(p.grad.data, t_params[name].grad, **TOL[dtype], msg=lambda m, name=name: f"{name}: {m}")
    for name, buf in t.named_buffers():  # batch-norm running statistics after the training forward
        torch.testing.assert_close(n.get_buffer(name).data, buf, **TOL[dtype])


@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_training_steps_follow_torch(kind):
    n, t = _twins(kind, torch.float64)
    n.load_state_dict(t.state_dict())
    n_opt = nx.optim.SGD(n.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    a, b = _inputs(kind, torch.float64)
    for _ in range(4):
        n_opt.zero_grad()
        t_opt.zero_grad()
        n_loss, t_loss = n(nx.Tensor(a), nx.Tensor(b)), t(a, b)
        n_loss.backward()
        t_loss.backward()
        n_opt.step()
        t_opt.step()
        torch.testing.assert_close(n_loss.data, t_loss.detach(), rtol=1e-7, atol=1e-12)
    for key, value in t.state_dict().items():
        torch.testing.assert_close(n.state_dict()[key], value, rtol=1e-7, atol=1e-10)


def test_readme_example_trains():
    """The README's example: a model defined with nx.nn, trained for a few steps."""
    import neuronix as nx
    from neuronix import nn

    nx.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = nx.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()
    x = nx.randn(64, 2)
    y = (x[:, :1] * x[:, 1:]).tanh()  # a target the network has to learn
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
