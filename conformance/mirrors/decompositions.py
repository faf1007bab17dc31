"""Mirrors of the linear algebra of ``neuronix/ops/decompositions.py``, ``linalg_factor.py`` and ``linalg_more.py``.

Inputs are drawn well-conditioned where the op's derivative blows up near singular matrices: square
matrices get ``(n + 1) * I`` added (invertible, condition number small), and the ops that read only one
triangle of a symmetric matrix (cholesky, eigh) are called on ``X X^T + I`` built inside the mirror's call
from a drawn ``X`` (torch's own OpInfo tests wrap them the same way), so finite differences see the
symmetric perturbation torch's gradient assumes. Factors with a sign freedom (SVD's and eigh's vectors)
are compared through gauge-invariant outputs (``|U|``, ``|V|``), as torch's OpInfos compare them.
Real float32/float64 only: torch's CPU linear algebra has no half kernels.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.strategies import POSITIVE, REAL, Domain, broadcast_shapes, index_tensor, method, tensor

HALF_NOTE = "torch's CPU linear algebra kernels have no float16/bfloat16 versions"
SMALL = Domain(-0.5, 0.5)


def _lib(x):
    return nx if isinstance(x, nx.Tensor) else torch


def _batch(draw) -> tuple[int, ...]:
    return draw(st.sampled_from([(), (), (2,), (1, 2)]))


def _n(draw, low: int = 1, high: int = 4) -> int:
    return draw(st.integers(low, high))


def _conditioned(draw, shape, dtype, device):
    """A square (batch of) matrix drawn in [-1, 1] plus ``(n + 1) * I``: invertible, well-conditioned."""
    n = shape[-1]
    x = tensor(draw, shape, dtype, device, Domain(-1.0, 1.0), contiguous=True)
    return x + (n + 1) * torch.eye(n, dtype=dtype, device=device)


def _spd(x):
    """``X X^T + I`` from any square ``X`` (either library): symmetric positive-definite."""
    lib = _lib(x)
    return lib.matmul(x, x.mT) + lib.eye(x.shape[-1], dtype=x.dtype)


def _well_spd(x):
    """``X X^T + (1 + |X|^2) I``: symmetric positive-definite with condition number at most 2 for any finite X
    (special values up to 20 would otherwise give float32 solves a condition number in the thousands)."""
    lib = _lib(x)
    shift = (x * x).sum((-2, -1), keepdim=True) + 1
    return lib.matmul(x, x.mT) + shift * lib.eye(x.shape[-1], dtype=x.dtype)


def _full_rank(x):
    """``x + 3 I`` (rectangular identity): full rank for the finite values special draws and stride-0 expanded
    (rank-1) inputs give, where QR's gradient (a solve with R) is otherwise undefined."""
    lib = _lib(x)
    return x + 3 * lib.eye(x.shape[-2], x.shape[-1], dtype=x.dtype)


def _op(name, nx_fn, torch_fn, sample, **kw):
    kw.setdefault("dtypes", FLOATS)
    kw.setdefault("note", HALF_NOTE)
    return OpMirror(name, nx_fn, torch_fn, sample, **kw)


def _fn_and_method(name, sample, **kw):
    return [_op(name, getattr(nx, name), getattr(torch, name), sample, **kw),
            _op(f"Tensor.{name}", method(name), method(name), sample, **kw)]


# ----- add* products -------------------------------------------------------------------------------
def _scales(draw) -> dict:
    kwargs = {}
    if draw(st.booleans()):
        kwargs["beta"] = draw(st.sampled_from([1, 0.5, -2.0, 0]))
    if draw(st.booleans()):
        kwargs["alpha"] = draw(st.sampled_from([1, 0.5, -2.0]))
    return kwargs


def _input_for(draw, out_shape, dtype, device):
    """A tensor broadcastable to ``out_shape`` (itself, trailing dims, size-1 dims or 0-d)."""
    form = draw(st.sampled_from(["full", "full", "trailing", "ones", "scalar"]))
    if form == "trailing":
        shape = out_shape[1:]
    elif form == "ones":
        shape = tuple(1 if draw(st.booleans()) else s for s in out_shape)
    elif form == "scalar":
        shape = ()
    else:
        shape = out_shape
    return tensor(draw, shape, dtype, device)


def _addmm(draw, dtype, device):
    n, k, m = _n(draw, 0), _n(draw, 0), _n(draw, 0)
    return Sample((_input_for(draw, (n, m), dtype, device), tensor(draw, (n, k), dtype, device),
                   tensor(draw, (k, m), dtype, device)), _scales(draw))


