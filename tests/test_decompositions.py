"""Linear algebra behaviour the mirrors do not reach: errors, result types, singular and degenerate inputs,
unused outputs of multi-output factorisations, and the gradient of linalg.cond where torch's own raises."""

from __future__ import annotations

import math

import pytest
import torch

import neuronix as nx


def _pair(x, requires_grad=True):
    t = x.detach().clone().double().requires_grad_(requires_grad)
    return t, nx.Tensor(t.detach().clone(), requires_grad=requires_grad)


def _grad(out, x, **kw):
    lib = nx if isinstance(x, nx.Tensor) else torch
    (g,) = lib.autograd.grad(out, x, **kw)
    return g.data if isinstance(g, nx.Tensor) else g


WELL = torch.tensor([[4.0, 1.0, -0.5], [0.3, 3.0, 0.2], [-1.0, 0.5, 5.0]], dtype=torch.float64)


# ----- results carry torch's named-tuple fields ---------------------------------------------------
@pytest.mark.parametrize("call, fields", [
    (lambda lib, a: lib.linalg.svd(a), ("U", "S", "Vh")),
    (lambda lib, a: lib.svd(a), ("U", "S", "V")),
    (lambda lib, a: lib.linalg.eigh(a + a.mT), ("eigenvalues", "eigenvectors")),
    (lambda lib, a: lib.linalg.qr(a), ("Q", "R")),
    (lambda lib, a: lib.linalg.slogdet(a), ("sign", "logabsdet")),
    (lambda lib, a: lib.linalg.inv_ex(a), ("inverse", "info")),
    (lambda lib, a: lib.linalg.cholesky_ex(a @ a.mT), ("L", "info")),
    (lambda lib, a: lib.linalg.solve_ex(a, a), ("result", "info")),
    (lambda lib, a: lib.linalg.lstsq(a, a), ("solution", "residuals", "rank", "singular_values")),
])
def test_named_fields_and_values_as_torch(call, fields):
    t, n = _pair(WELL, requires_grad=False)
    expected, got = call(torch, t), call(nx, n)
    assert got._fields == fields
    assert all(hasattr(expected, f) for f in fields) and type(got).__name__ == type(expected).__name__
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and tuple(g.shape) == tuple(e.shape)
        assert torch.allclose(g.data, e, equal_nan=True)


