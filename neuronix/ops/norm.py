"""Normalisation: batch norm (train and eval), layer norm, group norm.

Forwards are torch's ``native_*_norm`` kernels (batch norm updates the running
statistics in place, exactly as torch). The rules are the textbook gradients written in
neuronix ops,  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  with mean and
rstd recomputed from ``x`` so that second derivatives flow through them. Each op also declares
torch's ``native_*_norm_backward`` as its fused kernel (all three gradients in one call); the
engine chooses between them (``defop(fused=...)``), so no rule here tests the grad mode and no
gradient is ever kept on a node.
"""

from __future__ import annotations

import math

import torch

from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor, unwrap

_aten = torch.ops.aten



def _normalize(x, dims, eps):
    """``(xhat, rstd)`` of ``x`` over ``dims``, differentiable in neuronix ops."""
    count = math.prod(x.shape[d] for d in dims)
    xc = x - x.sum(dims, keepdim=True) / count
    rstd = ((xc * xc).sum(dims, keepdim=True) / count + eps).rsqrt()
    return xc * rstd, rstd


def _input_grad(gxhat, xhat, rstd, dims):
    count = math.prod(xhat.shape[d] for d in dims)
    mean_g = gxhat.sum(dims, keepdim=True) / count
    mean_gx = (gxhat * xhat).sum(dims, keepdim=True) / count
    return rstd * (gxhat - mean_g - xhat * mean_gx)


def _channel_view(t, ndim):
    """A per-channel (C,) tensor shaped to broadcast against (N, C, *spatial)."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


def _channel_dims(ndim):
    return (0, *range(2, ndim))


# ----- batch norm ------------------------------------------------------------------------
def _statistics_dtype(dtype: torch.dtype) -> torch.dtype:
    """torch's batch-norm kernels hold half-precision statistics, and sum over the batch, in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _bn_forward(x, w, b, running_mean, running_var, training, momentum, eps):
    out, mean, rstd = _aten.native_batch_norm(x, w, b, running_mean, running_var, training, momentum, eps)
    if not training:  # eval normalises with the running statistics: keep a copy of what was used
        acc = _statistics_dtype(x.dtype)
        mean = running_mean.to(acc, copy=True)
        rstd = (running_var.to(acc) + eps).rsqrt()
    return out, {"mean": mean, "rstd": rstd}


def _bn_fused(g, out, x, w, b, rm, rv, *, needs, aux, training, momentum, eps):
    if not training:
        return (None,) * 5  # eval: the rules are one multiplication each
    mask = [needs[0], needs[1] and w is not None, needs[2]]
    grads = _aten.native_batch_norm_backward(g.data, x.data, unwrap(w), None, None, aux["mean"], aux["rstd"], True, eps,
                                             mask)
    return (*grads, None, None)


def _bn_stats(x, aux, training, eps):
    """(xhat, rstd) as the forward used them: recomputed from ``x`` in training, constants in eval."""
    dims = _channel_dims(x.ndim)
    if training:
        return _normalize(x, dims, eps)
    mean, rstd = (_channel_view(aux[k], x.ndim) for k in ("mean", "rstd"))
    return (x - mean) * rstd, rstd


def _bn_input_composite(g, x, w, aux, training, eps):
    gxhat = g if w is None else g * _channel_view(w, g.ndim)
    xhat, rstd = _bn_stats(x, aux, training, eps)
    if not training:
        return (gxhat * rstd).to(g.dtype)  # half: rstd is float32, as in torch's kernel; one rounding
    return _input_grad(gxhat, xhat, rstd, _channel_dims(x.ndim))


def _bn_weight_composite(g, x, aux, training, eps):
    # eval in half: xhat and the products are float32 (the statistics are), so the sum, which cancels, does not
    # lose the products' rounding (2 % in float16 where torch's kernel is exact to an ulp); rounded once at the end
    xhat, _ = _bn_stats(x, aux, training, eps)
    return (g * xhat).sum(_channel_dims(g.ndim)).to(g.dtype)


def _bn_input_grad(g, out, x, w, b, rm, rv, aux, training, momentum, eps):
    return _bn_input_composite(g, x, w, aux, training, eps)


def _bn_weight_grad(g, out, x, w, b, rm, rv, aux, training, momentum, eps):
    return _bn_weight_composite(g, x, aux, training, eps)


def _bn_bias_grad(g, out, x, w, b, rm, rv, aux, training, momentum, eps):
    return g.sum(_channel_dims(g.ndim))


BATCH_NORM = defop(
    "batch_norm",
    _bn_forward,
    _bn_input_grad,
    _bn_weight_grad,
    _bn_bias_grad,
    None,
    None,
    saves=(0, 1),
    aux=True,
    fused=_bn_fused,
)


def batch_norm(x, w, b, running_mean, running_var, training: bool, momentum: float, eps: float) -> Tensor:
    out, _ = apply(BATCH_NORM, x, w, b, running_mean, running_var, training=training, momentum=momentum, eps=eps)
    return out


# ----- layer norm ------------------------------------------------------------------------
def _ln_forward(x, w, b, normalized_shape, eps):
    out, mean, rstd = _aten.native_layer_norm(x, normalized_shape, w, b, eps)
    return out, {"mean": mean, "rstd": rstd}


def _ln_fused(g, out, x, w, b, *, needs, aux, normalized_shape, eps):
    mask = [needs[0], needs[1] and w is not None, needs[2] and b is not None]
    return _aten.native_layer_norm_backward(g.data, x.data, normalized_shape, aux["mean"], aux["rstd"], unwrap(w), unwrap(b),
                                            mask)


