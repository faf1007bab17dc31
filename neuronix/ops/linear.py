"""``linear``: ``x @ w.T + b`` by torch's fused kernel, VJPs as matmuls in neuronix ops."""

from __future__ import annotations

import torch.nn.functional as F

from neuronix.autograd import mode
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

# Without recording (a plain backward) the VJPs call the torch kernels on raw values
# directly; recording (create_graph) goes through neuronix ops so the graph is built.


def _input_grad(g, out, x, w, b):
    if not mode.grad_enabled:
        return Tensor._make(g.data.matmul(w.data), None)
    return g.matmul(w)


def _weight_grad(g, out, x, w, b):
    if x.ndim == 1:
        return g.reshape(-1, 1) * x.reshape(1, -1)
    if not mode.grad_enabled:
        gd, xd = g.data, x.data
        return Tensor._make(gd.reshape(-1, gd.shape[-1]).t().mm(xd.reshape(-1, xd.shape[-1])), None)
    return g.reshape(-1, g.shape[-1]).transpose(0, 1).matmul(x.reshape(-1, x.shape[-1]))


def _bias_grad(g, out, x, w, b):
    if not mode.grad_enabled and g.ndim > 1:  # the engine's sum_to_shape would do the same sum, slower
        gd = g.data
        return Tensor._make(gd.sum(tuple(range(gd.ndim - 1))), None)
    return g


LINEAR = defop("linear", F.linear, _input_grad, _weight_grad, _bias_grad, saves=(0, 1), torch_ref=F.linear)


def linear(x, w, b) -> Tensor:
    return apply(LINEAR, x, w, b)
