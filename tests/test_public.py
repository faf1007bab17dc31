"""The two tiers and the one public registry (``neuronix/ops/public.py``).

Primitives live in ``neuronix/ops``; ``nn.functional``'s functions live in ``neuronix/nn/functional``
and are registered with ``@public(namespace="nn.functional")``; the module exports, and coverage
lists, exactly what the registry holds. The activation primitives' fast backward is the engine's
choice (``defop(fused=...)``): the same first derivative, bit for bit, with or without create_graph.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F
from conformance.coverage import coverage
from neuronix.ops import activation
from neuronix.ops.public import NAMESPACES, exported, public, qualified_names


def test_functional_exports_exactly_the_registry():
    registered = exported("nn.functional")
    assert sorted(F.__all__) == sorted(registered)
    assert all(getattr(F, name) is fn for name, fn in registered.items())
    # no public function reaches nn.functional around the registry (coverage would not see it)
    defined = {n for n, v in vars(F).items()
               if not n.startswith("_") and inspect.isfunction(v) and v.__module__.startswith("neuronix")}
    assert defined == set(registered)


def test_functional_functions_are_the_second_tier():
    # compositions and argument checks are in nn/functional; neuronix/ops holds the primitives they apply
    for name, fn in exported("nn.functional").items():
        assert fn.__module__.startswith("neuronix.nn.functional."), name


def test_every_registered_name_is_a_public_name_for_coverage():
    cov = coverage()
    assert set(qualified_names()) <= set(cov.public)
    assert {"exp", "Tensor.exp", "nn.functional.gelu", "nn.functional.cross_entropy"} <= set(qualified_names())


def test_a_new_namespace_function_is_exported_and_a_coverage_hole_until_mirrored(monkeypatch):
    monkeypatch.setitem(NAMESPACES, "nn.functional", dict(NAMESPACES["nn.functional"]))

    @public(namespace="nn.functional")
    def planted_unmirrored(input):
        return input

    assert exported("nn.functional")["planted_unmirrored"] is planted_unmirrored
    assert "planted_unmirrored" not in NAMESPACES["Tensor"]  # nn.functional names are not tensor methods
    assert "nn.functional.planted_unmirrored" in coverage().missing


def test_public_refuses_the_method_table_as_a_namespace():
    with pytest.raises(ValueError, match="method=True"):
        public(lambda x: x, namespace="Tensor")


ACTIVATIONS = [
    (F.gelu, {}), (F.gelu, {"approximate": "tanh"}), (F.silu, {}), (F.elu, {"alpha": 0.7}), (F.selu, {}),
    (F.leaky_relu, {"negative_slope": 0.2}), (F.softplus, {"beta": 2.0, "threshold": 1.5}),
    (F.hardtanh, {"min_val": -0.5, "max_val": 0.5}), (F.hardswish, {}), (F.mish, {}),
]


def test_activation_primitives_declare_a_fused_kernel():
    for spec in (activation.GELU, activation.SILU, activation.ELU, activation.SELU, activation.LEAKY_RELU,
                 activation.SOFTPLUS, activation.HARDTANH, activation.HARDSWISH, activation.MISH):
        assert spec.fused is not None, spec.name


@pytest.mark.parametrize("fn, kwargs", ACTIVATIONS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_activation_first_derivative_is_torchs_with_and_without_create_graph(fn, kwargs, dtype):
    gen = torch.Generator().manual_seed(0)
    # kinks, thresholds, tails, and an infinite upstream gradient, where a formula and a kernel most easily differ
    x = torch.cat([torch.randn(40, generator=gen, dtype=dtype) * 4,
                   torch.tensor([0.0, -3.0, 3.0, 0.5, -0.5, 0.75, 30.0, -30.0], dtype=dtype)])
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    g[3] = float("inf")
    xt = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(getattr(TF, fn.__name__)(xt, **kwargs), xt, g)
    for create_graph in (False, True):
        xn = nx.Tensor(x.clone(), requires_grad=True)
        (got,) = nx.autograd.grad(fn(xn, **kwargs), [xn], [nx.Tensor(g)], create_graph=create_graph)
        torch.testing.assert_close(got.data, expected, rtol=0, atol=0, equal_nan=True)
