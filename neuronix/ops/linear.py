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
from neuronix.tensor import Tensor, unwrap


# ``shapes`` (the input's and the weight's) lets each rule read only the value it needs: as
# torch's, a linear with a frozen weight keeps the weight alone, and a first layer (its input
# needs no gradient) keeps the input alone (``reads``).
def _product_grad(g, shapes):
    """``g`` reduced to the shape of ``x @ w.T``: a bias with more dims broadcasts the output beyond it."""
    x_shape, w_shape = shapes
    shape = x_shape[:-1] + w_shape[:-1]
    return g if tuple(g.shape) == shape else sum_to_shape(g, shape)


def _input_grad(g, out, x, w, b, shapes):
    g = _product_grad(g, shapes)
    if len(shapes[1]) == 1:  # x @ w: one output per row of x
        return g.unsqueeze(-1) * w
    return g.matmul(w)


def _weight_grad(g, out, x, w, b, shapes):
    g = _product_grad(g, shapes)
    x_shape, w_shape = shapes
    if len(x_shape) == 1:
        return g * x if len(w_shape) == 1 else g.unsqueeze(1) * x.unsqueeze(0)
    rows, features = math.prod(x_shape[:-1]), x_shape[-1]  # explicit: with 0 features a -1 would be ambiguous
    if len(w_shape) == 1:
        return g.reshape(rows).matmul(x.reshape(rows, features))
    return g.reshape(rows, g.shape[-1]).transpose(0, 1).matmul(x.reshape(rows, features))


def _bias_grad(g, out, x, w, b, shapes):
    return g  # the engine reduces it to the bias's shape, whatever broadcast it took


LINEAR = defop("linear", lambda x, w, b, shapes: F.linear(x, w, b), _input_grad, _weight_grad, _bias_grad,
               reads=((1,), (0,), ()))


def linear(x, w, b) -> Tensor:
    return apply(LINEAR, x, w, b, shapes=(tuple(unwrap(x).shape), tuple(unwrap(w).shape)))
