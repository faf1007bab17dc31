"""LU (``linalg.lu_factor``, ``linalg.lu``, ``linalg.lu_solve``, ``lu_unpack``, torch's old ``lu``/``lu_solve``),
LDL (``linalg.ldl_factor``, ``linalg.ldl_solve``) and ``geqrf`` (these three without a derivative in torch).

The LU rules are torch's ``linalg_lu_backward`` (square, wide and tall cases) and ``linalg_lu_solve_LU``,
written with neuronix's triangular solves so they record under create_graph. Pivots and permutation
matrices are integer / constant results outside the graph (torch's are not differentiable either).
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.autograd import mode
from neuronix.ops.linalg import matmul
from neuronix.ops.linalg_factor import _check_matrix, _check_square, _mT, solve_triangular
from neuronix.ops.linalg_packed import Layout
from neuronix.ops.movement import cat, tril, triu
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap

LuFactor = namedtuple("linalg_lu_factor", ("LU", "pivots"))
LuFactorEx = namedtuple("linalg_lu_factor_ex", ("LU", "pivots", "info"))
Lu = namedtuple("linalg_lu", ("P", "L", "U"))
LuUnpack = namedtuple("lu_unpack", ("P", "L", "U"))
LuWithInfo = namedtuple("_lu_with_info", ("LU", "pivots", "info"))
LdlFactor = namedtuple("linalg_ldl_factor", ("LD", "pivots"))
LdlFactorEx = namedtuple("linalg_ldl_factor_ex", ("LD", "pivots", "info"))


def _unit_lower(LU, k):
    """L of a packed LU: the strict lower triangle of the first ``k`` columns plus the identity."""
    raw = unwrap(LU)
    eye = torch.eye(raw.shape[-2], k, dtype=raw.dtype, device=raw.device)
    return tril(LU.narrow(-1, 0, k), -1) + eye


def _upper(LU, k):
    return triu(LU.narrow(-2, 0, k))


def _lu_backward(gL, gU, P, L, U, pivot):
    """torch's ``linalg_lu_backward``: ``A = P L U`` with L (m, k) unit lower and U (k, n) upper."""
    m, n = L.shape[-2], U.shape[-1]
    k = min(m, n)
    if m == n:
        gA = tril(matmul(_mT(L), gL), -1) + triu(matmul(gU, _mT(U)))
        gA = solve_triangular(_mT(U), gA, upper=False, left=False)
        gA = solve_triangular(_mT(L), gA, upper=True, left=True, unitriangular=True)
    elif m < n:  # wide: A = P L [U1 | U2]
        U1, gU1, gU2 = U.narrow(-1, 0, k), gU.narrow(-1, 0, k), gU.narrow(-1, k, n - k)
        gA = matmul(_mT(L), gL) - matmul(triu(gU), _mT(U))
        gA = solve_triangular(_mT(U1), tril(gA, -1), upper=False, left=False)
        gA = cat([gA + triu(gU1), gU2], -1)
        gA = solve_triangular(_mT(L), gA, upper=True, left=True, unitriangular=True)
    else:  # tall: A = P [L1; L2] U
        L1, gL1, gL2 = L.narrow(-2, 0, k), gL.narrow(-2, 0, k), gL.narrow(-2, k, m - k)
        gA = matmul(gU, _mT(U)) - matmul(_mT(L), tril(gL, -1))
        gA = solve_triangular(_mT(L1), triu(gA), upper=True, left=True, unitriangular=True)
        gA = cat([gA + tril(gL1, -1), gL2], -2)
        gA = solve_triangular(_mT(U), gA, upper=False, left=False)
    return matmul(P, gA) if pivot else gA


def _permutation(LU, pivots):
    with mode.no_grad():
        return torch.lu_unpack(unwrap(LU), unwrap(pivots), unpack_data=False).P


# ----- lu_factor -----------------------------------------------------------------------------------
def _lu_factor_grad(g, out, A, pivot, aux):
    """torch's ``lu_factor_ex_backward``: unpack L and U from the packed factor and the gradient (strict
    lower part to L, upper part to U), then ``linalg_lu_backward``."""
    pivots = aux[0]
    m, n = out.shape[-2], out.shape[-1]
    k = min(m, n)
    L, U = _unit_lower(out, k), _upper(out, k)
    gL, gU = tril(g.narrow(-1, 0, k), -1), triu(g.narrow(-2, 0, k))
    P = _permutation(out, pivots) if pivot else None
    return _lu_backward(gL, gU, P, L, U, pivot)


_LU_FACTOR = defop("linalg_lu_factor",
                   lambda A, pivot: (lambda r: (r.LU, (r.pivots, r.info)))(torch.linalg.lu_factor_ex(A, pivot=pivot)),
                   _lu_factor_grad, saves=(), saves_out=True, aux=True)


