"""Primitives of issue 13's nn.functional reach, beyond ``activation.py``/``loss.py``: celu, hardsigmoid, the
shrinks, threshold, rrelu's training mode and prelu; the straight-through clamp of gaussian_nll_loss and
cosine_similarity; and the ops that are torch's kernels because no composition gives their choices: pdist,
multi_margin_loss, multilabel_margin_loss, ctc_loss, embedding_bag and the safe softmax of attention.

The activations: torch's kernel forward, a rule in neuronix ops that takes each branch exactly where torch's
backward kernel does (masks from the raw values, ``select``/``masked`` so an infinite upstream gradient never
meets a 0 factor), anchored to the input (torch's backward reads it), and torch's aten ``*_backward`` kernel as
``fused=``. The kernel ops: torch's forward and backward kernels; the backward op is linear in the upstream
gradient, its adjoint is its rule (forward mode works), and where torch has no second derivative in the input
its rule raises as torch. The public functions are in ``nn/functional/{activation_more,distance,loss_more,
attention}.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuronix.ops.activation import _aten_backward
from neuronix.ops.elementwise import anchored, exp, masked, select
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor

_aten = torch.ops.aten


def _celu_grad(g, out, x, alpha):
    # torch's elu_backward with input_scale 1/alpha: g * (1/alpha * alpha) * exp(x / alpha) for x <= 0;
    # the exponential reads x only where x < 0 (torch's second derivative is 0 at x == 0, see _elu_grad)
    inverse = 1.0 / alpha
    negative = exp(select(x.data < 0, x, 0.0) * inverse)
    return select(x.data <= 0, g * (inverse * alpha) * negative, g, anchor=x)


CELU = defop("celu", lambda x, alpha: torch.celu(x, alpha), _celu_grad,
             fused=_aten_backward(lambda g, x, alpha: _aten.elu_backward(g, alpha, 1.0, 1.0 / alpha, False, x)))

# slope 1/6 strictly inside (-3, 3), 0 on and outside the bounds and at NaN, as torch's kernel
HARDSIGMOID = defop("hardsigmoid", F.hardsigmoid,
                    lambda g, out, x: masked(g * (1.0 / 6.0), (x.data > -3) & (x.data < 3), anchor=x),
                    fused=_aten_backward(_aten.hardsigmoid_backward))


def _shrink_grad(g, out, x, lambd):
    # torch's hardshrink/softshrink backward: 0 on the closed band [-lambd, lambd], g elsewhere (NaN too)
    return masked(g, ~((x.data >= -lambd) & (x.data <= lambd)), anchor=x)


SOFTSHRINK = defop("softshrink", lambda x, lambd: F.softshrink(x, lambd), _shrink_grad,
                   fused=_aten_backward(_aten.softshrink_backward))
HARDSHRINK = defop("hardshrink", lambda x, lambd: torch.hardshrink(x, lambd), _shrink_grad,
                   fused=_aten_backward(_aten.hardshrink_backward))

# torch.threshold: value where x <= threshold; the gradient is 0 there, g elsewhere (NaN passes it)
THRESHOLD = defop("threshold", lambda x, threshold, value: torch.threshold(x, threshold, value),
                  lambda g, out, x, threshold, value: masked(g, ~(x.data <= threshold), anchor=x),
                  fused=_aten_backward(lambda g, x, threshold, value: _aten.threshold_backward(g, x, threshold)))


def _rrelu_train(x, lower, upper):
    """torch.rrelu's training kernel, one call with torch's global generator (so a seeded run draws what torch
    draws): the slope of each x <= 0 is uniform in [lower, upper]; the noise (1 where x > 0) is the aux."""
    noise = torch.empty_like(x, memory_format=torch.legacy_contiguous_format)
    out = _aten.rrelu_with_noise(x, noise, lower, upper, True)
    return out, noise


# torch's rrelu_with_noise_backward in training: noise * g (linear in g; its derivative in x is 0, anchored
# in x's graph as torch's backward, which reads x)
RRELU_TRAIN = defop("rrelu_with_noise", _rrelu_train, lambda g, out, x, lower, upper, aux: anchored(g * aux, x),
                    aux=True)


# ----- prelu ----------------------------------------------------------------------------------------
# torch's prelu backward takes the weight's branch where x <= 0 (x > 0 passes g), but the derivatives
# of that backward take it only where x < 0 (``self >= 0`` in derivatives.yaml): at x == 0 the first
# derivative is g * w while the second derivative in g is 1. Matching torch at zeros needs the two
# gradients as primitives of their own, each with torch's rules.
def channel_weight(w, ndim: int):
    """``w`` shaped to broadcast against a ``ndim``-d input along the channel dim (dim 1), as prelu does."""
    if w.numel() == 1:
        return w.reshape(())
    return w.reshape((-1,) + (1,) * max(ndim - 2, 0))


def per_channel(t, w):
    """``t`` (the input's shape) summed over every dim but the channel dim, in ``w``'s shape."""
    if w.numel() == 1 or t.ndim < 2:
        return t.sum().reshape(w.shape)
    return t.sum((0, *range(2, t.ndim))).reshape(w.shape)


def _prelu_input_grad_forward(g, x, w):
    return torch.where(x > 0, g, g * channel_weight(w, x.ndim))


def _prelu_weight_grad_forward(g, x, w):
    return per_channel(torch.where(x > 0, 0.0, g * x), w)


PRELU_INPUT_GRAD = defop(
    "prelu_input_grad",
    _prelu_input_grad_forward,
    lambda h, out, g, x, w: select(x.data >= 0, h, h * channel_weight(w, x.ndim)),
    lambda h, out, g, x, w: torch.zeros_like(x.data),
    lambda h, out, g, x, w: per_channel(select(x.data >= 0, 0.0, g * h), w),
)
PRELU_WEIGHT_GRAD = defop(
    "prelu_weight_grad",
    _prelu_weight_grad_forward,
    lambda h, out, g, x, w: select(x.data >= 0, 0.0, channel_weight(h, x.ndim) * x),
    lambda h, out, g, x, w: select(x.data >= 0, 0.0, g * channel_weight(h, x.ndim)),
    lambda h, out, g, x, w: torch.zeros_like(w.data),
)
PRELU = defop(
    "prelu",
    torch.prelu,
    lambda g, out, x, w: apply(PRELU_INPUT_GRAD, g, x, w),
    lambda g, out, x, w: apply(PRELU_WEIGHT_GRAD, g, x, w),
)


@public
def prelu(input, weight):
    """``max(0, x) + weight * min(0, x)``, ``weight`` one value or one per channel (dim 1)."""
    return apply(PRELU, input, Tensor(weight) if isinstance(weight, torch.Tensor) else weight)


@public
def hardshrink(input, lambd=0.5):
    """``x`` where ``|x| > lambd``, else 0."""
    return apply(HARDSHRINK, input, lambd=float(lambd))

# clamp_min's value with the identity's gradient: gaussian_nll_loss clamps var in place under no_grad
# in torch, so the gradient passes the clamp unchanged (an exact value, which var + (c - var) is not)
CLAMP_MIN_STRAIGHT_THROUGH = defop("clamp_min_straight_through", lambda x, min: x.clamp_min(min),
                                   lambda g, out, x, min: g, saves=())


# ----- pdist ----------------------------------------------------------------------------------------------
# torch's kernel forward and backward: its backward's choices at zero distances, ties of the inf-norm and
# NaN differences follow no composition of norms. torch has no second derivative (the derivative for
# '_pdist_backward' is not implemented); the backward op is still linear in the upstream gradient, with
# that map's adjoint as its rule, so forward mode (a reverse pass through the backward) works.
def _pdist_pairs(n: int, device):
    return torch.triu_indices(n, n, offset=1, device=device)


def _pdist_slopes(x, dist, p: float):
    """d dist_k / d (x_i - x_j) for each pair k = (i, j), as torch's pdist backward kernel computes it."""
    i, j = _pdist_pairs(x.shape[0], x.device)
    diff = x[i] - x[j]
    d = dist.unsqueeze(1)
    sign = (diff > 0).to(x.dtype) - (diff < 0).to(x.dtype)  # 0 at NaN, as the kernel's sign
    if p == 0:
        return torch.zeros_like(diff)
    if p == 1:
        return sign
    if p == 2:
        return torch.where(d == 0, 0.0, diff / d)
    if p == float("inf"):
        return sign * (diff.abs() == d)
    if p < 1:
        return torch.where((d == 0) | (diff == 0), 0.0, sign * diff.abs().pow(p - 1) / d.pow(p - 1))
    return torch.where(d == 0, 0.0, diff * diff.abs().pow(p - 2) / d.pow(p - 1))


def _pdist_backward_adjoint(h, out, g, x, dist, p):
    # the backward scatters g_k * s_k into row i and -g_k * s_k into row j; its adjoint reads <s_k, h_i - h_j>
    i, j = _pdist_pairs(x.shape[0], x.device)
    slopes = _pdist_slopes(x.data, dist.data, p)
    return (slopes * (h[i] - h[j])).sum(1)


def _no_pdist_double_backward(*_, **__):
    raise RuntimeError("the derivative for '_pdist_backward' is not implemented (as in torch: pdist has no "
                       "second derivative with respect to its input)")


def _torch_differentiates_pdist_backward() -> bool:
    """torch 2.13 has no second derivative of pdist (the derivative for '_pdist_backward' is not implemented, raised
    at the second backward); torch 2.14 has one. Probed once, at import, on a 2 x 1 input."""
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch.pdist(x), x, create_graph=True)
    try:
        torch.autograd.grad(g.sum(), x, allow_unused=True)
    except RuntimeError:
        return False
    return True


