"""``Lion`` (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, check_betas, check_nonnegative


class Lion(Optimizer):
    """EvoLved Sign Momentum (torch has none; mirrored by the ``lion-pytorch`` package and the paper's rule).

    With decoupled weight decay ``p *= 1 - lr * weight_decay``, the update is
    ``p -= lr * sign(beta1 * m + (1 - beta1) * g)``, after which the momentum becomes
    ``m = beta2 * m + (1 - beta2) * g``. Lion's steps have unit size per coordinate, so its
    good ``lr`` is 3-10x smaller than AdamW's (and ``weight_decay`` that much larger).
    State: ``exp_avg``. ``foreach`` / ``fused`` are accepted as by torch's optimizers (same arithmetic).
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False, foreach: bool | None = None,
                 fused: bool | None = None) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_betas(self._name, group["betas"])
        check_nonnegative(self._name, "weight_decay", group["weight_decay"])

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if group["maximize"]:
            grad = -grad
        exp_avg = state["exp_avg"]
        param.mul_(1 - lr * group["weight_decay"])
        direction = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1).sign_()
        param.add_(direction, alpha=-lr)
        exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
