"""``linear``: ``x @ w.T + b`` by torch's fused kernel, VJPs as matmuls in neuronix ops."""

from __future__ import annotations

import torch.nn.functional as F

from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor


def _input_grad(g, out, x, w, b):
    return g.matmul(w)


def _weight_grad(g, out, x, w, b):
    if x.ndim == 1:
        return g.reshape(-1, 1) * x.reshape(1, -1)
    return g.reshape(-1, g.shape[-1]).transpose(0, 1).matmul(x.reshape(-1, x.shape[-1]))


LINEAR = defop("linear", F.linear, _input_grad, _weight_grad, lambda g, out, x, w, b: g, saves=(0, 1), torch_ref=F.linear)


def linear(x, w, b) -> Tensor:
    return apply(LINEAR, x, w, b)
