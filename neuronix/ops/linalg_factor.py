"""torch.linalg factorisations and inverses as primitives whose rules are torch's (derivatives.yaml and
FunctionsManual.cpp: inverse, det, slogdet, solve, solve_triangular, cholesky, eigh, svd, qr, pinv,
matrix_exp), written in neuronix ops so that they record under create_graph (second derivatives).

Multi-output results pack their differentiable parts into one tensor (``linalg_packed.py``); the
non-differentiable ones (``info``, ``sign``) travel as the op's ``aux``. Named tuples carry torch's
field names (``torch.return_types``).
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.autograd import mode
from neuronix.ops import elementwise as ew
from neuronix.ops import reduce as red
from neuronix.ops.linalg import matmul
from neuronix.ops.linalg_packed import Layout, used
from neuronix.ops.movement import cat, transpose, tril, triu
from neuronix.ops.registry import apply, defop, public, recording
from neuronix.tensor import Tensor, unwrap

InvEx = namedtuple("linalg_inv_ex", ("inverse", "info"))
CholeskyEx = namedtuple("linalg_cholesky_ex", ("L", "info"))
SolveEx = namedtuple("linalg_solve_ex", ("result", "info"))
Slogdet = namedtuple("slogdet", ("sign", "logabsdet"))
LinalgSlogdet = namedtuple("linalg_slogdet", ("sign", "logabsdet"))
Eigh = namedtuple("linalg_eigh", ("eigenvalues", "eigenvectors"))
Svd = namedtuple("linalg_svd", ("U", "S", "Vh"))
TorchSvd = namedtuple("svd", ("U", "S", "V"))
Qr = namedtuple("linalg_qr", ("Q", "R"))
TorchQr = namedtuple("qr", ("Q", "R"))


def _mT(x):
    return transpose(x, -2, -1)


def _check_square(op: str, A) -> None:
    shape = tuple(unwrap(A).shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise RuntimeError(f"neuronix.{op}: A must be batches of square matrices (..., n, n), got shape {shape}")


def _check_matrix(op: str, A) -> None:
    shape = tuple(unwrap(A).shape)
    if len(shape) < 2:
        raise RuntimeError(f"neuronix.{op}: the input tensor A must have at least 2 dimensions, got shape {shape}")


def _diag_embed(v):
    """``v`` on the diagonal of zero matrices (exact zeros off it, even where ``v`` is inf or NaN)."""
    n = v.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=unwrap(v).device)
    return ew.where(eye, v.unsqueeze(-1), 0.0)


def _halve_diagonal(x):
    eye = torch.eye(x.shape[-1], dtype=torch.bool, device=unwrap(x).device)
    return ew.where(eye, x * 0.5, x)


def _plain(x) -> bool:
    """A plain backward's rule (raw torch tensors, nothing recorded) rather than a recorded one."""
    return not isinstance(x, Tensor)


# ----- inverse -------------------------------------------------------------------------------------
def _inv_grad(g, out, A, aux=None):
    """``-A^{-T} g A^{-T}`` (torch's ``linalg_inv_ex`` rule, from the saved inverse)."""
    inverse_t = _mT(out)
    return -matmul(inverse_t, matmul(g, inverse_t))


_INV = defop("linalg_inv", torch.linalg.inv, _inv_grad, saves=(), saves_out=True)
_INV_EX = defop("linalg_inv_ex", lambda A, check_errors: tuple(torch.linalg.inv_ex(A, check_errors=check_errors)),
                lambda g, out, A, check_errors, aux: _inv_grad(g, out, A), saves=(), saves_out=True, aux=True)


@public(namespace="linalg")
def inv(A):
    """``torch.linalg.inv``: the inverse of each square matrix (an error when one is singular)."""
    _check_square("linalg.inv", A)
    return apply(_INV, A)


@public(name="inverse")
def inverse(input):
    """``torch.inverse``: ``linalg.inv``."""
    _check_square("inverse", input)
    return apply(_INV, input)


@public(namespace="linalg")
def inv_ex(A, *, check_errors=False):
    """``torch.linalg.inv_ex``: ``(inverse, info)``; ``info`` > 0 marks a singular matrix instead of an error."""
    _check_square("linalg.inv_ex", A)
    inverse, info = apply(_INV_EX, A, check_errors=check_errors)
    return InvEx(inverse, Tensor._make(info, None))


