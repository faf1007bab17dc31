"""``nx.optim.swa_utils``: weight averaging (SWA, EMA) and its schedule (mirrors ``torch.optim.swa_utils``).

``AveragedModel`` keeps a copy of a model whose parameters are a running average of the
model's over training (stochastic weight averaging, Izmailov et al., 2018; or an exponential
moving average with ``multi_avg_fn=get_ema_multi_avg_fn(decay)``). ``update_bn`` recomputes
BatchNorm statistics for the averaged weights; ``SWALR`` anneals the lr to a constant SWA lr.
Averaging is bookkeeping, not part of a graph: the averaging functions receive the raw
``torch.Tensor`` data of the parameters (and ``n_averaged``) and change them in place (or
return the new average), under ``no_grad``.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from neuronix.autograd.mode import no_grad
from neuronix.nn.module import Module
from neuronix.nn.modules.normalization import _BatchNorm
from neuronix.optim.lr_scheduler.base import LRScheduler, per_group
from neuronix.optim.optimizer import Optimizer
from neuronix.tensor import Tensor

__all__ = ["SWALR", "AveragedModel", "get_ema_avg_fn", "get_ema_multi_avg_fn", "get_swa_avg_fn", "get_swa_multi_avg_fn",
           "update_bn"]


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """An in-place EMA over lists of tensors: ``ema = decay * ema + (1 - decay) * current`` (as lerp for floats)."""
    _check_decay(decay)

    def ema_update(ema_params: list, current_params: list, num_averaged) -> None:
        if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
            torch._foreach_lerp_(ema_params, current_params, 1 - decay)
        else:  # integer buffers (e.g. num_batches_tracked): computed in floats, truncated back as torch does
            for ema, current in zip(ema_params, current_params):
                ema.copy_(ema * decay + current * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """An in-place running mean over lists of tensors: ``avg += (current - avg) / (n + 1)`` (as lerp for floats)."""

    def swa_update(averaged_params: list, current_params: list, num_averaged) -> None:
        if torch.is_floating_point(averaged_params[0]) or torch.is_complex(averaged_params[0]):
            torch._foreach_lerp_(averaged_params, current_params, float(1 / (num_averaged + 1)))
            return
        diffs = torch._foreach_sub(current_params, averaged_params)
        if isinstance(num_averaged, torch.Tensor):
            torch._foreach_addcdiv_(averaged_params, diffs, [num_averaged + 1] * len(averaged_params))
        else:
            torch._foreach_add_(averaged_params, diffs, alpha=1.0 / (num_averaged + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """Per tensor: returns ``decay * ema + (1 - decay) * current``."""
    _check_decay(decay)

    def ema_update(ema_param, current_param, num_averaged):
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable:
    """Per tensor: returns ``averaged + (current - averaged) / (n + 1)``."""

    def swa_update(averaged_param, current_param, num_averaged):
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


# torch's default SWA update uses the multi-tensor lerp only where it has foreach kernels (not on CPU),
# and the per-tensor formula elsewhere: the two round differently, so the choice follows the device.
_FOREACH_DEVICES = ("cuda", "xpu")


def _data(t) -> torch.Tensor:
    return t.data if isinstance(t, Tensor) else t


class AveragedModel(Module):
    """A running average of ``model``'s parameters (as ``torch.optim.swa_utils.AveragedModel``).

    Args:
        model: the model to average; a deep copy is kept as ``self.module``.
        device: where to keep the copy (default: the model's device).
        avg_fn: ``(averaged, current, n_averaged) -> new average`` per tensor; or
        multi_avg_fn: ``(averaged_list, current_list, n_averaged)`` updating the averages in place,
            per device and dtype. Neither: the equal-weight running mean (SWA).
        use_buffers: average the buffers too (and not just copy them from ``model``).

    ``update_parameters(model)`` folds the model's current weights in: the first call copies
    them, later ones average; ``n_averaged`` (a buffer, in the state_dict) counts the calls.
    """

    def __init__(self, model: Module, device=None, avg_fn: Callable | None = None, multi_avg_fn: Callable | None = None,
                 use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _averaged_tensors(self, model: Module) -> tuple[Iterable, Iterable]:
        if self.use_buffers:
            return (itertools.chain(self.module.parameters(), self.module.buffers()),
                    itertools.chain(model.parameters(), model.buffers()))
        return self.parameters(), model.parameters()

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers, with ``use_buffers``) into the average."""
        with no_grad():
            ours, theirs = self._averaged_tensors(model)
            averaged, current = [], []
            first = int(self.n_averaged.data) == 0
            for mine, other in zip(ours, theirs):  # zip stops at the shorter, as torch's
                mine = _data(mine)
                other = _data(other).detach().to(mine.device)
                averaged.append(mine)
                current.append(other)
                if first:
                    mine.copy_(other)
            n = self.n_averaged.data
            if not first:
                self._average(averaged, current, n)
            if not self.use_buffers:  # buffers (BatchNorm statistics) follow the model as they are
                for mine, other in zip(self.module.buffers(), model.buffers(), strict=True):
                    _data(mine).copy_(_data(other).detach().to(_data(mine).device))
            n.add_(1)

    def _average(self, averaged: list, current: list, n: torch.Tensor) -> None:
        if self.avg_fn is not None:
            for mine, other in zip(averaged, current):
                mine.copy_(self.avg_fn(mine, other, n.to(mine.device)))
            return
        groups: dict[tuple, tuple[list, list]] = {}
        for mine, other in zip(averaged, current):
            pair = groups.setdefault((mine.device, mine.dtype), ([], []))
            pair[0].append(mine)
            pair[1].append(other)
        for (device, _), (mine, other) in groups.items():
            if self.multi_avg_fn is not None:
                self.multi_avg_fn(mine, other, n.to(device))
            elif device.type in _FOREACH_DEVICES:
                get_swa_multi_avg_fn()(mine, other, n.to(device))
            else:
                swa = get_swa_avg_fn()
                for m, o in zip(mine, other):
                    m.copy_(swa(m, o, n.to(device)))


def update_bn(loader: Iterable, model: Module, device=None) -> None:
    """Recompute the running statistics of every BatchNorm in ``model`` from one pass over ``loader``.

    The statistics are reset and accumulated as an equal-weight average (``momentum=None``) over
    the batches; a batch that is a list or tuple contributes its first element. The momenta and
    the train/eval mode are restored afterwards.
    """
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    with no_grad():
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if not isinstance(batch, Tensor):
                batch = Tensor(batch)
            if device is not None:
                batch = batch.to(device)
            model(batch)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's lr to ``swa_lr`` over ``anneal_epochs`` epochs, then hold it (as torch's SWALR).

    ``anneal_strategy``: ``"cos"`` or ``"linear"``. Like torch, each step recovers the lr the
    previous step started from and moves it a further fraction toward ``swa_lr``, so it composes
    with changes made to the lr in between. ``swa_lr`` (a number or one per group) is stored in
    each param group.
    """

    def __init__(self, optimizer: Optimizer, swa_lr, anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1) -> None:
        for lr, group in zip(per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        """The lr a step started from, given the lr it produced with weight ``alpha`` on ``swa_lr``."""
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def get_lr(self) -> list[float]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        starts = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha) for group in self.optimizer.param_groups]
        alpha = self.anneal_func(max(0, min(1, step / max(1, self.anneal_epochs))))
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(self.optimizer.param_groups, starts)]

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
