"""``RAdam`` (mirrors ``torch.optim.RAdam``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, adam_gradient, check_adam_group, new_step, update_moments


class RAdam(Optimizer):
    """Rectified Adam (Liu et al., 2020) (as ``torch.optim.RAdam``).

    ``rho_inf = 2 / (1 - beta2) - 1`` and ``rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)`` measure
    how settled the second moment is. While ``rho_t <= 5`` the step is plain momentum SGD on the
    bias-corrected ``m``; after, Adam's step times the rectification
    ``sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``.
    ``decoupled_weight_decay=True`` shrinks ``p *= 1 - lr * weight_decay`` instead of adding L2 to ``g``.
    State: ``step``, ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_adam_group(self._name, group)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step(param, group)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        lr, (beta1, beta2) = group["lr"], group["betas"]
        grad, step = adam_gradient(param, grad, state, group)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        update_moments(exp_avg, exp_avg_sq, grad, beta1, beta2)
        bias_correction2 = 1 - beta2**step
        corrected_mean = exp_avg / (1 - beta1**step)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        if rho_t > 5.0:
            rectification = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = (bias_correction2**0.5) / exp_avg_sq.sqrt().add_(group["eps"])
            # torch's association: ((m_hat * lr) * adaptive) * rectification
            param.add_(corrected_mean * lr * adaptive * rectification, alpha=-1.0)
        else:
            param.add_(corrected_mean * lr, alpha=-1.0)
