"""Mirrors of attention and the Transformer: ``nn.MultiheadAttention``, ``F.multi_head_attention_forward``, the
encoder/decoder layers and stacks, and ``nn.Transformer``.

torch's side runs its scaled-dot-product attention on the math backend (``sdpa_kernel(SDPBackend.MATH)``), the path
neuronix implements: on CPU torch otherwise takes its flash-attention kernel for the 4-d attention of
``need_weights=False`` (every Transformer layer), which agrees to rounding but has no second derivative and draws its
dropout mask differently. On the math backend the dropout masks are torch's draws, so dropout > 0 is compared in
train mode with the module driver's reseeded RNG.

Masks are drawn boolean or float (of the same kind for a key padding mask and an attention mask, as torch asks),
2-d or 3-d, with the first key always allowed (a fully masked row is a NaN in torch's explicit softmax); float masks
are differentiated like any input. Inputs are batched (batch_first or not) or unbatched.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

import neuronix as nx
from conformance.mirror import FLOATS, ModuleMirror, OpMirror, Sample, register
from conformance.strategies import index_tensor, tensor

ints = st.integers
_MATH_NOTE = "torch's side on its math attention backend (sdpa_kernel(SDPBackend.MATH)): neuronix's path"


def _on_math_backend(cls):
    """``cls`` (a torch module) whose forward runs scaled-dot-product attention on torch's math backend."""

    class OnMath(cls):
        def forward(self, *args, **kwargs):
            with sdpa_kernel(SDPBackend.MATH):
                return super().forward(*args, **kwargs)

    OnMath.__name__ = OnMath.__qualname__ = cls.__name__
    return OnMath


def _self_attention(cls):
    """``cls`` (an MHA class) called as self-attention, ``forward(x, ...)`` = ``forward(x, x, x, ...)``: the one
    tensor thrice, which torch projects with one packed product."""

    class SelfAttention(cls):
        def forward(self, x, *args, **kwargs):
            return super().forward(x, x, x, *args, **kwargs)

    return SelfAttention


# ----- masks --------------------------------------------------------------------------------------------------------
def _bool_mask(draw, shape, device) -> torch.Tensor:
    """True = not allowed to attend; the first key (last dim) always allowed, so no row is fully masked."""
    mask = index_tensor(draw, shape, 2, device).bool()
    mask[..., 0] = False
    return mask


def _mask(draw, kind: str, shape, dtype, device):
    if kind == "bool":
        return _bool_mask(draw, shape, device)
    if kind == "float":
        return tensor(draw, shape, dtype, device)
    return None


def _causal(length: int, kind: str, dtype, device) -> torch.Tensor:
    upper = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    return upper if kind == "bool" else torch.zeros(length, length, dtype=dtype, device=device).masked_fill(upper, -torch.inf)


def _seq(draw, length: int, batch: int | None, width: int, batch_first: bool, dtype, device):
    """An input of ``length`` x ``width``: (L, N, E), (N, L, E) with ``batch_first``, or unbatched (L, E)."""
    if batch is None:
        return tensor(draw, (length, width), dtype, device)
    return tensor(draw, (batch, length, width) if batch_first else (length, batch, width), dtype, device)


# ----- MultiheadAttention ---------------------------------------------------------------------------------------------
def _mha_build(self_attention: bool):
    def build(draw):
        heads = draw(ints(1, 3))
        kwargs = {"dropout": draw(st.sampled_from([0.0, 0.0, 0.3])), "bias": draw(st.booleans()),
                  "add_bias_kv": draw(st.booleans()), "add_zero_attn": draw(st.booleans()),
                  "batch_first": draw(st.booleans())}
        if not self_attention and draw(st.booleans()):
            kwargs["kdim"], kwargs["vdim"] = draw(ints(1, 4)), draw(ints(1, 4))
        return (heads * draw(ints(1, 3)), heads), kwargs

    return build


