"""nn.MultiheadAttention, F.multi_head_attention_forward, the Transformer family and F.scaled_dot_product_attention
against torch: keys, default initialisation, values, gradients (first and second), dropout draws, masks, errors,
torch's eval fast paths, and a nanoGPT-style block that loads a torch state_dict strictly."""

from __future__ import annotations

import contextlib
import copy
import math
import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import neuronix as nx
from neuronix.nn.modules import transformer as nx_transformer

F = nx.nn.functional
TF = torch.nn.functional
F64 = torch.float64


def _pair(name: str, *args, seed: int = 0, **kwargs):
    """torch's and neuronix's ``nn.<name>(*args, **kwargs)`` built after the same seed; neuronix's then loads
    torch's state_dict strictly (their default initialisation is compared first)."""
    torch.manual_seed(seed)
    t = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    n = getattr(nx.nn, name)(*args, **kwargs)
    t_state, n_state = t.state_dict(), n.state_dict()
    assert list(n_state) == list(t_state)
    for key, value in t_state.items():
        assert torch.equal(n_state[key].data, value), key
    n.load_state_dict(t_state, strict=True)
    return t, n


def _leaf(t: torch.Tensor):
    return t.clone().requires_grad_(t.is_floating_point()), nx.Tensor(t.clone(), requires_grad=t.is_floating_point())


def _close(actual, expected, tol: float = 1e-10):
    if expected is None:
        assert actual is None
        return
    actual = actual.data if isinstance(actual, nx.Tensor) else actual
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, equal_nan=True)


def _run_both(t_mod, n_mod, inputs, math_backend: bool = True, seed: int = 7, **kwargs):
    """Both modules on copies of ``inputs`` (float ones as leaves), torch's RNG reseeded before each; the outputs
    and, under one upstream gradient, the gradients of every float input and parameter."""
    t_in, n_in = zip(*[_leaf(x) if isinstance(x, torch.Tensor) else (x, x) for x in inputs])
    torch.manual_seed(seed)
    with sdpa_kernel(SDPBackend.MATH) if math_backend else contextlib.nullcontext():
        t_out = t_mod(*t_in, **kwargs)
    torch.manual_seed(seed)
    n_out = n_mod(*n_in, **kwargs)
    t_first = t_out[0] if isinstance(t_out, tuple) else t_out
    n_first = n_out[0] if isinstance(n_out, tuple) else n_out
    up = torch.randn_like(t_first)
    t_wrt = [x for x in t_in if isinstance(x, torch.Tensor) and x.requires_grad] + list(t_mod.parameters())
    n_wrt = [x for x in n_in if isinstance(x, nx.Tensor) and x.requires_grad] + list(n_mod.parameters())
    t_grads = torch.autograd.grad(t_first, t_wrt, up, allow_unused=True)
    n_grads = nx.autograd.grad(n_first, n_wrt, nx.Tensor(up), allow_unused=True)
    return t_out, n_out, t_grads, n_grads


def _assert_same(t_out, n_out, t_grads, n_grads, tol: float = 1e-10):
    for t, n in zip(t_out if isinstance(t_out, tuple) else (t_out,), n_out if isinstance(n_out, tuple) else (n_out,)):
        _close(n, t, tol)
    for t, n in zip(t_grads, n_grads):
        if t is None:
            assert n is None or not n.data.any()
        else:
            _close(n, t, tol)


def _bool_mask(*shape, seed: int = 0) -> torch.Tensor:
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.4
    mask[..., 0] = False  # no fully masked row
    return mask


def _as_float(mask: torch.Tensor) -> torch.Tensor:
    return torch.zeros(mask.shape, dtype=F64).masked_fill(mask, -math.inf)


# ----- MultiheadAttention: construction --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"kdim": 3, "vdim": 5}, {"bias": False}, {"add_bias_kv": True},
                                    {"add_bias_kv": True, "add_zero_attn": True, "kdim": 2, "vdim": 2}])
def test_mha_keys_init_and_attributes(kwargs):
    t, n = _pair("MultiheadAttention", 6, 3, **kwargs)
    for attr in ("embed_dim", "kdim", "vdim", "_qkv_same_embed_dim", "num_heads", "dropout", "batch_first", "head_dim",
                 "add_zero_attn"):
        assert getattr(n, attr) == getattr(t, attr), attr
    for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v"):
        assert (getattr(n, name) is None) == (getattr(t, name) is None), name
    assert repr(n) == repr(t)


