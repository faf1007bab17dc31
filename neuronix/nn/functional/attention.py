"""``nn.functional.scaled_dot_product_attention``: torch's math path, op for op, in neuronix ops.

torch's CPU backend differentiates its composite "math" implementation: ``q * sqrt(scale)`` times
``(k^T * sqrt(scale))``, plus the additive mask (a boolean mask becomes 0 / -inf, ``is_causal`` a lower
triangle), a "safe" softmax whose fully masked rows are 0 (not NaN, nor a NaN gradient), dropout drawn as
torch's ``dropout`` draws it, and the product with ``v``; grouped-query attention repeats each key/value
head for its group of query heads. So the values, gradients and second derivatives are that composition's.
"""

from __future__ import annotations

import math

import torch

from neuronix.nn.functional.arguments import as_nx, shape_of
from neuronix.nn.functional.dropout_embedding import dropout
from neuronix.ops import activation_more as _more
from neuronix.ops.public import public
from neuronix.ops.registry import apply
from neuronix.tensor import unwrap


def _additive_mask(mask, dtype):
    """A boolean mask as torch converts it (0 where attending, -inf elsewhere); a float mask as it is."""
    raw = unwrap(mask)
    if raw.dtype == torch.bool:
        return torch.where(raw.logical_not(), -math.inf, torch.zeros((), dtype=dtype, device=raw.device))
    return mask


def _repeat_heads(t, groups: int):
    """``t.repeat_interleave(groups, -3)``: each head repeated for its group of query heads, one after another."""
    if groups == 1:
        return t
    sizes = shape_of(t)
    heads = sizes[-3]
    expanded = t.unsqueeze(-3).expand(sizes[:-3] + (heads, groups) + sizes[-2:])
    # a copy, as torch's repeat_interleave (the reshape is a stride-0 view when the leading dims are 1): the
    # key and value themselves are then not saved, and changing them in place afterwards is no error
    return expanded.reshape(sizes[:-3] + (heads * groups,) + sizes[-2:]).contiguous()


def _check(query, key, value, attn_mask, is_causal, enable_gqa):
    if not query.dtype == key.dtype == value.dtype:
        raise RuntimeError(f"scaled_dot_product_attention: Expected query, key, and value to have the same dtype, but "
                           f"got query.dtype: {query.dtype} key.dtype: {key.dtype} and value.dtype: {value.dtype} "
                           "instead.")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: query, key and value must have at least 2 dimensions "
                           f"(..., L, E), got shapes {shape_of(query)}, {shape_of(key)}, {shape_of(value)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: shapes do not match: query {shape_of(query)} (..., L, E), "
                           f"key {shape_of(key)} (..., S, E) and value {shape_of(value)} (..., S, Ev)")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if attn_mask is not None:
        mask_dtype = unwrap(attn_mask).dtype
        if mask_dtype != torch.bool and mask_dtype != query.dtype:
            raise RuntimeError(f"scaled_dot_product_attention: Expected attn_mask dtype to be bool or float or to match "
                               f"query dtype, but got attn_mask.dtype: {mask_dtype} and query.dtype: {query.dtype} "
                               "instead.")
    if enable_gqa and query.ndim >= 3:
        q_heads, k_heads, v_heads = query.shape[-3], key.shape[-3], value.shape[-3]
        if q_heads % k_heads or q_heads % v_heads:
            raise RuntimeError(f"scaled_dot_product_attention: number of heads in key/value ({k_heads}/{v_heads}) must "
                               f"divide the number of heads in query ({q_heads}) when enable_gqa=True")


@public(namespace="nn.functional")
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """``softmax(q k^T * scale + mask) v`` over the last two dims (``scale`` defaults to ``1 / sqrt(E)``)."""
    q, k, v = as_nx(query), as_nx(key), as_nx(value)
    _check(q, k, v, attn_mask, is_causal, enable_gqa)
    negative = scale is not None and scale < 0
    factor = math.sqrt(abs(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    q = q * (0.0 - factor if negative else factor)
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if enable_gqa and q.ndim >= 3:
        k = _repeat_heads(k, q.shape[-3] // k.shape[-3])
        v = _repeat_heads(v, q.shape[-3] // v.shape[-3])
    attn = q @ (k.transpose(-2, -1) * factor)
    if attn_mask is not None:
        attn = attn + _additive_mask(attn_mask, q.dtype)
    attn = apply(_more.SAFE_SOFTMAX, attn, dim=-1)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, True)
    return attn @ v
