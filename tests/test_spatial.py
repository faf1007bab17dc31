"""Edge cases of the spatial nn.functional ops the conformance mirrors do not reach: torch's errors and warnings,
ties, zeros, layouts torch itself refuses, higher derivatives of the composed grid-sampler rules."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F


def leaf(t: torch.Tensor) -> nx.Tensor:
    return nx.Tensor(t.detach().clone(), requires_grad=True)


def torch_leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


# ----- pooling ------------------------------------------------------------------------------------------
def test_unbatched_max_pool3d_takes_a_channels_last_upstream_that_torch_refuses():
    x = torch.randn(3, 3, 8, 3, dtype=torch.float64)
    upstream = torch.randn(3, 2, 5, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="Unsupported memory format"):  # the torch 2.13 defect worked around
        TF.max_pool3d(torch_leaf(x), 2, padding=1).backward(upstream.contiguous(memory_format=torch.channels_last))
    xt, xn = torch_leaf(x), leaf(x)
    TF.max_pool3d(xt, 2, padding=1).backward(upstream)
    F.max_pool3d(xn, 2, padding=1).backward(nx.Tensor(upstream.contiguous(memory_format=torch.channels_last)))
    assert torch.equal(xn.grad.data, xt.grad)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_pool_ties_pick_torchs_index_and_gradient(rank):
    x = torch.zeros((2, 3) + (4,) * rank, dtype=torch.float64)  # every window one tie
    xt, xn = torch_leaf(x), leaf(x)
    t_out, t_idx = getattr(TF, f"max_pool{rank}d")(xt, 2, return_indices=True)
    n_out, n_idx = getattr(F, f"max_pool{rank}d")(xn, 2, return_indices=True)
    assert torch.equal(n_idx.data, t_idx)
    t_out.sum().backward()
    n_out.sum().backward()
    assert torch.equal(xn.grad.data, xt.grad)


def test_pool_errors_name_the_op_and_torchs_error_type():
    with pytest.raises(RuntimeError, match=r"max_pool1d: expected a 2-D .* got a 1-D"):
        F.max_pool1d(nx.Tensor(torch.randn(5)), 2)
    with pytest.raises(RuntimeError, match=r"avg_pool3d: expected a 4-D .* got a 3-D"):
        F.avg_pool3d(nx.Tensor(torch.randn(2, 3, 4)), 2)
    with pytest.raises(ValueError, match="output_size must be an int or a sequence of 3"):
        F.adaptive_avg_pool3d(nx.Tensor(torch.randn(1, 2, 3, 3, 3)), (1, 2))


def test_lp_pool_of_an_all_zero_window_has_torchs_gradient():
    """sign(s) * relu(|s|) makes the gradient 0 where a window's sum of x^p is 0 (torch's documented choice)."""
    x = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    x[0, 0, :2, :2] = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    xt, xn = torch_leaf(x), leaf(x)
    TF.lp_pool2d(xt, 2, 2).sum().backward()
    F.lp_pool2d(xn, 2, 2).sum().backward()
    assert torch.equal(xn.grad.data.isnan(), xt.grad.isnan())
    torch.testing.assert_close(xn.grad.data, xt.grad, equal_nan=True)


def test_max_unpool_checks_output_size_as_torch():
    x, idx = TF.max_pool2d(torch.randn(1, 1, 4, 4), 2, return_indices=True)
    for bad, kind in (((9, 9), "invalid output_size"), ((4, 4, 4), "should be a sequence containing 2 or 4")):
        with pytest.raises(ValueError, match=kind):
            TF.max_unpool2d(x, idx, 2, output_size=bad)
        with pytest.raises(ValueError, match=kind):
            F.max_unpool2d(nx.Tensor(x), idx, 2, output_size=bad)
    with pytest.raises(RuntimeError):  # an index beyond the output: torch's kernel refuses it
        F.max_unpool2d(nx.Tensor(x), idx + 100, 2)


# ----- interpolation --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"size": 3, "scale_factor": 2.0}, ValueError, "only one of size or scale_factor"),
    ({}, ValueError, "either size or scale_factor"),
    ({"size": 3, "align_corners": True}, ValueError, "align_corners option can only be set"),
    ({"size": 3, "recompute_scale_factor": True}, ValueError, "recompute_scale_factor is not meaningful"),
    ({"size": (3, 3, 3)}, ValueError, "same number of spatial dimensions"),
    ({"size": (3.0, 3)}, TypeError, "expected size to be one of int"),
    ({"size": 3, "mode": "trilinear"}, NotImplementedError, "Got 4D input, but trilinear mode needs 5D input"),
    ({"size": 3, "mode": "nearest", "antialias": True}, ValueError, "Anti-alias option is restricted"),
    ({"size": 3, "mode": "cubic"}, NotImplementedError, r"Input Error: .* \(got cubic\)"),
    ({"size": 3, "mode": "lanczos", "antialias": True, "align_corners": True}, ValueError, "Lanczos mode does not"),
])
def test_interpolate_raises_as_torch(kwargs, error, match):
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(error, match=match):
        TF.interpolate(x, **kwargs)
    with pytest.raises(error, match=match):
        F.interpolate(nx.Tensor(x), **kwargs)


@pytest.mark.parametrize("name", ["upsample", "upsample_nearest", "upsample_bilinear"])
def test_deprecated_upsample_names_warn_and_match_interpolate(name):
    x = torch.randn(1, 2, 3, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = getattr(F, name)(nx.Tensor(x), scale_factor=2)
    assert any("deprecated" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(got.data, getattr(TF, name)(x, scale_factor=2))


def test_interpolate_keeps_the_scale_factor_for_the_kernel_unless_recomputed():
    """A scale factor of 1.7 on 5 pixels gives 8 pixels; torch's kernel then maps with 1/1.7, not 5/8."""
    x = torch.randn(1, 1, 5, dtype=torch.float64)
    for recompute in (None, True):
        expected = TF.interpolate(x, scale_factor=1.7, mode="linear", recompute_scale_factor=recompute)
        got = F.interpolate(nx.Tensor(x), scale_factor=1.7, mode="linear", recompute_scale_factor=recompute)
        assert torch.equal(got.data, expected)
    assert not torch.equal(TF.interpolate(x, scale_factor=1.7, mode="linear"),
                           TF.interpolate(x, scale_factor=1.7, mode="linear", recompute_scale_factor=True))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic", "area"])
