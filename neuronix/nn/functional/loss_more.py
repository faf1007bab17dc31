"""nn.functional losses beyond loss.py and classification.py: poisson and gaussian NLL, the margin and embedding
losses, the triplet losses and ctc_loss, with torch's signatures, reductions (and legacy size_average/reduce
flags) and argument checks.

Where torch's loss is a composition (ATen's margin_ranking, hinge_embedding, cosine_embedding, poisson_nll and
triplet losses; torch's Python gaussian_nll and multilabel_soft_margin), so is neuronix's, op for op, so the
gradients, second derivatives and their choices at the clamps are torch's. soft_margin follows its
kernel's formula; multi_margin and multilabel_margin are torch's kernels (``ops/activation_more.py``), whose
backward multiplies by the upstream gradient last and has no derivative in the input, as torch's.
"""

from __future__ import annotations

import math

import torch

from neuronix.autograd.mode import is_grad_enabled
from neuronix.nn.functional.activation_more import logsigmoid
from neuronix.nn.functional.arguments import as_nx, reduction_mode, shape_of
from neuronix.nn.functional.distance import pairwise_distance
from neuronix.nn.functional.loss import _reduced
from neuronix.ops import activation_more as _more
from neuronix.ops.elementwise import where
from neuronix.ops.public import public
from neuronix.ops.registry import apply
from neuronix.tensor import Tensor, unwrap

_F = "nn.functional"


def _raw(t):
    return unwrap(t) if isinstance(t, (Tensor, torch.Tensor)) else t


# ----- poisson and gaussian negative log-likelihood ---------------------------------------------------------
@public(namespace=_F)
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """``exp(input) - target * input`` (``log_input``), else ``input - target * log(input + eps)``; ``full`` adds
    Stirling's approximation of ``log(target!)`` where ``target > 1``."""
    reduction = reduction_mode("poisson_nll_loss", size_average, reduce, reduction)
    return _poisson_nll(input, target, log_input, full, eps, reduction)


@public(method=False, name="poisson_nll_loss")
def _poisson_nll_top(input, target, log_input, full, eps, reduction):
    """``torch.poisson_nll_loss`` (``reduction`` as torch's enum: 0 none, 1 mean, 2 sum)."""
    return _poisson_nll(input, target, log_input, full, eps, _ENUM_REDUCTION[int(reduction)])


_ENUM_REDUCTION = {0: "none", 1: "mean", 2: "sum"}


def _poisson_nll(input, target, log_input, full, eps, reduction):
    x, t = as_nx(input), as_nx(target)
    loss = x.exp() - t * x if log_input else x - t * (x + eps).log()
    if full:
        stirling = t * t.log() - t + (t * (2 * math.pi)).log() * 0.5
        loss = loss + stirling.masked_fill(_raw(t) <= 1, 0)
    return _reduced(loss, reduction)