def _mha_sample(self_attention: bool):
    """Positional forward args (the functional twin runs only without kwargs): query, key, value (one ``x`` for
    self-attention), key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal."""

    def sample(draw, args, kwargs, dtype, device):
        embed, heads = args
        batch = None if draw(ints(0, 3)) == 0 else draw(ints(1, 3))
        tgt = draw(ints(1, 4))
        src = tgt if self_attention or draw(st.booleans()) else draw(ints(1, 4))
        first = kwargs["batch_first"]
        query = _seq(draw, tgt, batch, embed, first, dtype, device)
        kind = draw(st.sampled_from(["none", "bool", "float"]))
        padding = None
        if kind != "none" and draw(st.booleans()):
            padding = _mask(draw, kind, (src,) if batch is None else (batch, src), dtype, device)
        attn_mask, is_causal = None, False
        form = draw(st.sampled_from(["none", "2d", "3d", "causal"])) if kind != "none" else "none"
        if form == "2d":
            attn_mask = _mask(draw, kind, (tgt, src), dtype, device)
        elif form == "3d":
            attn_mask = _mask(draw, kind, ((batch or 1) * heads, tgt, src), dtype, device)
        elif form == "causal" and tgt == src:
            attn_mask, is_causal = _causal(tgt, kind, dtype, device), draw(st.booleans())
        need_weights, average = draw(st.booleans()), draw(st.booleans())
        if self_attention:
            return Sample((query, padding, need_weights, attn_mask, average, is_causal))
        key = _seq(draw, src, batch, kwargs.get("kdim", embed), first, dtype, device)
        value = _seq(draw, src, batch, kwargs.get("vdim", embed), first, dtype, device)
        return Sample((query, key, value, padding, need_weights, attn_mask, average, is_causal))

    return sample


def _mha_twin(lib, module, inputs):
    """``F.multi_head_attention_forward`` called as ``nn.MultiheadAttention`` calls it (cross-attention inputs)."""
    query, key, value, padding, need_weights, attn_mask, average, is_causal = inputs
    batched = query.ndim == 3
    if module.batch_first and batched:
        query, key, value = (x.transpose(1, 0) for x in (query, key, value))
    separate = {} if module._qkv_same_embed_dim else {
        "use_separate_proj_weight": True, "q_proj_weight": module.q_proj_weight, "k_proj_weight": module.k_proj_weight,
        "v_proj_weight": module.v_proj_weight}
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        # the module makes a boolean attn_mask additive before the call (the functional would too, except where
        # is_causal lets it drop the mask): same arguments on both sides
        attn_mask = torch.zeros(attn_mask.shape, dtype=query.dtype, device=attn_mask.device).masked_fill(attn_mask, -torch.inf)
    space = torch.nn.functional if lib is torch else nx.nn.functional
    with sdpa_kernel(SDPBackend.MATH):
        out, weights = space.multi_head_attention_forward(
            query, key, value, module.embed_dim, module.num_heads, module.in_proj_weight, module.in_proj_bias,
            module.bias_k, module.bias_v, module.add_zero_attn, module.dropout, module.out_proj.weight,
            module.out_proj.bias, training=module.training, key_padding_mask=padding, need_weights=need_weights,
            attn_mask=attn_mask, average_attn_weights=average, is_causal=is_causal, **separate)
    if module.batch_first and batched:
        out = out.transpose(1, 0)
    return out, weights


register(
    ModuleMirror("nn.MultiheadAttention", nx.nn.MultiheadAttention, _on_math_backend(torch.nn.MultiheadAttention),
                 _mha_build(False), _mha_sample(False), gradgrad=True, dtypes=FLOATS, functional=_mha_twin,
                 note=_MATH_NOTE),
    ModuleMirror("nn.MultiheadAttention[self-attention]", _self_attention(nx.nn.MultiheadAttention),
                 _self_attention(_on_math_backend(torch.nn.MultiheadAttention)), _mha_build(True), _mha_sample(True),
                 gradgrad=True, dtypes=FLOATS, note="one tensor as query, key and value: torch's packed projection; "
                 + _MATH_NOTE),
)