def test_interpolate_third_derivative_through_the_upstream(mode):
    """Each upsampling kernel's backward is differentiated by the upsampling again, to any order."""
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    u = torch.randn(1, 2, 5, 7, dtype=torch.float64)

    def third(lib, x, u, wrap):
        out = (TF if lib is torch else F).interpolate(x, size=(5, 7), mode=mode)
        (g,) = lib.autograd.grad((out * out * u).sum(), (x,), create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), (x,), create_graph=True)
        (ggg,) = lib.autograd.grad((gg * x).sum(), (x,))
        return ggg

    expected = third(torch, torch_leaf(x), u, None)
    got = third(nx, leaf(x), nx.Tensor(u), None)
    torch.testing.assert_close(got.data, expected)


# ----- grid sampling and affine grids ---------------------------------------------------------------------------
def test_grid_sample_second_derivative_with_a_constant_input():
    """The composed rule of the grid differentiates its own leaf when the input is a constant."""
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    grid = torch.rand(1, 3, 2, 2, dtype=torch.float64) * 2 - 1
    gt = torch_leaf(grid)
    (a,) = torch.autograd.grad(TF.grid_sample(x, gt, mode="bicubic", align_corners=True).pow(2).sum(), (gt,),
                               create_graph=True)
    (expected,) = torch.autograd.grad(a.pow(2).sum(), (gt,))
    gn = leaf(grid)
    (b,) = nx.autograd.grad(F.grid_sample(nx.Tensor(x), gn, mode="bicubic", align_corners=True).pow(2).sum(), (gn,),
                            create_graph=True)
    (got,) = nx.autograd.grad(b.pow(2).sum(), (gn,))
    assert torch.equal(b.data, a.detach())  # first derivative: torch's kernel, to the bit
    torch.testing.assert_close(got.data, expected)