def _addmv(draw, dtype, device):
    n, k = _n(draw), _n(draw)  # torch's addmv mishandles a 0-d input with empty matrices (its backward raises)
    return Sample((_input_for(draw, (n,), dtype, device), tensor(draw, (n, k), dtype, device),
                   tensor(draw, (k,), dtype, device)), _scales(draw))


def _addr(draw, dtype, device):
    n, m = _n(draw, 0), _n(draw, 0)
    return Sample((_input_for(draw, (n, m), dtype, device), tensor(draw, (n,), dtype, device),
                   tensor(draw, (m,), dtype, device)), _scales(draw))


def _baddbmm(draw, dtype, device):
    b, n, k, m = _n(draw, 1, 3), _n(draw, 0), _n(draw, 0), _n(draw, 0)
    return Sample((_input_for(draw, (b, n, m), dtype, device), tensor(draw, (b, n, k), dtype, device),
                   tensor(draw, (b, k, m), dtype, device)), _scales(draw))


def _addbmm(draw, dtype, device):
    b, n, k, m = _n(draw, 1, 3), _n(draw, 0), _n(draw, 0), _n(draw, 0)
    return Sample((_input_for(draw, (n, m), dtype, device), tensor(draw, (b, n, k), dtype, device),
                   tensor(draw, (b, k, m), dtype, device)), _scales(draw))


for _name, _sample in {"addmm": _addmm, "addmv": _addmv, "addr": _addr, "baddbmm": _baddbmm,
                       "addbmm": _addbmm}.items():
    register(*_fn_and_method(_name, _sample))


# ----- small products ------------------------------------------------------------------------------
def _trace(draw, dtype, device):
    return Sample((tensor(draw, (_n(draw, 0), _n(draw, 0)), dtype, device),))


def _vdot(draw, dtype, device):
    n = _n(draw, 0)
    return Sample((tensor(draw, (n,), dtype, device), tensor(draw, (n,), dtype, device)))


def _cross_shapes(draw):
    (sa, sb), _ = broadcast_shapes(draw, 2, min_dims=1, max_dims=3, min_side=1, max_side=3)
    sa, sb = list(sa), list(sb)
    while len(sa) < len(sb):  # torch's cross wants equal ranks (sizes still broadcast)
        sa.insert(0, 1)
    while len(sb) < len(sa):
        sb.insert(0, 1)
    dim = draw(st.integers(-len(sa), len(sa) - 1))
    sa[dim], sb[dim] = 3, 3
    return tuple(sa), tuple(sb), dim


def _linalg_cross(draw, dtype, device):
    sa, sb, dim = _cross_shapes(draw)
    kwargs = {"dim": dim} if dim != -1 or draw(st.booleans()) else {}
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)), kwargs)


def _cross(draw, dtype, device):
    sa, sb, dim = _cross_shapes(draw)
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)), {"dim": dim})


def _dist(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2, max_dims=3)
    kwargs = {"p": draw(st.sampled_from([2, 1, 3, 0.5, math.inf]))} if draw(st.booleans()) else {}
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)), kwargs)


register(
    *_fn_and_method("trace", _trace),
    *_fn_and_method("vdot", _vdot),
    *_fn_and_method("cross", _cross),
    _op("linalg.cross", nx.linalg.cross, torch.linalg.cross, _linalg_cross),
    *_fn_and_method("dist", _dist),
)


# ----- distances, covariance -----------------------------------------------------------------------
def _cdist(mode):
    def sample(draw, dtype, device):
        batch = _batch(draw)
        p_rows, r_rows, m = _n(draw), _n(draw), _n(draw)
        kwargs = {"p": draw(st.sampled_from([2.0, 1.0, 3.0]))} if mode is None else {"compute_mode": mode}
        return Sample((tensor(draw, batch + (p_rows, m), dtype, device),
                       tensor(draw, batch + (r_rows, m), dtype, device)), kwargs)

    return sample


def _cov(draw, dtype, device):
    variables, obs = _n(draw), _n(draw, 2, 5)
    shape = (obs,) if draw(st.integers(0, 3)) == 0 else (variables, obs)
    kwargs = {}
    if draw(st.booleans()):
        kwargs["correction"] = draw(st.sampled_from([0, 1, 2]))
    if draw(st.booleans()):
        kwargs["fweights"] = index_tensor(draw, (obs,), 3, device) + 1
    if draw(st.booleans()):
        kwargs["aweights"] = tensor(draw, (obs,), dtype, device, POSITIVE)
    return Sample((tensor(draw, shape, dtype, device),), kwargs)


