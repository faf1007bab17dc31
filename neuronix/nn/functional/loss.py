"""``nn.functional`` elementwise losses: torch's signatures, reductions and argument checks.

``binary_cross_entropy`` and ``binary_cross_entropy_with_logits`` are primitives (``ops/loss.py``); the
others are short compositions of differentiable ops, so their first and second derivatives, and the
upstream-gradient scaling, come from those ops' rules. Class-index losses are in ``classification.py``.
"""

from __future__ import annotations

import warnings

import torch

from neuronix.nn.functional.arguments import as_nx, reduction_mode, shape_of
from neuronix.ops import loss as _loss
from neuronix.ops.elementwise import where
from neuronix.ops.public import public
from neuronix.ops.registry import apply, defop
from neuronix.tensor import unwrap


def _reduced(loss, reduction: str):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


def _smooth_l1(diff, beta: float):
    z = diff.abs()
    if beta == 0.0:
        return z
    small = _quadratic(z, beta)
    return where(small, _inside(diff, small).square() * (0.5 / beta), z - 0.5 * beta)


def _huber(diff, delta: float):
    z = diff.abs()
    small = _quadratic(z, delta)
    return where(small, _inside(diff, small).square() * 0.5, (z - 0.5 * delta) * delta)


def _quadratic(z, limit: float):
    """Where the quadratic branch applies: ``|d| < limit``, and at NaN, as in torch's kernel (there its
    gradient is ``d / limit * g``: NaN, where the linear branch's ``sign(d) * g`` would give 0)."""
    return ~(z.data >= limit)


def _inside(diff, small):
    """``diff`` where the quadratic branch is selected, 0 elsewhere: the unselected branch's rule then
    multiplies its zero gradient by 0, not by an infinite difference (0 * inf = nan; torch's kernel
    never evaluates that branch)."""
    return where(small, diff, 0.0)


def _xlogy_self_vjp(g, out, t):
    """torch's two xlogy rules summed, for ``xlogy(t, t)``: ``g * log t`` (0 where ``t == 0``) plus
    ``g * t / t`` (NaN at ``t == 0``, as torch's). Linear in ``g``, never reading its value."""
    zero = t.data == 0
    return where(zero, 0.0, g * where(zero, 1.0, t).log()) + g * t / t


def _xlogy_self_kernel(g, out, t, *, needs):
    """torch's values of the same: its ``xlogy(g, t)`` is 0 where ``g == 0`` even where ``log t`` is NaN
    (``t < 0``), which no rule linear in ``g`` can give."""
    return (torch.xlogy(g, t).masked_fill(t == 0, 0.0) + g * t / t if needs[0] else None,)


# xlogy(t, t) as one op: 0 where t == 0, NaN where t < 0, with torch's xlogy gradient
_XLOGY_SELF = defop("kl_div_xlogy_self", lambda t: torch.xlogy(t, t), _xlogy_self_vjp, fused=_xlogy_self_kernel)


def _kl_div(x, target, reduction: str, log_target: bool):
    if log_target:
        loss = target.exp() * (target - x)
    else:
        loss = apply(_XLOGY_SELF, target) - target * x
    if reduction == "batchmean":
        return loss.sum() / x.shape[0] if x.ndim > 0 else loss.sum()
    return _reduced(loss, reduction)


def _check_same_or_broadcast(op, input, target, stacklevel=3):
    """torch warns (and broadcasts) when the shapes differ; non-broadcastable shapes are an error. The
    warning names the user's line: ``stacklevel`` counts the frames down to it from here."""
    if shape_of(input) == shape_of(target):
        return
    try:
        torch.broadcast_shapes(shape_of(input), shape_of(target))
    except RuntimeError:
        raise ValueError(
            f"{op}: input of shape {shape_of(input)} and target of shape {shape_of(target)} do not match and are not "
            "broadcastable; give them the same shape"
        ) from None
    warnings.warn(
        f"{op}: using a target size ({shape_of(target)}) that is different to the input size ({shape_of(input)}); "
        "this will likely lead to incorrect results due to broadcasting", stacklevel=stacklevel)


def _check_weight(op, weight, input):
    if weight is not None and shape_of(weight) != shape_of(input):
        raise ValueError(f"{op}: weight of shape {shape_of(weight)} must have the input's shape {shape_of(input)}")


def _pointwise_loss(op, loss, input, weight, reduction, weighted_mean_by_sum):
    if weight is None:
        return _reduced(loss, reduction)
    loss = loss * as_nx(weight)
    if reduction == "mean" and weighted_mean_by_sum:
        return loss.sum() / as_nx(weight).sum()
    return _reduced(loss, reduction)