@public(namespace=_F)
def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """``0.5 * (log(var) + (input - target)**2 / var)`` (+ ``0.5 log(2 pi)`` with ``full``); ``var`` is clamped at
    ``eps`` in value only (torch clamps it in place under no_grad: the gradient passes the clamp)."""
    x = as_nx(input)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = torch.ones_like(unwrap(x)) * var
    elif bool((_raw(var) < 0).any()):
        raise ValueError("var has negative entry/entries")
    var = as_nx(var)
    if shape_of(var) != shape_of(x):
        if shape_of(x)[:-1] == shape_of(var):
            var = var.unsqueeze(-1)
        elif x.ndim == var.ndim and sum(b for a, b in zip(shape_of(x), shape_of(var)) if a != b) == 1:
            pass  # heteroscedastic: one dim of var is 1
        else:
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = apply(_more.CLAMP_MIN_STRAIGHT_THROUGH, var, min=eps)
    loss = (var.log() + (x - target) ** 2 / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduced(loss, reduction)


# ----- margin ranking, hinge embedding, soft margin -----------------------------------------------------------
@public(namespace=_F)
def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``max(0, -target * (input1 - input2) + margin)``."""
    reduction = reduction_mode("margin_ranking_loss", size_average, reduce, reduction)
    return _margin_ranking(input1, input2, target, margin, reduction)


@public(method=False, name="margin_ranking_loss")
def _margin_ranking_top(input1, input2, target, margin=0.0, reduction=1):
    """``torch.margin_ranking_loss`` (``reduction`` as torch's enum)."""
    return _margin_ranking(input1, input2, target, margin, _ENUM_REDUCTION[int(reduction)])


def _margin_ranking(input1, input2, target, margin, reduction):
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: input1: "
            f"{shape_of(input1)}, input2: {shape_of(input2)}, target: {shape_of(target)} ")
    loss = (-as_nx(target) * (as_nx(input1) - input2) + margin).clamp_min(0)
    return _reduced(loss, reduction)


@public(namespace=_F)
def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """``input`` where ``target == 1``, ``max(0, margin - input)`` where ``target == -1`` (both terms for other
    targets, as torch)."""
    reduction = reduction_mode("hinge_embedding_loss", size_average, reduce, reduction)
    return _hinge_embedding(input, target, margin, reduction)


@public(method=False, name="hinge_embedding_loss")
def _hinge_embedding_top(input, target, margin=1.0, reduction=1):
    """``torch.hinge_embedding_loss`` (``reduction`` as torch's enum)."""
    return _hinge_embedding(input, target, margin, _ENUM_REDUCTION[int(reduction)])


def _hinge_embedding(input, target, margin, reduction):
    x, t = as_nx(input), _raw(target)
    margin_clamp = (margin - x).clamp_min(0)
    loss = where(t != 1, margin_clamp, 0.0) + where(t != -1, x, 0.0)
    return _reduced(loss, reduction)


@public(namespace=_F)
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """``log(1 + exp(-target * input))`` (torch's kernel formula; the target is not differentiated, as torch)."""
    reduction = reduction_mode("soft_margin_loss", size_average, reduce, reduction)
    if isinstance(target, Tensor) and target.requires_grad and is_grad_enabled():
        raise RuntimeError("soft_margin_loss: the function 'soft_margin_loss' is not differentiable with respect to "
                           "argument 'target' (as in torch, this input cannot have requires_grad=True); pass it "
                           "detached (.detach())")
    t = _raw(target)
    return _reduced(((-as_nx(input)) * t).exp().add(1).log(), reduction)


@public(namespace=_F)
def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """The mean over classes of ``-(t log sigmoid(x) + (1 - t) log sigmoid(-x))`` (optionally ``weight``-ed)."""
    reduction = reduction_mode("multilabel_soft_margin_loss", size_average, reduce, reduction)
    x, t = as_nx(input), as_nx(target)
    loss = -(t * logsigmoid(x) + (1 - t) * logsigmoid(-x))
    if weight is not None:
        loss = loss * weight
    class_dim = x.ndim - 1
    return _reduced(loss.sum(class_dim) / x.shape[class_dim], reduction)


# ----- cosine embedding ---------------------------------------------------------------------------------------
_EPSILON = 1e-12  # ATen's, added to the squared magnitudes


@public(namespace=_F)
def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where ``target == -1``."""
    reduction = reduction_mode("cosine_embedding_loss", size_average, reduce, reduction)
    return _cosine_embedding(input1, input2, target, margin, reduction)


@public(method=False, name="cosine_embedding_loss")
def _cosine_embedding_top(input1, input2, target, margin=0.0, reduction=1):
    """``torch.cosine_embedding_loss`` (``reduction`` as torch's enum)."""
    return _cosine_embedding(input1, input2, target, margin, _ENUM_REDUCTION[int(reduction)])


def _cosine_embedding(input1, input2, target, margin, reduction):
    t = _raw(target)
    dim = t.dim()
    if dim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input1.ndim != dim + 1:
        raise RuntimeError(f"{dim}D target tensor expects {dim + 1}D input tensors, but found inputs with sizes "
                           f"{list(shape_of(input1))} and {list(shape_of(input2))}.")
    a, b = as_nx(input1), as_nx(input2)
    prod_sum = (a * b).sum(dim)
    mag_square1 = (a * a).sum(dim) + _EPSILON
    mag_square2 = (b * b).sum(dim) + _EPSILON
    cos = prod_sum / (mag_square1 * mag_square2).sqrt()
    loss = where(t == 1, 1 - cos, 0.0) + where(t == -1, (cos - margin).clamp_min(0), 0.0)
    return _reduced(loss, reduction)


# ----- multi-class and multi-label margin: torch's kernels (ops/activation_more.py) -------------------------------
@public(namespace=_F)
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """``sum_{j != y} max(0, margin - x[y] + x[j])**p * weight[y] / C`` per sample (``p`` 1 or 2)."""
    reduction = reduction_mode("multi_margin_loss", size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    return apply(_more.MULTI_MARGIN_LOSS, as_nx(input), _raw(target), as_nx(weight), p=int(p), margin=float(margin),
                 reduction=_REDUCTION_ENUM[reduction])


_REDUCTION_ENUM = {name: value for value, name in _ENUM_REDUCTION.items()}


@public(namespace=_F)
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """``sum_{j in targets} sum_{i not in targets} max(0, 1 - (x[j] - x[i])) / C`` per sample; a sample's targets
    are the leading indices of its row of ``target``, up to the first -1."""
    reduction = reduction_mode("multilabel_margin_loss", size_average, reduce, reduction)
    loss, _ = apply(_more.MULTILABEL_MARGIN_LOSS, as_nx(input), _raw(target), None,
                    reduction=_REDUCTION_ENUM[reduction])
    return loss


# ----- triplet losses -----------------------------------------------------------------------------------------
def _check_triplet(anchor, positive, negative, margin):
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same number of dimensions, but got: "
            f"anchor {anchor.ndim}D, positive {positive.ndim}D, and negative {negative.ndim}D inputs")


@public(namespace=_F)
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """``max(0, margin + d(a, p) - d(a, n))`` with ``d`` the pairwise p-norm distance (``swap``: the smaller of
    ``d(a, n)`` and ``d(p, n)``)."""
    reduction = reduction_mode("triplet_margin_loss", size_average, reduce, reduction)
    _check_triplet(anchor, positive, negative, margin)
    return _triplet(anchor, positive, negative, lambda u, v: pairwise_distance(u, v, p, eps), margin, swap, reduction)


@public(method=False, name="triplet_margin_loss")
def _triplet_top(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction=1):
    """``torch.triplet_margin_loss`` (``reduction`` as torch's enum)."""
    _check_triplet(anchor, positive, negative, 1.0)
    return _triplet(anchor, positive, negative, lambda u, v: pairwise_distance(u, v, p, eps), margin, swap,
                    _ENUM_REDUCTION[int(reduction)])


@public(namespace=_F)
def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """``triplet_margin_loss`` with any ``distance_function(x, y)`` (default ``pairwise_distance``)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    _check_triplet(anchor, positive, negative, margin)
    return _triplet(anchor, positive, negative, distance_function or pairwise_distance, margin, swap, reduction)


def _triplet(anchor, positive, negative, distance, margin, swap, reduction):
    a, p, n = as_nx(anchor), as_nx(positive), as_nx(negative)
    dist_pos = distance(a, p)
    dist_neg = distance(a, n)
    if swap:
        dist_neg = dist_neg.minimum(distance(p, n))
    return _reduced((margin + dist_pos - dist_neg).clamp_min(0), reduction)


# ----- ctc_loss: torch's kernels (ops/activation_more.py) ----------------------------------------------------------
def _lengths(name, lengths) -> tuple:
    if isinstance(lengths, (Tensor, torch.Tensor)):
        raw = unwrap(lengths)
        if raw.dtype.is_floating_point or raw.dtype.is_complex or raw.dtype == torch.bool:
            raise RuntimeError(f"{name} must be integral")
        return tuple(int(v) for v in raw.reshape(-1).tolist())
    if isinstance(lengths, int):
        return (lengths,)
    return tuple(int(v) for v in lengths)


@public(namespace=_F)
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification loss of ``log_probs`` (T, N, C) or (T, C) against ``targets`` (padded
    (N, S) or concatenated); ``'mean'`` divides each loss by its target length, then averages."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not a valid value for reduction")
    return _ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)


@public(method=False, name="ctc_loss")
def _ctc_top(log_probs, targets, input_lengths, target_lengths, blank=0, reduction=1, zero_infinity=False):
    """``torch.ctc_loss`` (``reduction`` as torch's enum)."""
    return _ctc(log_probs, targets, input_lengths, target_lengths, blank, _ENUM_REDUCTION[int(reduction)],
                zero_infinity)


def _ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity):
    lp = as_nx(log_probs)
    batched = lp.ndim == 3
    if not batched:
        lp = lp.unsqueeze(1)
    inputs, target_lens = _lengths("input_lengths", input_lengths), _lengths("target_lengths", target_lengths)
    raw_targets = _raw(targets).to(device=lp.device, dtype=torch.long)
    res, _ = apply(_more.CTC_LOSS, lp, raw_targets, input_lengths=inputs, target_lengths=target_lens,
                   blank=int(blank), zero_infinity=bool(zero_infinity))
    if zero_infinity:
        res = where(res.data == math.inf, 0.0, res)
    if reduction == "mean":
        lengths = torch.tensor(target_lens, dtype=res.dtype, device=res.device).clamp_min(1)
        return (res / lengths).mean()
    if reduction == "sum":
        return res.sum()
    return res if batched else res.squeeze(0)


# ----- torch's top-level twins of loss.py's functions ----------------------------------------------------------------
@public(method=False, name="kl_div")
def _kl_div_top(input, target, reduction=1, log_target=False):
    """``torch.kl_div`` (``reduction`` as torch's enum; no 'batchmean', no warning, as torch's)."""
    from neuronix.nn.functional.loss import _kl_div

    return _kl_div(as_nx(input), as_nx(target), _ENUM_REDUCTION[int(reduction)], bool(log_target))


@public(method=False, name="binary_cross_entropy_with_logits")
def _bce_with_logits_top(input, target, weight=None, pos_weight=None, reduction=1):
    """``torch.binary_cross_entropy_with_logits`` (``reduction`` as torch's enum)."""
    from neuronix.nn.functional.loss import binary_cross_entropy_with_logits

    return binary_cross_entropy_with_logits(input, target, weight, reduction=_ENUM_REDUCTION[int(reduction)],
                                            pos_weight=pos_weight)


# ----- linear_cross_entropy -------------------------------------------------------------------------------------------
@public(namespace=_F)
def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, options=None):
    """``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)``, the logits shaped
    ``(*batch, C, *out_features)`` from a ``(C, *out_features, in_features)`` weight. ``options`` (torch's
    batch-chunked memory saving) is accepted and changes nothing here: the values are the plain composition's."""
    from neuronix.nn.functional.classification import cross_entropy
    from neuronix.nn.functional.conv import linear

    if input.ndim < 1 or input.ndim > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {input.ndim}")
    if linear_weight.ndim < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {linear_weight.ndim}")
    batches, in_features = shape_of(input)[:-1], input.shape[-1]
    if in_features != linear_weight.shape[-1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions (in_features), got "
                           f"{in_features} and {linear_weight.shape[-1]}, respectively")
    classes, out_features = linear_weight.shape[0], shape_of(linear_weight)[1:-1]
    if linear_bias is not None and shape_of(linear_bias) != (classes, *out_features):
        raise RuntimeError(f"expected linear_bias shape {(classes, *out_features)}, got {shape_of(linear_bias)}")
    if out_features and not batches:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape {shape_of(linear_weight)} requires "
                           f"batched input, (N, {in_features}), got unbatched input with shape {shape_of(input)}")
    logits_shape = (*batches, classes, *out_features)
    if shape_of(target) == logits_shape and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    w, b = as_nx(linear_weight), as_nx(linear_bias)
    if out_features:
        w = w.reshape((math.prod(out_features) * classes, in_features))
        b = None if b is None else b.reshape((math.prod(out_features) * classes,))
    logits = linear(input, w, b).reshape(logits_shape)
    return cross_entropy(logits, target, weight=weight, reduction=reduction,
                         ignore_index=-100 if ignore_index is None else ignore_index, label_smoothing=label_smoothing)