def test_mha_constructor_errors():
    with pytest.raises(AssertionError, match="divisible by num_heads"):
        nx.nn.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match="greater than 0"):
        nx.nn.MultiheadAttention(0, 2)


# ----- MultiheadAttention: values and gradients -------------------------------------------------------------------
MASK_CASES = ["none", "bool2d", "float2d", "bool3d", "kpm_bool", "kpm_float", "both_bool", "both_float", "causal"]


def _mha_masks(case: str, batch: int, heads: int, tgt: int, src: int) -> dict:
    if case == "none":
        return {}
    if case == "causal":
        return {"attn_mask": torch.ones(tgt, src, dtype=torch.bool).triu(1), "is_causal": True}
    kind_float = case.endswith("float")
    attn = kpm = None
    if case.startswith(("bool2d", "float2d", "both")):
        attn = _bool_mask(tgt, src, seed=1)
    if case == "bool3d":
        attn = _bool_mask(batch * heads, tgt, src, seed=2)
    if case.startswith(("kpm", "both")):
        kpm = _bool_mask(batch, src, seed=3)
    if kind_float or case == "float2d":
        attn = None if attn is None else _as_float(attn) + 0.5 * torch.randn(attn.shape, dtype=F64)
        kpm = None if kpm is None else _as_float(kpm)
    return {k: v for k, v in (("attn_mask", attn), ("key_padding_mask", kpm)) if v is not None}


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("case", MASK_CASES)
def test_mha_matches_torch_with_masks(case, need_weights):
    t, n = _pair("MultiheadAttention", 6, 2, dtype=F64)
    length = 4
    q, k, v = (torch.randn(length, 3, 6, dtype=F64) for _ in range(3))
    masks = _mha_masks(case, 3, 2, length, length)
    outs = _run_both(t, n, (q, k, v), need_weights=need_weights, average_attn_weights=False, **masks)
    _assert_same(*outs)
    assert (outs[1][1] is None) == (not need_weights)


@pytest.mark.parametrize("kwargs", [{"batch_first": True}, {"kdim": 3, "vdim": 5}, {"bias": False},
                                    {"add_bias_kv": True, "add_zero_attn": True}, {"kdim": 2, "vdim": 4, "batch_first": True}])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_variants_match_torch(kwargs, need_weights):
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64, **kwargs)
    batch_first = kwargs.get("batch_first", False)
    shape = (lambda length, width: (2, length, width)) if batch_first else (lambda length, width: (length, 2, width))
    q = torch.randn(shape(3, 4), dtype=F64)
    k = torch.randn(shape(5, kwargs.get("kdim", 4)), dtype=F64)
    v = torch.randn(shape(5, kwargs.get("vdim", 4)), dtype=F64)
    kpm = _bool_mask(2, 5, seed=4)
    _assert_same(*_run_both(t, n, (q, k, v), need_weights=need_weights, key_padding_mask=kpm))


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_unbatched_and_batch_of_one(need_weights):
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64, batch_first=True)
    x = torch.randn(3, 4, dtype=F64)
    _assert_same(*_run_both(t, n, (x, x, x), need_weights=need_weights, key_padding_mask=_bool_mask(3, seed=5),
                            attn_mask=_bool_mask(2, 3, 3, seed=6)))
    x1 = torch.randn(1, 3, 4, dtype=F64)
    _assert_same(*_run_both(t, n, (x1, x1, x1), need_weights=need_weights, average_attn_weights=False))


def test_mha_self_attention_one_tensor_and_float32_against_torch_default_backend():
    """The same tensor as query, key and value (torch's packed single product); float32 against torch's default
    attention backend (its CPU flash kernel for need_weights=False), which agrees to rounding."""
    t, n = _pair("MultiheadAttention", 8, 4, batch_first=True)
    x_t, x_n = _leaf(torch.randn(2, 5, 8))
    for need_weights in (True, False):
        t_out = t(x_t, x_t, x_t, need_weights=need_weights)[0]
        n_out = n(x_n, x_n, x_n, need_weights=need_weights)[0]
        _close(n_out, t_out.detach(), 1e-5)
        up = torch.randn_like(t_out)
        (t_grad,) = torch.autograd.grad(t_out, x_t, up)
        (n_grad,) = nx.autograd.grad(n_out, x_n, nx.Tensor(up))
        _close(n_grad, t_grad, 1e-5)


