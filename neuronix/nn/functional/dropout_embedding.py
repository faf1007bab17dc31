"""``nn.functional`` dropout and embedding lookups."""

from __future__ import annotations

import torch

from neuronix.nn.functional.arguments import as_nx, shape_of
from neuronix.ops import dropout_embedding as _de
from neuronix.ops.inplace import in_place
from neuronix.ops.public import public
from neuronix.tensor import unwrap


@public(namespace="nn.functional")
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``; the mask is the one
    torch draws for the same RNG state; ``inplace=True`` writes the result into ``input``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training:
        return as_nx(input)
    if 0.0 < p < 1.0 and unwrap(input).is_complex():  # torch draws its mask in the input's dtype: no complex kernel
        raise NotImplementedError(f"dropout: not implemented for complex inputs (got {unwrap(input).dtype}), as in torch")
    if inplace:
        return in_place(input, "dropout_", _de.dropout, float(p))
    return _de.dropout(input, float(p))


@public(namespace="nn.functional")
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer ``input``; row ``padding_idx`` gets no gradient."""
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {shape_of(weight)}")
    indices = unwrap(input)
    if indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"embedding: input must be an int64 or int32 tensor of indices, got dtype {indices.dtype}")
    rows = weight.shape[0]
    if padding_idx is None:
        padding_idx = -1
    elif not -rows <= padding_idx < rows:
        raise ValueError(
            f"embedding: padding_idx must be within [{-rows}, {rows - 1}] (num_embeddings={rows}), got {padding_idx}"
        )
    elif padding_idx < 0:
        padding_idx += rows
    try:
        if max_norm is not None:
            with torch.no_grad():
                torch.embedding_renorm_(unwrap(weight), indices, max_norm, norm_type)
        return _de.embedding(indices, weight, padding_idx, bool(scale_grad_by_freq))
    except IndexError:  # torch's CPU kernel checks every index; only then find the culprit for a clear message
        out_of_range = (indices < 0) | (indices >= rows)
        if out_of_range.any():
            bad = indices[out_of_range][0].item()
            raise IndexError(
                f"embedding: index {bad} is out of range for a table of {rows} rows (weight {shape_of(weight)})"
            ) from None
        raise

