"""Losses. ``nll_loss`` (torch's kernel forward, a scatter backward) and
``binary_cross_entropy`` (torch's kernel forward, torch's gradient formula in neuronix
ops) are primitives; the others are short compositions of differentiable neuronix ops,
so their first and second derivatives, and the upstream-gradient scaling, come from
those ops' rules.

``nll_loss`` and its backward are adjoint linear maps of each other: the backward
scatters ``-w[t] * g / total`` into the target positions, and the adjoint of that
scatter is ``nll_loss`` itself, so the pair closes under differentiation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neuronix.ops.activation import log_sigmoid
from neuronix.ops.elementwise import sigmoid, where
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor, unwrap


# ----- nll_loss ----------------------------------------------------------------------------
def _nll_forward(x, target, weight, reduction, ignore_index, shape, class_dim):
    return F.nll_loss(x, target, weight, ignore_index=ignore_index, reduction=reduction)


def _target_weights(weight, safe, valid):
    """``weight[t]`` per target, 0 where ignored. With zero classes every target is ignored (the forward
    rejects any other), and there is no ``weight[0]`` to stand in for them."""
    if weight.numel() == 0:
        return torch.zeros(safe.shape, dtype=weight.dtype, device=weight.device)
    return weight[safe] * valid


def _nll_coefficients(target, weight, reduction, ignore_index, dtype):
    """Per-target factors ``w[t]`` (0 where ignored), divided by their sum for 'mean'."""
    valid = target != ignore_index
    safe = torch.where(valid, target, 0)
    if weight is None:
        coef = torch.ones(target.shape, dtype=dtype, device=target.device) * valid
    else:
        coef = _target_weights(weight, safe, valid).to(dtype)
    if reduction == "mean":
        coef = torch.where(valid, coef / coef.sum(), 0.0)  # all ignored: zero gradient, as torch
    return safe, coef


_REDUCTION_ENUM = {"none": 0, "mean": 1, "sum": 2}


def _nll_backward_forward(g, target, weight, reduction, ignore_index, shape, class_dim):
    if len(shape) <= 2:  # (C,) or (N, C): torch's fused kernel, one call instead of a scatter chain
        if reduction == "mean":
            valid = target != ignore_index
            total = valid.sum() if weight is None else _target_weights(weight, target.masked_fill(~valid, 0), valid).sum()
            total = total.to(g.dtype)
        else:
            total = g.new_zeros(())
        like_input = g.new_empty((1,) * len(shape)).expand(shape)  # the kernel reads only its shape
        return torch.ops.aten.nll_loss_backward.default(g, like_input, target, weight, _REDUCTION_ENUM[reduction],
                                                        ignore_index, total)
    safe, coef = _nll_coefficients(target, weight, reduction, ignore_index, g.dtype)
    values = (coef * -g).unsqueeze(class_dim)
    return g.new_zeros(shape).scatter_(class_dim, safe.unsqueeze(class_dim), values)


NLL_LOSS = defop(
    "nll_loss",
    _nll_forward,
    lambda g, out, x, target, weight, **a: apply(NLL_LOSS_BACKWARD, g, target, weight, **a),
    None,
    None,
    saves=(1, 2),
)
NLL_LOSS_BACKWARD = defop(
    "nll_loss_backward",
    _nll_backward_forward,
    lambda h, out, g, target, weight, **a: apply(NLL_LOSS, h, target, weight, **a),
    None,
    None,
    saves=(1, 2),
)


def nll_loss(x, target, weight, reduction: str, ignore_index: int) -> Tensor:
    class_dim = 1 if x.ndim >= 2 else 0
    return apply(NLL_LOSS, x, target, weight, reduction=reduction, ignore_index=ignore_index, shape=tuple(x.shape),
                 class_dim=class_dim)


# ----- compositions -------------------------------------------------------------------------
def reduce(loss, reduction: str):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


def _class_view(weight, ndim: int, class_dim: int):
    """A (C,) class weight shaped to broadcast along ``class_dim`` of an ``ndim`` input."""
    shape = [1] * ndim
    shape[class_dim] = -1
    return weight.reshape(shape)


def cross_entropy(x, target, weight, ignore_index: int, reduction: str, label_smoothing: float) -> Tensor:
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
    loss = nll_loss(logp, target, weight, reduction, ignore_index)
    if label_smoothing == 0.0:
        return loss
    # Label smoothing adds eps/C times the cross-entropy against the uniform distribution,
    # masked and normalised like the nll term.
    valid = unwrap(target) != ignore_index
    weighted = logp if weight is None else logp * _class_view(weight, x.ndim, class_dim)
    smooth = -weighted.sum(class_dim) * valid
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


# torch divides by max(x (1 - x), EPSILON) with EPSILON the float 1e-12 (a float32 constant)
_BCE_EPSILON = float(torch.tensor(1e-12, dtype=torch.float32))


def _bce_input_grad(g, out, x, target, weight):
    # torch's form (x - t) / (x (1 - x)): its derivative is the (x^2 - 2xt + t) / (x (1 - x))^2 of
    # torch's double backward, so second derivatives agree in rounding as well as in value
    grad = g * (x - target) / (x * (1 - x)).clamp_min(_BCE_EPSILON)
    return grad if weight is None else grad * weight


# logit(x) = log(x / (1 - x)) with torch's kernels: the BCE target gradient is -logit(x), and torch's
# logit backward treats -0.0 as 0 (+inf there) and gives NaN outside [0, 1], which a composition of
# log and log1p does not
LOGIT_BACKWARD = defop(
    "logit_backward",
    lambda g, x: torch.ops.aten.logit_backward(g, x),
    lambda h, out, g, x: apply(LOGIT_BACKWARD, h, x),  # linear in g
    lambda h, out, g, x: h * g * (x * 2 - 1) / (x * (1 - x)).square(),
)
LOGIT = defop("logit", torch.logit, lambda g, out, x: apply(LOGIT_BACKWARD, g, x))


def _bce_target_grad(g, out, x, target, weight):
    # -logit(x) = log(1 - x) - log(x), unclamped: torch clamps the logs in the loss, not in this
    # gradient, so a prediction of exactly 0 or 1 gives +-inf, as torch's
    grad = g * -apply(LOGIT, x)
    return grad if weight is None else grad * weight


BINARY_CROSS_ENTROPY = defop(
    "binary_cross_entropy",
    lambda x, target, weight: F.binary_cross_entropy(x, target, weight, reduction="none"),
    _bce_input_grad,
    _bce_target_grad,
    None,
)


def binary_cross_entropy(x, target, weight, reduction: str) -> Tensor:
    return reduce(apply(BINARY_CROSS_ENTROPY, x, target, weight), reduction)


# ----- binary cross-entropy with logits ----------------------------------------------------------
# One primitive, torch's kernel forward. Its gradients are the smooth closed forms, sigmoid(x) - t
# (scaled by pos_weight), and not the derivative of a composition through min(x, 0) and |x|, whose
# pieces each pick a side of their kink at x == 0 and so gave [0, -0.5, -1] / N where torch gives
# [0.5, 0, -0.5] / N for targets [0, 0.5, 1] at a zero logit. weight and pos_weight are not
# differentiable in torch, so they have no rule (an input of them that requires grad is refused).
def _bce_logits_forward(x, target, weight, pos_weight):
    return F.binary_cross_entropy_with_logits(x, target, weight, reduction="none", pos_weight=pos_weight)


def _weighted(grad, weight):
    return grad if weight is None else grad * weight


def _bce_logits_input_grad(g, out, x, target, weight, pos_weight):
    if pos_weight is None:
        return _weighted(sigmoid(x) - target, weight) * g
    positive = pos_weight * target  # d/dx of (1 - t) x - (1 + (pw - 1) t) log sigmoid(x)
    return _weighted((positive + 1 - target) * sigmoid(x) - positive, weight) * g


def _bce_logits_target_grad(g, out, x, target, weight, pos_weight):
    if pos_weight is None:
        return _weighted(-x, weight) * g
    # d/dt = -x - (pw - 1) log sigmoid(x) = log sigmoid(-x) - pw log sigmoid(x)
    return _weighted(log_sigmoid(-x) - pos_weight * log_sigmoid(x), weight) * g


BINARY_CROSS_ENTROPY_WITH_LOGITS = defop(
    "binary_cross_entropy_with_logits",
    _bce_logits_forward,
    _bce_logits_input_grad,
    _bce_logits_target_grad,
    None,
    None,
)


def binary_cross_entropy_with_logits(x, target, weight, reduction: str, pos_weight) -> Tensor:
    return reduce(apply(BINARY_CROSS_ENTROPY_WITH_LOGITS, x, target, weight, pos_weight), reduction)


def kl_div(x, target, reduction: str, log_target: bool) -> Tensor:
    if log_target:
        loss = target.exp() * (target - x)
    else:
        # xlogy(t, t): 0 where t == 0; the inner where keeps log's gradient finite there
        positive = target.data > 0
        loss = where(positive, target * where(positive, target, 1.0).log(), 0.0) - target * x
    if reduction == "batchmean":
        return loss.sum() / x.shape[0] if x.ndim > 0 else loss.sum()
    return reduce(loss, reduction)


def smooth_l1(diff, beta: float) -> Tensor:
    z = diff.abs()
    if beta == 0.0:
        return z
    return where(z.data < beta, diff.square() * (0.5 / beta), z - 0.5 * beta)


def huber(diff, delta: float) -> Tensor:
    z = diff.abs()
    return where(z.data < delta, diff.square() * 0.5, (z - 0.5 * delta) * delta)