def test_grid_sample_and_affine_grid_raise_and_warn_as_torch():
    x, grid = torch.randn(1, 1, 3, 3), torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="expected mode to be 'bilinear', 'nearest' or 'bicubic'"):
        F.grid_sample(nx.Tensor(x), nx.Tensor(grid), mode="linear", align_corners=False)
    with pytest.raises(ValueError, match="expected padding_mode"):
        F.grid_sample(nx.Tensor(x), nx.Tensor(grid), padding_mode="wrap", align_corners=False)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.grid_sample(nx.Tensor(x), nx.Tensor(grid))
    with pytest.raises(RuntimeError, match="grid_sample"):  # torch's kernel: a 3-d grid for a 2-d input
        F.grid_sample(nx.Tensor(x), nx.Tensor(torch.zeros(1, 2, 2, 2, 3)), align_corners=False)
    theta = torch.randn(1, 2, 3)
    for bad_theta, size, error, match in (
        (theta.long(), (1, 1, 2, 2), ValueError, "floating point type"),
        (theta, (1, 1, 2, 2, 2), ValueError, "shape Nx3x4"),
        (theta, (1, 1, 2), NotImplementedError, "only supports 4D and 5D sizes"),
        (theta, (1, 1, 0, 2), ValueError, "non-zero, positive output size"),
    ):
        with pytest.raises(error, match=match):
            TF.affine_grid(bad_theta, size, align_corners=False)
        with pytest.raises(error, match=match):
            F.affine_grid(nx.Tensor(bad_theta), size, align_corners=False)


# ----- shuffles and fold ---------------------------------------------------------------------------------------
def test_shuffles_raise_torchs_errors_naming_the_op():
    with pytest.raises(RuntimeError, match="pixel_shuffle.*divisible by the square of upscale_factor"):
        F.pixel_shuffle(nx.Tensor(torch.randn(1, 5, 2, 2)), 2)
    with pytest.raises(RuntimeError, match="channel_shuffle.*divisible by groups"):
        nx.channel_shuffle(nx.Tensor(torch.randn(1, 5, 2)), 3)


def test_fold_of_unfold_counts_each_pixel_once_per_block_and_is_its_adjoint():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    cols = F.unfold(leaf(x), (2, 3), padding=1, stride=(2, 1))
    back = F.fold(cols, (5, 6), (2, 3), padding=1, stride=(2, 1))
    expected = TF.fold(TF.unfold(x, (2, 3), padding=1, stride=(2, 1)), (5, 6), (2, 3), padding=1, stride=(2, 1))
    assert torch.equal(back.data, expected)
    y = torch.randn(cols.shape, dtype=torch.float64)  # <unfold x, y> == <x, fold y>
    torch.testing.assert_close((cols.data * y).sum(), (x * F.fold(nx.Tensor(y), (5, 6), (2, 3), padding=1,
                                                                    stride=(2, 1)).data).sum())


def test_grid_sample_backward_where_torchs_kernel_crashes_gives_the_composed_gradients():
    """torch 2.13's bilinear 2-d backward kernel segfaults on NaN grid values with border padding; neuronix
    falls back to its composed sampler: the output is the kernel's, each finite grid point's gradient is torch's."""
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    grid = torch.tensor([[[[float("nan"), 0.3], [0.2, -0.7], [-0.5, 0.5]]]], dtype=torch.float64)
    xn, gn = leaf(x), leaf(grid)
    out = F.grid_sample(xn, gn, padding_mode="border", align_corners=False)
    (gx, gg) = nx.autograd.grad(out.sum(), (xn, gn))
    assert torch.equal(out.data, TF.grid_sample(x, grid, padding_mode="border", align_corners=False))
    finite = grid[:, :, 1:]
    gt = torch_leaf(finite)
    (expected,) = torch.autograd.grad(TF.grid_sample(x, gt, padding_mode="border", align_corners=False).sum(), (gt,))
    torch.testing.assert_close(gg.data[:, :, 1:], expected)
    assert gg.data[0, 0, 0].isnan().any() and gx.data.isnan().any()  # the NaN reaches its own gradients
