"""``nn.utils.parametrizations``: ``weight_norm`` and ``spectral_norm`` on the parametrization API, as torch's.

Each registers a small module with ``nn.utils.parametrize``: ``module.weight`` is recomputed in neuronix
ops at every read from ``module.parametrizations.weight.original0`` (the magnitude ``g``) and
``original1`` (the direction ``v``) for weight norm, or from ``original`` and the power-method buffers
``parametrizations.weight.0._u`` / ``_v`` for spectral norm — torch's state_dict keys, so checkpoints
move both ways with ``strict=True``. Spectral norm draws ``u`` and ``v`` from torch's RNG in torch's order
and runs torch's 15 warm-up power iterations at registration, then one more for the registration's
check and ``n_power_iterations`` at every read in training mode (none in eval mode), updating the
buffers in place outside the graph.

Not carried over: torch's load-time hook that renames an old ``weight_g``/``weight_v`` checkpoint to the
new keys (neuronix modules have no load_state_dict pre-hooks); rename the two keys to load one.
"""

from __future__ import annotations

import torch

from neuronix.nn.module import Module
from neuronix.nn.utils import parametrize
from neuronix.nn.utils.spectral_norm import default_dim
from neuronix.nn.utils.weight_norm import norm_except_dim, weight_norm_apply
from neuronix.tensor import Tensor

__all__ = ["spectral_norm", "weight_norm"]


class _WeightNorm(Module):
    """``weight = g * v / ||v||`` from ``(g, v)``; ``right_inverse`` splits a weight into its norm and itself."""

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return weight_norm_apply(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return norm_except_dim(weight, 2, self.dim), weight


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Weight-normalise ``module.<name>`` (``original0`` the magnitude, ``original1`` the direction); returns it."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


class _SpectralNorm(Module):
    """``weight / sigma``, ``sigma`` the power method's estimate of the largest singular value; 1-D: normalised."""

    def __init__(self, weight, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(
                f"Expected n_power_iterations to be positive, but got n_power_iterations={n_power_iterations}"
            )
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(weight.data)
            normalize = torch.nn.functional.normalize
            u = weight_mat.new_empty(weight_mat.shape[0]).normal_(0, 1)  # torch's draws, in torch's order
            v = weight_mat.new_empty(weight_mat.shape[1]).normal_(0, 1)
            self.register_buffer("_u", normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.dim()) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat: torch.Tensor, n_power_iterations: int) -> None:
        """``u = normalize(W v)`` then ``v = normalize(W^H u)``, in place in the buffers, on torch data (no graph)."""
        normalize = torch.nn.functional.normalize
        u, v = self._u.data, self._v.data
        with torch.no_grad():
            for _ in range(n_power_iterations):
                normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps, out=u)
                normalize(torch.mv(weight_mat.H, u), dim=0, eps=self.eps, out=v)

    def forward(self, weight):
        from neuronix.nn.functional import normalize
        from neuronix.ops.decompositions import vdot
        from neuronix.ops.linalg import mv

        if weight.ndim == 1:
            return normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat.data, self.n_power_iterations)
        # this read's u and v, safe from the next read's in-place power step (torch clones them too)
        u = Tensor(self._u.data.clone(memory_format=torch.contiguous_format))
        v = Tensor(self._v.data.clone(memory_format=torch.contiguous_format))
        sigma = vdot(u, mv(weight_mat, v))
        return weight / sigma

    def right_inverse(self, value):
        return value  # any weight is its own original: sigma is recomputed from it


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12, dim: int | None = None):
    """Spectral-normalise ``module.<name>`` (``dim``: 1 for transposed convolutions, else 0); returns ``module``."""
    weight = getattr(module, name, None)
    if not isinstance(weight, (Tensor, torch.Tensor)):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    dim = default_dim(module) if dim is None else dim
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module