def test_mha_eval_fast_path_agrees():
    """torch's fused eval fast path (no grad, batch_first self-attention, even heads) vs neuronix's composition."""
    t, n = _pair("MultiheadAttention", 8, 2, batch_first=True)
    t.eval(), n.eval()
    x = torch.randn(3, 4, 8)
    kpm = _bool_mask(3, 4, seed=8)
    for kwargs in ({}, {"key_padding_mask": kpm}, {"need_weights": False}, {"average_attn_weights": False}):
        with torch.no_grad():
            expected = t(x, x, x, **kwargs)
        with nx.no_grad():
            actual = n(nx.Tensor(x), nx.Tensor(x), nx.Tensor(x), **kwargs)
        _close(actual[0], expected[0], 1e-5)
        _close(actual[1], expected[1], 1e-5)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_dropout_draws_torch_mask(need_weights):
    t, n = _pair("MultiheadAttention", 6, 3, dropout=0.4, dtype=F64)
    q, k, v = (torch.randn(4, 2, 6, dtype=F64) for _ in range(3))
    outs = _run_both(t, n, (q, k, v), need_weights=need_weights, seed=11)
    _assert_same(*outs)
    t.eval(), n.eval()
    _assert_same(*_run_both(t, n, (q, k, v), need_weights=need_weights))  # eval: no dropout at all


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_double_backward_and_retained_graph(need_weights):
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64)
    q, k, v = (torch.randn(3, 2, 4, dtype=F64) for _ in range(3))
    (tq, nq), (tk, nk), (tv, nv) = _leaf(q), _leaf(k), _leaf(v)
    mask = _bool_mask(3, 3, seed=9)
    with sdpa_kernel(SDPBackend.MATH):
        t_out = t(tq, tk, tv, attn_mask=mask, need_weights=need_weights)[0]
    n_out = n(nq, nk, nv, attn_mask=mask, need_weights=need_weights)[0]
    up = torch.randn_like(t_out)
    t_g = torch.autograd.grad(t_out, (tq, tk, tv, t.in_proj_weight), up, create_graph=True)
    n_g = nx.autograd.grad(n_out, (nq, nk, nv, n.in_proj_weight), nx.Tensor(up), create_graph=True)
    t_gg = torch.autograd.grad(sum((g * g).sum() for g in t_g), (tq, tk, t.in_proj_weight))
    n_gg = nx.autograd.grad(sum((g * g).sum() for g in n_g), (nq, nk, n.in_proj_weight))
    for a, b in zip(n_g + n_gg, t_g + t_gg):
        _close(a, b.detach())
    # backward twice through a retained graph accumulates twice the gradient, as torch
    n_out2 = n(nq, nk, nv, need_weights=need_weights)[0]
    n_out2.backward(nx.Tensor(up), retain_graph=True)
    first = nq.grad.data.clone()
    n_out2.backward(nx.Tensor(up))
    _close(nq.grad, 2 * first)


def test_mha_fully_masked_rows_as_torch():
    """A query that may attend to nothing: NaN through the explicit softmax (need_weights), 0 through the safe
    softmax of torch's math attention (need_weights=False)."""
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64)
    x = torch.randn(3, 1, 4, dtype=F64)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[1] = True
    for need_weights in (True, False):
        with sdpa_kernel(SDPBackend.MATH):
            expected = t(x, x, x, attn_mask=mask, need_weights=need_weights)
        actual = n(x, x, x, attn_mask=mask, need_weights=need_weights)
        assert actual[0].data.isnan().any() == expected[0].isnan().any()
        _close(actual[0], expected[0].detach())