def _pdist_slope_derivatives(x, dist, p):
    """The slopes' derivatives ``(dS/d diff, dS/d dist)`` per pair and column, and the mask where they count (a
    nonzero distance, and a nonzero difference for p < 2): S = diff |diff|^(p-2) / dist^(p-1) (sign for p = 1 and
    inf, 0 for p = 0: constant a.e.) gives (p-1) |diff|^(p-2) / dist^(p-1) and -dS/d diff * diff / dist."""
    i, j = _pdist_pairs(x.shape[0], x.device)
    diff = x[i] - x[j]
    d = dist.unsqueeze(1)
    ok = (d.data != 0).expand_as(diff.data)
    if p < 2:
        ok = ok & (diff.data != 0)
    if p in (0, 1, float("inf")):
        return None, None, ok & False
    safe_d = select(ok, d, 1.0)
    safe_abs = select(ok, diff.abs(), 1.0)
    by_diff = (p - 1) * safe_abs ** (p - 2) / safe_d ** (p - 1)
    return by_diff, -by_diff * diff / safe_d, ok


def _pdist_backward_by_x(h, out, g, x, dist, p):
    # the backward is sum_k g_k S_k (e_i - e_j); holding dist, its adjoint in x scatters g_k a_k dS_k/d diff to
    # rows i and -j, a_k = h_i - h_j
    i, j = _pdist_pairs(x.shape[0], x.device)
    by_diff, _, ok = _pdist_slope_derivatives(x, dist, p)
    if by_diff is None:
        return anchored(Tensor(torch.zeros_like(x.data)), h)
    scatter = torch.zeros(i.numel(), x.shape[0], dtype=x.dtype, device=x.device)
    pairs = torch.arange(i.numel(), device=x.device)
    scatter[pairs, i] = 1
    scatter[pairs, j] = -1
    return Tensor(scatter.mT.contiguous()) @ masked(g.unsqueeze(1) * (h[i] - h[j]) * by_diff, ok)


