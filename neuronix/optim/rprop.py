"""``Rprop`` (mirrors ``torch.optim.Rprop``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, new_step


class Rprop(Optimizer):
    """Resilient backpropagation (Riedmiller & Braun, 1993) (as ``torch.optim.Rprop``, without weight backtracking).

    Only the gradient's sign is used. Per element, where ``g * g_prev > 0`` the step size grows by
    ``etaplus``, where ``< 0`` it shrinks by ``etaminus`` (and that element skips this step: its
    gradient counts as 0, also as the next ``g_prev``), clamped to ``step_sizes = (min, max)``;
    ``p -= sign(g) * step_size``. Step sizes start at ``lr``. State: ``step``, ``prev``, ``step_size``.
    """

    def __init__(self, params, lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False, foreach: bool | None = None,
                 maximize: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        etaminus, etaplus = group["etas"]
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"{self._name}: Invalid eta values: {etaminus}, {etaplus} (expected 0 < etaminus < 1 < etaplus)")

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step(param, group)
            state["prev"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["step_size"] = torch.full_like(grad, float(group["lr"]))
        etaminus, etaplus = group["etas"]
        smallest, largest = group["step_sizes"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        prev, step_size = state["prev"], state["step_size"]
        # the factor per element: etaplus where the sign held, etaminus where it flipped, 1 where a side is 0
        agreement = grad.mul(prev).sign()
        factor = agreement.clone()
        factor[agreement.gt(0)] = etaplus
        factor[agreement.lt(0)] = etaminus
        factor[agreement.eq(0)] = 1
        step_size.mul_(factor).clamp_(smallest, largest)
        grad = grad.clone(memory_format=torch.preserve_format)
        grad[factor.eq(etaminus)] = 0
        param.addcmul_(grad.sign(), step_size, value=-1)
        prev.copy_(grad)