# ----- F.multi_head_attention_forward -------------------------------------------------------------------------------
def _mha_functional_sample(draw, dtype, device):
    heads = draw(ints(1, 2))
    embed = heads * draw(ints(1, 3))
    batch = None if draw(ints(0, 3)) == 0 else draw(ints(1, 2))
    tgt, src = draw(ints(1, 3)), draw(ints(1, 3))
    separate = draw(st.booleans())
    kdim, vdim = (draw(ints(1, 3)), draw(ints(1, 3))) if separate else (embed, embed)
    query = _seq(draw, tgt, batch, embed, False, dtype, device)
    key = _seq(draw, src, batch, kdim, False, dtype, device)
    value = _seq(draw, src, batch, vdim, False, dtype, device)
    bias = tensor(draw, (3 * embed,), dtype, device) if draw(st.booleans()) else None
    bias_kv = draw(st.booleans())
    bias_k = tensor(draw, (1, 1, embed), dtype, device) if bias_kv else None
    bias_v = tensor(draw, (1, 1, embed), dtype, device) if bias_kv else None
    out_bias = tensor(draw, (embed,), dtype, device) if draw(st.booleans()) else None
    args = (query, key, value, embed, heads, None if separate else tensor(draw, (3 * embed, embed), dtype, device),
            bias, bias_k, bias_v, draw(st.booleans()), 0.0, tensor(draw, (embed, embed), dtype, device), out_bias)
    kwargs = {"need_weights": draw(st.booleans()), "average_attn_weights": draw(st.booleans()),
              "training": draw(st.booleans())}
    if separate:
        kwargs.update(use_separate_proj_weight=True, q_proj_weight=tensor(draw, (embed, embed), dtype, device),
                      k_proj_weight=tensor(draw, (embed, kdim), dtype, device),
                      v_proj_weight=tensor(draw, (embed, vdim), dtype, device))
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    if kind != "none":
        if draw(st.booleans()):
            kwargs["key_padding_mask"] = _mask(draw, kind, (src,) if batch is None else (batch, src), dtype, device)
        if draw(st.booleans()):
            kwargs["attn_mask"] = _mask(draw, kind, (tgt, src), dtype, device)
        elif tgt == src:
            kwargs["attn_mask"], kwargs["is_causal"] = _causal(tgt, kind, dtype, device), True
    return Sample(args, kwargs)


def _mha_functional_dropout(draw, dtype, device):
    s = _mha_functional_sample(draw, dtype, device)
    args = s.args[:10] + (draw(st.sampled_from([0.2, 0.5])),) + s.args[11:]
    return Sample(args, {**s.kwargs, "training": True, "seed": draw(ints(0, 2**31 - 1))})


def _on_math(fn):
    def call(*args, **kwargs):
        with sdpa_kernel(SDPBackend.MATH):
            return fn(*args, **kwargs)

    return call