# ----- solve, solve_triangular ---------------------------------------------------------------------
def _vector_rhs(A, B) -> bool:
    """torch.linalg.solve's rule: ``B`` is a (batch of) vector(s) when 1-D or when ``B.shape == A.shape[:-1]``."""
    a, b = tuple(unwrap(A).shape), tuple(unwrap(B).shape)
    return len(b) == 1 or (len(b) == len(a) - 1 and b == a[:-1])


def _saved_lu_solve(A, rhs, left=True, adjoint=True):
    """``op(A)^{-1} rhs`` (``op`` the transpose when ``adjoint``) with the LU factors torch's forward keeps: of
    ``A^T`` when ``A`` is contiguous (its LAPACK layout; the solve then flips ``adjoint``), else of ``A``. No
    error at a singular ``A`` (inf/NaN), and the same rounding and NaN pattern as torch's plain backward."""
    use_transpose = A.is_contiguous()
    LU, pivots, _ = torch.linalg.lu_factor_ex(A.mT if use_transpose else A)
    return torch.linalg.lu_solve(LU, pivots, rhs, left=left, adjoint=adjoint != use_transpose)


def _solve_grads(g, out, A, B, vector, left, which):
    """torch's ``linalg_solve_backward``: ``gB = solve(A^T, g, left)``, ``gA = -gB X^T`` (``-X^T gB`` when not
    ``left``); a vector right-hand side as a one-column matrix. A plain backward solves with the saved LU
    factors (no error at a singular A), a recorded one with ``linalg.solve`` (torch's raises there too)."""
    g_ = g.unsqueeze(-1) if vector else g
    if _plain(A):
        gB = _saved_lu_solve(A, g_, left=left)
    else:
        gB = solve(_mT(A), g_, left=left)
    if which == 1:
        return gB.squeeze(-1) if vector else gB
    X = out.unsqueeze(-1) if vector else out
    return -matmul(gB, _mT(X)) if left else -matmul(_mT(X), gB)


_SOLVE = defop("linalg_solve", lambda A, B, vector, left: torch.linalg.solve(A, B, left=left),
               lambda g, out, A, B, **kw: _solve_grads(g, out, A, B, which=0, **kw),
               lambda g, out, A, B, **kw: _solve_grads(g, out, A, B, which=1, **kw), saves=(0,), saves_out=True)


@public(namespace="linalg")
def solve(A, B, *, left=True):
    """``torch.linalg.solve``: ``X`` with ``A X = B`` (``X A = B`` when ``left=False``); batch dims broadcast,
    ``B`` a vector when 1-D or shaped ``A.shape[:-1]`` (only with ``left``)."""
    _check_square("linalg.solve", A)
    return apply(_SOLVE, A, B, vector=left and _vector_rhs(A, B), left=left)


@public(namespace="linalg")
def solve_ex(A, B, *, left=True, check_errors=False):
    """``torch.linalg.solve_ex``: ``(result, info)``; ``info`` > 0 marks a singular ``A``."""
    _check_square("linalg.solve_ex", A)
    info = torch.linalg.solve_ex(unwrap(A), unwrap(B), left=left, check_errors=check_errors).info
    if bool((info != 0).any()):
        with mode.no_grad():
            result = Tensor._make(torch.linalg.solve_ex(unwrap(A), unwrap(B), left=left).result, None)
    else:
        result = solve(A, B, left=left)
    return SolveEx(result, Tensor._make(info, None))


def _triangular_grads(g, out, A, B, upper, left, unitriangular, which):
    gB = solve_triangular(_mT(A), g, upper=not upper, left=left, unitriangular=unitriangular)
    if which == 1:
        return gB
    gA = -matmul(gB, _mT(out)) if left else -matmul(_mT(out), gB)
    return triu(gA, int(unitriangular)) if upper else tril(gA, -int(unitriangular))


_SOLVE_TRIANGULAR = defop(
    "linalg_solve_triangular",
    lambda A, B, upper, left, unitriangular: torch.linalg.solve_triangular(A, B, upper=upper, left=left,
                                                                          unitriangular=unitriangular),
    lambda g, out, A, B, **kw: _triangular_grads(g, out, A, B, which=0, **kw),
    lambda g, out, A, B, **kw: _triangular_grads(g, out, A, B, which=1, **kw),
    saves=(0,), saves_out=True,
)


