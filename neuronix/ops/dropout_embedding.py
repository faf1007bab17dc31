"""Dropout (torch's own mask for the same RNG state) and embedding lookup."""

from __future__ import annotations

import torch

from neuronix.ops.elementwise import masked
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

_aten = torch.ops.aten


# ----- dropout ------------------------------------------------------------------------------
def _dropout_grad(g, out, x, aux, p):
    # ``native_dropout`` returns the (bool) mask; torch's backward is grad * mask / (1 - p).
    return g * (aux.to(g.dtype) * (1.0 / (1.0 - p)))


# ``native_dropout`` is the kernel ``F.dropout`` runs (on CPU it draws the same Bernoulli
# numbers as the unfused path), so the mask equals torch's for the same RNG state.
DROPOUT = defop("dropout", lambda x, p: _aten.native_dropout(x, p, True), _dropout_grad, saves=(), aux=True)


def dropout(x, p: float) -> Tensor:
    # torch draws no random numbers for p == 0 (identity) or p == 1 (all zeros); neither do we
    if p == 0.0:
        return x if isinstance(x, Tensor) else Tensor(x)
    if p == 1.0:
        return x * 0.0
    out, _ = apply(DROPOUT, x, p=p)
    return out


# ----- embedding -----------------------------------------------------------------------------
def _embedding_forward(w, indices, padding_idx, scale_grad_by_freq, num_weights):
    return _aten.embedding(w, indices, padding_idx, scale_grad_by_freq, False)


def _backward_forward(g, indices, num_weights, padding_idx, scale_grad_by_freq):
    return _aten.embedding_dense_backward(g, indices, num_weights, padding_idx, scale_grad_by_freq)


def _backward_adjoint(h, out, g, indices, num_weights, padding_idx, scale_grad_by_freq):
    # embedding_dense_backward sums rows of g into the table (skipping padding_idx, dividing by the
    # index frequency when asked); its adjoint gathers rows of h with the same factor.
    factor = (indices != padding_idx).to(h.dtype)
    if scale_grad_by_freq:
        counts = torch.bincount(indices.flatten(), minlength=num_weights).to(h.dtype)
        factor = factor / counts[indices]
    rows = apply(EMBEDDING, h, indices, padding_idx=-1, scale_grad_by_freq=False, num_weights=num_weights)
    # the padding rows exactly 0, as torch's embedding_dense_double_backward fills them (not 0 * h: NaN at inf)
    return masked(rows * factor.unsqueeze(-1), (indices != padding_idx).unsqueeze(-1))


EMBEDDING = defop(
    "embedding",
    _embedding_forward,
    lambda g, out, w, indices, **a: apply(EMBEDDING_BACKWARD, g, indices, **a),
    None,
    saves=(1,),
)
EMBEDDING_BACKWARD = defop(
    "embedding_backward",
    _backward_forward,
    lambda h, out, g, indices, **a: _backward_adjoint(h, out, g, indices.data, **a),
    None,
    saves=(1,),
)


def embedding(indices, w, padding_idx: int, scale_grad_by_freq: bool) -> Tensor:
    return apply(EMBEDDING, w, indices, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq,
                 num_weights=w.shape[0])