def _seeded(fn):
    """``fn`` after ``manual_seed(seed)`` in a forked RNG: both libraries must draw the same dropout mask."""

    def call(*args, seed, **kwargs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn(*args, **kwargs)

    return call


_TORCH_MHA = _on_math(torch.nn.functional.multi_head_attention_forward)
register(
    OpMirror("nn.functional.multi_head_attention_forward", nx.nn.functional.multi_head_attention_forward, _TORCH_MHA,
             _mha_functional_sample, dtypes=FLOATS, note=_MATH_NOTE),
    OpMirror("nn.functional.multi_head_attention_forward[dropout]",
             _seeded(nx.nn.functional.multi_head_attention_forward), _seeded(_TORCH_MHA), _mha_functional_dropout,
             dtypes=FLOATS, note="same seed on both sides: the dropout mask must be torch's draw; " + _MATH_NOTE),
)


# ----- Transformer layers and stacks --------------------------------------------------------------------------------
_ACTIVATIONS = ("relu", "gelu", "F.gelu", "F.silu", "GELU(tanh)")


def _activation(lib, name: str):
    """A drawn activation: torch's strings, or a function or module of ``lib`` (the library being built)."""
    if name == "F.gelu":
        return lib.nn.functional.gelu
    if name == "F.silu":
        return lib.nn.functional.silu
    if name == "GELU(tanh)":
        return lib.nn.GELU(approximate="tanh")
    return name


def _layer_kwargs(draw) -> dict:
    return {"dim_feedforward": draw(ints(1, 6)), "dropout": draw(st.sampled_from([0.0, 0.0, 0.2])),
            "activation": draw(st.sampled_from(_ACTIVATIONS)), "layer_norm_eps": draw(st.sampled_from([1e-5, 1e-3])),
            "batch_first": draw(st.booleans()), "norm_first": draw(st.booleans()), "bias": draw(st.booleans())}


def _layer_build(draw):
    # d_model of 4 or 6: a LayerNorm over one feature returns its bias (its gradients are rounding noise alone), and
    # over 2 or 3 its second derivatives reach ~100, where float32 rounding alone differs by 1e-4 from torch's
    heads = draw(ints(1, 2))
    return (draw(st.sampled_from([4, 6])), heads), _layer_kwargs(draw)


def _layer(lib, name: str):
    """``lib.nn.<name>`` with the drawn activation made ``lib``'s own."""

    cls = getattr(lib.nn, name) if lib is nx else _on_math_backend(getattr(torch.nn, name))

    def make(*args, activation="relu", **kwargs):
        return cls(*args, activation=_activation(lib, activation), **kwargs)

    return make


def _self_masks(draw, length: int, batch: int | None, heads: int, dtype, device):
    """A self-attention mask (none, 2-d, 3-d or causal) and a key padding mask of one kind; whether causal."""
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    if kind == "none":
        return None, None, False
    padding = _mask(draw, kind, (length,) if batch is None else (batch, length), dtype, device) if draw(
        st.booleans()) else None
    form = draw(st.sampled_from(["none", "2d", "3d", "causal"]))
    if form == "2d":
        return _mask(draw, kind, (length, length), dtype, device), padding, False
    if form == "3d":
        return _mask(draw, kind, ((batch or 1) * heads, length, length), dtype, device), padding, False
    if form == "causal":
        return _causal(length, kind, dtype, device), padding, True
    return None, padding, False


def _batch(draw):
    return None if draw(ints(0, 3)) == 0 else draw(ints(1, 3))


def _encoder_layer_sample(draw, args, kwargs, dtype, device):
    d_model, heads = args[0], args[1]
    batch, length = _batch(draw), draw(ints(1, 4))
    src = _seq(draw, length, batch, d_model, kwargs["batch_first"], dtype, device)
    mask, padding, causal = _self_masks(draw, length, batch, heads, dtype, device)
    return Sample((src, mask, padding, causal and draw(st.booleans())))


def _decoder_layer_sample(draw, args, kwargs, dtype, device):
    d_model, heads = args[0], args[1]
    batch, length, memory_length = _batch(draw), draw(ints(1, 4)), draw(ints(1, 4))
    tgt = _seq(draw, length, batch, d_model, kwargs["batch_first"], dtype, device)
    memory = _seq(draw, memory_length, batch, d_model, kwargs["batch_first"], dtype, device)
    tgt_mask, tgt_padding, causal = _self_masks(draw, length, batch, heads, dtype, device)
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    memory_mask = _mask(draw, kind, (length, memory_length), dtype, device) if draw(st.booleans()) else None
    memory_padding = _mask(draw, kind, (memory_length,) if batch is None else (batch, memory_length), dtype, device)
    return Sample((tgt, memory, tgt_mask, memory_mask, tgt_padding, memory_padding, causal and draw(st.booleans())))


def _stack_build(draw):
    (d_model, heads), kwargs = _layer_build(draw)
    return (d_model, heads, draw(ints(1, 2)), draw(st.booleans())), kwargs


def _stack(lib, name: str, layer_name: str):
    """A ``TransformerEncoder``/``Decoder`` of ``num_layers`` copies of a drawn layer, with a final LayerNorm when
    drawn: the layer, then the norm, then the stack, as a torch program builds them (the RNG draws in that order)."""
    make_layer = _layer(lib, layer_name)
    cls = getattr(lib.nn, name) if lib is nx else _on_math_backend(getattr(torch.nn, name))

    def make(d_model, heads, num_layers, with_norm, **kwargs):
        layer = make_layer(d_model, heads, **kwargs)
        norm = lib.nn.LayerNorm(d_model, eps=kwargs["layer_norm_eps"]) if with_norm else None
        return cls(layer, num_layers, norm)

    return make


def _encoder_sample(draw, args, kwargs, dtype, device):
    s = _encoder_layer_sample(draw, args, kwargs, dtype, device)
    src, mask, padding, causal = s.args
    # is_causal: None lets the stack detect a causal float mask (torch's _detect_is_causal_mask)
    return Sample((src, mask, padding, draw(st.sampled_from([None, causal]))))


def _decoder_sample(draw, args, kwargs, dtype, device):
    s = _decoder_layer_sample(draw, args, kwargs, dtype, device)
    return Sample(s.args[:-1] + (draw(st.sampled_from([None, s.args[-1]])),))


def _transformer_build(draw):
    heads = draw(ints(1, 2))
    kwargs = {"num_encoder_layers": draw(ints(1, 2)), "num_decoder_layers": draw(ints(1, 2)), **_layer_kwargs(draw)}
    return (4, heads), kwargs


def _transformer_sample(draw, args, kwargs, dtype, device):
    d_model, heads = args
    batch, src_len, tgt_len = _batch(draw), draw(ints(1, 3)), draw(ints(1, 3))
    first = kwargs["batch_first"]
    src = _seq(draw, src_len, batch, d_model, first, dtype, device)
    tgt = _seq(draw, tgt_len, batch, d_model, first, dtype, device)
    src_mask, src_padding, _ = _self_masks(draw, src_len, batch, heads, dtype, device)
    tgt_mask, tgt_padding, causal = _self_masks(draw, tgt_len, batch, heads, dtype, device)
    memory_padding = src_padding if draw(st.booleans()) else None
    return Sample((src, tgt, src_mask, tgt_mask, None, src_padding, tgt_padding, memory_padding, None,
                   draw(st.sampled_from([None, causal]))))


_STACK_NOTE = "a drawn layer deep-copied num_layers times (torch's _get_clones), optional final LayerNorm; " + _MATH_NOTE
register(
    ModuleMirror("nn.TransformerEncoderLayer", _layer(nx, "TransformerEncoderLayer"),
                 _layer(torch, "TransformerEncoderLayer"), _layer_build, _encoder_layer_sample, gradgrad=True,
                 dtypes=FLOATS, note=_MATH_NOTE),
    ModuleMirror("nn.TransformerDecoderLayer", _layer(nx, "TransformerDecoderLayer"),
                 _layer(torch, "TransformerDecoderLayer"), _layer_build, _decoder_layer_sample, gradgrad=True,
                 dtypes=FLOATS, note=_MATH_NOTE),
    ModuleMirror("nn.TransformerEncoder", _stack(nx, "TransformerEncoder", "TransformerEncoderLayer"),
                 _stack(torch, "TransformerEncoder", "TransformerEncoderLayer"), _stack_build, _encoder_sample,
                 gradgrad=True, dtypes=FLOATS, note=_STACK_NOTE),
    ModuleMirror("nn.TransformerDecoder", _stack(nx, "TransformerDecoder", "TransformerDecoderLayer"),
                 _stack(torch, "TransformerDecoder", "TransformerDecoderLayer"), _stack_build, _decoder_sample,
                 gradgrad=True, dtypes=FLOATS, note=_STACK_NOTE),
    ModuleMirror("nn.Transformer", _layer(nx, "Transformer"), _layer(torch, "Transformer"), _transformer_build,
                 _transformer_sample, gradgrad=True, dtypes=FLOATS, note=_MATH_NOTE),
)
