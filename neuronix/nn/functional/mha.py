"""``nn.functional.multi_head_attention_forward``: torch's multi-head attention, step for step, in neuronix ops.

The steps and their order are torch's (``nn.MultiheadAttention`` calls this), so values agree to rounding and the
gradients are those of the same composition: in-projection (one packed product for self-attention, as torch), the
masks made additive (a boolean ``True`` is ``-inf``), ``bias_k``/``bias_v`` and a zero key/value appended, the
key padding mask merged into the attention mask, then either the explicit ``softmax(q k^T / sqrt(d) + mask)`` (the
weights are returned) or ``scaled_dot_product_attention`` (``need_weights=False``), and the out-projection.

Masks may require grad (a learned float bias): they stay in the graph. Errors are torch's types (mostly
``AssertionError``) with messages that name this function and the shapes involved.
"""

from __future__ import annotations

import math
import warnings

import torch

from neuronix.nn.functional.activation import softmax
from neuronix.nn.functional.arguments import as_nx, shape_of
from neuronix.nn.functional.attention import scaled_dot_product_attention
from neuronix.nn.functional.conv import linear
from neuronix.nn.functional.dropout_embedding import dropout
from neuronix.nn.functional.padding import pad
from neuronix.ops.decompositions import baddbmm
from neuronix.ops.movement import cat
from neuronix.ops.public import public
from neuronix.tensor import unwrap

_OP = "multi_head_attention_forward"


def canonical_mask(mask, mask_name: str, other, other_name: str, target_type, check_other: bool = True):
    """A mask as torch's attention layers take it: a float mask as given, a boolean one as 0 / ``-inf`` in
    ``target_type`` (``True`` = not allowed to attend); mixing a boolean and a float mask warns, as torch."""
    if mask is None:
        return None
    raw = unwrap(mask)
    if raw.dtype != torch.bool and not raw.is_floating_point():
        raise AssertionError(f"only bool and floating types of {mask_name} are supported, got {raw.dtype}")
    if check_other and other is not None and unwrap(other).dtype != raw.dtype:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                      "instead.", stacklevel=3)
    if raw.dtype == torch.bool:
        return torch.zeros(raw.shape, dtype=target_type, device=raw.device).masked_fill_(raw, -math.inf)
    return mask


def _shape_check(query, key, value, key_padding_mask, attn_mask, num_heads: int) -> bool:
    """torch's ``_mha_shape_check``: whether the call is batched (3-D query) or not (2-D), else an error."""
    if query.ndim not in (2, 3):
        raise AssertionError(f"{_OP}: query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D "
                             f"query tensor of shape {shape_of(query)}")
    batched = query.ndim == 3
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise AssertionError(f"{_OP}: For {kind} `query`, expected `key` and `value` to be {query.ndim}-D but found "
                             f"{key.ndim}-D and {value.ndim}-D tensors respectively")
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise AssertionError(f"{_OP}: For {kind} `query`, expected `key_padding_mask` to be `None` or "
                             f"{query.ndim - 1}-D but found {key_padding_mask.ndim}-D tensor instead")
    if attn_mask is not None:
        if attn_mask.ndim not in (2, 3):
            raise AssertionError(f"{_OP}: For {kind} `query`, expected `attn_mask` to be `None`, 2-D or 3-D but found "
                                 f"{attn_mask.ndim}-D tensor instead")
        expected = (num_heads, query.shape[0], key.shape[0])
        if not batched and attn_mask.ndim == 3 and shape_of(attn_mask) != expected:
            raise AssertionError(f"{_OP}: Expected `attn_mask` shape to be {expected} but got {shape_of(attn_mask)}")
    return batched


def _in_projection_packed(q, k, v, same_kv: bool, self_attention: bool, w, b):
    """The packed in-projection: one product for self-attention, two for a shared key/value, else three."""
    e = q.shape[-1]
    if same_kv and self_attention:
        proj = linear(q, w, b).unflatten(-1, (3, e))
        return proj[..., 0, :], proj[..., 1, :], proj[..., 2, :]
    if same_kv:
        w_q, w_kv = w.split([e, 2 * e])
        b_q, b_kv = (None, None) if b is None else b.split([e, 2 * e])
        kv = linear(k, w_kv, b_kv).unflatten(-1, (2, e))
        return linear(q, w_q, b_q), kv[..., 0, :], kv[..., 1, :]
    w_q, w_k, w_v = w.chunk(3)
    b_q, b_k, b_v = (None, None, None) if b is None else b.chunk(3)
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def _in_projection(q, k, v, w_q, w_k, w_v, bias):
    """Separate query/key/value weights (``kdim``/``vdim`` differ from ``embed_dim``), shapes checked as torch."""
    eq, ek, ev = q.shape[-1], k.shape[-1], v.shape[-1]
    for what, w, want in (("query", w_q, (eq, eq)), ("key", w_k, (eq, ek)), ("value", w_v, (eq, ev))):
        if shape_of(w) != want:
            raise AssertionError(f"{_OP}: expecting {what} weights shape of {want}, but got {shape_of(w)}")
    b_q, b_k, b_v = (None, None, None) if bias is None else bias.chunk(3)
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def _attn_mask_3d(attn_mask, tgt_len: int, src_len: int, heads_batch: int):
    """A 2-D ``(L, S)`` mask as ``(1, L, S)``; a 3-D one must be ``(N * num_heads, L, S)``."""
    if attn_mask.ndim == 2:
        if shape_of(attn_mask) != (tgt_len, src_len):
            raise RuntimeError(f"{_OP}: The shape of the 2D attn_mask is {shape_of(attn_mask)}, but should be "
                               f"{(tgt_len, src_len)}.")
        return attn_mask.unsqueeze(0)
    if attn_mask.ndim == 3:
        if shape_of(attn_mask) != (heads_batch, tgt_len, src_len):
            raise RuntimeError(f"{_OP}: The shape of the 3D attn_mask is {shape_of(attn_mask)}, but should be "
                               f"{(heads_batch, tgt_len, src_len)}.")
        return attn_mask
    raise RuntimeError(f"{_OP}: attn_mask's dimension {attn_mask.ndim} is not supported")