@public(namespace="linalg")
def lu_factor_ex(A, *, pivot=True, check_errors=False):
    """``torch.linalg.lu_factor_ex``: ``(LU, pivots, info)``, L and U packed in one matrix."""
    _check_matrix("linalg.lu_factor_ex", A)
    LU, (pivots, info) = apply(_LU_FACTOR, A, pivot=pivot)
    if check_errors and bool((info != 0).any()):
        raise RuntimeError(f"neuronix.linalg.lu_factor_ex: U has a zero on its diagonal (info = {info.tolist()}) "
                           "and using it in lu_solve would divide by zero")
    return LuFactorEx(LU, Tensor._make(pivots, None), Tensor._make(info, None))


@public(namespace="linalg")
def lu_factor(A, *, pivot=True):
    """``torch.linalg.lu_factor``: ``(LU, pivots)``; an error where U has a zero on its diagonal (as torch)."""
    _check_matrix("linalg.lu_factor", A)
    LU, (pivots, info) = apply(_LU_FACTOR, A, pivot=pivot)
    if bool((info != 0).any()):
        raise RuntimeError(f"neuronix.linalg.lu_factor: U has a zero on its diagonal (info = {info.tolist()}) and "
                           "using it in lu_solve would divide by zero; use linalg.lu or linalg.lu_factor_ex")
    return LuFactor(LU, Tensor._make(pivots, None))


# ----- lu ------------------------------------------------------------------------------------------
def _lu_grad(g, out, A, pivot, layout, aux):
    gL, gU = layout.unpack(g)
    L, U = layout.unpack(out)
    return _lu_backward(gL, gU, aux if pivot else None, L, U, pivot)


def _lu_forward(A, pivot, layout):
    P, L, U = torch.linalg.lu(A, pivot=pivot)
    return layout.pack(L, U), P


_LU = defop("linalg_lu", _lu_forward, _lu_grad, saves=(), saves_out=True, aux=True)


@public(namespace="linalg")
def lu(A, *, pivot=True):
    """``torch.linalg.lu``: ``(P, L, U)`` with ``A = P L U`` (P a permutation matrix, constant)."""
    _check_matrix("linalg.lu", A)
    shape = tuple(unwrap(A).shape)
    m, n = shape[-2:]
    k = min(m, n)
    layout = Layout(shape[:-2], ((m, k), (k, n)))
    packed, P = apply(_LU, A, pivot=pivot, layout=layout)
    L, U = layout.unpack(packed)
    return Lu(Tensor._make(P, None), L, U)


@public(method=False)
def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
    """``torch.lu_unpack``: ``(P, L, U)`` from a packed LU factor (L and U differentiable views of it)."""
    raw = unwrap(LU_data)
    m, n = raw.shape[-2:]
    k = min(m, n)
    empty = Tensor._make(raw.new_empty(0), None)
    P = Tensor._make(_permutation(LU_data, LU_pivots), None) if unpack_pivots else empty
    if not unpack_data:
        return LuUnpack(P, empty, empty)
    return LuUnpack(P, _unit_lower(LU_data, k), _upper(LU_data, k))


# ----- lu_solve ------------------------------------------------------------------------------------
def _lu_solve_grad_lu(g, X, LU, B, pivots, left, adjoint):
    """torch's ``linalg_lu_solve_LU``: the gradient with respect to the packed factor."""
    P, L, U = lu_unpack(LU, pivots, unpack_pivots=left == adjoint) if isinstance(LU, Tensor) else \
        torch.lu_unpack(LU, pivots, unpack_pivots=left == adjoint)
    if left != adjoint:
        gR = solve_triangular(_mT(U), -matmul(g if left else _mT(g), _mT(X) if left else X), upper=False)
        gL = tril(solve_triangular(_mT(L), matmul(gR, _mT(U)), upper=True, left=True, unitriangular=True), -1)
        return gL + triu(gR)
    P = unwrap(P)
    gR = -matmul(matmul(matmul(P.mT, X if left else _mT(X)), _mT(g) if left else g), P)
    gR = solve_triangular(_mT(L), gR, upper=True, left=False, unitriangular=True)
    gU = triu(solve_triangular(_mT(U), matmul(_mT(L), gR), upper=False, left=False))
    return tril(gR, -1) + gU


_LU_SOLVE = defop(
    "linalg_lu_solve",
    lambda LU, B, pivots, left, adjoint: torch.linalg.lu_solve(LU, pivots, B, left=left, adjoint=adjoint),
    lambda g, out, LU, B, pivots, left, adjoint: _lu_solve_grad_lu(g, out, LU, B, pivots, left, adjoint),
    lambda g, out, LU, B, pivots, left, adjoint: lu_solve(LU, pivots, g, left=left, adjoint=not adjoint),
    saves_out=True, reads=((0,), (0,)),  # B itself is never read (torch keeps LU and the result)
)