@public(namespace="linalg")
def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """``torch.linalg.solve_triangular``: ``A X = B`` (``X A = B``) for triangular ``A``, reading only its
    ``upper`` or lower triangle (and not its diagonal when ``unitriangular``)."""
    return apply(_SOLVE_TRIANGULAR, A, B, upper=upper, left=left, unitriangular=unitriangular)


# ----- determinants --------------------------------------------------------------------------------
def _cofactor_svd(scale, A):
    """``scale * det(A) * A^{-T}`` for any square ``A`` (singular too), by torch's SVD route:
    ``U diag(scale * det(U) det(Vh) * prod_{j != i} S_j) Vh``."""
    U, S, Vh = svd(A, full_matrices=False)
    alpha = ew.mul(det(U), det(Vh))
    others = red._prod_others(S, S.ndim - 1, _plain(S))
    D = ew.mul(ew.mul(scale, alpha).unsqueeze(-1), others)
    return matmul(U * D.unsqueeze(-2), Vh)


def _det_grad(g, out, A):
    """torch's ``linalg_det_backward``: a plain backward solves with A's LU factors (``g det(A) A^{-T}``);
    recorded, a singular matrix takes the SVD route (the cofactors) and an invertible one ``linalg.solve``.

    At an exactly singular matrix torch 2.13's two modes disagree: the plain backward gives zeros (it scales
    the cofactors by ``g det(A)``, which is 0), the recorded one the cofactor matrix. Neuronix gives each
    mode's answer, as the installed torch (tests/test_decompositions.py pins both)."""
    if A.shape[-1] == 1:  # the cofactor of a 1x1 matrix is 1, whatever its entry (inf and NaN too, as torch)
        grad = g.unsqueeze(-1).unsqueeze(-1)
        return grad if _plain(A) else ew.anchored(grad, A)
    scale = g * out
    if _plain(A):
        solved = _saved_lu_solve(A, torch.diag_embed(scale.unsqueeze(-1).expand(A.shape[:-1])).mT)
        singular = out == 0
        if not bool(singular.any()):
            return solved
        # where det(A) is 0, torch's plain backward gives the cofactors scaled by ``g det(A)``: zeros (NaN
        # under a NaN upstream gradient); the recorded backward gives the cofactors themselves
        singular = singular.expand(A.shape[:-2])
        solved = solved.expand(A.shape).clone()
        solved[singular] = _cofactor_svd(scale.expand(A.shape[:-2])[singular], A[singular])  # only those: no SVD of others
        return solved
    singular = out.data == 0
    if not bool(singular.any()):
        return solve(_mT(A), _diag_embed(scale.unsqueeze(-1).expand(A.shape[:-1])))
    # each batch element by its own route; the other route sees a harmless stand-in, diag(1, ..., n) (distinct
    # singular values: its unused SVD terms stay finite), so neither raises nor spreads NaN
    n = A.shape[-1]
    stand_in = torch.diag(torch.arange(1, n + 1, dtype=out.dtype, device=out.device))
    mask = singular.unsqueeze(-1).unsqueeze(-1)
    cofactors = _cofactor_svd(g, ew.where(mask, A, stand_in))
    solved = solve(_mT(ew.where(mask, stand_in, A)), _diag_embed(scale.unsqueeze(-1).expand(A.shape[:-1])))
    return ew.where(mask, cofactors, solved)


_DET = defop("linalg_det", torch.linalg.det, _det_grad, saves_out=True)


@public(namespace="linalg", name="det")
def linalg_det(A):
    """``torch.linalg.det``: the determinant of each square matrix."""
    _check_square("linalg.det", A)
    return apply(_DET, A)


@public(name="det")
def det(input):
    """``torch.det``: ``linalg.det``."""
    _check_square("det", input)
    return apply(_DET, input)


def _slogdet_grad(g, out, A, layout):
    """``g_logabsdet * A^{-T}`` (torch's ``slogdet_backward`` for real inputs: the sign's gradient is ignored)."""
    g = layout.unpack(g)[1]
    scale = _diag_embed(g.unsqueeze(-1).expand(A.shape[:-1]))  # exact zeros off the diagonal (g may be inf)
    if _plain(A):
        return _saved_lu_solve(A, scale)
    return solve(_mT(A), scale)


