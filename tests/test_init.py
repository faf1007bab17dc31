"""nx.nn.init: the same values as torch.nn.init after the same seed, in place, outside the graph."""

from __future__ import annotations

import math

import pytest
import torch

import neuronix as nx
from neuronix.nn import init

SHAPES = [(4, 3), (5, 2, 3), (6, 4, 3, 3), (3, 7)]
CALLS = [
    ("uniform_", {"a": -0.3, "b": 0.8}),
    ("normal_", {"mean": 0.5, "std": 2.0}),
    ("xavier_uniform_", {}),
    ("xavier_uniform_", {"gain": 2.0}),
    ("xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {"a": 0.2, "nonlinearity": "leaky_relu"}),
    ("trunc_normal_", {"mean": 0.1, "std": 0.5, "a": -0.4, "b": 0.9}),
    ("orthogonal_", {"gain": 1.5}),
    ("constant_", {"val": 0.25}),
    ("zeros_", {}),
    ("ones_", {}),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,kwargs", CALLS, ids=lambda v: v if isinstance(v, str) else "")
def test_matches_torch_after_the_same_seed(name, kwargs, shape):
    t = torch.empty(shape)
    n = nx.nn.Parameter(torch.empty(shape))
    torch.manual_seed(123)
    getattr(torch.nn.init, name)(t, **kwargs)
    after_torch = torch.rand(3)
    torch.manual_seed(123)
    result = getattr(init, name)(n, **kwargs)
    after_nx = torch.rand(3)
    assert result is n
    assert torch.equal(n.data, t)
    assert torch.equal(after_nx, after_torch)  # the RNG advanced exactly as much as torch's
    assert n.grad_fn is None and n.requires_grad  # filled in place, outside the graph


def test_generator_argument_and_torch_tensors():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = torch.empty(3, 4), nx.empty(3, 4)
    torch.nn.init.kaiming_uniform_(a, generator=g1)
    init.kaiming_uniform_(b, generator=g2)
    assert torch.equal(a, b.data)
    raw = torch.empty(2, 2)
    assert init.ones_(raw) is raw and raw.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_eye_dirac_sparse():
    assert torch.equal(init.eye_(nx.empty(3, 4)).data, torch.eye(3, 4))
    w = torch.empty(4, 2, 3, 3)
    assert torch.equal(init.dirac_(nx.Tensor(torch.empty(4, 2, 3, 3)), groups=2).data, torch.nn.init.dirac_(w, groups=2))
    torch.manual_seed(0)
    expected = torch.nn.init.sparse_(torch.empty(6, 4), 0.5)
    torch.manual_seed(0)
    assert torch.equal(init.sparse_(nx.empty(6, 4), 0.5).data, expected)


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("conv_transpose2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None),
])
def test_calculate_gain(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(nx.empty(3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("softmax")
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        init.kaiming_normal_(nx.empty(3, 3), mode="fan_middle")
    with pytest.raises(TypeError, match="nx.Tensor"):
        init.zeros_([1.0, 2.0])
