"""Weight normalisation (Salimans & Kingma 2016), torch's hook-based API: ``weight_norm`` / ``remove_weight_norm``.

``weight_norm(module, "weight", dim=0)`` replaces the parameter ``weight`` by ``weight_g`` (its norm over
every dimension but ``dim``: the magnitude) and ``weight_v`` (the direction), and recomputes
``weight = g * v / ||v||`` in neuronix ops before every forward (a forward pre-hook), so gradients reach
``weight_g`` and ``weight_v``. ``dim=None`` (or -1, torch's old convention) takes one norm over the whole
tensor. torch deprecates this API for ``parametrizations.weight_norm`` (same numbers, keys
``parametrizations.weight.original0/1``) and warns with a FutureWarning; so does Neuronix.
"""

from __future__ import annotations

import warnings

from neuronix.nn.parameter import Parameter

__all__ = ["WeightNorm", "norm_except_dim", "remove_weight_norm", "weight_norm"]


def norm_except_dim(v, pow: float = 2, dim: int = 0):  # noqa: A002  (torch's name)
    """The ``pow``-norm of ``v`` over every dimension except ``dim``, kept broadcastable against ``v``
    (size ``v.shape[dim]`` at ``dim``, 1 elsewhere); ``dim=-1`` is one norm of the whole tensor (0-d),
    as ``torch.norm_except_dim``. Differentiable (neuronix ops)."""
    from neuronix.linalg import vector_norm

    if dim == -1:
        return vector_norm(v, pow)
    dim = dim % v.dim()
    # torch's three layouts, kept so the reductions add in torch's order (bit-equal norms): rows for dim 0,
    # columns for the last dim, otherwise dim swapped to the front and back
    shape = [1] * v.dim()
    shape[dim] = v.shape[dim]
    if dim == 0:
        return vector_norm(v.reshape(v.shape[0], -1), pow, dim=1).reshape(shape)
    if dim == v.dim() - 1:
        return vector_norm(v.reshape(-1, v.shape[-1]), pow, dim=0).reshape(shape)
    return norm_except_dim(v.transpose(0, dim), pow, 0).transpose(0, dim)


def weight_norm_apply(v, g, dim: int):
    """``torch._weight_norm``: ``v * (g / ||v||)`` with the norm taken as ``norm_except_dim(v, 2, dim)``."""
    return v * (g / norm_except_dim(v, 2, dim))


def _uninitialized(tensor) -> bool:
    import neuronix.nn as nn

    return isinstance(tensor, getattr(nn, "UninitializedParameter", ()))


class WeightNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    name: str
    dim: int

    def __init__(self, name: str, dim: int | None) -> None:
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module):
        return weight_norm_apply(getattr(module, self.name + "_v"), getattr(module, self.name + "_g"), self.dim)

    @staticmethod
    def apply(module, name: str, dim: int | None) -> WeightNorm:
        warnings.warn("`torch.nn.utils.weight_norm` is deprecated in favor of `torch.nn.utils.parametrizations.weight_norm`.",
                      FutureWarning, stacklevel=3)
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
        fn = WeightNorm(name, dim)
        weight = getattr(module, name)
        if _uninitialized(weight):
            raise ValueError(
                "The module passed to `WeightNorm` can't have uninitialized parameters. "
                "Make sure to run the dummy forward before applying weight normalization"
            )
        del module._parameters[name]
        module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, 2, fn.dim).data))
        module.register_parameter(name + "_v", Parameter(weight.data))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module) -> None:
        weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight.data))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Reparametrize ``module.<name>`` as ``<name>_g * <name>_v / ||<name>_v||``; returns ``module``."""
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Undo ``weight_norm``: ``<name>`` becomes a plain parameter again holding the current weight."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, WeightNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
