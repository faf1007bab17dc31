"""Spectral normalisation (Miyato et al. 2018), torch's hook-based API: ``spectral_norm`` / ``remove_spectral_norm``.

``spectral_norm(module)`` keeps the trained parameter as ``weight_orig`` and two buffers ``weight_u`` and
``weight_v``, estimates of the leading singular vectors of the weight seen as a matrix (``dim`` first,
the rest flattened). Before every forward a pre-hook sets ``module.weight = weight_orig / sigma`` with
``sigma = u . (W v)``, in neuronix ops so the gradient reaches ``weight_orig`` through ``sigma`` too; in
training mode it first runs ``n_power_iterations`` steps of the power method, which update ``u`` and
``v`` in place outside any graph (as torch's, under ``no_grad``). ``u`` and ``v`` are drawn at
registration from torch's RNG exactly as torch draws them, so the same seed gives the same buffers.

Not carried over: torch's state-dict hooks that convert checkpoints saved before torch 1.1 (keys
``weight``, ``weight_orig``, ``weight_u`` without ``weight_v``); current checkpoints load strictly.
"""

from __future__ import annotations

import torch

from neuronix.nn.parameter import Parameter
from neuronix.nn.utils.weight_norm import _uninitialized
from neuronix.tensor import Tensor

__all__ = ["SpectralNorm", "remove_spectral_norm", "spectral_norm"]


def power_iteration(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, steps: int, eps: float) -> None:
    """``steps`` power-method steps on the torch data ``weight_mat``, writing ``v`` then ``u`` in place, as torch's
    (``v = normalize(W^T u)``, ``u = normalize(W v)``)."""
    normalize = torch.nn.functional.normalize
    with torch.no_grad():
        for _ in range(steps):
            normalize(torch.mv(weight_mat.t(), u), dim=0, eps=eps, out=v)
            normalize(torch.mv(weight_mat, v), dim=0, eps=eps, out=u)


def matrix_view(weight, dim: int):
    """``weight`` as a matrix: ``dim`` moved first, the other dimensions flattened (works on nx and torch tensors)."""
    if dim != 0:
        weight = weight.permute(dim, *[d for d in range(weight.dim()) if d != dim])
    return weight.reshape(weight.shape[0], -1)


def default_dim(module) -> int:
    """torch's choice: 1 for transposed convolutions (their weight is (in, out, ...)), 0 otherwise."""
    import neuronix.nn as nn

    transposed = tuple(getattr(nn, n) for n in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d") if hasattr(nn, n))
    return 1 if isinstance(module, transposed) else 0


class SpectralNorm:
    """The forward pre-hook that sets ``module.<name>`` to ``<name>_orig / sigma``."""

    _version: int = 1
    name: str
    dim: int
    n_power_iterations: int
    eps: float

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        if n_power_iterations <= 0:
            raise ValueError(
                f"Expected n_power_iterations to be positive, but got n_power_iterations={n_power_iterations}"
            )
        self.name = name
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def reshape_weight_to_matrix(self, weight):
        return matrix_view(weight, self.dim)

    def compute_weight(self, module, do_power_iteration: bool):
        from neuronix.ops.linalg import dot, mv

        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            power_iteration(weight_mat.data, u.data, v.data, self.n_power_iterations, self.eps)
            # sigma must see this step's u and v, not later in-place updates of the buffers (torch clones too)
            u, v = Tensor(u.data.clone()), Tensor(v.data.clone())
        sigma = dot(u, mv(weight_mat, v))
        return weight / sigma

    def remove(self, module) -> None:
        from neuronix.autograd import no_grad

        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module, name: str, n_power_iterations: int, dim: int, eps: float) -> SpectralNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters[name]
        if weight is None:
            raise ValueError(f"`SpectralNorm` cannot be applied as parameter `{name}` is None")
        if _uninitialized(weight):
            raise ValueError(
                "The module passed to `SpectralNorm` can't have uninitialized parameters. "
                "Make sure to run the dummy forward before applying spectral normalization"
            )
        u, v = initial_vectors(fn.reshape_weight_to_matrix(weight.data), eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        setattr(module, name, Tensor(weight.data))
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn


def initial_vectors(weight_mat: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random unit ``u`` (rows) and ``v`` (columns), drawn from torch's RNG in torch's order (u first)."""
    normalize = torch.nn.functional.normalize
    height, width = weight_mat.shape
    u = normalize(weight_mat.new_empty(height).normal_(0, 1), dim=0, eps=eps)
    v = normalize(weight_mat.new_empty(width).normal_(0, 1), dim=0, eps=eps)
    return u, v


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12, dim: int | None = None):
    """Divide ``module.<name>`` by its spectral norm, estimated by the power method; returns ``module``."""
    SpectralNorm.apply(module, name, n_power_iterations, default_dim(module) if dim is None else dim, eps)
    return module


def remove_spectral_norm(module, name: str = "weight"):
    """Undo ``spectral_norm``: ``<name>`` becomes a plain parameter holding the current normalised weight."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