def _pdist_backward_by_dist(h, out, g, x, dist, p):
    i, j = _pdist_pairs(x.shape[0], x.device)
    _, by_dist, ok = _pdist_slope_derivatives(x, dist, p)
    if by_dist is None:
        return anchored(Tensor(torch.zeros_like(dist.data)), h)
    return masked(g.unsqueeze(1) * (h[i] - h[j]) * by_dist, ok).sum(1)


# torch 2.14 differentiates pdist's backward (its second derivative), torch 2.13 refuses: neuronix follows the
# installed torch
_PDIST_BY_X, _PDIST_BY_DIST = ((_pdist_backward_by_x, _pdist_backward_by_dist)
                               if _torch_differentiates_pdist_backward()
                               else (_no_pdist_double_backward, _no_pdist_double_backward))


def _pdist_backward_kernel(g, x, dist, p):
    if g.numel() == 0 or x.numel() == 0:  # no pairs (or no columns): torch 2.13's kernel segfaults on 0 rows
        return torch.zeros_like(x, memory_format=torch.legacy_contiguous_format)
    return _aten._pdist_backward(g.contiguous(), x.contiguous(), p, dist.contiguous())


PDIST_BACKWARD = defop(
    "pdist_backward",
    _pdist_backward_kernel,
    _pdist_backward_adjoint,
    _PDIST_BY_X,
    _PDIST_BY_DIST,
)
PDIST = defop("pdist", lambda x, p: _aten._pdist_forward(x.contiguous(), p),
              lambda g, out, x, p: apply(PDIST_BACKWARD, g, x, out, p=p), saves_out=True)


