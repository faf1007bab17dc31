"""``Muon`` (mirrors ``torch.optim.Muon``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from neuronix.optim.optimizer import Optimizer

# torch's quintic Newton-Schulz coefficients (Keller Jordan's Muon) and defaults
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
EPS = 1e-7


def _torch_muon_accepts(adjust_lr_fn: str) -> bool:
    if not hasattr(torch.optim, "Muon"):  # torch < 2.9: the adjustments Muon first shipped with
        return adjust_lr_fn in ("original", "match_rms_adamw")
    try:
        torch.optim.Muon([torch.zeros(2, 2, requires_grad=True)], adjust_lr_fn=adjust_lr_fn)
    except ValueError:
        return False
    return True


# The lr adjustments the installed torch knows, probed once: torch 2.14 added "spectral_unclamped".
ADJUST_LR_FNS = tuple(fn for fn in ("original", "match_rms_adamw", "spectral_unclamped") if _torch_muon_accepts(fn))


def orthogonalize(matrix: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> torch.Tensor:
    """An approximately orthogonal matrix with ``matrix``'s singular vectors (``U S' V^T``, ``S'`` near 1).

    Quintic Newton-Schulz iterations in bfloat16 (as torch's): ``X <- a X + (b A + c A^2) X`` with
    ``A = X X^T``, on the wide orientation, after scaling ``X`` to unit Frobenius norm.
    """
    if steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if matrix.dim() != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    tall = matrix.size(0) > matrix.size(1)
    x = matrix.bfloat16()
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, polynomial, x, beta=a)
    return x.T if tall else x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape) -> float:
    """The per-matrix lr: scaled by ``sqrt(max(1, rows/cols))`` ("original"), ``0.2 sqrt(max(rows, cols))``
    ("match_rms_adamw", AdamW-like update RMS) or ``sqrt(rows/cols)`` ("spectral_unclamped")."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    elif adjust_lr_fn == "spectral_unclamped":
        ratio = math.sqrt(rows / cols)
    else:
        ratio = 1.0
    return lr * ratio


class Muon(Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz (Jordan et al., 2024) for 2-D parameters (as ``torch.optim.Muon``).

    ``b = lerp(b, g, 1 - momentum)``; the update is ``lerp(g, b, momentum)`` (``nesterov``) or ``b``,
    orthogonalized (``orthogonalize``); ``p *= 1 - lr * weight_decay``; ``p -= adjusted_lr * update``.
    Only matrices: use another optimizer for biases, norms and embeddings. State: ``momentum_buffer``.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS, eps: float = EPS, ns_steps: int = NS_STEPS,
                 adjust_lr_fn: str | None = None) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}")

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if not group["momentum"] >= 0.0:
            raise ValueError(f"{self._name}: momentum should be >= 0 but is: {group['momentum']}")
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"{self._name}: weight decay should be >= 0 but is: {group['weight_decay']}")
        if group["adjust_lr_fn"] is not None and group["adjust_lr_fn"] not in ADJUST_LR_FNS:
            raise ValueError(f"Adjust learning rate function {group['adjust_lr_fn']} is not supported "
                             f"(torch {torch.__version__} knows {list(ADJUST_LR_FNS)})")

    def _update_group(self, params: list, grads: list, states: list, group: dict[str, Any]) -> None:
        if any(p.is_complex() for p in params):
            raise RuntimeError("Muon does not support complex parameters")
        super()._update_group(params, grads, states, group)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        if grad.dim() != 2:
            raise ValueError("Param gradient must be a 2D matrix")
        momentum, lr = group["momentum"], group["lr"]
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - momentum)
        update = grad.lerp(buf, momentum) if group["nesterov"] else buf
        update = orthogonalize(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
        param.mul_(1 - lr * group["weight_decay"])
        param.add_(update, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], param.shape))
