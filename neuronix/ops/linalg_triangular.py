"""Solves with triangular and Cholesky factors: ``cholesky_solve``, ``cholesky_inverse``, ``triangular_solve``
(deprecated in torch for ``linalg.solve_triangular``), and ``ger`` (torch's old name of ``outer``).

``cholesky_solve`` and ``cholesky_inverse`` are primitives with torch's rules (``cholesky_solve_backward``,
``cholesky_inverse_backward``): their gradient with respect to the factor is that of ``(L L^T)^{-1}`` with L
a full matrix, which a composition of triangular solves (reading one triangle) would not give.
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.ops.linalg import matmul, outer
from neuronix.ops.linalg_factor import _check_square, _mT, solve_triangular
from neuronix.ops.registry import apply, defop, public

TriangularSolve = namedtuple("triangular_solve", ("solution", "cloned_coefficient"))


def _cholesky_solve_grad(g, out, B, L, upper, which):
    """``gB = cholesky_solve(g, L)``; ``gL = -(gB X^T + X gB^T) L`` (``-L (...)`` when ``upper``)."""
    gB = cholesky_solve(g, L, upper)
    if which == 0:
        return gB
    common = matmul(gB, _mT(out))
    common = common + _mT(common)
    return -matmul(L, common) if upper else -matmul(common, L)


_CHOLESKY_SOLVE = defop(
    "cholesky_solve",
    lambda B, L, upper: torch.cholesky_solve(B, L, upper),
    lambda g, out, B, L, upper: _cholesky_solve_grad(g, out, B, L, upper, 0),
    lambda g, out, B, L, upper: _cholesky_solve_grad(g, out, B, L, upper, 1),
    saves_out=True, reads=((1,), (1,)),  # B itself is never read
)


@public(method=False)
def cholesky_solve(B, L, upper=False):
    """``torch.cholesky_solve``: ``X = (L L^T)^{-1} B`` (``(U^T U)^{-1} B`` when ``upper``) from a Cholesky factor."""
    _check_square("cholesky_solve", L)
    return apply(_CHOLESKY_SOLVE, B, L, upper=upper)


@public(function=False, method=True, name="cholesky_solve")
def _cholesky_solve_method(self, input2, upper=False):
    """``Tensor.cholesky_solve(input2, upper)``: ``self`` is B, ``input2`` the factor."""
    return cholesky_solve(self, input2, upper)


def _cholesky_inverse_grad(g, out, L, upper):
    common = matmul(out, matmul(g + _mT(g), out))
    return -matmul(L, common) if upper else -matmul(common, L)


_CHOLESKY_INVERSE = defop("cholesky_inverse", lambda L, upper: torch.cholesky_inverse(L, upper),
                          _cholesky_inverse_grad, saves_out=True)


@public
def cholesky_inverse(L, upper=False):
    """``torch.cholesky_inverse``: ``(L L^T)^{-1}`` (``(U^T U)^{-1}`` when ``upper``) from a Cholesky factor."""
    _check_square("cholesky_inverse", L)
    return apply(_CHOLESKY_INVERSE, L, upper=upper)


@public
def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    """``torch.triangular_solve`` (deprecated in torch): ``(solution, cloned_coefficient)`` of ``A X = b``
    (``A^T X = b`` when ``transpose``), A triangular; ``linalg.solve_triangular`` with torch's old arguments."""
    _check_square("triangular_solve", A)
    coefficient = _mT(A) if transpose else A
    solution = solve_triangular(coefficient, b, upper=upper != transpose, unitriangular=unitriangular)
    return TriangularSolve(solution, A.clone())


@public
def ger(input, vec2):
    """``torch.ger`` (deprecated in torch): ``outer``."""
    return outer(input, vec2)
