"""``NAdam`` (mirrors ``torch.optim.NAdam``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import (
    Optimizer,
    adam_gradient,
    check_adam_group,
    check_nonnegative,
    new_step,
    step_dtype,
    update_moments,
)


class NAdam(Optimizer):
    """Adam with Nesterov momentum (Dozat, 2016) (as ``torch.optim.NAdam``).

    The momentum coefficient warms up: ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))``,
    and ``mu_product`` (state) is the running product of the ``mu_t``. With ``m``, ``v`` as Adam's
    and ``denom = sqrt(v / (1 - beta2^t)) + eps``:
    ``p -= lr * (1 - mu_t) / (1 - mu_product) * g / denom + lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom``.
    ``decoupled_weight_decay=True`` shrinks ``p *= 1 - lr * weight_decay`` instead of adding L2 to ``g``.
    State: ``step``, ``mu_product`` (0-d, ``step``'s dtype: torch multiplies it there), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_adam_group(self._name, group)
        check_nonnegative(self._name, "momentum_decay", group["momentum_decay"])

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step(param, group)
            device = param.device if group["capturable"] else "cpu"
            state["mu_product"] = torch.ones((), dtype=step_dtype(), device=device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        lr, (beta1, beta2) = group["lr"], group["betas"]
        grad, step = adam_gradient(param, grad, state, group)
        warm = group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * warm))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * warm))
        state["mu_product"] *= mu  # in the state's dtype (float32 by default), as torch rounds it
        mu_product = state["mu_product"].item()
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        update_moments(exp_avg, exp_avg_sq, grad, beta1, beta2)
        denom = exp_avg_sq.div(1 - beta2**step).sqrt_().add_(group["eps"])
        param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - mu_product))
        param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - mu_product * mu_next))