# (sign, logabsdet) packed: torch records both outputs (the sign's gradient is ignored)
_SLOGDET = defop("linalg_slogdet", lambda A, layout: layout.pack(*torch.linalg.slogdet(A)), _slogdet_grad)


def _slogdet_parts(op, A):
    _check_square(op, A)
    layout = Layout(tuple(unwrap(A).shape[:-2]), ((), ()))
    return layout.unpack(apply(_SLOGDET, A, layout=layout))


def _slogdet(op, A, result):
    return result(*_slogdet_parts(op, A))


@public(namespace="linalg", name="slogdet")
def linalg_slogdet(A):
    """``torch.linalg.slogdet``: ``(sign, logabsdet)`` of each square matrix; ``sign`` carries no gradient."""
    return _slogdet("linalg.slogdet", A, LinalgSlogdet)


@public(name="slogdet")
def slogdet(input):
    """``torch.slogdet``: ``linalg.slogdet``."""
    return _slogdet("slogdet", input, Slogdet)


@public
def logdet(input):
    """``torch.logdet``: ``log(det(input))``; NaN where the determinant is negative (as torch, from slogdet)."""
    sign, logabsdet = _slogdet_parts("logdet", input)
    return ew.where(unwrap(sign) == -1, float("nan"), logabsdet)


# ----- cholesky ------------------------------------------------------------------------------------
def _cholesky_grad(g, out, A, upper, aux=None):
    """torch's ``cholesky_backward``: ``L^{-T} Phi(L^T gL) L^{-1}``, symmetrised (Phi: lower triangle,
    halved diagonal)."""
    L, gL = (_mT(out), _mT(g)) if upper else (out, g)
    phi = tril(matmul(_mT(L), gL))
    phi = _halve_diagonal(phi)
    gA = solve_triangular(_mT(L), phi, upper=True, left=True)
    gA = solve_triangular(L, gA, upper=False, left=False)
    return 0.5 * (gA + _mT(gA))


_CHOLESKY = defop("linalg_cholesky", lambda A, upper: torch.linalg.cholesky(A, upper=upper), _cholesky_grad,
                  saves=(), saves_out=True)
_CHOLESKY_EX = defop("linalg_cholesky_ex",
                     lambda A, upper, check_errors: tuple(torch.linalg.cholesky_ex(A, upper=upper,
                                                                                  check_errors=check_errors)),
                     lambda g, out, A, upper, check_errors, aux: _cholesky_grad(g, out, A, upper),
                     saves=(), saves_out=True, aux=True)


@public(namespace="linalg", name="cholesky")
def linalg_cholesky(A, *, upper=False):
    """``torch.linalg.cholesky``: ``L`` lower triangular with ``A = L L^T`` (``U`` with ``A = U^T U`` when ``upper``)."""
    _check_square("linalg.cholesky", A)
    return apply(_CHOLESKY, A, upper=upper)


def _removed_in_torch(call) -> bool:
    """Whether the installed torch has removed a deprecated function: torch 2.13 still computes ``torch.cholesky``
    and ``torch.qr``; torch 2.14 keeps the names, but calling them raises "This function was deprecated since version
    1.9 and is now removed" (a RuntimeError) whatever the arguments. Probed once, at import, with no tensor: 2.13
    refuses it at argument parsing (a TypeError), before its kernel's one-time deprecation warning."""
    try:
        call(None)
    except RuntimeError as err:
        return "is now removed" in str(err)
    except TypeError:
        return False
    return False


# Where the installed torch removed them, neuronix's torch.cholesky / torch.qr (and their methods) raise torch's
# own error: the call is handed to torch, which raises before computing anything.
_CHOLESKY_REMOVED = _removed_in_torch(torch.cholesky)
_QR_REMOVED = _removed_in_torch(torch.qr)


@public(name="cholesky")
def cholesky(input, upper=False):
    """``torch.cholesky`` (deprecated in torch for ``linalg.cholesky``): the same factor; where the installed torch
    removed it (2.14), torch's error."""
    if _CHOLESKY_REMOVED:
        torch.cholesky(unwrap(input), upper=upper)
    _check_square("cholesky", input)
    return apply(_CHOLESKY, input, upper=upper)


@public(namespace="linalg")
def cholesky_ex(A, *, upper=False, check_errors=False):
    """``torch.linalg.cholesky_ex``: ``(L, info)``; ``info`` > 0 marks a matrix that is not positive-definite."""
    _check_square("linalg.cholesky_ex", A)
    L, info = apply(_CHOLESKY_EX, A, upper=upper, check_errors=check_errors)
    return CholeskyEx(L, Tensor._make(info, None))


