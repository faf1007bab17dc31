"""``linear``: ``x @ w.T + b`` by torch's fused kernel, VJPs as matmuls in neuronix ops.

torch's ``F.linear`` accepts more than ``(..., in) x (out, in)``: a 1-D weight (one output,
the feature dim dropped), a 1-D input, ``out_features == 0`` or ``in_features == 0``, and a
bias of any shape that broadcasts with the product (which may even add leading dims to the
output). The forward is torch's kernel, so it accepts and rejects exactly what torch does;
the VJPs below are written for every shape it accepts.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from neuronix.ops.reduce import sum_to_shape
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

# Without recording (a plain backward) the 2-D-weight VJPs call the torch kernels on raw values
# directly; recording (create_graph) goes through neuronix ops so the graph is built.


def _product_grad(g, x, w):
    """``g`` reduced to the shape of ``x @ w.T``: a bias with more dims broadcasts the output beyond it."""
    shape = tuple(x.shape[:-1]) + tuple(w.shape[:-1])
    return g if tuple(g.shape) == shape else sum_to_shape(g, shape)


def _rows(x) -> int:
    # explicit, not reshape(-1, n): with a size-0 feature dim the -1 would be ambiguous
    return math.prod(x.shape[:-1])


def _input_grad(g, out, x, w, b):
    g = _product_grad(g, x, w)
    if w.ndim == 1:  # x @ w: one output per row of x
        return g.unsqueeze(-1) * w
    return g.matmul(w)


def _weight_grad(g, out, x, w, b):
    g = _product_grad(g, x, w)
    if x.ndim == 1:
        return g * x if w.ndim == 1 else g.unsqueeze(1) * x.unsqueeze(0)
    rows, features = _rows(x), x.shape[-1]
    if w.ndim == 1:
        return g.reshape(rows).matmul(x.reshape(rows, features))
    return g.reshape(rows, g.shape[-1]).transpose(0, 1).matmul(x.reshape(rows, features))


def _bias_grad(g, out, x, w, b):
    return g  # the engine's sum_to_shape reduces it to the bias's shape, whatever broadcast it took


LINEAR = defop("linear", F.linear, _input_grad, _weight_grad, _bias_grad, saves=(0, 1))


def linear(x, w, b) -> Tensor:
    return apply(LINEAR, x, w, b)