# ----- multi_margin_loss and multilabel_margin_loss: torch's kernels ------------------------------------------
# Their backward kernels compute a local gradient L and multiply it by the upstream gradient last (so an infinite
# upstream gradient meets L's zeros as NaN), and torch has no derivative of them with respect to the input. The
# backward op is therefore ``L * g`` in value (torch's kernel, both modes), linear in ``g`` with its adjoint as the
# rule (forward mode), and raises where a second derivative in the input is asked for, as torch.
def _refuse_double_backward(name: str):
    def rule(*_, **__):
        raise RuntimeError(f"the derivative for aten::{name}_backward is not implemented (as in torch: {name} has "
                           "no second derivative with respect to its input)")

    return rule


def _kernel_loss(name: str, forward, backward, *, aux: bool):
    """The primitive ``name(x, target, weight, **attrs)`` and its backward op, from torch's two kernels
    (``backward(g, x, target, weight, aux, **attrs)``, ``aux`` the forward's saved extra or None)."""

    def adjoint(h, out, g, x, target, weight, **attrs):
        local = backward(torch.ones_like(g.data), x.data, target, weight, **attrs)
        product = h * local
        return product.sum() if g.ndim == 0 else product.sum(tuple(range(1, product.ndim)))

    refuse = _refuse_double_backward(name)
    backward_op = defop(f"{name}_backward", backward, adjoint, refuse, None, None)

    def input_rule(g, out, x, target, weight, **attrs):
        return apply(backward_op, g, x, target, weight, **attrs)

    return defop(name, forward, input_rule, None, None, aux=aux), backward_op


def _multi_margin_forward(x, target, weight, p, margin, reduction):
    return _aten.multi_margin_loss(x, target, p, margin, weight, reduction)


def _multi_margin_backward(g, x, target, weight, p, margin, reduction, aux=None):
    return _aten.multi_margin_loss_backward(g, x, target, p, margin, weight, reduction)


MULTI_MARGIN_LOSS, _ = _kernel_loss("multi_margin_loss", _multi_margin_forward, _multi_margin_backward, aux=False)


def _multilabel_forward(x, target, weight, reduction):
    return _aten.multilabel_margin_loss_forward(x, target, reduction)  # (loss, is_target)


def _multilabel_backward(g, x, target, weight, reduction, aux):
    return _aten.multilabel_margin_loss_backward(g, x, target, reduction, aux)


MULTILABEL_MARGIN_LOSS, _ = _kernel_loss("multilabel_margin_loss", _multilabel_forward, _multilabel_backward, aux=True)


# ----- the softmax of scaled_dot_product_attention ----------------------------------------------------------
# torch's _safe_softmax: a row of nothing but -inf gives 0 (not NaN), and since its gradient is computed from
# the output, 0 there too (the plain softmax's NaN row would carry NaN gradients into q and k)
def _softmax_grad(g, out, x, dim):
    return out * (g - (g * out).sum(dim, keepdim=True))


SAFE_SOFTMAX = defop(
    "safe_softmax", lambda x, dim: _aten._safe_softmax(x, dim), _softmax_grad, saves=(), saves_out=True,
    fused=lambda g, out, x, *, needs, dim: (_aten._softmax_backward_data(g, out, dim, out.dtype),))


# ----- ctc_loss: torch's kernels ---------------------------------------------------------------------------------
# _ctc_loss gives the per-sample negative log-likelihood and (aux) the forward variables log_alpha; its backward
# kernel zeroes some entries outright (beyond an input's length, infinite losses under zero_infinity) and scales
# the rest by the upstream gradient. Its value is the kernel's in both modes; it is linear in the upstream gradient
# (the adjoint is the rule, for forward mode), and torch has no derivative of it in log_probs.
def _ctc_backward_kernel(g, log_probs, targets, nll, input_lengths, target_lengths, blank, zero_infinity, log_alpha):
    return _aten._ctc_loss_backward(g, log_probs, targets, input_lengths, target_lengths, nll, log_alpha, blank,
                                    zero_infinity)


def _ctc_backward_adjoint(h, out, g, log_probs, targets, nll, **attrs):
    local = _ctc_backward_kernel(torch.ones_like(g.data), log_probs.data, targets, nll, **attrs)
    return (h * local).sum((0, 2))  # (T, B, C) -> (B,)


