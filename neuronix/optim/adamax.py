"""``Adamax`` (mirrors ``torch.optim.Adamax``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, adam_gradient, check_adam_group, new_step


class Adamax(Optimizer):
    """Adamax, Adam's infinity-norm variant (Kingma & Ba, 2015, section 7) (as ``torch.optim.Adamax``).

    ``m = lerp(m, g, 1 - beta1)``; ``u = max(beta2 * u, |g| + eps)`` (eps inside the max, as
    torch); ``p -= lr / (1 - beta1^t) * m / u``. State: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_adam_group(self._name, group)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step(param, group)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_inf"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        grad, step = adam_gradient(param, grad, state, group)  # L2 weight decay only: Adamax has no decoupled form
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, 1 - beta1)
        torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(group["eps"]), out=exp_inf)
        corrected_lr = group["lr"] / (1 - beta1**step)
        param.addcdiv_(exp_avg, exp_inf, value=-corrected_lr)
