"""``nn.utils.parametrizations``: ``weight_norm``, ``spectral_norm`` and ``orthogonal`` on the parametrization API.

Each registers a small module with ``nn.utils.parametrize``: ``module.weight`` is recomputed in neuronix
ops at every read from ``module.parametrizations.weight.original0`` (the magnitude ``g``) and
``original1`` (the direction ``v``) for weight norm, or from ``original`` and the power-method buffers
``parametrizations.weight.0._u`` / ``_v`` for spectral norm — torch's state_dict keys, so checkpoints
move both ways with ``strict=True``. Spectral norm draws ``u`` and ``v`` from torch's RNG in torch's order
and runs torch's 15 warm-up power iterations at registration, then one more for the registration's
check and ``n_power_iterations`` at every read in training mode (none in eval mode), updating the
buffers in place outside the graph.

``orthogonal`` maps an unconstrained matrix to an orthogonal one (``matrix_exp`` or ``cayley`` of its
skew-symmetric part, or a product of Householder reflections), times a ``base`` buffer chosen at
registration (torch's trivialization; its random completion of a non-square matrix is drawn from torch's
RNG in torch's order). The Householder product is composed from neuronix ops (one reflection at a time)
so it is differentiable twice; it agrees with torch's LAPACK ``householder_product`` to rounding, not bit
for bit. Complex weights are refused, as neuronix refuses complex gradients.

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

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]


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


# ----- orthogonal -----------------------------------------------------------------------------------
ORTHOGONAL_MAPS = ("matrix_exp", "cayley", "householder")


def householder_product(A, tau):
    """``torch.linalg.householder_product`` for real inputs, in neuronix ops: the first ``k`` columns of
    ``H_0 H_1 ... H_{k-1}``, ``H_i = I - tau_i v_i v_i^T`` with ``v_i`` column ``i`` of ``A`` below the diagonal
    and 1 on it. Applied right to left to the identity's first ``k`` columns, one reflection at a time."""
    from neuronix.factories import eye

    n, k = A.shape[-2], A.shape[-1]
    V = A.tril(-1) + eye(n, k, dtype=A.dtype, device=A.device)
    Q = eye(n, k, dtype=A.dtype, device=A.device).expand(*A.shape[:-2], n, k)
    for i in reversed(range(tau.shape[-1])):
        v = V[..., :, i : i + 1]
        Q = Q - tau[..., i : i + 1].unsqueeze(-1) * (v @ (v.mT @ Q))
    return Q


def _is_orthogonal(Q: torch.Tensor) -> bool:
    n, k = Q.size(-2), Q.size(-1)
    identity = torch.eye(k, dtype=Q.dtype, device=Q.device)
    return torch.allclose(Q.mH @ Q, identity, atol=10.0 * n * torch.finfo(Q.dtype).eps)


def _make_orthogonal(A: torch.Tensor) -> torch.Tensor:
    """The Q of A's QR decomposition with the signs that make R's diagonal positive (torch data, no graph)."""
    X, tau = torch.geqrf(A)
    Q = torch.linalg.householder_product(X, tau)
    return Q * X.diagonal(dim1=-2, dim2=-1).sgn().unsqueeze(-2)


