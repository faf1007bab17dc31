"""Second derivatives in float16/bfloat16 against torch's, for the ops whose backward runs a fused torch kernel.

Under ``create_graph`` such an op records its formula valued at the kernel's result
(``ops/elementwise.kernel_valued``); where formula and kernel "disagree" the element becomes a
constant, derivative 0. The agreement test once used a fixed 1e-4 relative threshold, which half
precision's own rounding exceeds: tanh's second derivative came out 0 on a quarter of the elements
(a gradient penalty under autocast lost its curvature). The harness checks second derivatives in
float32/float64 only, so this sweep is the half-precision guard.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx

# (name, neuronix function, torch function): smooth where the inputs are drawn (0.2 .. 1.2, away from kinks)
OPS = [
    ("tanh", nx.tanh, torch.tanh), ("sigmoid", nx.sigmoid, torch.sigmoid), ("exp", nx.exp, torch.exp),
    ("sqrt", nx.sqrt, torch.sqrt), ("rsqrt", nx.rsqrt, torch.rsqrt),
    *[(f"F.{n}", getattr(nx.nn.functional, n), getattr(torch.nn.functional, n))
      for n in ("gelu", "silu", "elu", "softplus", "mish", "hardswish", "selu", "celu", "leaky_relu", "logsigmoid")],
]
DTYPES = {torch.float16: 2e-2, torch.bfloat16: 1e-1}  # relative to the largest second derivative: a few ulps


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
@pytest.mark.parametrize("name,nx_fn,torch_fn", OPS, ids=[o[0] for o in OPS])
def test_second_derivative_in_half_matches_torch(name, nx_fn, torch_fn, dtype):
    x = torch.linspace(0.2, 1.2, 97).to(dtype)
    tx = x.clone().requires_grad_()
    g, = torch.autograd.grad(torch_fn(tx).sum(), tx, create_graph=True)
    expected, = torch.autograd.grad(g.sum(), tx)
    nxx = nx.Tensor(x.clone(), requires_grad=True)
    ng, = nx.autograd.grad(nx_fn(nxx).sum(), [nxx], create_graph=True)
    actual, = nx.autograd.grad(ng.sum(), [nxx])
    actual, expected = actual.data.float(), expected.float()
    lost = (actual == 0) & (expected != 0)
    assert not lost.any(), f"{name} {dtype}: second derivative 0 at {int(lost.sum())} elements where torch's is not"
    scale = expected.abs().max().clamp_min(1e-3)
    assert ((actual - expected).abs() <= DTYPES[dtype] * scale).all(), (name, (actual - expected).abs().max())
