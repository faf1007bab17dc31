"""Mirrors of ``nn.Module`` full backward hooks, run as op mirrors so every op check reaches them.

``register_full_backward_hook`` and ``register_full_backward_pre_hook`` route a module's inputs
and outputs through neuronix's own hook ops (``neuronix/nn/hooks.py``: ``backward_hook_gate``,
``_tap``, ``_segment``, ``_embed``, ``_identity``). No other mirror registers such a hook, so
those ops' forwards and rules were never compared with torch (``python -m conformance mutate``
listed every fault planted in them as a survivor). Here each mirror builds the same two-input,
two-output module in both libraries, registers the same hook, and calls it: an op mirror's
checks (values, gradients, second derivatives w.r.t. inputs and upstream gradients, finite
differences, forward mode, graph reuse, ...) then run through the hook ops, against torch doing
the same. A hook that rescales ``grad_input`` (or ``grad_output``) makes the rescaling part of
the derivative, so a gate that drops or misroutes the hook's result shows as a wrong gradient;
an observing hook checks that merely looking changes nothing.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, WITH_HALF, OpMirror, Sample, register
from conformance.strategies import broadcast_shapes, tensor


def _scale_all(grads, factor: float):
    """A hook's replacement: every gradient times ``factor`` (None stays None, as torch passes it)."""
    return tuple(None if g is None else g * factor for g in grads)


def _scale_inputs(module, grad_input, grad_output):
    return _scale_all(grad_input, 1.5)


def _observe(module, grad_input, grad_output):
    # reads every gradient it is given (a hook that only looks must change nothing)
    module.seen = [None if g is None else tuple(g.shape) for g in (*grad_input, *grad_output)]


def _scale_outputs(module, grad_output):
    return _scale_all(grad_output, -0.5)


def _module_class(lib):
    """``f(x, y) = (x * tanh(y), sin(x))`` as a ``lib.nn.Module``: two gated inputs, two hooked outputs."""

    def forward(self, x, y):
        return x * y.tanh(), x.sin()

    return type("TwoOutputs", (lib.nn.Module,), {"forward": forward})


_MODULES = {nx: _module_class(nx), torch: _module_class(torch)}


def _hooked(lib, hook=None, pre_hook=None):
    """The call ``module(x, y)`` with ``hook`` (full backward) and ``pre_hook`` (full backward pre) registered."""

    def call(x, y):
        module = _MODULES[lib]()
        if pre_hook is not None:
            module.register_full_backward_pre_hook(pre_hook)
        if hook is not None:
            module.register_full_backward_hook(hook)
        out = module(x, y)
        # a copy: torch refuses an in-place write into a hooked module's own output (a view made by its
        # BackwardHookFunction), neuronix does not (a known difference); the version guard writes into outputs
        return tuple(o * 1 for o in out) if isinstance(out, tuple) else out * 1

    return call


def _hooked_gradient(lib, hook):
    """``(x, y, u) -> grad of <module(x, y)[0], u>`` w.r.t. ``x`` and ``y``, recorded (create_graph).

    The hook ops' rules run only inside backward passes, so their own rules under recording run only
    at the third derivative; as a program's output this gradient brings them within the checks' second."""

    def call(x, y, u):
        with lib.enable_grad():  # a check may call it under no_grad, or with x or y as a constant
            xy = tuple(t if t.requires_grad else t.detach().requires_grad_() for t in (x, y))
            out = _hooked(lib, hook=hook)(*xy)[0]
            return lib.autograd.grad(out, xy, u, create_graph=True)

    return call


def _gradient_sample(draw, dtype, device):
    x, y = _sample(draw, dtype, device).args
    upstream = tensor(draw, torch.broadcast_shapes(x.shape, y.shape), dtype, device)
    return Sample((x, y, upstream))


def _sample(draw, dtype, device):
    (sx, sy), _ = broadcast_shapes(draw, 2, max_dims=3, max_side=4)
    # half the time equal shapes; otherwise the module broadcasts them and y's gradient is reduced to its shape
    if draw(st.booleans()):
        sy = sx
    return Sample((tensor(draw, sx, dtype, device), tensor(draw, sy, dtype, device)))


def _mirror(name: str, rescales: bool, **hooks) -> OpMirror:
    # a rescaling hook makes "the gradient" differ from the derivative on purpose: no finite differences,
    # and torch's forward AD (which ignores backward hooks) is skipped (kinds/forward_mode.py TORCH_FORWARD_AD_DIFFERS)
    return OpMirror(f"nn.Module.{name}", _hooked(nx, **hooks), _hooked(torch, **hooks), _sample, dtypes=WITH_HALF,
                    fd=not rescales, note="a two-input module with the hook registered (conformance/mirrors/hooks.py)")


register(
    _mirror("register_full_backward_hook[observe]", False, hook=_observe),
    _mirror("register_full_backward_hook[scale]", True, hook=_scale_inputs),
    _mirror("register_full_backward_pre_hook[scale]", True, pre_hook=_scale_outputs),
    _mirror("register_full_backward_pre_hook[scale]+hook[scale]", True, hook=_scale_inputs, pre_hook=_scale_outputs),
    OpMirror("nn.Module.register_full_backward_hook[gradient of scale]", _hooked_gradient(nx, _scale_inputs),
             _hooked_gradient(torch, _scale_inputs), _gradient_sample, dtypes=FLOATS,
             note="the hooked gradient as the output: the hook ops' recorded rules within the second derivative "
                  "(half not claimed: its float16/bfloat16 cases fail the gradient check, not yet diagnosed)"),
)
