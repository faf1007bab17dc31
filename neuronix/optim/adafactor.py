"""``Adafactor`` (mirrors ``torch.optim.Adafactor``, present since torch 2.5)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, step_dtype


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern, 2018) as torch implements it (no momentum, relative step size).

    For a matrix (or a batch of them: the last two dims) the second moment is factored into a
    row and a column mean of ``g^2`` (``row_var``, ``col_var``), each a running average with
    weight ``t^beta2_decay``; their outer product over the row mean estimates ``v``. A vector or
    scalar keeps the full ``variance``. The update ``g / sqrt(max(v, eps1^2))`` is clipped to RMS
    ``d``, and scaled by ``alpha = max(eps2, RMS(p)) * min(lr, 1 / sqrt(t))``;
    ``weight_decay`` is decoupled (``p *= 1 - lr * weight_decay``). ``eps = (eps1, eps2)``;
    ``eps1=None`` means the dtype's machine epsilon (of the group's first parameter, as torch).
    State: ``step``, and ``row_var`` + ``col_var`` (dim >= 2) or ``variance``.
    """

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
                 d: float = 1.0, weight_decay: float = 0.0, *, foreach: bool | None = None, maximize: bool = False) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        eps1, eps2 = group["eps"]
        if not group["beta2_decay"] <= 0.0:
            raise ValueError(f"{self._name}: beta2_decay should be <= 0 but is: {group['beta2_decay']}")
        if eps1 is not None and not eps1 >= 0.0:
            raise ValueError(f"{self._name}: epsilon1 should be >= 0 but is: {eps1}")
        if not eps2 >= 0.0:
            raise ValueError(f"{self._name}: epsilon2 should be >= 0 but is: {eps2}")
        if not group["d"] >= 1.0:
            raise ValueError(f"{self._name}: Clipping threshold d should be >= 1 but is: {group['d']}")
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"{self._name}: weight_decay should be >= 0 but is: {group['weight_decay']}")

    def _update_group(self, params: list, grads: list, states: list, group: dict[str, Any]) -> None:
        # eps1=None resolves once per group, from its first parameter with a gradient (torch's loop does the same)
        eps1 = group["eps"][0]
        if eps1 is None:
            eps1 = torch.finfo(params[0].dtype).eps
        if any(param.is_complex() for param in params):
            raise RuntimeError("Adafactor does not support complex parameters")
        for param, grad, state in zip(params, grads, states):
            self._update(param, grad, state, group, eps1)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                eps1: float) -> None:
        if not state:
            state["step"] = torch.tensor(0.0, dtype=step_dtype())
            if grad.dim() > 1:
                state["row_var"] = grad.new_zeros((*grad.shape[:-1], 1))
                state["col_var"] = grad.new_zeros((*grad.shape[:-2], 1, grad.shape[-1]))
            else:
                state["variance"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        lr, eps2 = group["lr"], group["eps"][1]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = state["step"].item()
        average_weight = step ** group["beta2_decay"]  # 1 - beta2_t
        relative_lr = min(lr, 1 / (step**0.5))
        alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * relative_lr
        if group["weight_decay"] != 0:
            param.mul_(1 - lr * group["weight_decay"])
        if grad.dim() > 1:
            row_var, col_var = state["row_var"], state["col_var"]
            row_var.lerp_(torch.linalg.vector_norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1)), average_weight)
            col_var.lerp_(torch.linalg.vector_norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2)), average_weight)
            variance = row_var @ col_var
            variance.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            variance = state["variance"]
            variance.lerp_(grad * grad, average_weight)
            variance = variance.clone()
        update = variance.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
        clip = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * group["d"]))
        param.add_(update, alpha=-alpha / clip)
