"""``Adadelta`` (mirrors ``torch.optim.Adadelta``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, check_nonnegative, new_step


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012) (as ``torch.optim.Adadelta``).

    ``v = rho * v + (1 - rho) * g * g``; the step is ``delta = sqrt(u + eps) / sqrt(v + eps) * g``,
    after which ``u = rho * u + (1 - rho) * delta * delta``; ``p -= lr * delta``. ``lr`` scales the
    unit-free step (1.0 is Zeiler's rule). State: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, capturable=capturable,
                        foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"{self._name}: Invalid rho value: {group['rho']} (expected 0 <= rho <= 1)")
        check_nonnegative(self._name, "epsilon", group["eps"])
        check_nonnegative(self._name, "weight_decay", group["weight_decay"])

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step(param, group)
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        rho, eps = group["rho"], group["eps"]
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(param, alpha=group["weight_decay"])
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        # torch's rounding order: both roots first, then (delta / std) * g
        rms_update = acc_delta.add(eps).sqrt_()
        rms_update.div_(square_avg.add(eps).sqrt_()).mul_(grad)
        acc_delta.mul_(rho).addcmul_(rms_update, rms_update, value=1 - rho)
        param.add_(rms_update, alpha=-group["lr"])
