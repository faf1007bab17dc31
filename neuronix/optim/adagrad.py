"""``Adagrad`` (mirrors ``torch.optim.Adagrad``)."""

from __future__ import annotations

from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, check_nonnegative, new_step


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) (as ``torch.optim.Adagrad``).

    ``s += g * g``; ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)``, with ``s``
    starting at ``initial_accumulator_value``. As in torch, that start value is the
    constructor's for every group, and the state of the constructor's parameters exists
    from the start (of parameters added later, from their first step): ``step``, ``sum``.
    Sparse gradients (as torch's): only the entries present accumulate and move.
    """

    _accepts_sparse_grad = True

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p.data, self.state[p], group)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(self._name, "lr_decay", group["lr_decay"])
        check_nonnegative(self._name, "weight_decay", group["weight_decay"])
        check_nonnegative(self._name, "initial_accumulator_value", group["initial_accumulator_value"])
        check_nonnegative(self._name, "epsilon", group["eps"])

    def _init_state(self, param: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = new_step(param, group)
        state["sum"] = torch.full_like(param, self.defaults["initial_accumulator_value"], memory_format=torch.preserve_format)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            self._init_state(param, state, group)
        state["step"] += 1
        step = state["step"].item()
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            if grad.is_sparse:
                raise RuntimeError("weight_decay option is not compatible with sparse gradients")
            grad = grad.add(param, alpha=group["weight_decay"])
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        if grad.is_sparse:
            self._sparse_update(param, grad.coalesce(), state["sum"], clr, group["eps"])
            return
        state["sum"].addcmul_(grad, grad, value=1)
        std = state["sum"].sqrt().add_(group["eps"])
        param.addcdiv_(grad, std, value=-clr)

    @staticmethod
    def _sparse_update(param: torch.Tensor, grad: torch.Tensor, accumulated: torch.Tensor, clr: float, eps: float) -> None:
        """The update at a (coalesced) sparse gradient's entries only: ``s += g^2`` there, ``p -= clr g / (sqrt(s) + eps)``."""
        indices, values = grad._indices(), grad._values()

        def at_entries(entry_values: torch.Tensor) -> torch.Tensor:
            return torch.sparse_coo_tensor(indices, entry_values, grad.shape, check_invariants=False, is_coalesced=True)

        accumulated.add_(at_entries(values.pow(2)))
        std = accumulated.sparse_mask(grad)._values().sqrt_().add_(eps)
        param.add_(at_entries(values / std), alpha=-clr)