def _corrcoef(draw, dtype, device):
    return Sample((tensor(draw, (_n(draw), _n(draw, 2, 5)), dtype, device),))


register(
    _op("cdist", nx.cdist, torch.cdist, _cdist(None), gradgrad=False,
        note=HALF_NOTE + "; torch's _cdist_backward has no derivative (not_implemented), so no second derivatives"),
    _op("cdist[mm]", nx.cdist, torch.cdist, _cdist("use_mm_for_euclid_dist")),
    *_fn_and_method("cov", _cov),
    *_fn_and_method("corrcoef", _corrcoef),
)


# ----- inverses, determinants, solves --------------------------------------------------------------
def _square(draw, dtype, device):
    n = _n(draw, 0) if draw(st.integers(0, 9)) else 0
    return Sample((_conditioned(draw, _batch(draw) + (n, n), dtype, device),))


def _spd_sample(draw, dtype, device):
    n = _n(draw, 0) if draw(st.integers(0, 9)) else 0
    return Sample((tensor(draw, _batch(draw) + (n, n), dtype, device),))


def _on(fn, prepare):
    """``fn`` called on ``prepare(x)``: the mirror's input made well-posed inside the call, in either library."""
    return lambda x, *args, **kwargs: fn(prepare(x), *args, **kwargs)


def _on_spd(fn):
    return _on(fn, _spd)


def _matrix_exp(draw, dtype, device):
    n = _n(draw, 0)
    return Sample((tensor(draw, _batch(draw) + (n, n), dtype, device, SMALL),))


def _solve(draw, dtype, device):
    n = _n(draw)
    (ba, bb), _ = broadcast_shapes(draw, 2, max_dims=2, min_side=1, max_side=2)
    a = _conditioned(draw, tuple(ba) + (n, n), dtype, device)
    form = draw(st.sampled_from(["matrix", "vector", "batched_vector", "left"]))
    if form == "vector":
        return Sample((a, tensor(draw, (n,), dtype, device)))
    if form == "batched_vector":
        return Sample((a, tensor(draw, tuple(ba) + (n,), dtype, device)))
    k = _n(draw)
    if form == "left":
        return Sample((a, tensor(draw, tuple(bb) + (k, n), dtype, device)), {"left": False})
    return Sample((a, tensor(draw, tuple(bb) + (n, k), dtype, device)))


def _solve_triangular(draw, dtype, device):
    n, k = _n(draw), _n(draw)
    batch = _batch(draw)
    a = _conditioned(draw, batch + (n, n), dtype, device)
    left = draw(st.booleans())
    b = tensor(draw, batch + ((n, k) if left else (k, n)), dtype, device)
    return Sample((a, b), {"upper": draw(st.booleans()), "left": left, "unitriangular": draw(st.booleans())})


def _ex(index):
    """The differentiable field of an ``*_ex`` result (the info field is an int count)."""
    return lambda out: out[index]


register(
    _op("linalg.inv", nx.linalg.inv, torch.linalg.inv, _square),
    *_fn_and_method("inverse", _square),
    _op("linalg.inv_ex", nx.linalg.inv_ex, torch.linalg.inv_ex, _square),
    _op("linalg.det", nx.linalg.det, torch.linalg.det, _square),
    *_fn_and_method("det", _square),
    # on X X^T + I: torch's slogdet backward raises at a singular matrix (which special values would draw)
    _op("linalg.slogdet", _on_spd(nx.linalg.slogdet), _on_spd(torch.linalg.slogdet), _spd_sample),
    _op("slogdet", _on_spd(nx.slogdet), _on_spd(torch.slogdet), _spd_sample),
    _op("Tensor.slogdet", lambda x: _spd(x).slogdet(), lambda x: _spd(x).slogdet(), _spd_sample),
    _op("logdet", _on_spd(nx.logdet), _on_spd(torch.logdet), _spd_sample),
    _op("Tensor.logdet", lambda x: _spd(x).logdet(), lambda x: _spd(x).logdet(), _spd_sample),
    # on X X^T + I: torch's recorded solve backward raises at a singular A (special values, stride-0 inputs)
    _op("linalg.solve", _on(nx.linalg.solve, _well_spd), _on(torch.linalg.solve, _well_spd), _solve),
    _op("linalg.solve_ex", _on(nx.linalg.solve_ex, _well_spd), _on(torch.linalg.solve_ex, _well_spd), _solve),
    _op("linalg.solve_triangular", nx.linalg.solve_triangular, torch.linalg.solve_triangular, _solve_triangular),
    _op("linalg.matrix_exp", nx.linalg.matrix_exp, torch.linalg.matrix_exp, _matrix_exp),
    *_fn_and_method("matrix_exp", _matrix_exp),
)


