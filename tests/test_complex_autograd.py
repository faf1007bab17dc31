"""Complex values in the graph: torch's conjugate convention, the engine's real part, and the refusals.

The conformance mirrors (conformance/mirrors/fft.py) compare every complex helper with torch on
drawn inputs; these tests pin what they do not: which ops refuse complex values and how, the
implicit-gradient error, leaves, hooks on complex intermediates, and accumulation into real leaves.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx


def leaves(*shape, seed=0):
    """Two real leaves (real and imaginary parts) in both libraries."""
    gen = torch.Generator().manual_seed(seed)
    re, im = torch.randn(*shape, generator=gen, dtype=torch.float64), torch.randn(*shape, generator=gen, dtype=torch.float64)
    return (nx.Tensor(re.clone(), requires_grad=True), nx.Tensor(im.clone(), requires_grad=True),
            re.clone().requires_grad_(), im.clone().requires_grad_())


def close(actual, expected):
    torch.testing.assert_close(actual.data if isinstance(actual, nx.Tensor) else actual, expected.detach(),
                               rtol=1e-10, atol=1e-12)


def test_gradient_of_a_complex_intermediate_is_dL_dre_plus_i_dL_dim():
    nre, nim, tre, tim = leaves(3)
    z, tz = nx.complex(nre, nim), torch.complex(tre, tim)
    z.retain_grad()
    tz.retain_grad()
    (z.real * 2 + z.imag * 3).sum().backward()
    (tz.real * 2 + tz.imag * 3).sum().backward()
    close(z.grad, tz.grad)
    assert z.grad.dtype == torch.complex128
    close(z.grad, torch.full((3,), 2 + 3j, dtype=torch.complex128))
    close(nre.grad, tre.grad)
    close(nim.grad, tim.grad)


def test_a_real_leaf_under_a_complex_result_gets_the_real_part_and_keeps_its_dtype():
    x = nx.Tensor(torch.randn(6, dtype=torch.float64), requires_grad=True)
    t = x.data.clone().requires_grad_()
    nx.fft.fft(x).abs().sum().backward()
    torch.fft.fft(t).abs().sum().backward()
    assert x.grad.dtype == torch.float64
    close(x.grad, t.grad)


def test_second_derivatives_through_complex_intermediates():
    nre, nim, tre, tim = leaves(5, seed=1)
    (gn,) = nx.autograd.grad((nx.fft.fft(nx.complex(nre, nim)).abs() ** 3).sum(), nre, create_graph=True)
    (gt,) = torch.autograd.grad((torch.fft.fft(torch.complex(tre, tim)).abs() ** 3).sum(), tre, create_graph=True)
    close(gn, gt)
    close(nx.autograd.grad(gn.sum(), nim)[0], torch.autograd.grad(gt.sum(), tim)[0])


def test_backward_of_a_complex_output_without_gradient_raises_as_torch():
    nre, nim, tre, tim = leaves(())
    with pytest.raises(RuntimeError, match="real scalar outputs"):
        torch.complex(tre, tim).backward()
    with pytest.raises(RuntimeError, match="real scalar outputs"):
        nx.complex(nre, nim).backward()


def test_backward_of_a_complex_output_with_a_gradient():
    nre, nim, tre, tim = leaves(4, seed=2)
    g = torch.randn(4, dtype=torch.complex128)
    nx.fft.ifft(nx.complex(nre, nim)).backward(nx.Tensor(g))
    torch.fft.ifft(torch.complex(tre, tim)).backward(g)
    close(nre.grad, tre.grad)
    close(nim.grad, tim.grad)


def test_an_op_without_complex_rules_refuses_a_complex_result_naming_the_ops_that_have_them():
    nre, nim, _, _ = leaves(3)
    z = nx.complex(nre, nim)
    with pytest.raises(RuntimeError, match=r"neuronix\.tan: the result is complex .* fft\.fft.* mul"):
        z.tan()
    with pytest.raises(RuntimeError, match="real numbers only"):  # a tensor exponent: no complex rules
        z ** z


def test_an_op_without_complex_rules_refuses_a_complex_input_with_a_real_result():
    nre, nim, _, _ = leaves(3)
    z = nx.complex(nre, nim)
    with pytest.raises(RuntimeError, match="an input is complex"):
        z.to(torch.float64)
    with nx.no_grad():  # nothing recorded: the value alone, as torch
        assert z.tan().dtype == torch.complex128


def test_complex_leaves_still_cannot_require_grad():
    with pytest.raises(RuntimeError, match="complex"):
        nx.Tensor(torch.zeros(2, dtype=torch.complex64), requires_grad=True)


def test_the_linear_ops_with_real_coefficients_carry_complex_gradients():
    nre, nim, tre, tim = leaves(4, 3, seed=3)
    other = torch.randn(4, 3, dtype=torch.complex128)

    def f(lib, re, im):
        z = lib.complex(re, im)
        w = (-(z + other) - z).roll(1, 0).flip(1) + re  # a real tensor into a complex sum too
        w = lib.cat([w[1:, ::2], w[:1, :2]], 0).reshape(2, 4).permute(1, 0).transpose(0, 1).unsqueeze(0)
        w = lib.stack([w.squeeze(0), w[0]]).movedim(0, 2).expand(3, 2, 4, 2).sum(0) + w[0, 1, 1]
        return (lib.view_as_real(w) ** 2).sum()

    f(nx, nre, nim).backward()
    f(torch, tre, tim).backward()
    close(nre.grad, tre.grad)
    close(nim.grad, tim.grad)


def test_hook_on_a_complex_intermediate_sees_the_complex_gradient():
    nre, nim, tre, tim = leaves(3, seed=4)
    seen = []
    z, tz = nx.complex(nre, nim), torch.complex(tre, tim)
    z.register_hook(lambda g: seen.append(g.data.clone()))
    tz.register_hook(lambda g: seen.append(g.clone()))
    nx.angle(z).sum().backward()
    torch.angle(tz).sum().backward()
    close(seen[0], seen[1])


def test_real_and_conj_of_a_real_tensor_are_the_tensor_itself_and_imag_refuses():
    x = nx.Tensor(torch.randn(3))
    assert nx.real(x) is x and x.real is x and nx.conj(x) is x and x.conj() is x
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        nx.imag(x)
    with pytest.raises(RuntimeError, match="imag is not implemented"):
        _ = x.imag


def test_view_as_real_refuses_a_conjugate_view_as_torch_and_takes_its_parts():
    z = nx.fft.fft(nx.Tensor(torch.randn(4)))
    with pytest.raises(RuntimeError, match="view_as_real doesn't work on unresolved conjugated tensors"):
        nx.view_as_real(nx.conj(z))
    torch.testing.assert_close(nx.view_as_real(z).data, torch.view_as_real(z.data))


def test_abs_and_angle_at_zero_follow_torch():
    nre = nx.Tensor(torch.zeros(2, dtype=torch.float64), requires_grad=True)
    tre = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    for fn in ("abs", "angle"):
        (gn,) = nx.autograd.grad(getattr(nx, fn)(nx.complex(nre, nre)).sum(), nre)
        (gt,) = torch.autograd.grad(getattr(torch, fn)(torch.complex(tre, tre)).sum(), tre)
        close(gn, gt)


def test_polar_gradients_match_torch_including_a_negative_and_zero_magnitude():
    mag = torch.tensor([2.0, 0.0, -1.5], dtype=torch.float64)
    phase = torch.tensor([0.3, 1.0, -2.0], dtype=torch.float64)
    g = torch.randn(3, 2, dtype=torch.float64)
    nm, npz = nx.Tensor(mag, requires_grad=True), nx.Tensor(phase, requires_grad=True)
    tm, tp = mag.clone().requires_grad_(), phase.clone().requires_grad_()
    nx.view_as_real(nx.polar(nm, npz)).backward(nx.Tensor(g))
    torch.view_as_real(torch.polar(tm, tp)).backward(g)
    close(nm.grad, tm.grad)
    close(npz.grad, tp.grad)


# programs a user writes on spectra: in place on complex intermediates and on their real views
PROGRAMS = {
    "add_ on a spectrum": lambda lib, x: _spectrum(lib, x).add_(1).abs().sum(),
    "setitem into a spectrum": lambda lib, x: _set_first(lib.fft.fft(x)).abs().sum(),
    "mul_ on its real view": lambda lib, x: _scaled_real(lib.fft.fft(x)).abs().sum(),
    "zero_ its imaginary part, then irfft": lambda lib, x: lib.fft.irfft(_no_imag(lib.fft.rfft(x)), n=6).pow(2).sum(),
    "a slice of it updated from another": lambda lib, x: lib.view_as_real(_mixed(lib.fft.fft(x))).sum(),
    "fftshift, conj, resolve_conj": lambda lib, x: lib.view_as_real(
        lib.fft.fftshift(lib.fft.fft(x.reshape(2, 3), dim=0)).conj().resolve_conj()).sin().sum(),
    "round trip, parts and angle": lambda lib, x: (lib.fft.ifft(lib.fft.fft(x)).imag.pow(2).sum()
                                                   + lib.fft.fft(x).angle().sum()),
}


def _spectrum(lib, x):
    return lib.fft.fft(x)


def _set_first(z):
    z[0] = 0
    return z


def _scaled_real(z):
    z.real.mul_(2)
    return z


def _no_imag(z):
    z.imag.zero_()
    return z


def _mixed(z):
    z[1:4].add_(z[0])
    return z


@pytest.mark.parametrize("program", PROGRAMS)
def test_programs_on_spectra_give_torchs_first_and_second_derivatives(program):
    f = PROGRAMS[program]
    x0 = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    n, t = nx.Tensor(x0.clone(), requires_grad=True), x0.clone().requires_grad_()
    (gn,) = nx.autograd.grad(f(nx, n), n, create_graph=True)
    (gt,) = torch.autograd.grad(f(torch, t), t, create_graph=True)
    close(gn, gt)
    assert gn.requires_grad == gt.requires_grad  # a linear program's gradient is a constant, in neither graph
    if gt.requires_grad:
        close(nx.autograd.grad((gn * gn.cos()).sum(), n)[0], torch.autograd.grad((gt * gt.cos()).sum(), t)[0])
