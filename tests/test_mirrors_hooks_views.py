"""The module-hook and in-place-into-view mirrors (conformance/mirrors/hooks.py, inplace_views.py).

Each mirror must pass on correct code, and catch a fault planted (with ``conformance.mutate.planted``,
the mutation tool's own planting) in the op it exists for: the hook ops (``backward_hook_*``) and
``copy_slices``, which no other mirror applied. The neuronix fixes these mirrors led to are pinned
too (each as torch): a full backward hook is not re-applied in a double backward, writing a module's
input in place after the call leaves its backward valid, and a pre-hook's replacement reaches every output.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx
from conformance.mirror import REGISTRY
from conformance.mutate import Fault, planted
from conformance.runner import run_case

HOOKS = "nn.Module.register_full_backward_hook[observe]"
SCALE = "nn.Module.register_full_backward_hook[scale]"
PRE = "nn.Module.register_full_backward_pre_hook[scale]"
GRADIENT = "nn.Module.register_full_backward_hook[gradient of scale]"
VIEWS = ["inplace_view.slice_mul_", "inplace_view.diagonal_add_", "inplace_view.t_select_copy_",
         "inplace_view.select_sigmoid_", "inplace_view.view_of_view_mul_"]


def _failing(name: str, dtype: str = "float64") -> list[str]:
    import conformance.mirrors  # noqa: F401  (registers every mirror)

    case = run_case(REGISTRY[name], dtype, "cpu", examples=2, classify=False)
    return [r.check for r in case.records if r.status != "pass"]


@pytest.mark.parametrize("name", [HOOKS, SCALE, PRE, GRADIENT, *VIEWS])
def test_mirror_passes_on_correct_code(name):
    assert _failing(name) == []


@pytest.mark.parametrize("name, fault, caught_by", [
    # the gate's rule for input 0 off by 1e-3: a wrong gradient for x
    (HOOKS, Fault("backward_hook_gate", "scaled", 0), "backward"),
    # the output identity wrong only under create_graph: only second derivatives see it
    (HOOKS, Fault("backward_hook_identity", "recorded_only", 0), "double_backward"),
    # the segment's rule (the embed) scaled: it runs only when a backward pass is differentiated
    (HOOKS, Fault("backward_hook_segment", "scaled", 0), "double_backward"),
    # a tap's forward perturbed: the module sees a wrong input value
    (SCALE, Fault("backward_hook_tap", "forward"), "forward"),
    # the rule of the embed that turns a hook's replacements into the gate's flat gradient, dropped
    (SCALE, Fault("backward_hook_embed", "dropped", 0), "double_backward"),
    # the segment's and embed's own rules under recording: a third derivative, the second of GRADIENT's output
    (GRADIENT, Fault("backward_hook_segment", "recorded_only", 0), "double_backward"),
    (GRADIENT, Fault("backward_hook_embed", "upstream_raw", 0), "double_backward"),
    # copy_slices: the base's gradient outside the view, and the view's own gradient, each scaled
    ("inplace_view.slice_mul_", Fault("copy_slices", "scaled", 0), "backward"),
    ("inplace_view.diagonal_add_", Fault("copy_slices", "scaled", 1), "backward"),
    # its forward runs only inside backward passes (its first rule applies copy_slices again)
    ("inplace_view.view_of_view_mul_", Fault("copy_slices", "forward"), "backward"),
    ("inplace_view.t_select_copy_", Fault("copy_slices", "upstream_raw", 1), "double_backward"),
])
def test_planted_fault_is_caught(name, fault, caught_by):
    with planted(fault):
        failing = _failing(name)
    assert caught_by in failing, failing


def _cube_with_scaling_hook(lib):
    class Cube(lib.nn.Module):
        def forward(self, x):
            return x * x * x

    module = Cube()
    module.register_full_backward_hook(lambda m, gi, go: tuple(g * 1.5 for g in gi))
    return module


def test_hook_is_not_reapplied_in_double_backward_as_torch():
    # d/dx of the hooked gradient 1.5 * 3x^2 is 1.5 * 6x: the second pass reaches the input from
    # inside the module, not through its outputs, and torch calls no hook then
    results = []
    for lib in (torch, nx):
        x = lib.tensor([2.0], dtype=torch.float64, requires_grad=True)
        (g,) = lib.autograd.grad(_cube_with_scaling_hook(lib)(x).sum(), x, create_graph=True)
        (gg,) = lib.autograd.grad(g.sum(), x)
        results.append((float(g.detach().sum()), float(gg.sum())))
    assert results[0] == results[1] == (18.0, 18.0)


def _raises(run, *args) -> bool:
    try:
        run(*args)
    except RuntimeError:
        return True
    return False


@pytest.mark.parametrize("forward", [lambda x: x.tanh(), lambda x: x * x])
def test_writing_a_hooked_modules_input_in_place_raises_only_where_torch_does(forward):
    # tanh saves its output, x * x its inputs (views of the module's input, in both libraries)
    raised = []
    for lib in (torch, nx):
        module = type("M", (lib.nn.Module,), {"forward": lambda self, x: forward(x)})()
        module.register_full_backward_hook(lambda m, gi, go: None)
        x = lib.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        y = x * 1  # a non-leaf input
        out = module(y)
        y.mul_(3.0)
        raised.append(_raises(lib.autograd.grad, out.sum(), x))
    assert raised[0] == raised[1]


def test_a_pre_hooks_replacement_reaches_every_output_as_torch():
    # two outputs: the pre-hook sees both gradients and its replacement flows to both (neuronix once
    # applied it only to the output whose gradient arrived last)
    grads = []
    for lib in (torch, nx):
        module = type("Two", (lib.nn.Module,), {"forward": lambda self, x: (x * 2, x * x)})()
        module.register_full_backward_pre_hook(lambda m, go: tuple(g * -0.5 for g in go))
        x = lib.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
        a, b = module(x)
        (g,) = lib.autograd.grad((a.sum() + b.sum()), x)
        grads.append(g.tolist())
    assert grads[0] == grads[1] == [-2.0, -4.0]  # -0.5 * (2 + 2x)