@public(namespace="linalg")
def lu_solve(LU, pivots, B, *, left=True, adjoint=False):
    """``torch.linalg.lu_solve``: solve ``A X = B`` (``X A = B`` when not ``left``; ``A^T`` when ``adjoint``)
    from ``lu_factor``'s ``(LU, pivots)``; differentiable in ``LU`` and ``B``."""
    _check_square("linalg.lu_solve", LU)
    return apply(_LU_SOLVE, LU, B, pivots=unwrap(pivots), left=left, adjoint=adjoint)


# ----- LDL (no derivative in torch) ----------------------------------------------------------------
def _not_implemented(name: str, error=RuntimeError, message="derivative for aten::{} is not implemented"):
    """A rule that raises as torch's backward does for an op without a derivative (torch's error type and
    words): the forward records (its result requires grad, as torch's) and only a backward through it fails."""

    def rule(*_, **__):
        raise error(message.format(name) + " (as in torch)")

    return rule


_LDL_FACTOR = defop("linalg_ldl_factor",
                    lambda A, hermitian: (lambda r: (r.LD, (r.pivots, r.info)))(
                        torch.linalg.ldl_factor_ex(A, hermitian=hermitian)),
                    _not_implemented("linalg_ldl_factor_ex"), saves=(), aux=True)


@public(namespace="linalg")
def ldl_factor_ex(A, *, hermitian=False, check_errors=False):
    """``torch.linalg.ldl_factor_ex``: ``(LD, pivots, info)`` of a symmetric matrix (its lower triangle).
    Not differentiable, as in torch."""
    _check_square("linalg.ldl_factor_ex", A)
    LD, (pivots, info) = apply(_LDL_FACTOR, A, hermitian=hermitian)
    if check_errors and bool((info != 0).any()):
        raise RuntimeError(f"neuronix.linalg.ldl_factor_ex: the factorization failed (info = {info.tolist()})")
    return LdlFactorEx(LD, Tensor._make(pivots, None), Tensor._make(info, None))


@public(namespace="linalg")
def ldl_factor(A, *, hermitian=False):
    """``torch.linalg.ldl_factor``: ``(LD, pivots)`` (an error where the factorization fails). Not differentiable."""
    LD, pivots, info = ldl_factor_ex(A, hermitian=hermitian)
    if bool((info.data != 0).any()):
        raise RuntimeError(f"neuronix.linalg.ldl_factor: the factorization failed (info = {info.data.tolist()})")
    return LdlFactor(LD, pivots)


_LDL_SOLVE = defop("linalg_ldl_solve",
                   lambda LD, B, pivots, hermitian: torch.linalg.ldl_solve(LD, pivots, B, hermitian=hermitian),
                   _not_implemented("linalg_ldl_solve"), _not_implemented("linalg_ldl_solve"), saves=())


@public(namespace="linalg")
def ldl_solve(LD, pivots, B, *, hermitian=False):
    """``torch.linalg.ldl_solve``: solve ``A X = B`` from ``ldl_factor``'s result. Not differentiable."""
    return apply(_LDL_SOLVE, LD, B, pivots=unwrap(pivots), hermitian=hermitian)


# ----- geqrf (no derivative in torch) -------------------------------------------------------------
Geqrf = namedtuple("geqrf", ("a", "tau"))
_GEQRF = defop("geqrf", lambda A: (lambda r: (r.a, r.tau))(torch.geqrf(A)),
               _not_implemented("geqrf", NotImplementedError, "the derivative for '{}' is not implemented."),
               saves=(), aux=True)


@public
def geqrf(input):
    """``torch.geqrf``: LAPACK's QR in reflector form ``(a, tau)``; no derivative, as torch (its backward raises)."""
    _check_matrix("geqrf", input)
    a, tau = apply(_GEQRF, input)
    return Geqrf(a, Tensor._make(tau, None))


# ----- torch's deprecated LU spellings -------------------------------------------------------------
@public(name="lu")
def torch_lu(A, pivot=True, get_infos=False):
    """``torch.lu`` (deprecated in torch for ``linalg.lu_factor``): ``(LU, pivots)`` or, with ``get_infos``, the
    named tuple ``(LU, pivots, info)``; never an error at a singular matrix (torch's ``_lu_with_info``)."""
    LU, pivots, info = lu_factor_ex(A, pivot=pivot)
    return LuWithInfo(LU, pivots, info) if get_infos else (LU, pivots)


@public(name="lu_solve")
def torch_lu_solve(b, LU_data, LU_pivots):
    """``torch.lu_solve`` (deprecated in torch): ``linalg.lu_solve(LU_data, LU_pivots, b)``."""
    return lu_solve(LU_data, LU_pivots, b)