def _refuse_complex(op, *tensors, error=NotImplementedError):
    """torch has no complex kernel for this loss: raise as it does, rather than return a complex value that is
    no distance (``(input - target) ** 2`` of complex numbers is not ``|input - target| ** 2``)."""
    for t in tensors:
        if t is not None and unwrap(t).is_complex():
            raise error(f"{op}: not implemented for complex inputs (got {unwrap(t).dtype}), as in torch")


def _difference_loss(op, pointwise, input, target, weight, reduction):
    """``pointwise(input - target)``, weighted and reduced; a ``weight`` mean divides by ``weight.sum()``."""
    _check_same_or_broadcast(op, input, target, stacklevel=4)
    _check_weight(op, weight, input)
    return _pointwise_loss(op, pointwise(as_nx(input) - target), input, weight, reduction, True)


@public(namespace="nn.functional")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target) ** 2``, reduced; a ``weight`` mean divides by ``weight.sum()``."""
    reduction = reduction_mode("mse_loss", size_average, reduce, reduction)
    _refuse_complex("mse_loss", input, target)
    return _difference_loss("mse_loss", lambda d: d.square(), input, target, weight, reduction)


@public(namespace="nn.functional")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``, reduced; a ``weight`` mean divides by ``weight.sum()``."""
    reduction = reduction_mode("l1_loss", size_average, reduce, reduction)
    return _difference_loss("l1_loss", lambda d: d.abs(), input, target, weight, reduction)


@public(namespace="nn.functional")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``)."""
    reduction = reduction_mode("smooth_l1_loss", size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    if beta != 0:  # beta = 0 is torch's l1_loss, which takes complex inputs
        _refuse_complex("smooth_l1_loss", input, target)
    _check_same_or_broadcast("smooth_l1_loss", input, target)
    return _reduced(_smooth_l1(as_nx(input) - target, float(beta)), reduction)


@public(namespace="nn.functional")
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``; a ``weight`` mean is a plain mean."""
    reduction = reduction_mode("huber_loss", None, None, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    _refuse_complex("huber_loss", input, target)
    _check_same_or_broadcast("huber_loss", input, target)
    _check_weight("huber_loss", weight, input)
    return _pointwise_loss("huber_loss", _huber(as_nx(input) - target, float(delta)), input, weight, reduction, False)


@public(namespace="nn.functional")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """``-(t * log(x) + (1 - t) * log(1 - x))`` for probabilities ``input`` (logs clamped at -100, as torch)."""
    reduction = reduction_mode("binary_cross_entropy", size_average, reduce, reduction)
    if shape_of(target) != shape_of(input):
        raise ValueError(
            f"binary_cross_entropy: target of shape {shape_of(target)} must have the input's shape {shape_of(input)}"
        )
    x = unwrap(input)
    if x.numel() and not x.is_cuda and (x.min() < 0 or x.max() > 1):
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1 (probabilities; "
                           "use binary_cross_entropy_with_logits for logits)")
    return _reduced(apply(_loss.BINARY_CROSS_ENTROPY, as_nx(input), as_nx(target), as_nx(weight)), reduction)


@public(namespace="nn.functional")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula; ``pos_weight`` weighs the positive term."""
    reduction = reduction_mode("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    if shape_of(target) != shape_of(input):
        raise ValueError(
            f"binary_cross_entropy_with_logits: target of shape {shape_of(target)} must have the input's shape {shape_of(input)}"
        )
    loss = apply(_loss.BINARY_CROSS_ENTROPY_WITH_LOGITS, as_nx(input), as_nx(target), as_nx(weight), as_nx(pos_weight))
    return _reduced(loss, reduction)


@public(namespace="nn.functional")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``target * (log(target) - input)`` for log-probabilities ``input``;
    ``reduction='batchmean'`` divides the sum by the batch size (the mathematically correct mean)."""
    reduction = reduction_mode("kl_div", size_average, reduce, reduction, extra=("batchmean",))
    _refuse_complex("kl_div", input, target, error=RuntimeError)
    if reduction == "mean":
        warnings.warn(
            "kl_div: reduction='mean' divides the total loss by both the batch size and the support size; "
            "'batchmean' divides only by the batch size and aligns with the KL math definition", stacklevel=2)
    return _kl_div(as_nx(input), as_nx(target), reduction, bool(log_target))