# ----- eigh ----------------------------------------------------------------------------------------
def _eigh_grad(g, out, A, UPLO, layout):
    """torch's ``linalg_eig_backward`` (Hermitian): ``V (skew(V^T gV) / E + diag(gL)) V^T``,
    ``E[i, j] = L[j] - L[i]`` (1 on the diagonal); only ``V diag(gL) V^T`` when ``gV`` is unused."""
    gL, gV = layout.unpack(g)
    L, V = layout.unpack(out)
    if not used(gV):
        return matmul(V * gL.unsqueeze(-2), _mT(V))
    VhgV = matmul(_mT(V), gV)
    VhgV = 0.5 * (VhgV - _mT(VhgV))
    n = L.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=unwrap(L).device)
    E = ew.where(eye, 1.0, L.unsqueeze(-2) - L.unsqueeze(-1))
    inner = ew.where(eye, gL.unsqueeze(-1), VhgV / E)
    return matmul(V, matmul(inner, _mT(V)))


_EIGH = defop("linalg_eigh", lambda A, UPLO, layout: layout.pack(*torch.linalg.eigh(A, UPLO=UPLO)), _eigh_grad,
              saves=(), saves_out=True)


def _eigh_packed(op, A, UPLO):
    _check_square(op, A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"neuronix.{op}: UPLO must be 'L' or 'U', got {UPLO!r}")
    shape = tuple(unwrap(A).shape)
    layout = Layout(shape[:-2], ((shape[-1],), shape[-2:]))
    return layout.unpack(apply(_EIGH, A, UPLO=UPLO, layout=layout))


@public(namespace="linalg")
def eigh(A, UPLO="L"):
    """``torch.linalg.eigh``: ``(eigenvalues, eigenvectors)`` of symmetric matrices, eigenvalues ascending,
    from the ``UPLO`` triangle."""
    return Eigh(*_eigh_packed("linalg.eigh", A, UPLO))


@public(namespace="linalg")
def eigvalsh(A, UPLO="L"):
    """``torch.linalg.eigvalsh``: the eigenvalues of ``eigh``, with its gradient ``V diag(g) V^T``."""
    return _eigh_packed("linalg.eigvalsh", A, UPLO)[0]


# ----- svd -----------------------------------------------------------------------------------------
def _svd_grad(g, out, A, full_matrices, layout):
    """torch's ``svd_backward`` (real): with ``E[i, j] = S[j]^2 - S[i]^2`` (1 on the diagonal),
    ``gA = U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)] Vh`` plus the terms of the extra
    columns of a tall U (or rows of a wide Vh). Only ``U diag(gS) Vh`` when gU and gVh are unused.
    With ``full_matrices`` only the first k = min(m, n) columns of U and rows of Vh count."""
    gU, gS, gVh = layout.unpack(g)
    U, S, Vh = layout.unpack(out)
    k = S.shape[-1]
    if full_matrices:
        U, gU, Vh, gVh = U.narrow(-1, 0, k), gU.narrow(-1, 0, k), Vh.narrow(-2, 0, k), gVh.narrow(-2, 0, k)
    m, n = U.shape[-2], Vh.shape[-1]
    use_u, use_v = used(gU), used(gVh)
    if not use_u and not use_v:
        return matmul(U, gS.unsqueeze(-1) * Vh) if m >= n else matmul(U * gS.unsqueeze(-2), Vh)
    V, gV = _mT(Vh), _mT(gVh)
    S2 = S * S
    eye = torch.eye(k, dtype=torch.bool, device=unwrap(S).device)
    E = ew.where(eye, 1.0, S2.unsqueeze(-2) - S2.unsqueeze(-1))
    terms = None
    if use_u:
        UhgU = matmul(_mT(U), gU)
        terms = (UhgU - _mT(UhgU)) * S.unsqueeze(-2)
    if use_v:
        VhgV = matmul(Vh, gV)
        right = S.unsqueeze(-1) * (VhgV - _mT(VhgV))
        terms = right if terms is None else terms + right
    gA = terms / E + _diag_embed(gS)
    if m > n and use_u:
        gA = matmul(U, gA)
        gUSinv = gU / S.unsqueeze(-2)
        gA = gA + gUSinv - matmul(U, matmul(_mT(U), gUSinv))
        return matmul(gA, Vh)
    if m < n and use_v:
        gA = matmul(gA, Vh)
        gVSinv = gV / S.unsqueeze(-2)
        gA = gA + _mT(gVSinv) - matmul(matmul(_mT(gVSinv), V), Vh)
        return matmul(U, gA)
    return matmul(U, matmul(gA, Vh)) if m >= n else matmul(matmul(U, gA), Vh)


