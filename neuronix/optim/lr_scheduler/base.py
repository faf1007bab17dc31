"""``LRScheduler``: the base of the learning-rate schedulers (mirrors ``torch.optim.lr_scheduler.LRScheduler``).

A scheduler rewrites ``group["lr"]`` of its optimizer's param groups. ``step()`` advances
``last_epoch`` and sets the value of ``get_lr()``; most schedulers compute it *recursively*
from the group's current lr (torch's "chainable" form), so several schedulers can act on
one optimizer. ``step(epoch)`` jumps to ``epoch`` using the closed form where there is one.
Call ``optimizer.step()`` first and ``scheduler.step()`` after it, once per epoch (or batch).
"""

from __future__ import annotations

import warnings
from typing import Any

from neuronix.optim.optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` is deprecated (as in torch): call `scheduler.step()` "
    "without it; with an epoch the closed form is used instead of the chainable form, where available."
)


def per_group(name: str, optimizer: Optimizer, value) -> list:
    """``value`` repeated for every param group, or a list/tuple checked to have one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups: {name} has {len(value)} values, "
                             f"param_groups has {len(optimizer.param_groups)}")
        return list(value)
    return [value] * len(optimizer.param_groups)


def set_momentum(group: dict[str, Any], momentum: float, use_beta1: bool) -> None:
    """Write a cycled momentum into a group: ``betas[0]`` for Adam-like optimizers, else ``momentum``."""
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def momentum_key(optimizer: Optimizer) -> bool:
    """True when the optimizer cycles ``betas[0]`` (Adam-like), False for ``momentum`` (SGD-like)."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(f"optimizer {type(optimizer).__name__} must support momentum or beta1 "
                         "with `cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


class LRScheduler:
    """Base class: subclasses implement ``get_lr()`` (and optionally ``_get_closed_form_lr()``).

    Args:
        optimizer: the wrapped ``nx.optim.Optimizer``.
        last_epoch: the index of the last epoch; ``-1`` starts afresh (and records each
            group's ``initial_lr``), other values resume and need ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an nx.optim.Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in param_groups[{i}] when "
                                   "resuming a scheduler with last_epoch >= 0; load the optimizer's state_dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The step every scheduler takes at construction: it sets the lr of ``last_epoch + 1``."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        """The learning rates of the current ``last_epoch`` (called by ``step``)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set, one per param group."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (call after ``optimizer.step()``); ``epoch`` (deprecated) jumps to that epoch."""
        self._step_count += 1
        if self._step_count == 2 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`: call `optimizer.step()` "
                          "first, or the first value of the learning rate schedule is skipped", UserWarning, stacklevel=2)
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._group_lrs()

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (as torch's)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes from ``state_dict()``; restore the optimizer's own state_dict too."""
        self.__dict__.update(state_dict)