class _Orthogonal(Module):
    """An orthogonal matrix (or batch) from an unconstrained one, by ``orthogonal_map``; times ``base``."""

    def __init__(self, weight, orthogonal_map: str, *, use_trivialization: bool = True) -> None:
        super().__init__()
        self.shape = weight.shape
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X):
        from neuronix.factories import eye
        from neuronix.linalg import solve
        from neuronix.ops.movement import cat

        n, k = X.size(-2), X.size(-1)
        transposed = n < k
        if transposed:  # work on the tall orientation
            X = X.mT
            n, k = k, n
        if self.orthogonal_map in ("matrix_exp", "cayley"):
            X = X.tril()
            if n != k:  # square it with zero columns: the skew part's exponential keeps Q's first k columns
                X = cat([X, X.new_zeros(n, n - k).expand(*X.shape[:-2], -1, -1)], dim=-1)
            A = X - X.mH
            if self.orthogonal_map == "matrix_exp":
                from neuronix import matrix_exp

                Q = matrix_exp(A)
            else:
                identity = eye(n, dtype=A.dtype, device=A.device)
                Q = solve(identity - 0.5 * A, identity + 0.5 * A)
            if n != k:
                Q = Q[..., :k]
        else:
            A = X.tril(diagonal=-1)
            tau = 2.0 / (1.0 + (A * A).sum(dim=-2))
            Q = householder_product(A, tau)
            Q = Q * X.diagonal(dim1=-2, dim2=-1).int().unsqueeze(-2)  # the diagonal's signs flip columns
        if hasattr(self, "base"):
            Q = self.base @ Q
        if transposed:
            Q = Q.mT
        return Q

    def right_inverse(self, Q):
        """The unconstrained matrix whose image is ``Q`` (torch's rule; with trivialization, ``base`` becomes Q's
        orthogonalisation and the original ``-I``, whose image is the identity)."""
        if Q.shape != self.shape:
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. Got a tensor of shape {Q.shape}.")
        with torch.no_grad():
            Q = (Q.data if isinstance(Q, Tensor) else Q).detach()
            Q_init = Q
            n, k = Q.size(-2), Q.size(-1)
            transpose = n < k
            if transpose:
                Q = Q.mT
                n, k = k, n
            if not hasattr(self, "base"):
                if self.orthogonal_map in ("cayley", "matrix_exp"):
                    raise NotImplementedError(
                        "It is not possible to assign to the matrix exponential or the Cayley parametrizations when "
                        "use_trivialization=False."
                    )
                A, tau = torch.geqrf(Q)
                # the diagonal of A holds the signs the householder map reads: +-1 as R's, flipped where tau == 0
                A.diagonal(dim1=-2, dim2=-1).sign_()
                A.diagonal(dim1=-2, dim2=-1)[tau == 0.0] *= -1
                return Tensor(A.mT if transpose else A)
            if n == k:
                Q = Q.clone() if _is_orthogonal(Q) else _make_orthogonal(Q)
            else:  # complete to a square matrix with random columns, drawn from torch's RNG as torch draws them
                N = torch.randn(*(Q.size()[:-2] + (n, n - k)), dtype=Q.dtype, device=Q.device)
                Q = _make_orthogonal(torch.cat([Q, N], dim=-1))
            self.base = Q
            neg_identity = torch.zeros_like(Q_init)
            neg_identity.diagonal(dim1=-2, dim2=-1).fill_(-1.0)
            return Tensor(neg_identity)


def orthogonal(module, name: str = "weight", orthogonal_map: str | None = None, *, use_trivialization: bool = True):
    """Constrain ``module.<name>`` (a matrix or batch of matrices) to be orthogonal; returns ``module``.

    ``orthogonal_map``: ``"matrix_exp"`` (default for square matrices), ``"cayley"`` or ``"householder"``
    (default otherwise).
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, (Tensor, torch.Tensor)):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError(f"Expected a matrix or batch of matrices. Got a tensor of {weight.ndim} dimensions.")
    if weight.data.is_complex():
        raise ValueError(
            f"orthogonal: complex weights are not supported in Neuronix (got {weight.dtype}): its autograd "
            "differentiates real tensors only"
        )
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.size(-2) == weight.size(-1) else "householder"
    if orthogonal_map not in ORTHOGONAL_MAPS:
        raise ValueError(f'orthogonal_map has to be one of "matrix_exp", "cayley", "householder". Got: {orthogonal_map}')
    parametrize.register_parametrization(
        module, name, _Orthogonal(weight, orthogonal_map, use_trivialization=use_trivialization), unsafe=True
    )
    return module