def _ln_dims(x, normalized_shape):
    return tuple(range(x.ndim - len(normalized_shape), x.ndim))


def _ln_input_composite(g, x, w, normalized_shape, eps):
    dims = _ln_dims(x, normalized_shape)
    xhat, rstd = _normalize(x, dims, eps)
    return _input_grad(g if w is None else g * w, xhat, rstd, dims)


def _ln_weight_composite(g, x, normalized_shape, eps):
    xhat, _ = _normalize(x, _ln_dims(x, normalized_shape), eps)
    leading = tuple(range(g.ndim - len(normalized_shape)))
    return (g * xhat).sum(leading) if leading else g * xhat


def _ln_input_grad(g, out, x, w, b, aux, normalized_shape, eps):
    return _ln_input_composite(g, x, w, normalized_shape, eps)


def _ln_weight_grad(g, out, x, w, b, aux, normalized_shape, eps):
    return _ln_weight_composite(g, x, normalized_shape, eps)


def _ln_bias_grad(g, out, x, w, b, aux, normalized_shape, eps):
    leading = tuple(range(g.ndim - len(normalized_shape)))
    return g.sum(leading) if leading else g


LAYER_NORM = defop(
    "layer_norm",
    _ln_forward,
    _ln_input_grad,
    _ln_weight_grad,
    _ln_bias_grad,
    saves=None,
    aux=True,
    fused=_ln_fused,
)


def layer_norm(x, normalized_shape, w, b, eps: float) -> Tensor:
    out, _ = apply(LAYER_NORM, x, w, b, normalized_shape=tuple(normalized_shape), eps=eps)
    return out


# ----- group norm ------------------------------------------------------------------------
def _gn_forward(x, w, b, groups, eps):
    n, c = x.shape[0], x.shape[1]
    x = _layout(x)
    w, b = (None if t is None else t.contiguous() for t in (w, b))  # the kernel reads them densely
    out, mean, rstd = _aten.native_group_norm(x, w, b, n, c, math.prod(x.shape[2:]), groups, eps)
    return out, {"mean": mean, "rstd": rstd}


def _layout(x, g=None):
    """The group-norm kernels want a dense input (contiguous or channels-last) and ``g`` in the same layout."""
    layout = torch.contiguous_format
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        layout = torch.channels_last
    return x.contiguous(memory_format=layout) if g is None else g.contiguous(memory_format=layout)


def _gn_fused(g, out, x, w, b, *, needs, aux, groups, eps):
    n, c = x.shape[0], x.shape[1]
    g, x = _layout(x.data, g.data), _layout(x.data)
    # torch 2.13's CPU kernel crashes (SIGSEGV) computing the weight/bias gradients of a channels-last input
    # without the input's (torch's own backward does, for an input that does not require grad): ask for it too
    crashes = x.device.type == "cpu" and not needs[0] and not x.is_contiguous()
    mask = [needs[0] or crashes, needs[1], needs[2]]
    # without a weight too: the composite rule gives another NaN pattern than torch's kernel at infinite inputs
    weight = None if w is None else w.data.contiguous()
    return _aten.native_group_norm_backward(g, x, aux["mean"], aux["rstd"], weight, n, c,
                                            math.prod(x.shape[2:]), groups, mask)


def _gn_normalized(x, groups, eps):
    """(xhat, rstd) in the grouped shape (N, G, C/G * spatial)."""
    grouped = x.reshape(x.shape[0], groups, -1)
    return _normalize(grouped, (2,), eps)


def _gn_input_composite(g, x, w, groups, eps):
    xhat, rstd = _gn_normalized(x, groups, eps)
    gxhat = g if w is None else g * _channel_view(w, g.ndim)
    return _input_grad(gxhat.reshape(xhat.shape), xhat, rstd, (2,)).reshape(x.shape)


def _gn_weight_composite(g, x, groups, eps):
    xhat, _ = _gn_normalized(x, groups, eps)
    return (g * xhat.reshape(x.shape)).sum(_channel_dims(g.ndim))


def _gn_input_grad(g, out, x, w, b, aux, groups, eps):
    return _gn_input_composite(g, x, w, groups, eps)


def _gn_weight_grad(g, out, x, w, b, aux, groups, eps):
    return _gn_weight_composite(g, x, groups, eps)


def _gn_bias_grad(g, out, x, w, b, aux, groups, eps):
    return g.sum(_channel_dims(g.ndim))


GROUP_NORM = defop(
    "group_norm",
    _gn_forward,
    _gn_input_grad,
    _gn_weight_grad,
    _gn_bias_grad,
    saves=(0, 1),
    aux=True,
    fused=_gn_fused,
)


def _as_torch_lays_out(t):
    """``t`` as torch's group_norm hands it to its kernel: contiguous in the layout it suggests (on the
    CPU; channels-last stays so), a recorded copy otherwise. So, as in torch, the node keeps that copy,
    and the caller's tensor may change in place afterwards."""
    if not isinstance(t, Tensor):
        return t
    data = t.data
    if data.is_contiguous():
        return t
    for fmt, dims in ((torch.channels_last, 4), (torch.channels_last_3d, 5)):
        if data.dim() == dims and data.device.type == "cpu" and data.is_contiguous(memory_format=fmt):
            return t
    from neuronix.ops.movement import contiguous  # movement imports the ops this module's callers use

    return contiguous(t)


def group_norm(x, groups: int, w, b, eps: float) -> Tensor:
    x, w, b = (_as_torch_lays_out(t) for t in (x, w, b))
    out, _ = apply(GROUP_NORM, x, w, b, groups=groups, eps=eps)
    return out