def test_mha_learned_float_mask_gets_torch_gradient():
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64)
    x = torch.randn(3, 2, 4, dtype=F64)
    bias = torch.randn(3, 3, dtype=F64)
    for need_weights in (True, False):
        _assert_same(*_run_both(t, n, (x, x, x), need_weights=need_weights, attn_mask=bias))
        t_bias, n_bias = _leaf(bias)
        with sdpa_kernel(SDPBackend.MATH):
            t_out = t(x, x, x, attn_mask=t_bias, need_weights=need_weights)[0]
        n_out = n(x, x, x, attn_mask=n_bias, need_weights=need_weights)[0]
        up = torch.randn_like(t_out)
        _close(nx.autograd.grad(n_out, n_bias, nx.Tensor(up))[0], torch.autograd.grad(t_out, t_bias, up)[0])


@pytest.mark.parametrize("call, error, match", [
    (lambda lib, m: m(torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 4)), AssertionError,
     "unbatched 2D or batched 3D"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4),
                      attn_mask=torch.zeros(2, 3, dtype=torch.bool)), RuntimeError, "2D attn_mask"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4),
                      attn_mask=torch.zeros(3, 3, 3, dtype=torch.bool)), RuntimeError, "3D attn_mask"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4), is_causal=True), RuntimeError,
     "is_causal"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4),
                      attn_mask=torch.zeros(3, 3, dtype=torch.int64)), AssertionError, "bool and floating"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4),
                      key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)), AssertionError, "key_padded_mask"),
    (lambda lib, m: m(torch.randn(3, 2, 5), torch.randn(3, 2, 5), torch.randn(3, 2, 5)), (AssertionError, RuntimeError),
     "embed"),
    (lambda lib, m: m(torch.randn(3, 2, 4), torch.randn(3, 4), torch.randn(3, 4)), AssertionError, "3-D"),
])
def test_mha_errors_as_torch(call, error, match):
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(4, 2)
    n = nx.nn.MultiheadAttention(4, 2)
    with pytest.raises(error):
        call(torch, t)
    with pytest.raises(error, match=match):
        call(nx, n)


def test_mha_mixed_mask_types_warn_as_torch():
    t, n = _pair("MultiheadAttention", 4, 2)
    x = torch.randn(3, 2, 4)
    kwargs = {"key_padding_mask": _bool_mask(2, 3), "attn_mask": torch.zeros(3, 3)}
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        t(x, x, x, **kwargs)
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        n(x, x, x, **kwargs)


@pytest.mark.parametrize("tgt, src, batch", [(0, 3, 2), (3, 3, 0), (2, 0, 2)])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_empty_lengths_and_batch(tgt, src, batch, need_weights):
    t, n = _pair("MultiheadAttention", 4, 2, dtype=F64)
    q, k = torch.randn(tgt, batch, 4, dtype=F64), torch.randn(src, batch, 4, dtype=F64)
    _assert_same(*_run_both(t, n, (q, k, k), need_weights=need_weights))


def test_mha_merge_masks_as_torch():
    t, n = _pair("MultiheadAttention", 4, 2, batch_first=True)
    query = torch.randn(3, 5, 4)
    attn2, attn3 = _as_float(_bool_mask(5, 5)).float(), _as_float(_bool_mask(6, 5, 5, seed=1)).float()
    kpm = _as_float(_bool_mask(3, 5, seed=2)).float()
    for attn, padding in ((None, kpm), (attn2, None), (attn2, kpm), (attn3, kpm), (None, None)):
        t_mask, t_type = t.merge_masks(attn, padding, query)
        n_mask, n_type = n.merge_masks(attn, padding, query)
        assert n_type == t_type
        _close(n_mask, t_mask)