# ----- errors as torch's ------------------------------------------------------------------------
def test_singular_inverse_and_non_positive_definite_cholesky_raise():
    singular = nx.Tensor(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(RuntimeError, match="linalg_inv"):
        nx.linalg.inv(singular)
    with pytest.raises(RuntimeError, match="cholesky"):
        nx.linalg.cholesky(nx.Tensor(-torch.eye(2)))
    L, info = nx.linalg.cholesky_ex(nx.Tensor(-torch.eye(2)))
    assert int(info.data) == torch.linalg.cholesky_ex(-torch.eye(2)).info.item() > 0
    assert int(nx.linalg.inv_ex(singular).info.data) > 0


@pytest.mark.parametrize("call", [
    lambda: nx.linalg.inv(nx.Tensor(torch.ones(2, 3))),
    lambda: nx.linalg.det(nx.Tensor(torch.ones(3))),
    lambda: nx.linalg.svd(nx.Tensor(torch.ones(3))),
    lambda: nx.trace(nx.Tensor(torch.ones(2, 2, 2))),
    lambda: nx.linalg.cross(nx.Tensor(torch.ones(3)), nx.Tensor(torch.ones(1, 3))),
    lambda: nx.linalg.cross(nx.Tensor(torch.ones(4)), nx.Tensor(torch.ones(4))),
    lambda: nx.addmm(nx.Tensor(torch.ones(3, 3)), nx.Tensor(torch.ones(2, 2)), nx.Tensor(torch.ones(2, 2))),
    lambda: nx.linalg.matrix_norm(nx.Tensor(torch.ones(2, 2)), ord=3),
    lambda: nx.linalg.qr(nx.Tensor(torch.ones(2, 2)), mode="full"),
])
def test_invalid_arguments_raise_as_torch(call):
    with pytest.raises(RuntimeError):
        call()


def test_qr_mode_r_has_no_gradient_as_torch():
    t, n = _pair(WELL)
    with pytest.raises(RuntimeError, match="mode='r'"):
        torch.linalg.qr(t, mode="r").R.sum().backward()
    with pytest.raises(RuntimeError, match="mode='r'"):
        nx.linalg.qr(n, mode="r").R.sum().backward()


# ----- degenerate inputs ------------------------------------------------------------------------
def test_det_of_a_singular_matrix_plain_zeros_recorded_cofactors_as_torch():
    t, n = _pair(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    for create_graph in (False, True):
        expected = _grad(torch.linalg.det(t), t, create_graph=create_graph)
        got = _grad(nx.linalg.det(n), n, create_graph=create_graph)
        assert torch.allclose(got, expected.detach()), (create_graph, got, expected)
    assert not torch.allclose(expected, torch.zeros(2, 2, dtype=torch.float64))  # the cofactors, not zeros


def test_svdvals_and_eigvalsh_at_repeated_values_finite_as_torch():
    """Only S (eigenvalues) used: torch skips the 1 / (s_i^2 - s_j^2) terms, so the identity is no problem."""
    t, n = _pair(torch.eye(3))
    assert torch.equal(_grad(nx.linalg.svdvals(n).sum(), n), _grad(torch.linalg.svdvals(t).sum(), t))
    assert torch.equal(_grad(nx.linalg.eigvalsh(n).sum(), n), _grad(torch.linalg.eigvalsh(t).sum(), t))
    assert torch.equal(_grad(nx.linalg.svd(n).S.sum(), n), torch.eye(3, dtype=torch.float64))


def test_addmm_beta_zero_ignores_nan_input_and_gives_it_zero_gradient():
    t_in, n_in = _pair(torch.full((2, 2), math.nan))
    t_a, n_a = _pair(torch.ones(2, 3))
    t_b, n_b = _pair(torch.ones(3, 2))
    expected = torch.addmm(t_in, t_a, t_b, beta=0)
    got = nx.addmm(n_in, n_a, n_b, beta=0)
    assert torch.equal(got.data, expected.detach())
    assert torch.equal(_grad(got.sum(), n_in), _grad(expected.sum(), t_in))


def test_matrix_power_zero_is_identity_with_zero_gradient_in_the_graph():
    t, n = _pair(WELL)
    out = nx.linalg.matrix_power(n, 0)
    assert torch.equal(out.data, torch.eye(3, dtype=torch.float64))
    assert torch.equal(_grad(out.sum(), n), _grad(torch.linalg.matrix_power(t, 0).sum(), t))


def test_multi_output_parts_are_independent_views_of_one_result():
    """Using U alone, Vh alone or S alone: each gets torch's gradient (the others' slots are zero)."""
    t, n = _pair(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    for part in (0, 1, 2):
        expected = _grad(torch.linalg.svd(t, full_matrices=False)[part].abs().sum(), t)
        got = _grad(nx.linalg.svd(n, full_matrices=False)[part].abs().sum(), n)
        assert torch.allclose(got, expected, atol=1e-12), part


@pytest.mark.parametrize("p", ["fro", 1, -1, math.inf, -math.inf])
def test_cond_gradient_where_torchs_backward_raises(p):
    """torch.linalg.cond(A, p) cannot be differentiated in torch 2.13 for these p (an in-place write on
    linalg_inv_ex's output): neuronix's gradient equals torch's of norm(A, p) * norm(inv(A), p)."""
    t, n = _pair(WELL)
    expected = _grad(torch.linalg.matrix_norm(t, p) * torch.linalg.matrix_norm(torch.linalg.inv(t), p), t)
    assert torch.allclose(_grad(nx.linalg.cond(n, p), n), expected, atol=1e-12)


def test_matrix_rank_is_an_integer_count_without_gradient():
    n = nx.Tensor(torch.tensor([[1.0, 2.0], [2.0, 4.0]]), requires_grad=True)
    rank = nx.linalg.matrix_rank(n)
    assert rank.dtype == torch.int64 and int(rank.data) == 1 and not rank.requires_grad


def test_cross_default_dim_is_the_first_of_size_three_as_torch():
    t_a, n_a = _pair(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    t_b, n_b = _pair(torch.randn(3, 3, generator=torch.Generator().manual_seed(2)))
    with pytest.warns(UserWarning):
        expected = torch.cross(t_a, t_b)
    assert torch.allclose(nx.cross(n_a, n_b).data, expected.detach())


def test_ldl_records_and_raises_only_on_backward_as_torch():
    t, n = _pair(WELL)
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.linalg.ldl_factor(t).LD.sum().backward()
    LD = nx.linalg.ldl_factor(n).LD
    assert LD.requires_grad
    with pytest.raises(RuntimeError, match="linalg_ldl_factor_ex is not implemented"):
        LD.sum().backward()


def test_lu_factor_raises_at_a_singular_matrix_and_lu_factor_ex_reports_it():
    singular = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(RuntimeError):
        torch.linalg.lu_factor(singular)
    with pytest.raises(RuntimeError, match="zero on its diagonal"):
        nx.linalg.lu_factor(nx.Tensor(singular))
    assert int(nx.linalg.lu_factor_ex(nx.Tensor(singular)).info.data) == torch.linalg.lu_factor_ex(singular).info.item()


def test_solve_with_a_singular_matrix_raises_in_forward_as_torch():
    singular = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(RuntimeError):
        torch.linalg.solve(singular, torch.ones(2))
    with pytest.raises(RuntimeError, match="singular"):
        nx.linalg.solve(nx.Tensor(singular), nx.Tensor(torch.ones(2)))
    result, info = nx.linalg.solve_ex(nx.Tensor(singular), nx.Tensor(torch.ones(2)))
    assert int(info.data) == torch.linalg.solve_ex(singular, torch.ones(2)).info.item() > 0


@pytest.mark.parametrize("p", ["fro", 1, math.inf])
def test_cond_of_a_singular_matrix_is_inf_without_error_as_torch(p):
    singular = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    expected = torch.linalg.cond(singular, p)
    assert torch.isinf(expected)
    assert torch.equal(nx.linalg.cond(nx.Tensor(singular), p).data, expected)



@pytest.mark.parametrize("call", [
    lambda lib, a: (lib.cholesky(a),),
    lambda lib, a: (a.cholesky(upper=True),),
    lambda lib, a: tuple(lib.qr(a, some=False)),
    lambda lib, a: tuple(a.qr()),
])
def test_cholesky_and_qr_follow_the_installed_torch(call):
    """torch 2.13 computes torch.cholesky and torch.qr; torch 2.14 removed them (its error, whatever the input)."""
    a = torch.randn(3, 3, dtype=torch.float64)
    a = a @ a.mT + 3 * torch.eye(3, dtype=torch.float64)
    try:
        expected = call(torch, a)
    except RuntimeError as err:
        assert "is now removed" in str(err)
        with pytest.raises(RuntimeError) as got:
            call(nx, nx.Tensor(a))
        assert str(got.value) == str(err)
        return
    got = call(nx, nx.Tensor(a))
    assert all(torch.allclose(g.data, e) for g, e in zip(got, expected, strict=True))