_SVD = defop("linalg_svd", lambda A, full_matrices, layout: layout.pack(*torch.linalg.svd(A, full_matrices=full_matrices)),
             _svd_grad, saves=(), saves_out=True)


def _svd_parts(op, A, full_matrices):
    _check_matrix(op, A)
    shape = tuple(unwrap(A).shape)
    m, n = shape[-2:]
    k = min(m, n)
    cores = ((m, m if full_matrices else k), (k,), (n if full_matrices else k, n))
    layout = Layout(shape[:-2], cores)
    return layout.unpack(apply(_SVD, A, full_matrices=full_matrices, layout=layout))


@public(namespace="linalg")
def svd(A, full_matrices=True, *, driver=None):
    """``torch.linalg.svd``: ``(U, S, Vh)`` with ``A = U diag(S) Vh``, singular values descending."""
    return Svd(*_svd_parts("linalg.svd", A, full_matrices))


@public(namespace="linalg")
def svdvals(A, *, driver=None):
    """``torch.linalg.svdvals``: the singular values, descending, with the gradient ``U diag(g) Vh``. Outside a
    graph torch's values-only kernel (no U, V: other LAPACK paths, no error at non-finite entries)."""
    if not recording(A):
        _check_matrix("linalg.svdvals", A)
        return Tensor._make(torch.linalg.svdvals(unwrap(A)), None)
    return _svd_parts("linalg.svdvals", A, False)[1]


@public(name="svd")
def torch_svd(input, some=True, compute_uv=True):
    """``torch.svd`` (deprecated in torch): ``(U, S, V)`` with ``V`` not transposed; ``some=False`` gives the
    full square factors; ``compute_uv=False`` zero-filled U and V, as torch."""
    U, S, Vh = _svd_parts("svd", input, not some)
    if not compute_uv:
        with mode.no_grad():
            return TorchSvd(Tensor._make(torch.zeros_like(unwrap(U)), None), S,
                            Tensor._make(torch.zeros_like(unwrap(Vh)).mT.contiguous(), None))
    return TorchSvd(U, S, _mT(Vh))


# ----- qr ------------------------------------------------------------------------------------------
def _qr_square_grad(gQ, gR, Q, R):
    """``A = QR`` with m >= n: ``gA = [gQ + Q syminvadj(triu(gR R^T - Q^T gQ))] R^{-T}``, torch's formula."""
    X = matmul(gR, _mT(R)) - matmul(_mT(Q), gQ)
    X = triu(X)
    sym = X + _mT(X)
    sym = _halve_diagonal(sym)
    gA = matmul(Q, sym) + gQ
    return solve_triangular(_mT(R), gA, upper=False, left=False)


def _qr_grad(g, out, A, mode, layout):
    if mode == "r":
        raise RuntimeError("neuronix.linalg.qr: the derivative of linalg.qr depends on Q, which is not computed when "
                           "mode='r'; use mode='reduced'")
    gQ, gR = layout.unpack(g)
    Q, R = layout.unpack(out)
    m, n = Q.shape[-2], R.shape[-1]
    if mode == "complete" and m > n:
        raise RuntimeError("neuronix.linalg.qr: the QR decomposition is not differentiable when mode='complete' and "
                           "nrows > ncols")
    if m >= n:
        return _qr_square_grad(gQ, gR, Q, R)
    # wide: A = Q [R1 | R2] with X = Q R1 square and Y = Q R2; gY = Q gR2, gX as for square with gQ + Y gR2^T
    Y = matmul(Q, R.narrow(-1, m, n - m))
    gR1, gR2 = gR.narrow(-1, 0, m), gR.narrow(-1, m, n - m)
    gX = _qr_square_grad(gQ + matmul(Y, _mT(gR2)), gR1, Q, R.narrow(-1, 0, m))
    return cat([gX, matmul(Q, gR2)], -1)


