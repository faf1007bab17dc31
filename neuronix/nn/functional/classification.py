"""``nn.functional`` class-index losses: ``nll_loss`` (a primitive of ``ops/loss.py``) and
``cross_entropy``, a composition of ``log_softmax`` and ``nll_loss`` (plus, for label smoothing or
probability targets, differentiable sums), so its first and second derivatives come from those ops.
Targets are checked here, before any kernel runs: shape, dtype and (once a kernel has failed) range.
"""

from __future__ import annotations

import math

import torch

from neuronix.nn.functional.arguments import as_nx, reduction_mode, shape_of
from neuronix.ops import loss as _loss
from neuronix.ops.elementwise import where
from neuronix.ops.public import public
from neuronix.ops.registry import apply
from neuronix.tensor import unwrap


def _check_class_target(op, input, target, weight, ignore_index):
    """Shapes, dtype and range of class-index targets for nll_loss / cross_entropy."""
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C) or 2 dims (N, C, ...), got a 0-d tensor")
    t = unwrap(target)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{op}: class-index targets must be an integer tensor (int64), got dtype {t.dtype}")
    expected = () if input.ndim == 1 else (input.shape[0],) + shape_of(input)[2:]
    if shape_of(t) != expected:
        raise ValueError(
            f"{op}: expected target of shape {expected} for input of shape {shape_of(input)} "
            f"((N, C, d1, ...) input -> (N, d1, ...) target), got target of shape {shape_of(t)}"
        )
    classes = input.shape[1 if input.ndim >= 2 else 0]
    if weight is not None and shape_of(weight) != (classes,):
        raise ValueError(f"{op}: weight must have shape ({classes},) (one per class), got {shape_of(weight)}")
    return t if t.dtype == torch.int64 else t.long()


def _check_class_range(op, input, t, ignore_index):
    """Raise the clear error for an out-of-range class target. Called only once torch's kernel has
    failed (its CPU kernel checks every target; on CUDA it asserts on the device), so a valid
    batch pays for no extra comparisons and no host sync."""
    classes = input.shape[1 if input.ndim >= 2 else 0]
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        value = t[bad][0].item()
        raise IndexError(
            f"{op}: target {value} is out of bounds: input of shape {shape_of(input)} has {classes} classes, so "
            f"targets must be in [0, {classes - 1}] or equal ignore_index={ignore_index}"
        )


@public(namespace="nn.functional")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log likelihood of log-probabilities ``input`` (N, C, ...) at class indices ``target`` (N, ...)."""
    reduction = reduction_mode("nll_loss", size_average, reduce, reduction)
    t = _check_class_target("nll_loss", input, target, weight, ignore_index)
    try:
        # weight goes in as given: a weight that requires grad is rejected by the op, as torch does
        return _nll(input, t, weight, reduction, int(ignore_index))
    except IndexError:
        _check_class_range("nll_loss", input, t, ignore_index)
        raise


@public(namespace="nn.functional")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits ``input`` against class indices or class probabilities ``target``,
    with optional class ``weight``, ``ignore_index`` and ``label_smoothing``."""
    reduction = reduction_mode("cross_entropy", size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if unwrap(target).is_floating_point():
        if input.ndim == 0:  # IndexError, as torch (it looks for the class dim)
            raise IndexError("cross_entropy: input must have at least 1 dim (C) or 2 dims (N, C, ...), got a 0-d tensor")
        if shape_of(target) != shape_of(input):
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {shape_of(input)}, got {shape_of(target)}"
            )
        classes = input.shape[1 if input.ndim >= 2 else 0]
        if weight is not None and shape_of(weight) != (classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({classes},) (one per class), got {shape_of(weight)}")
        return _cross_entropy(as_nx(input), as_nx(target), as_nx(weight), ignore_index, reduction, float(label_smoothing))
    t = _check_class_target("cross_entropy", input, target, weight, ignore_index)
    try:
        return _cross_entropy(as_nx(input), t, weight, int(ignore_index), reduction, float(label_smoothing))
    except IndexError:
        _check_class_range("cross_entropy", input, t, ignore_index)
        raise


def _nll(x, target, weight, reduction: str, ignore_index: int):
    """The ``nll_loss`` primitive; its backward needs the input's shape and class dim as attributes."""
    class_dim = 1 if x.ndim >= 2 else 0
    return apply(_loss.NLL_LOSS, x, target, weight, reduction=reduction, ignore_index=ignore_index, shape=tuple(x.shape),
                 class_dim=class_dim)


def _class_view(weight, ndim: int, class_dim: int):
    """A (C,) class weight shaped to broadcast along ``class_dim`` of an ``ndim`` input."""
    shape = [1] * ndim
    shape[class_dim] = -1
    return weight.reshape(shape)


def _cross_entropy(x, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
    class_dim = 1 if x.ndim >= 2 else 0
    classes = x.shape[class_dim]
    logp = x.log_softmax(class_dim)
    if unwrap(target).is_floating_point():
        if ignore_index != -100:
            raise RuntimeError(
                f"cross_entropy: ignore_index={ignore_index} is not supported for floating point (probability) targets; "
                "use class-index targets or leave ignore_index at -100"
            )
        return _cross_entropy_probabilities(logp, target, weight, reduction, label_smoothing, class_dim, classes)
    loss = _nll(logp, target, weight, reduction, ignore_index)
    if label_smoothing == 0.0:
        return loss
    # Label smoothing adds eps/C times the cross-entropy against the uniform distribution,
    # masked and normalised like the nll term.
    valid = unwrap(target) != ignore_index
    weighted = logp if weight is None else logp * _class_view(weight, x.ndim, class_dim)
    # masked, not multiplied, as torch's masked_fill: an ignored row's non-finite logits give 0, not nan * 0
    smooth = where(valid, -weighted.sum(class_dim), 0.0)
    if reduction == "none":
        uniform = smooth
    elif reduction == "sum":
        uniform = smooth.sum()
    else:
        total = valid.sum() if weight is None else unwrap(weight)[unwrap(target)[valid]].sum()
        # every target ignored: torch's loss is nan (from the nll term) but its gradient is zero, so the
        # smoothing term must not divide by zero (0/0 would put nan into the gradient)
        uniform = smooth.sum() / torch.where(total == 0, torch.ones_like(total), total)
    return loss * (1 - label_smoothing) + uniform * _ratio(label_smoothing, classes)


def _cross_entropy_probabilities(logp, target, weight, reduction, label_smoothing, class_dim, classes):
    if label_smoothing > 0.0:
        target = target * (1 - label_smoothing) + _ratio(label_smoothing, classes)
    terms = logp * target
    if weight is not None:
        terms = terms * _class_view(weight, logp.ndim, class_dim)
    if reduction == "none":
        return -terms.sum(class_dim)
    if reduction == "sum":
        return -terms.sum()
    return -terms.sum() / _ratio(logp.numel(), classes)


def _ratio(a: float, b: int) -> float:
    """``a / b`` as torch's float math gives it: inf or nan for ``b == 0`` (zero classes), not ZeroDivisionError."""
    if b:
        return a / b
    return math.nan if a == 0 else math.copysign(math.inf, a)
