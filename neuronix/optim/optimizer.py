"""``Optimizer``: the base class of every neuronix optimizer (mirrors ``torch.optim.Optimizer``).

An optimizer owns ``param_groups`` (dicts holding ``params`` plus that group's
hyper-parameters, defaults filled in) and ``state`` (per parameter: raw ``torch.Tensor``
buffers under torch's key names). ``step`` walks the groups and hands every parameter
that has a gradient to the subclass's ``_update``, which changes ``p.data`` in place with
torch kernels. Nothing here records a graph: the update is not differentiable, exactly as
in torch outside ``differentiable=True``.
"""

from __future__ import annotations

import copy
import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from neuronix.autograd.mode import enable_grad, no_grad
from neuronix.tensor import Tensor


class _RequiredParameter:
    """Marks a hyper-parameter without a default: every param group must then give it."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def step_dtype() -> torch.dtype:
    """The dtype torch keeps ``state['step']`` in (float64 only when that is the default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def new_step(param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    """A fresh ``state['step']`` placed as torch places it.

    Plain: a 0-d CPU tensor of ``step_dtype()`` (a host scalar: reading it costs no device sync).
    ``capturable`` or ``fused``: on the parameter's device, float32 when fused (torch's fused kernels
    read a float32 step), so a state_dict holds the same dtype and device as torch's.
    """
    if group.get("capturable") or group.get("fused"):
        dtype = torch.float32 if group.get("fused") else step_dtype()
        return torch.zeros((), dtype=dtype, device=param.device)
    return torch.tensor(0.0, dtype=step_dtype())


def check_lr(name: str, lr: float) -> None:
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise TypeError(f"{name}: lr must be a Python number, got {type(lr).__name__}")
    if lr < 0.0:
        raise ValueError(f"{name}: Invalid learning rate: {lr} (expected lr >= 0)")


def check_nonnegative(name: str, what: str, value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{name}: Invalid {what} value: {value} (expected {what} >= 0)")


def check_betas(name: str, betas) -> None:
    if len(betas) != 2:
        raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{name}: Invalid beta parameter at index {i}: {beta} (expected 0 <= beta < 1)")



def check_adam_group(name: str, group: dict[str, Any]) -> None:
    """The hyper-parameter checks of every Adam-style optimizer, in torch's order and words."""
    check_nonnegative(name, "epsilon", group["eps"])
    check_betas(name, group["betas"])
    check_nonnegative(name, "weight_decay", group["weight_decay"])


def adam_gradient(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]):
    """The head of an Adam-style update, in torch's order: negate for ``maximize``, count the step, then weight
    decay, L2 (``grad + wd * p``) or, with ``decoupled_weight_decay``, ``p *= 1 - lr * wd``.

    Returns the gradient to use and the step number (a Python int)."""
    if group["maximize"]:
        grad = -grad
    state["step"] += 1
    step = state["step"].item()
    wd = group["weight_decay"]
    if wd != 0:
        if group.get("decoupled_weight_decay", False):
            param.mul_(1 - group["lr"] * wd)
        else:
            grad = grad.add(param, alpha=wd)
    return grad, step


def update_moments(exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, grad: torch.Tensor, beta1: float, beta2: float) -> None:
    """Adam's running moments in place: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 v + (1 - beta2) g^2``."""
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

class Optimizer:
    """Base class for optimizers (as ``torch.optim.Optimizer``).

    Args:
        params: an iterable of ``nx.Tensor`` leaves (a list or a generator such as
            ``model.parameters()``), or an iterable of dicts, each a param group with a
            ``"params"`` entry and hyper-parameters that override ``defaults``.
        defaults: the hyper-parameters of a group that does not set them.

    Subclasses implement ``_update(param, grad, state, group)`` on raw torch tensors and may
    override ``_check_group(group)`` to validate hyper-parameters.
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._opt_called = False  # read by the schedulers to warn about scheduler.step() before optimizer.step()
        if isinstance(params, (Tensor, torch.Tensor)):
            raise TypeError(
                f"{self._name}: params should be an iterable of Tensors or dicts, got a single tensor "
                f"(shape {tuple(params.shape)}); wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{self._name}: parameters must be in an ordered collection (a set's order changes between "
                            "runs, and with it the state_dict's indices); use a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs) -> None:
        # A subclass may write its own ``step`` (as torch users do): it still marks the optimizer as stepped.
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None:

            @functools.wraps(step)
            def marking_step(self, *args, **kwargs):
                self._opt_called = True
                return step(self, *args, **kwargs)

            cls.step = marking_step

    @property
    def _name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # ----- hooks for subclasses -------------------------------------------------------
    # Whether ``step`` hands sparse gradients to ``_update`` (torch's SGD / SparseAdam); others refuse them.
    _accepts_sparse_grad = False

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` for an invalid hyper-parameter (defaults and every group)."""
        if "lr" in group and group["lr"] is not required:
            check_lr(self._name, group["lr"])
        self._check_flags(group)

    def _check_flags(self, group: dict[str, Any]) -> None:
        """The implementation flags torch's optimizers take: ``foreach``, ``fused``, ``capturable``, ``differentiable``.

        ``foreach`` and ``fused`` pick a kernel strategy, not the arithmetic: neuronix accepts them and
        computes the single-tensor update (the reference the mirrors compare; torch's fused kernels
        round slightly differently). Their conflicts raise as torch's do. ``differentiable=True``
        (gradients through the update itself) is not supported: neuronix updates ``.data`` outside
        the graph, so it raises rather than silently returning an update nothing can differentiate.
        """
        if group.get("fused"):
            if group.get("differentiable"):
                raise RuntimeError("`fused` does not support `differentiable`")
            if group.get("foreach"):
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        if group.get("differentiable"):
            raise NotImplementedError(f"{self._name}: differentiable=True is not supported: neuronix optimizers update "
                                      "parameters in place outside the autograd graph; use differentiable=False (default)")

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update_group(self, params: list, grads: list, states: list, group: dict[str, Any]) -> None:
        """Update every parameter of ``group`` that has a gradient; by default one ``_update`` each.

        A subclass may override it to update the whole group with torch's multi-tensor
        (``_foreach_*``) kernels: the same arithmetic, one call per operation instead of one per
        parameter and operation.
        """
        for param, grad, state in zip(params, grads, states):
            self._update(param, grad, state, group)

    # ----- param groups ---------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with ``"params"``), filling unset hyper-parameters from ``defaults``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}.add_param_group: param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: parameters must be in an ordered collection (a set's order changes between runs); use a list"
            )
        params = list(params)
        # named parameters (``model.named_parameters()``): the names go to the group's ``param_names``, as torch's
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(f"{self._name}: all optimizer params should be with/without names. Some param names are "
                                 "missing")
            param_group["param_names"] = names
            params = [p[1] for p in params]
        if any(("param_names" in param_group) != ("param_names" in group) for group in self.param_groups):
            raise ValueError(f"{self._name}: all optimizer param groups should be with/without names. cannot add param "
                             f"group {'with names' if 'param_names' in param_group else 'without names'} to the optimizer")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name} can only optimize nx.Tensor parameters, but one of the params is "
                                f"{type(p).__module__}.{type(p).__name__}; wrap torch tensors with nx.nn.Parameter(t)")
            if not p.is_leaf:
                raise ValueError(f"{self._name}: can't optimize a non-leaf Tensor (shape {tuple(p.shape)}, "
                                 f"grad_fn={p.grad_fn!r}); optimize the leaf it was computed from, or .detach() it")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self._name}: a parameter group contains the same parameter twice; it would be updated twice")
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        if taken.intersection(ids):
            raise ValueError(f"{self._name}: some parameters appear in more than one parameter group")
        param_group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in param_group:
                raise ValueError(f"{self._name}: parameter group didn't specify a value of required optimization parameter {key}")
            param_group.setdefault(key, default)
        self._check_group(param_group)
        self.param_groups.append(param_group)

    # ----- the update -----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters: to ``None`` (default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.data.zero_()

    def step(self, closure: Callable[[], Any] | None = None):
        """Perform one optimization step; ``closure`` (re-evaluating the loss) runs with grad enabled.

        Returns the closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            state = self.state
            for group in self.param_groups:
                params, grads, states = [], [], []
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                    if grad.shape != p.data.shape:
                        raise RuntimeError(f"{self._name}.step: gradient shape {tuple(grad.shape)} does not match "
                                           f"parameter shape {tuple(p.data.shape)}")
                    self._check_step_input(p, grad, group, state)
                    params.append(p.data)
                    grads.append(grad)
                    states.append(state[p])
                if params:
                    self._update_group(params, grads, states, group)
        self._opt_called = True
        return loss

    def _check_step_input(self, p: Tensor, grad: torch.Tensor, group: dict[str, Any], state) -> None:
        """torch's per-parameter refusals at step time: sparse gradients, ``fused`` / ``capturable`` placement."""
        if grad.is_sparse and not self._accepts_sparse_grad:
            raise RuntimeError(f"{self._name} does not support sparse gradients (parameter of shape {tuple(p.shape)}); "
                               "torch.optim.SparseAdam / nx.optim.SparseAdam takes them")
        if group.get("fused") and not state.get(p) and not p.data.is_floating_point():
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices: "
                               f"['cpu', 'cuda'] but {p.dtype} and {p.device.type}")
        if group.get("capturable") and p.device.type != "cuda":
            # torch asserts the same (capturable keeps step on the device, for CUDA graphs)
            raise AssertionError("If capturable=True, params and state_steps must be on supported devices: ['cuda'] "
                                 f"({self._name}: a parameter is on {p.device.type})")

    # ----- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer state in torch's layout.

        ``{"state": {index: {name: tensor}}, "param_groups": [{..., "params": [index, ...]}]}``,
        where a parameter's index is its position counting through all groups in order.
        The tensors are the live buffers (as torch's): copy them to keep a snapshot.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s and id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict()`` (neuronix's or torch's); buffers are copied to each parameter's dtype and device."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"{self._name}.load_state_dict: loaded state dict contains a parameter group {i} with "
                                 f"{len(saved['params'])} parameters that doesn't match the size of optimizer's group "
                                 f"({len(group['params'])} parameters)")
        by_index = {
            i: p for group, saved in zip(self.param_groups, saved_groups) for i, p in zip(saved["params"], group["params"])
        }
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for i, buffers in state_dict["state"].items():
            if i not in by_index:
                raise ValueError(f"{self._name}.load_state_dict: state for parameter index {i!r}, which no group lists")
            p = by_index[i]
            state[p] = {key: _restore(p, key, value) for key, value in buffers.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            # a checkpoint from an older torch / another implementation may lack newer options:
            # fill them from this optimizer's defaults (torch's __setstate__ does the same)
            for key, default in self.defaults.items():
                saved.setdefault(key, default)
        self.param_groups = saved_groups
        self.state = state


def _restore(param: Tensor, key: str, value):
    """A private copy of a saved buffer, on the parameter's device and (floating buffers except ``step``) dtype."""
    if isinstance(value, Tensor):
        value = value.data
    if not isinstance(value, torch.Tensor):
        return copy.deepcopy(value)
    if key == "step" or not param.data.is_floating_point() or not value.is_floating_point():
        return value.detach().clone()
    return value.detach().to(device=param.device, dtype=param.dtype, copy=True)