# ----- F.multi_head_attention_forward ------------------------------------------------------------------------------
def test_functional_static_kv_and_separate_weights():
    g = torch.Generator().manual_seed(0)
    e, heads, batch = 4, 2, 2
    q = torch.randn(3, batch, e, dtype=F64, generator=g)
    k = torch.randn(5, batch, 3, dtype=F64, generator=g)
    v = torch.randn(5, batch, 2, dtype=F64, generator=g)
    weights = {"q_proj_weight": torch.randn(e, e, dtype=F64, generator=g),
               "k_proj_weight": torch.randn(e, 3, dtype=F64, generator=g),
               "v_proj_weight": torch.randn(e, 2, dtype=F64, generator=g)}
    static = {"static_k": torch.randn(batch * heads, 6, e // heads, dtype=F64, generator=g),
              "static_v": torch.randn(batch * heads, 6, e // heads, dtype=F64, generator=g)}
    out_w, out_b = torch.randn(e, e, dtype=F64, generator=g), torch.randn(e, dtype=F64, generator=g)
    in_b = torch.randn(3 * e, dtype=F64, generator=g)
    for extra in ({}, static):
        for need_weights in (True, False):
            args = (q, k, v, e, heads, None, in_b, None, None, False, 0.0, out_w, out_b)
            kwargs = dict(use_separate_proj_weight=True, need_weights=need_weights, **weights, **extra)
            with sdpa_kernel(SDPBackend.MATH):
                expected = TF.multi_head_attention_forward(*args, **kwargs)
            actual = F.multi_head_attention_forward(*args, **kwargs)
            _close(actual[0], expected[0])
            _close(actual[1], expected[1])
    with pytest.raises(AssertionError, match="static_k.size"):
        F.multi_head_attention_forward(q, k, v, e, heads, None, in_b, None, None, False, 0.0, out_w, out_b,
                                       use_separate_proj_weight=True, static_k=static["static_k"][:1], **weights)
    with pytest.raises(AssertionError, match="q_proj_weight is None"):
        F.multi_head_attention_forward(q, k, v, e, heads, None, in_b, None, None, False, 0.0, out_w, out_b,
                                       use_separate_proj_weight=True)


# ----- Transformer family -----------------------------------------------------------------------------------------
LAYER_KWARGS = [
    {"dropout": 0.0},
    {"dropout": 0.0, "norm_first": True, "activation": "gelu", "layer_norm_eps": 1e-3},
    {"dropout": 0.0, "bias": False, "batch_first": True},
    {"dropout": 0.25, "norm_first": True},
]


@pytest.mark.parametrize("kwargs", LAYER_KWARGS)
def test_encoder_layer_matches_torch(kwargs):
    t, n = _pair("TransformerEncoderLayer", 6, 2, 10, dtype=F64, **kwargs)
    src = torch.randn(2, 4, 6, dtype=F64) if kwargs.get("batch_first") else torch.randn(4, 2, 6, dtype=F64)
    _assert_same(*_run_both(t, n, (src,), src_key_padding_mask=_bool_mask(2, 4, seed=1)))
    _assert_same(*_run_both(t, n, (src,), src_mask=torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=F64),
                            is_causal=True))
    t.eval(), n.eval()
    _assert_same(*_run_both(t, n, (src[:, :1] if kwargs.get("batch_first") else src[:1],)))


@pytest.mark.parametrize("kwargs", LAYER_KWARGS)
def test_decoder_layer_matches_torch(kwargs):
    t, n = _pair("TransformerDecoderLayer", 6, 3, 10, dtype=F64, **kwargs)
    first = kwargs.get("batch_first")
    tgt = torch.randn((2, 3, 6) if first else (3, 2, 6), dtype=F64)
    memory = torch.randn((2, 5, 6) if first else (5, 2, 6), dtype=F64)
    causal = nx_transformer._generate_square_subsequent_mask(3, dtype=F64).data
    _assert_same(*_run_both(t, n, (tgt, memory), tgt_mask=causal, tgt_is_causal=True,
                            memory_key_padding_mask=_bool_mask(2, 5, seed=2), tgt_key_padding_mask=_bool_mask(2, 3)))
    unbatched = (tgt[0], memory[0]) if first else (tgt[:, 0], memory[:, 0])
    _assert_same(*_run_both(t, n, unbatched, memory_mask=_as_float(_bool_mask(3, 5, seed=3))))


@pytest.mark.parametrize("kwargs", LAYER_KWARGS[:3])
def test_transformer_matches_torch(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor's warning, torch's and ours
        t, n = _pair("Transformer", 6, 2, 2, 2, 12, dtype=F64, **kwargs)
    assert "encoder.layers.1.self_attn.in_proj_weight" in n.state_dict()
    first = kwargs.get("batch_first")
    src = torch.randn((2, 5, 6) if first else (5, 2, 6), dtype=F64)
    tgt = torch.randn((2, 4, 6) if first else (4, 2, 6), dtype=F64)
    tgt_mask = nx.nn.Transformer.generate_square_subsequent_mask(4, dtype=F64)
    _assert_same(*_run_both(t, n, (src, tgt), tgt_mask=tgt_mask.data, src_key_padding_mask=_bool_mask(2, 5),
                            memory_key_padding_mask=_bool_mask(2, 5)))
    _assert_same(*_run_both(t, n, (src, tgt), tgt_mask=tgt_mask.data, tgt_is_causal=True))


def test_stacks_copy_the_layer_and_keep_norm():
    layer = nx.nn.TransformerEncoderLayer(4, 2, 8, batch_first=True)
    encoder = nx.nn.TransformerEncoder(layer, 3, nx.nn.LayerNorm(4), enable_nested_tensor=False)
    assert encoder.layers[0] is not layer and encoder.layers[0].linear1.weight is not encoder.layers[1].linear1.weight
    assert torch.equal(encoder.layers[2].linear1.weight.data, layer.linear1.weight.data)
    assert "norm.weight" in encoder.state_dict() and encoder.num_layers == 3
    decoder = nx.nn.TransformerDecoder(nx.nn.TransformerDecoderLayer(4, 2, 8), 2)
    assert decoder.norm is None and "layers.1.multihead_attn.out_proj.weight" in decoder.state_dict()


def test_encoder_nested_tensor_warning_and_flag_as_torch():
    for kwargs in ({}, {"batch_first": True}, {"batch_first": True, "norm_first": True}, {"batch_first": True, "bias": False}):
        with warnings.catch_warnings(record=True) as t_warned:
            warnings.simplefilter("always")
            t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, 8, **kwargs), 1)
        with warnings.catch_warnings(record=True) as n_warned:
            warnings.simplefilter("always")
            n = nx.nn.TransformerEncoder(nx.nn.TransformerEncoderLayer(4, 2, 8, **kwargs), 1)
        assert [str(w.message) for w in n_warned] == [str(w.message) for w in t_warned]
        assert n.use_nested_tensor == t.use_nested_tensor


@pytest.mark.parametrize("kpm_rows", [[[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], [[0, 1, 0, 1, 1], [0, 0, 0, 0, 0]],
                                      [[1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]])
def test_encoder_eval_nested_path_zeros_padding_as_torch(kpm_rows):
    """torch's eval encoder under no_grad runs nested tensors for a left-aligned key padding mask: 0 at the padded
    positions before the final norm. Not left aligned (second case), or with grad: the plain path."""
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, torch.nn.LayerNorm(8))
    n = nx.nn.TransformerEncoder(nx.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, nx.nn.LayerNorm(8))
    n.load_state_dict(t.state_dict())
    t.eval(), n.eval()
    x, kpm = torch.randn(2, 5, 8), torch.tensor(kpm_rows, dtype=torch.bool)
    with torch.no_grad():
        expected = t(x, src_key_padding_mask=kpm)
    with nx.no_grad():
        actual = n(nx.Tensor(x), src_key_padding_mask=kpm)
    _close(actual, expected, 1e-5)
    _close(n(nx.Tensor(x), src_key_padding_mask=kpm), t(x, src_key_padding_mask=kpm).detach(), 1e-5)


def test_decoder_copies_of_an_activation_module_run_relu_as_torch():
    """torch's TransformerDecoderLayer.__setstate__ gives a deep copy relu when the activation is a module (it lives
    in _modules, not in the copied state): every TransformerDecoder layer then runs relu, in torch and neuronix."""
    t, n = _pair("TransformerDecoderLayer", 4, 2, 6, 0.0, torch.nn.GELU(), dtype=F64)
    n.activation = nx.nn.GELU()
    t_copy, n_copy = copy.deepcopy(t), copy.deepcopy(n)
    assert t_copy.activation is TF.relu and n_copy.activation is F.relu
    tgt, memory = torch.randn(3, 2, 4, dtype=F64), torch.randn(2, 2, 4, dtype=F64)
    _assert_same(*_run_both(t_copy, n_copy, (tgt, memory)))


def test_transformer_masks_and_helpers():
    mask = nx.nn.Transformer.generate_square_subsequent_mask(4)
    assert isinstance(mask, nx.Tensor) and mask.dtype == torch.float32
    assert torch.equal(mask.data, torch.nn.Transformer.generate_square_subsequent_mask(4))
    assert torch.equal(nx_transformer._generate_square_subsequent_mask(3, dtype=F64).data,
                       torch.nn.modules.transformer._generate_square_subsequent_mask(3, dtype=F64))
    causal = torch.nn.Transformer.generate_square_subsequent_mask(3)
    for args in ((causal, None, 3), (causal, False, 3), (torch.zeros(3, 3), None, 3), (None, True, 3), (causal, None, 4)):
        assert nx_transformer._detect_is_causal_mask(*args) == torch.nn.modules.transformer._detect_is_causal_mask(*args)


def test_transformer_errors_as_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch.nn.Transformer(4, 2, 1, 1, 8)
        n = nx.nn.Transformer(4, 2, 1, 1, 8)
    for src, tgt, match in ((torch.randn(3, 2, 4), torch.randn(3, 3, 4), "batch number"),
                            (torch.randn(3, 2, 4), torch.randn(3, 2, 5), "feature number")):
        with pytest.raises(RuntimeError):
            t(src, tgt)
        with pytest.raises(RuntimeError, match=match):
            n(src, tgt)
    with pytest.raises(RuntimeError, match="relu/gelu"):
        nx.nn.TransformerEncoderLayer(4, 2, activation="tanh")


# ----- scaled_dot_product_attention -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"}, {"scale": 0.3},
                                    {"enable_gqa": True}])