CTC_LOSS_BACKWARD = defop("ctc_loss_backward", _ctc_backward_kernel, _ctc_backward_adjoint,
                          _refuse_double_backward("_ctc_loss"), None, None)


def _ctc_forward(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
    return _aten._ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity)


def _ctc_rule(g, out, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, aux):
    nll = out.data  # a constant of the backward, as torch's saved result
    return apply(CTC_LOSS_BACKWARD, g, log_probs, targets, nll, input_lengths=input_lengths,
                 target_lengths=target_lengths, blank=blank, zero_infinity=zero_infinity, log_alpha=aux)


CTC_LOSS = defop("ctc_loss", _ctc_forward, _ctc_rule, None, saves_out=True, aux=True)


# ----- embedding_bag: torch's kernels ---------------------------------------------------------------------------------
# aten._embedding_bag forward (aux: offset2bag, bag_size, max_indices) and its backward kernel for the weight, whose
# value is torch's in both modes; that backward is linear in the upstream gradient, and its adjoint is the rule (for
# forward mode): the kernel applied to the identity gives the bag-to-row matrix of the sum/mean modes, and the max
# mode reads each output element's argmax row. The per-sample-weight gradient is <g[bag], weight[index]>, in ops.
def _bag_forward(weight, per_sample_weights, *, indices, offsets, scale_grad_by_freq, mode, include_last_offset,
                 padding_idx, num_weights):
    out, offset2bag, bag_size, max_indices = _aten._embedding_bag(
        weight, indices, offsets, scale_grad_by_freq, mode, False, per_sample_weights, include_last_offset, padding_idx)
    return out, (offset2bag, bag_size, max_indices)


def _bag_weight_backward(g, per_sample_weights, *, indices, offsets, scale_grad_by_freq, mode, padding_idx,
                         num_weights, aux):
    offset2bag, bag_size, max_indices = aux
    return _aten._embedding_bag_backward(g.contiguous(), indices, offsets, offset2bag, bag_size, max_indices,
                                         num_weights, scale_grad_by_freq, mode, False, per_sample_weights, padding_idx)


def _bag_weight_adjoint(h, out, g, per_sample_weights, *, mode, aux, **attrs):
    if mode == 2:  # max: output (b, d) came from row max_indices[b, d], except in a bag with no (non-padding) rows
        rows, counted = aux[2], aux[1].unsqueeze(1) > 0
        taken = h.gather(0, rows.clamp_min(0))
        return select(counted & (rows >= 0), taken, 0.0)
    bags = aux[1].shape[0]  # bag_size: one per bag (g itself is not kept: the map does not read its values)
    identity = torch.eye(bags, dtype=h.dtype, device=h.device)
    matrix = _bag_weight_backward(identity, per_sample_weights, mode=mode, aux=aux, **attrs)  # (rows, bags)
    return (h.transpose(0, 1) @ matrix).transpose(0, 1)


EMBEDDING_BAG_BACKWARD = defop("embedding_bag_backward", _bag_weight_backward, _bag_weight_adjoint,
                               _refuse_double_backward("_embedding_bag"), saves=(1,))


def _bag_weight_rule(g, out, weight, per_sample_weights, *, aux, include_last_offset, **attrs):
    psw = None if per_sample_weights is None else per_sample_weights.data  # torch's weight gradient: no psw graph
    return apply(EMBEDDING_BAG_BACKWARD, g, psw, aux=aux, **attrs)


def _bag_of_each_index(indices, offsets, include_last_offset):
    """The bag each index belongs to: the last offset at or before it (torch's offset2bag, which its sum-mode
    kernel leaves empty)."""
    starts = offsets[:-1] if include_last_offset else offsets
    return torch.searchsorted(starts, torch.arange(indices.numel(), device=indices.device), right=True) - 1


def _bag_psw_rule(g, out, weight, per_sample_weights, *, indices, offsets, include_last_offset, padding_idx, aux,
                  **attrs):
    bags = _bag_of_each_index(indices, offsets, include_last_offset)
    terms = (g.index_select(0, bags) * weight.index_select(0, indices)).sum(1)
    return terms if padding_idx < 0 else select(indices != padding_idx, terms, 0.0)


# the weight's gradient reads the per-sample weights only, theirs the weight only (as torch saves them)
EMBEDDING_BAG = defop("embedding_bag", _bag_forward, _bag_weight_rule, _bag_psw_rule, aux=True, reads=((1,), (0,)))