_QR = defop("linalg_qr", lambda A, mode, layout: layout.pack(*torch.linalg.qr(A, mode=mode)), _qr_grad,
            saves=(), saves_out=True)


def _qr_parts(op, A, mode):
    _check_matrix(op, A)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"neuronix.{op}: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    shape = tuple(unwrap(A).shape)
    m, n = shape[-2:]
    k = min(m, n)
    q_cols = {"reduced": k, "complete": m, "r": 0}[mode]
    r_rows = m if mode == "complete" else k
    layout = Layout(shape[:-2], ((m if mode != "r" else 0, q_cols), (r_rows, n)))
    return layout.unpack(apply(_QR, A, mode=mode, layout=layout))


@public(namespace="linalg")
def qr(A, mode="reduced"):
    """``torch.linalg.qr``: ``(Q, R)``, ``Q`` orthonormal columns, ``R`` upper triangular; ``mode`` 'reduced',
    'complete' or 'r' (then Q is empty and there is no gradient)."""
    return Qr(*_qr_parts("linalg.qr", A, mode))


@public(name="qr")
def torch_qr(input, some=True):
    """``torch.qr`` (deprecated in torch): ``linalg.qr`` with ``some=False`` meaning mode 'complete'; where the
    installed torch removed it (2.14), torch's error."""
    if _QR_REMOVED:
        torch.qr(unwrap(input), some=some)
    return TorchQr(*_qr_parts("qr", input, "reduced" if some else "complete"))


# ----- pinv ----------------------------------------------------------------------------------------
def _pinv_grad(g, out, A, atol, rtol, hermitian):
    """torch's ``pinv_backward`` (real), in the form that multiplies the smaller matrices."""
    m, n = A.shape[-2], A.shape[-1]
    pinvA = out
    pinvAh, gh = _mT(pinvA), _mT(g)
    if m <= n:
        K = matmul(gh, pinvA)
        KpinvAh = matmul(K, pinvAh)
        return (-_mT(matmul(pinvA, K)) + KpinvAh - matmul(matmul(A, pinvA), KpinvAh)
                + matmul(matmul(pinvAh, pinvA), gh - matmul(K, A)))
    K = matmul(pinvA, gh)
    pinvAhK = matmul(pinvAh, K)
    return (-_mT(matmul(K, pinvA)) + matmul(matmul(gh - matmul(A, K), pinvA), pinvAh) + pinvAhK
            - matmul(matmul(pinvAhK, pinvA), A))


_PINV = defop("linalg_pinv",
              lambda A, atol, rtol, hermitian: torch.linalg.pinv(A, atol=atol, rtol=rtol, hermitian=hermitian),
              _pinv_grad, saves_out=True)


@public(namespace="linalg")
def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """``torch.linalg.pinv``: the Moore-Penrose pseudo-inverse (singular values below
    ``max(atol, rtol * S_max)`` treated as zero), with torch's gradient."""
    _check_matrix("linalg.pinv", A)
    return apply(_PINV, A, atol=unwrap(atol), rtol=unwrap(rtol), hermitian=hermitian)


@public(name="pinverse")
def pinverse(input, rcond=1e-15):
    """``torch.pinverse``: ``linalg.pinv`` with a relative cutoff ``rcond``."""
    return pinv(input, rtol=rcond)


# ----- matrix exponential --------------------------------------------------------------------------
def _matrix_exp_grad(g, out, A):
    """torch's ``linalg_matrix_exp_differential`` (adjoint): the upper-right block of
    ``exp([[A^T, g], [0, A^T]])``."""
    n = A.shape[-1]
    At = _mT(A)
    zeros = torch.zeros_like(unwrap(g))
    block = cat([cat([At, g], -1), cat([zeros, At], -1)], -2)
    return matrix_exp(block).narrow(-2, 0, n).narrow(-1, n, n)


_MATRIX_EXP = defop("linalg_matrix_exp", torch.linalg.matrix_exp, _matrix_exp_grad)


@public(namespace="linalg", name="matrix_exp")
def matrix_exp(A):
    """``torch.linalg.matrix_exp`` (and ``torch.matrix_exp``): the matrix exponential of square matrices."""
    _check_square("linalg.matrix_exp", A)
    return apply(_MATRIX_EXP, A)


public(matrix_exp, name="matrix_exp")
