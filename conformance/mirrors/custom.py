"""Users' own ops: ``nx.autograd.Function``s checked against ``torch.autograd.Function`` twins.

Two example Functions run in every conformance run, so the custom-Function machinery
(``neuronix/autograd/function.py``) meets the harness's values, gradients, second derivatives
(w.r.t. the inputs and the upstream gradients), finite differences and forward mode:

* ``custom.softplus``: a numerically stable softplus, one input, one output, the output saved;
* ``custom.scaled_pair``: two broadcasting inputs, two outputs and a keyword argument (the pack
  and pick nodes, a gradient the backward returns at the broadcast shape).

A user's own mirrors. Write a module that defines the Function, its torch twin and a mirror named
``custom.<name>`` (the ``custom.`` prefix tells coverage it checks a user's op, not a public
name), and registers it::

    # my_ops_mirrors.py
    from conformance.mirror import OpMirror, register
    from conformance.strategies import unary
    register(OpMirror("custom.my_op", MyOp.apply, MyTorchOp.apply, unary()))

then name it to the harness: ``python -m conformance run --mirrors my_ops_mirrors -k custom.my_op``
(or ``NEURONIX_MIRRORS=my_ops_mirrors``; several comma-separated; a module name importable from
the current directory, or a ``.py`` path). ``list`` and ``repro`` take ``--mirrors`` too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import REAL, broadcast_shapes, tensor, unary

USER_MIRRORS_VAR = "NEURONIX_MIRRORS"


# ----- softplus: log(1 + e^x) = max(x, 0) + log1p(e^-|x|), never overflowing ------------------------
class Softplus(nx.autograd.Function):
    """``log(1 + exp(x))`` with its own backward ``g * sigmoid(x)`` (written in neuronix ops)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0) + nx.log1p(nx.exp(-x.abs()))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * nx.sigmoid(x)


class TorchSoftplus(torch.autograd.Function):
    """The torch twin (``setup_context`` and ``jvp`` too, so ``torch.func.jvp`` can run it)."""

    @staticmethod
    def forward(x):
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return tangent * torch.sigmoid(x)


# ----- scaled_pair: (scale * a * b, a - b), broadcasting ---------------------------------------------
class ScaledPair(nx.autograd.Function):
    """Two inputs, two outputs: the gradients come back at the broadcast shape (the engine reduces them)."""

    @staticmethod
    def forward(ctx, a, b, scale=2.0):
        ctx.save_for_backward(a, b)
        ctx.scale = scale
        return a * b * scale, a - b

    @staticmethod
    def backward(ctx, g_prod, g_diff):
        a, b = ctx.saved_tensors
        return g_prod * b * ctx.scale + g_diff, g_prod * a * ctx.scale - g_diff, None


class TorchScaledPair(torch.autograd.Function):
    @staticmethod
    def forward(a, b, scale=2.0):
        return a * b * scale, a - b

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, scale = inputs
        ctx.save_for_backward(a, b)
        ctx.save_for_forward(a, b)
        ctx.scale = scale
        ctx.shapes = (a.shape, b.shape)

    @staticmethod
    def backward(ctx, g_prod, g_diff):
        a, b = ctx.saved_tensors
        ga, gb = g_prod * b * ctx.scale + g_diff, g_prod * a * ctx.scale - g_diff
        return ga.sum_to_size(ctx.shapes[0]), gb.sum_to_size(ctx.shapes[1]), None

    @staticmethod
    def jvp(ctx, ta, tb, _):
        a, b = ctx.saved_tensors
        return (ta * b + a * tb) * ctx.scale, ta - tb


def _scaled_pair_sample(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    scale = draw(st.sampled_from([2.0, -0.5]))
    return Sample((tensor(draw, sa, dtype, device, REAL), tensor(draw, sb, dtype, device, REAL), scale))


register(
    OpMirror("custom.softplus", Softplus.apply, TorchSoftplus.apply, unary(REAL)),
    OpMirror("custom.scaled_pair", ScaledPair.apply, TorchScaledPair.apply, _scaled_pair_sample),
)


# ----- users' mirror modules ---------------------------------------------------------------------------
def load_user_mirrors(spec: str | None = None) -> list[str]:
    """Import the modules named in ``spec`` (default: ``$NEURONIX_MIRRORS``), comma-separated module names
    or ``.py`` paths; each registers its mirrors on import. Returns what was loaded."""
    spec = os.environ.get(USER_MIRRORS_VAR, "") if spec is None else spec
    loaded = []
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name.endswith(".py"):
            path = Path(name).resolve()
            module_spec = importlib.util.spec_from_file_location(f"neuronix_user_mirrors_{path.stem}", path)
            if module_spec is None or not path.exists():
                raise ModuleNotFoundError(f"{USER_MIRRORS_VAR}/--mirrors: no such file {name!r}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            import sys

            if os.getcwd() not in sys.path and "" not in sys.path:  # a module of the user's project
                sys.path.insert(0, os.getcwd())
            importlib.import_module(name)
        loaded.append(name)
    return loaded


load_user_mirrors()