def test_sdpa_against_torch(kwargs):
    q = torch.randn(2, 4, 3, 8, dtype=F64)
    kv_heads = 2 if kwargs.get("enable_gqa") else 4
    k, v = torch.randn(2, kv_heads, 5, 8, dtype=F64), torch.randn(2, kv_heads, 5, 8, dtype=F64)
    if kwargs.get("is_causal"):
        k, v = k[:, :, :3], v[:, :, :3]
    if kwargs.get("attn_mask") == "bool":
        kwargs = {"attn_mask": ~_bool_mask(3, 5)}
    elif kwargs.get("attn_mask") == "float":
        kwargs = {"attn_mask": torch.randn(3, 5, dtype=F64)}
    (tq, nq), (tk, nk), (tv, nv) = _leaf(q), _leaf(k), _leaf(v)
    expected = TF.scaled_dot_product_attention(tq, tk, tv, **kwargs)
    actual = F.scaled_dot_product_attention(nq, nk, nv, **kwargs)
    _close(actual, expected.detach())
    up = torch.randn_like(expected)
    for a, b in zip(nx.autograd.grad(actual, (nq, nk, nv), nx.Tensor(up)), torch.autograd.grad(expected, (tq, tk, tv), up)):
        _close(a, b)


def test_sdpa_dropout_is_torch_math_draw():
    q, k, v = (torch.randn(2, 3, 4, 8, dtype=F64) for _ in range(3))
    torch.manual_seed(3)
    with sdpa_kernel(SDPBackend.MATH):
        expected = TF.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    torch.manual_seed(3)
    actual = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    _close(actual, expected)


