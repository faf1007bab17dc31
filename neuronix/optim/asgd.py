"""``ASGD`` (mirrors ``torch.optim.ASGD``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, check_nonnegative, step_dtype


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky, 1992) (as ``torch.optim.ASGD``).

    Each step decays then moves the parameter with the current step size ``eta``:
    ``p *= 1 - lambd * eta``, ``p -= eta * g``; the running average ``ax`` then follows ``p``
    (``ax = p`` while ``mu == 1``, else ``ax += mu * (p - ax)``). Afterwards
    ``eta = lr / (1 + lambd * lr * t)^alpha`` and ``mu = 1 / max(1, t - t0)``, so averaging
    starts after ``t0`` steps. The averaged weights are ``state['ax']`` (torch does not swap
    them in either). State: ``step``, ``eta``, ``mu`` (0-d, ``step``'s dtype), ``ax``.
    """

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach: bool | None = None, maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False) -> None:
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(self._name, "weight_decay", group["weight_decay"])

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            # torch keeps these three scalars on the parameter's device, in the step dtype
            scalar = dict(dtype=step_dtype(), device=param.device)
            state["step"] = torch.zeros((), **scalar)
            state["eta"] = torch.tensor(float(group["lr"]), **scalar)
            state["mu"] = torch.ones((), **scalar)
            state["ax"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        lr, lambd = group["lr"], group["lambd"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad.add(param, alpha=group["weight_decay"])
        eta = state["eta"].item()
        param.mul_(1 - lambd * eta)
        param.add_(grad, alpha=-eta)
        ax, mu = state["ax"], state["mu"]
        if mu.item() != 1:
            ax.add_(param.sub(ax).mul_(mu))
        else:
            ax.copy_(param)
        step = state["step"].item()
        # computed in Python floats, then rounded through the default dtype before landing in the state
        # (torch's as_tensor + copy_): a float64 state loaded from a checkpoint still gets float32-rounded values
        state["eta"].copy_(torch.tensor(lr / ((1 + lambd * lr * step) ** group["alpha"])))
        mu.copy_(torch.tensor(1 / max(1, step - group["t0"])))