def _static(static, name: str, heads_batch: int, head_dim: int):
    if static.shape[0] != heads_batch:
        raise AssertionError(f"{_OP}: expecting {name}.size(0) of {heads_batch}, but got {static.shape[0]}")
    if static.shape[2] != head_dim:
        raise AssertionError(f"{_OP}: expecting {name}.size(2) of {head_dim}, but got {static.shape[2]}")
    return as_nx(static)


@public(namespace="nn.functional")
def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn: bool, dropout_p: float, out_proj_weight,
                                 out_proj_bias, training: bool = True, key_padding_mask=None, need_weights: bool = True,
                                 attn_mask=None, use_separate_proj_weight: bool = False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights: bool = True, is_causal: bool = False):
    """Multi-head attention of ``query`` (L, N, E) over ``key``/``value`` (S, N, E_k/E_v), or unbatched (L, E).

    Returns ``(attn_output, attn_weights)``: the output (L, N, E), and the attention weights averaged over the heads
    (N, L, S) or per head (N, num_heads, L, S) when ``need_weights``, else ``None``.
    """
    # torch's packed projection runs one product for self-attention: decided by identity, before any wrapping
    same_kv, self_attention = key is value, query is key
    query, key, value = as_nx(query), as_nx(key), as_nx(value)
    batched = _shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", attn_mask, "attn_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError(f"{_OP}: Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                           "module method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint alone: scaled_dot_product_attention's is_causal
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False  # the merged mask is no longer causal
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"{_OP}: was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim} "
                             f"(query of shape {shape_of(query)})")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"{_OP}: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if shape_of(key)[:2] != shape_of(value)[:2]:
            raise AssertionError(f"{_OP}: key's sequence and batch dims {shape_of(key)[:2]} do not match value's "
                                 f"{shape_of(value)[:2]}")
        for name, w in (("q_proj_weight", q_proj_weight), ("k_proj_weight", k_proj_weight),
                        ("v_proj_weight", v_proj_weight)):
            if w is None:
                raise AssertionError(f"{_OP}: use_separate_proj_weight is True but {name} is None")
        q, k, v = _in_projection(query, key, value, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias)
    else:
        if shape_of(key) != shape_of(value):
            raise AssertionError(f"{_OP}: key shape {shape_of(key)} does not match value shape {shape_of(value)}")
        if in_proj_weight is None:
            raise AssertionError(f"{_OP}: use_separate_proj_weight is False but in_proj_weight is None")
        q, k, v = _in_projection_packed(query, key, value, same_kv, self_attention, in_proj_weight, in_proj_bias)
    src_len = key.shape[0]
    if attn_mask is not None:
        attn_mask = _attn_mask_3d(attn_mask, tgt_len, src_len, bsz * num_heads)

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError(f"{_OP}: bias cannot be added to static {'key' if static_k is not None else 'value'}.")
        k = cat([k, bias_k.repeat(1, bsz, 1)])
        v = cat([v, bias_v.repeat(1, bsz, 1)])
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    elif bias_k is not None or bias_v is not None:
        raise AssertionError(f"{_OP}: bias_k is set but bias_v is None" if bias_k is not None
                             else f"{_OP}: bias_v is set but bias_k is None")

    # heads folded into the batch: (N * num_heads, length, head_dim)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = (k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_k is None
         else _static(static_k, "static_k", bsz * num_heads, head_dim))
    v = (v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_v is None
         else _static(static_v, "static_v", bsz * num_heads, head_dim))
    if add_zero_attn:
        zeros = torch.zeros((bsz * num_heads, 1, head_dim), dtype=k.dtype, device=k.device)
        k, v = cat([k, zeros], 1), cat([v, zeros.to(v.dtype)], 1)
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    src_len = k.shape[1]

    if key_padding_mask is not None:
        if shape_of(key_padding_mask) != (bsz, src_len):
            raise AssertionError(f"{_OP}: Expected key_padded_mask of shape {(bsz, src_len)} (batch, source length), "
                                 f"but got {shape_of(key_padding_mask)}")
        key_padding_mask = (as_nx(key_padding_mask).reshape(bsz, 1, 1, src_len).expand(-1, num_heads, -1, -1)
                            .reshape(bsz * num_heads, 1, src_len))
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    if not training:
        dropout_p = 0.0

    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        if attn_mask is not None:
            weights = baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
        else:
            weights = q_scaled @ k.transpose(-2, -1)
        weights = softmax(weights, dim=-1)
        if dropout_p > 0.0:
            weights = dropout(weights, p=dropout_p)
        out = (weights @ v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias)
        out = out.reshape(tgt_len, bsz, out.shape[-1])  # sizes, not -1: a length or batch may be 0
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights

    if attn_mask is not None:  # (1, L, S) broadcasts over batch and heads; else (N, num_heads, L, S)
        attn_mask = (attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1
                     else attn_mask.reshape(bsz, num_heads, -1, src_len))
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias)
    out = out.reshape(tgt_len, bsz, out.shape[-1])
    return (out if batched else out.squeeze(1)), None