# ----- a nanoGPT-style block ----------------------------------------------------------------------------------------
def _causal_self_attention(lib, n_embd: int = 8, n_head: int = 2, block_size: int = 6):
    """nanoGPT's CausalSelfAttention, written once for either library."""

    class CausalSelfAttention(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = lib.nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = lib.nn.Linear(n_embd, n_embd)
            self.n_head, self.n_embd = n_head, n_embd
            self.flash = hasattr(lib.nn.functional, "scaled_dot_product_attention")
            if not self.flash:
                self.register_buffer("bias", lib.tril(lib.ones(block_size, block_size)).view(1, 1, block_size, block_size))

        def forward(self, x):
            b, t, c = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
            q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
            v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
            if self.flash:
                y = lib.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
                y = lib.nn.functional.softmax(att, dim=-1) @ v
            y = y.transpose(1, 2).contiguous().view(b, t, c)
            return self.c_proj(y)

    return CausalSelfAttention()


def test_nanogpt_attention_loads_torch_state_dict_strictly_and_matches():
    torch.manual_seed(0)
    t = _causal_self_attention(torch).double()
    n = _causal_self_attention(nx).double()
    assert n.flash and t.flash and "bias" not in n.state_dict()
    n.load_state_dict(t.state_dict(), strict=True)
    _assert_same(*_run_both(t, n, (torch.randn(2, 5, 8, dtype=F64),), math_backend=False), tol=1e-9)