# ----- symmetric factorisations (on X X^T + I built in the call) -----------------------------------
def _upper(draw, dtype, device):
    s = _spd_sample(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["upper"] = draw(st.booleans())
    return s


def _uplo(draw, dtype, device):
    s = _spd_sample(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["UPLO"] = draw(st.sampled_from(["L", "U"]))
    return s


def _torch_cholesky_sample(draw, dtype, device):
    s = _spd_sample(draw, dtype, device)
    if draw(st.booleans()):
        s.args = s.args + (draw(st.booleans()),)
    return s


def _eigh_output(out):
    """Eigenvalues and |eigenvectors| (each vector's sign is free)."""
    return out[0], out[1].abs()


register(
    _op("linalg.cholesky", _on_spd(nx.linalg.cholesky), _on_spd(torch.linalg.cholesky), _upper),
    _op("linalg.cholesky_ex", _on_spd(nx.linalg.cholesky_ex), _on_spd(torch.linalg.cholesky_ex), _upper,
        output=_ex(0)),
    _op("cholesky", _on_spd(nx.cholesky), _on_spd(torch.cholesky), _torch_cholesky_sample),
    _op("Tensor.cholesky", lambda x, *a: _spd(x).cholesky(*a), lambda x, *a: _spd(x).cholesky(*a),
        _torch_cholesky_sample),
    _op("linalg.eigh", _on_spd(nx.linalg.eigh), _on_spd(torch.linalg.eigh), _uplo, output=_eigh_output),
    _op("linalg.eigvalsh", _on_spd(nx.linalg.eigvalsh), _on_spd(torch.linalg.eigvalsh), _uplo),
)


# ----- svd, qr, pinv -------------------------------------------------------------------------------
def _rect(draw, dtype, device):
    return Sample((tensor(draw, _batch(draw) + (_n(draw), _n(draw)), dtype, device),))


def _conditioned_rect(draw, dtype, device):
    """A rectangular matrix with singular values near 3 or above (float32 keeps pinv's second derivative)."""
    m, n = _n(draw), _n(draw)
    a = tensor(draw, _batch(draw) + (m, n), dtype, device, Domain(-1.0, 1.0), contiguous=True)
    return Sample((a + 3 * torch.eye(m, n, dtype=dtype, device=device),))


def _svd_sample(draw, dtype, device):
    s = _rect(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["full_matrices"] = draw(st.booleans())
    return s


def _svd_output(out):
    """S and the sign-free |U|, |Vh| (only their first min(m, n) columns/rows: the rest is not unique)."""
    U, S, Vh = out
    k = S.shape[-1]
    return S, U[..., :k].abs(), Vh[..., :k, :].abs()


def _torch_svd_sample(draw, dtype, device):
    s = _rect(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["some"] = draw(st.booleans())
    return s


def _torch_svd_output(out):
    U, S, V = out
    k = S.shape[-1]
    return S, U[..., :k].abs(), V[..., :k].abs()


def _qr_sample(draw, dtype, device):
    s = _rect(draw, dtype, device)
    m, n = s.args[0].shape[-2:]
    modes = ["reduced"] + (["complete"] if m <= n else [])
    if draw(st.booleans()):
        s.kwargs["mode"] = draw(st.sampled_from(modes))
    return s


def _torch_qr_sample(draw, dtype, device):
    s = _rect(draw, dtype, device)
    m, n = s.args[0].shape[-2:]
    if m <= n and draw(st.booleans()):
        s.kwargs["some"] = False
    return s


def _pinv_sample(draw, dtype, device):
    s = _conditioned_rect(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["hermitian"] = False
    return s


register(
    _op("linalg.svd", nx.linalg.svd, torch.linalg.svd, _svd_sample, output=_svd_output),
    _op("linalg.svdvals", nx.linalg.svdvals, torch.linalg.svdvals, _rect),
    _op("svd", nx.svd, torch.svd, _torch_svd_sample, output=_torch_svd_output),
    _op("Tensor.svd", method("svd"), method("svd"), _torch_svd_sample, output=_torch_svd_output),
    _op("linalg.qr", _on(nx.linalg.qr, _full_rank), _on(torch.linalg.qr, _full_rank), _qr_sample),
    _op("qr", _on(nx.qr, _full_rank), _on(torch.qr, _full_rank), _torch_qr_sample),
    _op("Tensor.qr", lambda x, **k: _full_rank(x).qr(**k), lambda x, **k: _full_rank(x).qr(**k), _torch_qr_sample),
    _op("linalg.pinv", nx.linalg.pinv, torch.linalg.pinv, _pinv_sample),
    *_fn_and_method("pinverse", _conditioned_rect),
)


# ----- norms ---------------------------------------------------------------------------------------
def _vector_norm(draw, dtype, device):
    shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["ord"] = draw(st.sampled_from([2, 1, 3, 0.5, math.inf, -math.inf]))
    if shape and draw(st.booleans()):
        kwargs["dim"] = draw(st.integers(-len(shape), len(shape) - 1))
        kwargs["keepdim"] = draw(st.booleans())
    return Sample((tensor(draw, shape, dtype, device),), kwargs)


MATRIX_ORDS = ["fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf]


def _matrix_norm(draw, dtype, device):
    shape = _batch(draw) + (_n(draw), _n(draw))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["ord"] = draw(st.sampled_from(MATRIX_ORDS))
    if len(shape) > 2 and draw(st.booleans()):
        kwargs["dim"] = tuple(draw(st.permutations(range(len(shape))))[:2])
    if draw(st.booleans()):
        kwargs["keepdim"] = draw(st.booleans())
    return Sample((tensor(draw, shape, dtype, device),), kwargs)


def _norm(draw, dtype, device):
    form = draw(st.sampled_from(["vector", "matrix", "flat"]))
    if form == "flat":
        return Sample((tensor(draw, _batch(draw) + (_n(draw),), dtype, device),))
    if form == "vector":
        s = _vector_norm(draw, dtype, device)
        if "dim" not in s.kwargs and s.args[0].ndim != 1:
            s.kwargs.pop("ord", None)
        return s
    s = _matrix_norm(draw, dtype, device)
    s.kwargs["dim"] = s.kwargs.get("dim", (-2, -1))
    return s


def _cond(orders):
    def sample(draw, dtype, device):
        n = _n(draw)
        s = Sample((_conditioned(draw, _batch(draw) + (n, n), dtype, device),))
        if draw(st.booleans()) or None not in orders:
            s.kwargs["p"] = draw(st.sampled_from(orders))
        return s

    return sample


# torch.linalg.cond(A, p) for these p computes norm(A, p) * norm(inv(A), p) and writes in place into
# linalg_inv_ex's saved output: its backward raises (torch 2.13: "one of the variables needed for gradient
# computation has been modified by an inplace operation ... output 0 of LinalgInvEx"; repro:
# A = (torch.randn(3, 3, dtype=torch.float64) + 4 * torch.eye(3)).requires_grad_(); torch.linalg.cond(A, 'fro').backward())
COND_DEFECT = ("torch defect: torch.linalg.cond(A, p) for p in 'fro', 1, -1, inf, -inf raises on backward (an in-place "
               "write on linalg_inv_ex's saved output; repro: A = (torch.randn(3, 3, dtype=torch.float64) + "
               "4 * torch.eye(3)).requires_grad_(); torch.linalg.cond(A, 'fro').backward()); values only here, "
               "neuronix's gradient (that of norm(A, p) * norm(inv(A), p)) is checked in tests/test_decompositions.py")


register(
    _op("linalg.vector_norm", nx.linalg.vector_norm, torch.linalg.vector_norm, _vector_norm),
    _op("linalg.matrix_norm", nx.linalg.matrix_norm, torch.linalg.matrix_norm, _matrix_norm),
    _op("linalg.norm", nx.linalg.norm, torch.linalg.norm, _norm),
    _op("linalg.cond", _on(nx.linalg.cond, _full_rank), _on(torch.linalg.cond, _full_rank),
        _cond([None, 2, -2, "nuc"])),
    _op("linalg.cond[inverse]", _on(nx.linalg.cond, _full_rank), _on(torch.linalg.cond, _full_rank),
        _cond(["fro", 1, -1, math.inf, -math.inf]),
        grad=False, note=HALF_NOTE + "; " + COND_DEFECT),
)


# ----- products, powers, Vandermonde, ranks, tensor solves, least squares --------------------------
def _vecdot(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2, min_dims=1, max_dims=3, min_side=1)
    kwargs = {"dim": -1}
    if draw(st.booleans()) and len(sa) == len(sb):
        kwargs["dim"] = draw(st.integers(-len(sa), len(sa) - 1))
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)), kwargs)


def _linalg_matmul(draw, dtype, device):
    n, k, m = _n(draw), _n(draw), _n(draw)
    return Sample((tensor(draw, _batch(draw) + (n, k), dtype, device), tensor(draw, (k, m), dtype, device)))


def _linalg_diagonal(draw, dtype, device):
    shape = _batch(draw) + (_n(draw), _n(draw))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["offset"] = draw(st.integers(-2, 2))
    if len(shape) > 2 and draw(st.booleans()):
        kwargs["dim1"], kwargs["dim2"] = draw(st.permutations(range(len(shape))))[:2]
    return Sample((tensor(draw, shape, dtype, device),), kwargs)


def _multi_dot(draw, dtype, device):
    count = draw(st.integers(2, 5))
    sizes = [_n(draw) for _ in range(count + 1)]
    mats = [tensor(draw, (sizes[i], sizes[i + 1]), dtype, device) for i in range(count)]
    if draw(st.booleans()):
        mats[0] = tensor(draw, (sizes[1],), dtype, device)
    if draw(st.booleans()):
        mats[-1] = tensor(draw, (sizes[-2],), dtype, device)
    return Sample((mats,))


def _matrix_power(draw, dtype, device):
    n = _n(draw, 0)
    x = tensor(draw, _batch(draw) + (n, n), dtype, device, Domain(-0.7, 0.7), contiguous=True)
    power = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, -1, -2, -3]))
    if power < 0:
        x = x + (n + 1) * torch.eye(n, dtype=dtype, device=device)
    return Sample((x, power))


