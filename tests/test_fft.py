"""nx.fft beyond the mirrors: errors as torch's, edge sizes, views and in-place, graph composition.

The mirrors (conformance/mirrors/fft.py) compare values, gradients, second derivatives, finite
differences and forward AD on drawn inputs; these pin the cases they do not draw.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx

TRANSFORMS = ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2", "hfft2", "ihfft2",
              "fftn", "ifftn", "rfftn", "irfftn", "hfftn", "ihfftn")


def as_real(y):
    y = y.data if isinstance(y, nx.Tensor) else y
    return torch.view_as_real(y.resolve_conj()) if y.is_complex() else y


def both(name, x: torch.Tensor, **kwargs):
    """``name`` in both libraries on the same leaf, and the gradients under one upstream gradient."""
    n = nx.Tensor(x.clone(), requires_grad=True)
    t = x.clone().requires_grad_()
    yn, yt = getattr(nx.fft, name)(n, **kwargs), getattr(torch.fft, name)(t, **kwargs)
    torch.testing.assert_close(as_real(yn), as_real(yt).detach())
    up = torch.randn(as_real(yt).shape, dtype=x.dtype)
    (nx.view_as_real(yn.resolve_conj()) if yn.dtype.is_complex else yn).backward(nx.Tensor(up))
    (torch.view_as_real(yt.resolve_conj()) if yt.is_complex() else yt).backward(up)
    torch.testing.assert_close(n.grad.data, t.grad)


@pytest.mark.parametrize("name", ["fft", "rfft", "ihfft", "hfftn"])
def test_invalid_norm_raises_torchs_error_naming_the_op(name):
    x = torch.randn(4, 4)
    with pytest.raises(RuntimeError) as expected:
        getattr(torch.fft, name)(x, norm="sideways")
    with pytest.raises(RuntimeError) as got:
        getattr(nx.fft, name)(nx.Tensor(x), norm="sideways")
    assert str(expected.value) in str(got.value) and "neuronix.fft." in str(got.value)


def test_bad_sizes_and_dims_raise_as_torch():
    x = nx.Tensor(torch.randn(3, 4))
    for call in (lambda lib: lib.fft.fft(x.data if lib is torch else x, n=0),
                 lambda lib: lib.fft.fftn(x.data if lib is torch else x, s=(2, 2, 2)),
                 lambda lib: lib.fft.fft2(x.data if lib is torch else x, dim=(0, 0)),
                 lambda lib: lib.fft.rfft(x.data if lib is torch else x, dim=2),
                 lambda lib: lib.fft.irfft(x.data[:, :1] if lib is torch else x[:, :1])):
        with pytest.raises(Exception) as expected:
            call(torch)
        with pytest.raises(type(expected.value)):
            call(nx)


def test_half_is_refused_as_torchs_cpu_kernel_refuses_it():
    x = torch.randn(5, dtype=torch.float16)
    with pytest.raises(RuntimeError, match="Unsupported dtype Half"):
        torch.fft.fft(x)
    with pytest.raises(RuntimeError, match="Unsupported dtype Half"):
        nx.fft.fft(nx.Tensor(x))


@pytest.mark.parametrize("name", TRANSFORMS)
def test_non_contiguous_input_values_and_gradients(name):
    x = torch.randn(6, 10, dtype=torch.float64)[:, ::2].t()  # (5, 6), strided and transposed
    both(name, x)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9])
def test_irfft_lengths_odd_and_even_double_the_right_bins(n):
    both("irfft", torch.randn(3, 4, dtype=torch.float64), n=n)
    both("hfft", torch.randn(4, dtype=torch.float64), n=n, norm="ortho")


def test_size_one_signals_and_empty_batches():
    both("fft", torch.randn(2, 1, dtype=torch.float64))
    both("rfftn", torch.randn(1, 1, dtype=torch.float64), s=(3, 4))


def test_round_trip_under_create_graph_gives_torchs_second_derivative():
    x = torch.randn(2, 6, dtype=torch.float64)
    n, t = nx.Tensor(x.clone(), requires_grad=True), x.clone().requires_grad_()

    def loss(lib, v):
        y = lib.fft.irfftn(lib.fft.rfftn(v, norm="ortho"), s=(2, 6), norm="ortho")
        return (y.sin() * lib.fft.fft(v, n=8)[..., :6].abs()).sum()

    (gn,) = nx.autograd.grad(loss(nx, n), n, create_graph=True)
    (gt,) = torch.autograd.grad(loss(torch, t), t, create_graph=True)
    torch.testing.assert_close(gn.data, gt)
    torch.testing.assert_close(nx.autograd.grad((gn * gn).sum(), n)[0].data, torch.autograd.grad((gt * gt).sum(), t)[0])


def test_rfft_of_a_view_then_in_place_on_the_base_raises_nothing_saved():
    base = nx.Tensor(torch.randn(8, dtype=torch.float64), requires_grad=True)
    y = base * 1
    out = nx.fft.rfft(y[::2])
    y.data.add_(1)  # the transform saves no input: its gradient does not read y
    nx.view_as_real(out).sum().backward()
    t = torch.randn(8, dtype=torch.float64).requires_grad_()
    torch.view_as_real(torch.fft.rfft((t * 1)[::2])).sum().backward()
    torch.testing.assert_close(base.grad.data, t.grad)


def test_fftshift_and_ifftshift_invert_each_other_and_match_torch():
    x = torch.randn(4, 5, 3)
    for dim in (None, 0, (1, 2), -1):
        shifted = nx.fft.fftshift(nx.Tensor(x), dim=dim)
        torch.testing.assert_close(shifted.data, torch.fft.fftshift(x, dim=dim))
        torch.testing.assert_close(nx.fft.ifftshift(shifted, dim=dim).data, x)


def test_fftfreq_and_rfftfreq_are_leaves_with_torchs_values_and_options():
    for name in ("fftfreq", "rfftfreq"):
        f = getattr(nx.fft, name)(7, 0.5, dtype=torch.float64, requires_grad=True)
        assert f.is_leaf and f.requires_grad
        torch.testing.assert_close(f.data, getattr(torch.fft, name)(7, 0.5, dtype=torch.float64))
        assert getattr(nx.fft, name)(4).dtype == torch.get_default_dtype()


def test_fft_names_are_not_tensor_methods_as_in_torch():
    for name in TRANSFORMS:
        assert hasattr(torch.Tensor, name) == hasattr(nx.Tensor, name) == False  # noqa: E712
    assert sorted(nx.fft.__all__) == sorted([*TRANSFORMS, "fftshift", "ifftshift", "fftfreq", "rfftfreq"])


def test_stft_errors_are_torchs():
    x = torch.randn(3, 40)
    for kwargs in (dict(n_fft=8), dict(n_fft=0, return_complex=True), dict(n_fft=80, return_complex=True),
                   dict(n_fft=8, hop_length=0, return_complex=True),
                   dict(n_fft=8, align_to_window=True, return_complex=True)):
        with pytest.raises(RuntimeError) as expected:
            torch.stft(x, **kwargs)
        with pytest.raises(RuntimeError) as got:
            nx.stft(nx.Tensor(x), **kwargs)
        assert str(got.value) == str(expected.value)


def test_stft_align_to_window_is_not_followed_rather_than_guessed():
    with pytest.raises(NotImplementedError, match="align_to_window=True"):
        nx.stft(nx.Tensor(torch.randn(30)), 8, 2, 4, nx.Tensor(torch.rand(4)), center=False, align_to_window=True,
                return_complex=True)


@pytest.mark.filterwarnings("ignore:A window was not provided")
def test_stft_default_window_of_win_length_is_centred_in_n_fft():
    x = torch.randn(2, 30, dtype=torch.float64)
    for center in (True, False):
        got = nx.stft(nx.Tensor(x), 8, 3, 5, center=center, return_complex=True).data
        torch.testing.assert_close(got, torch.stft(x, 8, 3, 5, center=center, return_complex=True))


def test_istft_inverts_stft_and_differentiates_through_both():
    x = torch.randn(2, 30, dtype=torch.float64)
    window = torch.hann_window(8, dtype=torch.float64)
    n = nx.Tensor(x.clone(), requires_grad=True)
    spectrum = nx.stft(n, 8, 2, window=nx.Tensor(window), return_complex=True)
    back = nx.istft(spectrum, 8, 2, window=nx.Tensor(window), length=30)
    torch.testing.assert_close(back.data, x)
    (back * back).sum().backward()
    torch.testing.assert_close(n.grad.data, 2 * x)


def test_istft_errors_are_torchs():
    z = torch.randn(5, 4, dtype=torch.complex128)
    zeros = torch.zeros(8, dtype=torch.float64)
    for args, kwargs in (((z.real, 8), {}), ((z, 8), {"window": zeros}), ((z, 8), {"return_complex": True}),
                         ((z, 10), {}), ((z, 8, 9), {}), ((z[:, :1], 8), {"center": True})):
        # the installed torch's error: a real spectrum is a RuntimeError in torch 2.13, a TypeError in 2.14
        with pytest.raises((RuntimeError, TypeError)) as expected:
            torch.istft(*args, **kwargs)
        nx_args = tuple(nx.Tensor(a) if isinstance(a, torch.Tensor) else a for a in args)
        nx_kwargs = {k: nx.Tensor(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        with pytest.raises(expected.type) as got:
            nx.istft(*nx_args, **nx_kwargs)
        assert type(got.value) is expected.type and str(got.value) == str(expected.value)
