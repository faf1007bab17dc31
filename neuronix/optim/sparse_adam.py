"""``SparseAdam`` (mirrors ``torch.optim.SparseAdam``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer, check_betas


class SparseAdam(Optimizer):
    """Adam for sparse gradients (e.g. ``nn.Embedding(sparse=True)``) (as ``torch.optim.SparseAdam``).

    Only the rows (entries) present in the gradient move: their ``exp_avg`` / ``exp_avg_sq``
    are updated as Adam's and the parameter takes Adam's step there; the moments of absent
    entries are left as they are (not decayed). Dense gradients are refused, as torch does:
    use ``Adam`` for them. State: ``step`` (a Python int, as torch's), ``exp_avg``, ``exp_avg_sq``.
    """

    _accepts_sparse_grad = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        where = [[g, i] for g, group in enumerate(self.param_groups) for i, p in enumerate(group["params"]) if p.data.is_sparse]
        if where:
            raise ValueError(f"Sparse params at indices {where}: SparseAdam requires dense parameter tensors")
        where = [[g, i] for g, group in enumerate(self.param_groups) for i, p in enumerate(group["params"])
                 if p.data.is_complex()]
        if where:
            raise ValueError(f"Complex params at indices {where}: SparseAdam does not support complex parameters")

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        # torch demands strictly positive lr and eps here
        if not group["lr"] > 0.0:
            raise ValueError(f"{self._name}: Invalid learning rate: {group['lr']} (expected lr > 0)")
        if not group["eps"] > 0.0:
            raise ValueError(f"{self._name}: Invalid epsilon value: {group['eps']} (expected eps > 0)")
        check_betas(self._name, group["betas"])

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not grad.is_sparse:
            raise RuntimeError(f"SparseAdam does not support dense gradients, please consider Adam instead "
                               f"(parameter of shape {tuple(param.shape)})")
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1  # counted even when the gradient has no entries (torch does too)
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            grad = -grad
        grad = grad.coalesce()  # repeated indices summed first: the update is not linear in them
        indices, values = grad._indices(), grad._values()
        if values.numel() == 0:
            return

        def at_entries(entry_values: torch.Tensor) -> torch.Tensor:
            return torch.sparse_coo_tensor(indices, entry_values, grad.shape, check_invariants=False, is_coalesced=True)

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        old_avg = exp_avg.sparse_mask(grad)._values()
        avg_change = values.sub(old_avg).mul_(1 - beta1)
        exp_avg.add_(at_entries(avg_change))
        old_sq = exp_avg_sq.sparse_mask(grad)._values()
        sq_change = values.pow(2).sub_(old_sq).mul_(1 - beta2)
        exp_avg_sq.add_(at_entries(sq_change))
        new_avg = avg_change.add_(old_avg)
        denom = sq_change.add_(old_sq).sqrt_().add_(group["eps"])
        step = state["step"]
        step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        param.add_(at_entries(-step_size * new_avg.div_(denom)))