def _vander(draw, dtype, device):
    shape = _batch(draw) + (_n(draw),)
    n = _n(draw, 2, 5)  # torch rejects N <= 1
    kwargs = {"N": n} if draw(st.booleans()) else {}
    shape = shape if kwargs or shape[-1] > 1 else shape[:-1] + (n,)
    return Sample((tensor(draw, shape, dtype, device),), kwargs)


def _matrix_rank(draw, dtype, device):
    s = _rect(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["hermitian"] = False
    return s


def _tensorinv(draw, dtype, device):
    left, right = draw(st.sampled_from([((2, 3), (6,)), ((4,), (2, 2)), ((2, 2), (2, 2)), ((3,), (3,))]))
    ind = len(left)  # tensorinv inverts the map from the last dims (right) to the first ``ind`` dims (left)
    n = math.prod(left)
    a = _conditioned(draw, (n, n), dtype, device).reshape(left + right)
    return Sample((a,), {"ind": ind})


def _plus_tensor_eye(a):
    """``a`` plus 3 times the identity seen through tensorsolve's reshape (invertible also for stride-0 inputs)."""
    lib = _lib(a)
    n = int(math.isqrt(a.numel()))
    return a + 3 * lib.eye(n, dtype=a.dtype).reshape(tuple(a.shape))


def _tensorsolve(draw, dtype, device):
    form = draw(st.sampled_from([((2, 3), (6,)), ((6,), (2, 3)), ((2, 2), (4,)), ((3,), (3,))]))
    b_shape, x_shape = form
    n = math.prod(b_shape)
    a = _conditioned(draw, (n, n), dtype, device).reshape(b_shape + x_shape)
    return Sample((a, tensor(draw, b_shape, dtype, device)))


def _lstsq(draw, dtype, device):
    m, n, k = _n(draw, 2, 5), _n(draw, 1, 3), _n(draw)
    batch = _batch(draw)
    a = tensor(draw, batch + (m, n), dtype, device, REAL, contiguous=True)
    a = a + torch.eye(m, n, dtype=dtype, device=device) * 3
    return Sample((a, tensor(draw, batch + (m, k), dtype, device)))


register(
    _op("linalg.vecdot", nx.linalg.vecdot, torch.linalg.vecdot, _vecdot),
    _op("linalg.matmul", nx.linalg.matmul, torch.linalg.matmul, _linalg_matmul),
    _op("linalg.diagonal", nx.linalg.diagonal, torch.linalg.diagonal, _linalg_diagonal),
    _op("linalg.multi_dot", nx.linalg.multi_dot, torch.linalg.multi_dot, _multi_dot),
    _op("linalg.matrix_power", nx.linalg.matrix_power, torch.linalg.matrix_power, _matrix_power),
    *_fn_and_method("matrix_power", _matrix_power),
    _op("linalg.vander", nx.linalg.vander, torch.linalg.vander, _vander),
    _op("linalg.matrix_rank", nx.linalg.matrix_rank, torch.linalg.matrix_rank, _matrix_rank, grad=False,
        note=HALF_NOTE + "; an integer count: no derivative"),
    _op("linalg.tensorinv", nx.linalg.tensorinv, torch.linalg.tensorinv, _tensorinv),
    _op("linalg.tensorsolve", _on(nx.linalg.tensorsolve, _plus_tensor_eye), _on(torch.linalg.tensorsolve, _plus_tensor_eye),
        _tensorsolve),
    _op("linalg.lstsq", nx.linalg.lstsq, torch.linalg.lstsq, _lstsq, output=lambda out: out[0]),
)


# ----- LU, LDL ------------------------------------------------------------------------------------
def _lu_sample(draw, dtype, device):
    return Sample((tensor(draw, _batch(draw) + (_n(draw), _n(draw)), dtype, device),))


def _factored(draw, dtype, device):
    """``(LU, pivots)`` of a well-conditioned matrix (LU differentiable, pivots an int constant)."""
    n = _n(draw)
    a = _conditioned(draw, _batch(draw) + (n, n), dtype, device)
    LU, pivots, _ = torch.linalg.lu_factor_ex(a)  # under special values the matrix may be singular
    return LU, pivots


def _lu_solve(draw, dtype, device):
    LU, pivots = _factored(draw, dtype, device)
    n, k = LU.shape[-1], _n(draw)
    left = draw(st.booleans())
    B = tensor(draw, LU.shape[:-2] + ((n, k) if left else (k, n)), dtype, device)
    kwargs = {"left": left, "adjoint": draw(st.booleans())}
    return Sample((LU.contiguous(), pivots, B), kwargs, grad_args=(0, 2))


def _lu_unpack(draw, dtype, device):
    a = tensor(draw, _batch(draw) + (_n(draw), _n(draw)), dtype, device)
    LU, pivots = torch.linalg.lu_factor_ex(a)[:2]
    return Sample((LU.contiguous(), pivots), grad_args=(0,))


def _ldl(draw, dtype, device):
    n = _n(draw)
    s = Sample((_conditioned(draw, _batch(draw) + (n, n), dtype, device),))
    if draw(st.booleans()):
        s.kwargs["hermitian"] = draw(st.booleans())
    return s


def _ldl_solve(draw, dtype, device):
    n, k = _n(draw), _n(draw)
    a = _conditioned(draw, (n, n), dtype, device)
    LD, pivots, _ = torch.linalg.ldl_factor_ex(a)
    return Sample((LD, pivots, tensor(draw, (n, k), dtype, device)))


LDL_NOTE = HALF_NOTE + "; torch has no derivative for linalg_ldl_factor_ex / linalg_ldl_solve (values only)"
register(
    _op("linalg.lu_factor", nx.linalg.lu_factor, torch.linalg.lu_factor, _lu_sample, output=_ex(0)),
    _op("linalg.lu_factor_ex", nx.linalg.lu_factor_ex, torch.linalg.lu_factor_ex, _lu_sample, output=_ex(0)),
    _op("linalg.lu", nx.linalg.lu, torch.linalg.lu, _lu_sample, output=lambda out: (out[1], out[2])),
    _op("lu_unpack", nx.lu_unpack, torch.lu_unpack, _lu_unpack, output=lambda out: (out[1], out[2])),
    _op("linalg.lu_solve", nx.linalg.lu_solve, torch.linalg.lu_solve, _lu_solve),
    _op("linalg.ldl_factor", nx.linalg.ldl_factor, torch.linalg.ldl_factor, _ldl, grad=False, note=LDL_NOTE),
    _op("linalg.ldl_factor_ex", nx.linalg.ldl_factor_ex, torch.linalg.ldl_factor_ex, _ldl, grad=False,
        note=LDL_NOTE),
    _op("linalg.ldl_solve", nx.linalg.ldl_solve, torch.linalg.ldl_solve, _ldl_solve, grad=False, note=LDL_NOTE),
)


def _torch_lu(draw, dtype, device):
    s = _square(draw, dtype, device)
    if draw(st.booleans()):
        s.kwargs["get_infos"] = draw(st.booleans())
    return s


def _torch_lu_solve(draw, dtype, device):
    LU, pivots = _factored(draw, dtype, device)
    B = tensor(draw, LU.shape[:-2] + (LU.shape[-1], _n(draw)), dtype, device)
    return Sample((B, LU.contiguous(), pivots), grad_args=(0, 1))


register(
    *_fn_and_method("lu", _torch_lu, output=_ex(0)),
    *_fn_and_method("lu_solve", _torch_lu_solve),
)


# ----- Cholesky and triangular solves, ger ---------------------------------------------------------
def _cholesky_factor(draw, dtype, device, batch):
    """A lower (or, transposed, upper) Cholesky factor of a well-conditioned SPD matrix."""
    n = _n(draw)
    x = tensor(draw, batch + (n, n), dtype, device, Domain(-1.0, 1.0), contiguous=True)
    return torch.linalg.cholesky_ex(x @ x.mT + n * torch.eye(n, dtype=dtype, device=device)).L


def _cholesky_solve(draw, dtype, device):
    batch = _batch(draw)
    L = _cholesky_factor(draw, dtype, device, batch)
    upper = draw(st.booleans())
    B = tensor(draw, batch + (L.shape[-1], _n(draw)), dtype, device)
    return Sample((B, L.mT.contiguous() if upper else L), {"upper": upper} if upper or draw(st.booleans()) else {})


def _cholesky_inverse(draw, dtype, device):
    L = _cholesky_factor(draw, dtype, device, _batch(draw))
    upper = draw(st.booleans())
    return Sample((L.mT.contiguous() if upper else L,), {"upper": upper} if upper or draw(st.booleans()) else {})


def _triangular_solve(draw, dtype, device):
    n, k = _n(draw), _n(draw)
    batch = _batch(draw)
    A = _conditioned(draw, batch + (n, n), dtype, device)
    kwargs = {"upper": draw(st.booleans()), "transpose": draw(st.booleans()), "unitriangular": draw(st.booleans())}
    return Sample((tensor(draw, batch + (n, k), dtype, device), A), kwargs)


def _ger(draw, dtype, device):
    return Sample((tensor(draw, (_n(draw, 0),), dtype, device), tensor(draw, (_n(draw, 0),), dtype, device)))


def _triangle(a, upper=False, unitriangular=False):
    """The triangle of ``a`` the LAPACK kernel reads (torch's OpInfos wrap these ops the same way): torch's
    gradient and forward-mode formulas treat the factor as a full matrix, finite differences see one triangle."""
    part = a.triu(int(unitriangular)) if upper else a.tril(-int(unitriangular))
    if unitriangular:
        part = part + _lib(a).eye(a.shape[-1], dtype=a.dtype)
    return part


def _factor_mirrors(name, sample, position, upper_default):
    """Function and method mirrors of ``name``, its factor (argument ``position``) taken as the read triangle."""

    def wrap(fn):
        def call(*args, **kwargs):
            args = list(args)
            upper = kwargs.get("upper", upper_default)
            args[position] = _triangle(args[position], upper, kwargs.get("unitriangular", False))
            return fn(*args, **kwargs)

        return call

    fn_nx, fn_torch = getattr(nx, name), getattr(torch, name)
    return [_op(name, wrap(fn_nx), wrap(fn_torch), sample),
            _op(f"Tensor.{name}", wrap(method(name)), wrap(method(name)), sample)]


register(
    *_factor_mirrors("cholesky_solve", _cholesky_solve, 1, False),
    *_factor_mirrors("cholesky_inverse", _cholesky_inverse, 0, False),
    *_factor_mirrors("triangular_solve", _triangular_solve, 1, True),
    *_fn_and_method("ger", _ger),
)


# ----- geqrf, deprecated norms ---------------------------------------------------------------------
def _geqrf(draw, dtype, device):
    m = _n(draw)
    return Sample((tensor(draw, _batch(draw) + (m, _n(draw, 1, m)), dtype, device),))


def _nuclear_norm(draw, dtype, device):
    shape = _batch(draw) + (_n(draw), _n(draw))
    if len(shape) == 2 and draw(st.booleans()):
        return Sample((tensor(draw, shape, dtype, device),), {"keepdim": draw(st.booleans())})
    dim = tuple(draw(st.permutations(range(len(shape))))[:2])
    return Sample((tensor(draw, shape, dtype, device), dim), {"keepdim": draw(st.booleans())})


def _frobenius_norm(draw, dtype, device):
    shape = _batch(draw) + (_n(draw), _n(draw))
    dim = tuple(draw(st.permutations(range(len(shape))))[: draw(st.integers(1, 2))])
    return Sample((tensor(draw, shape, dtype, device), dim), {"keepdim": draw(st.booleans())})


GEQRF_NOTE = HALF_NOTE + "; torch has no derivative for geqrf (values only)"
register(
    *_fn_and_method("geqrf", _geqrf, grad=False, note=GEQRF_NOTE, output=_ex(0)),
    _op("nuclear_norm", nx.nuclear_norm, torch.nuclear_norm, _nuclear_norm),
    _op("frobenius_norm", nx.frobenius_norm, torch.frobenius_norm, _frobenius_norm),
)
