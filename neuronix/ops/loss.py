"""Loss primitives: ``nll_loss`` (torch's kernel forward, a scatter backward),
``binary_cross_entropy`` and ``binary_cross_entropy_with_logits`` (torch's kernel forward,
torch's gradient formulas in neuronix ops). Each computes the unreduced loss, except nll_loss,
whose kernel reduces; the reductions, and the losses that are compositions of differentiable
ops (cross_entropy, kl_div, huber, smooth_l1, ...), are in ``nn/functional/losses.py``.

``nll_loss`` and its backward are adjoint linear maps of each other: the backward
scatters ``-w[t] * g / total`` into the target positions, and the adjoint of that
scatter is ``nll_loss`` itself, so the pair closes under differentiation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuronix.ops.activation import LOG_SIGMOID
from neuronix.ops.elementwise import anchored, sigmoid
from neuronix.ops.registry import apply, defop


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
    # an ignored target's gradient is exactly 0, as torch's kernel writes it (not 0 * g: NaN at inf)
    values = torch.where(target != ignore_index, coef * -g, 0.0).unsqueeze(class_dim)
    return g.new_zeros(shape).scatter_(class_dim, safe.unsqueeze(class_dim), values)


NLL_LOSS = defop(
    "nll_loss",
    _nll_forward,
    # anchored in x's graph, as torch's nll_loss_backward (it reads self): a gradient penalty through
    # it gets zeros, not an error
    lambda g, out, x, target, weight, **a: anchored(apply(NLL_LOSS_BACKWARD, g, target, weight, **a), x),
    None,
    None,
    saves=(0, 1, 2),
)
NLL_LOSS_BACKWARD = defop(
    "nll_loss_backward",
    _nll_backward_forward,
    lambda h, out, g, target, weight, **a: apply(NLL_LOSS, h, target, weight, **a),
    None,
    None,
    saves=(1, 2),
)


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
    return _weighted(apply(LOG_SIGMOID, -x) - pos_weight * apply(LOG_SIGMOID, x), weight) * g


BINARY_CROSS_ENTROPY_WITH_LOGITS = defop(
    "binary_cross_entropy_with_logits",
    _bce_logits_forward,
    _bce_logits_input_grad,
    _bce_logits_target_grad,
    None,
    None,
)
