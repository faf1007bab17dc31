"""Mirrors: torch.fft and the complex helpers (``neuronix/ops/fft.py``, ``neuronix/ops/complex.py``).

A complex result is compared as its real and imaginary parts, stacked in a trailing dimension
(torch's ``view_as_real``, spelled with ``real``/``imag`` so that a conjugate view, which
``view_as_real`` refuses, compares too): values, gradients, second derivatives, finite differences
and forward AD then all run on real tensors. The harness differentiates real leaves only, so a
complex input is built inside the call from two real ones (``[complex]`` variants: ``complex(re, im)``
first), which checks the rules that receive and return complex gradients. Samples draw ``n``/``s``
smaller and larger than the input (cropping and zero padding), ``dim``/``dims`` in every form
(default, positive, negative), and every ``norm``.

dtypes: float32 and float64. torch 2.13's CPU transforms have no float16/bfloat16 kernel
("Unsupported dtype Half"), and torch's complex32 (what ``complex`` of half parts gives) has no
``real``/``imag``/``angle``/``abs`` kernels on CPU.
"""

from __future__ import annotations

import operator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.strategies import NONZERO, POSITIVE, REAL, Domain, broadcast_shapes, nonempty_shape, shape, tensor

NO_HALF = "torch 2.13's CPU fft kernels have no float16/bfloat16 (Unsupported dtype Half); complex32 lacks real/imag"
NORMS = (None, "backward", "forward", "ortho")


def parts(y):
    """A complex result as real numbers: ``(..., 2)`` real and imaginary parts, in either library."""
    lib = nx if isinstance(y, nx.Tensor) else torch
    return lib.stack((lib.real(y), lib.imag(y)), -1)


def _lib(x):
    return nx if isinstance(x, nx.Tensor) else torch


def from_parts(fn):
    """``fn(complex(re, im), ...)``: a complex input from two real leaves."""

    def call(re, im, *args, **kwargs):
        return fn(_lib(re).complex(re, im), *args, **kwargs)

    return call


def _fft(name: str):
    """``<lib>.fft.<name>`` on whichever library's tensor comes in."""

    def call(x, *args, **kwargs):
        return getattr(_lib(x).fft, name)(*((x,) + args), **kwargs)

    return call


# ----- samples -------------------------------------------------------------------------------------
def _norm(draw, kwargs: dict) -> dict:
    norm = draw(st.sampled_from(NORMS + ("omit",)))
    if norm != "omit":
        kwargs["norm"] = norm
    return kwargs


def _inputs(draw, sizes, dtype, device, complex_input: bool, domain: Domain = REAL) -> tuple:
    if complex_input:
        return tensor(draw, sizes, dtype, device, domain), tensor(draw, sizes, dtype, device, domain)
    return (tensor(draw, sizes, dtype, device, domain),)


def one_dim(complex_input: bool = False, c2r: bool = False):
    """``f(x, n=..., dim=..., norm=...)``: ``n`` crops or pads; ``c2r`` keeps the default length 2(m - 1) >= 1."""

    def sample(draw, dtype, device):
        sizes = list(nonempty_shape(draw, 1, 3, 6))
        dim = draw(st.integers(-len(sizes), len(sizes) - 1))
        kwargs = {}
        if draw(st.booleans()):
            kwargs["n"] = draw(st.integers(1, 9))
        elif c2r:
            sizes[dim] = max(sizes[dim], 2)
        if draw(st.booleans()):
            kwargs["dim"] = dim
        elif c2r and "n" not in kwargs:
            sizes[-1] = max(sizes[-1], 2)
        return Sample(_inputs(draw, sizes, dtype, device, complex_input), _norm(draw, kwargs))

    return sample


def many_dims(two: bool, complex_input: bool = False, c2r: bool = False):
    """``f(x, s=..., dim=..., norm=...)`` for the 2-d (``two``) and n-d transforms: ``s`` and ``dim`` each
    given or not; ``s`` entries crop, pad or keep (-1)."""

    def sample(draw, dtype, device):
        sizes = list(nonempty_shape(draw, 2 if two else 1, 4 if two else 3, 5))
        rank = len(sizes)
        k = 2 if two else draw(st.integers(1, rank))
        dims = tuple(draw(st.permutations(range(rank)))[:k])
        dims = tuple(d - rank if draw(st.booleans()) else d for d in dims)
        form = draw(st.sampled_from(["default", "dim", "s", "both"]))
        kwargs = {}
        if form in ("dim", "both"):
            kwargs["dim"] = dims
        elif form == "s" or (form == "default" and two):
            dims = tuple(range(rank - k, rank)) if form == "s" else (-2, -1)
        else:
            dims = tuple(range(rank))
        if form in ("s", "both"):
            kwargs["s"] = tuple(draw(st.sampled_from([-1, 1, 2, 3, 4, 6, 7])) for _ in dims)
        if c2r and (kwargs.get("s") is None or kwargs["s"][-1] == -1):
            sizes[dims[-1]] = max(sizes[dims[-1]], 2)  # the default output length 2(m - 1) must be >= 1
        return Sample(_inputs(draw, sizes, dtype, device, complex_input), _norm(draw, kwargs))

    return sample


# ----- the transforms ------------------------------------------------------------------------------
_C2R = ("irfft", "hfft")  # real results from a half spectrum
_R2C = ("rfft", "ihfft")  # real signal to half spectrum (real input only)


def _transform_mirrors(base: str) -> list[OpMirror]:
    c2r, real_only = base in _C2R, base in _R2C
    output = None if c2r else parts
    found = []
    for suffix in ("", "2", "n"):
        name = base + suffix
        if suffix == "":
            make = one_dim
        else:
            def make(complex_input=False, c2r=False, _two=suffix == "2"):
                return many_dims(_two, complex_input, c2r)
        nx_fn, torch_fn = getattr(nx.fft, name), getattr(torch.fft, name)
        found.append(OpMirror(f"fft.{name}", nx_fn, torch_fn, make(c2r=c2r), output=output, dtypes=FLOATS,
                              note=NO_HALF))
        if not real_only:
            found.append(OpMirror(f"fft.{name}[complex]", from_parts(_fft(name)), from_parts(_fft(name)),
                                  make(complex_input=True, c2r=c2r), output=output, dtypes=FLOATS, note=NO_HALF))
    return found


def shift(complex_input: bool = False):
    """``fftshift(x, dim=...)``: every dim (default), one dim or several; sizes odd, even, 0 and 1."""

    def sample(draw, dtype, device):
        sizes = shape(draw, 0, 4, 0, 5)
        kwargs = {}
        if sizes and draw(st.booleans()):
            rank = len(sizes)
            dims = draw(st.permutations(range(rank)))[: draw(st.integers(1, rank))]
            kwargs["dim"] = dims[0] if draw(st.booleans()) else tuple(dims)
        return Sample(_inputs(draw, sizes, dtype, device, complex_input), kwargs)

    return sample


def _freq(draw, dtype, device):
    return Sample((draw(st.integers(0, 9)), draw(st.sampled_from([1.0, 0.5, 2.5]))), {"dtype": dtype})


register(*(m for base in ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft") for m in _transform_mirrors(base)))
register(
    OpMirror("fft.fftshift", nx.fft.fftshift, torch.fft.fftshift, shift()),
    OpMirror("fft.ifftshift", nx.fft.ifftshift, torch.fft.ifftshift, shift()),
    OpMirror("fft.fftshift[complex]", from_parts(_fft("fftshift")), from_parts(_fft("fftshift")), shift(True),
             output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("fft.fftfreq", nx.fft.fftfreq, torch.fft.fftfreq, _freq, grad=False),
    OpMirror("fft.rfftfreq", nx.fft.rfftfreq, torch.fft.rfftfreq, _freq, grad=False),
)


# ----- the complex helpers -----------------------------------------------------------------------------
def pair(a: Domain = REAL, b: Domain = REAL):
    """Two real tensors of broadcastable shapes (``complex``, ``polar``) or one shape (the parts of a complex input)."""

    def sample(draw, dtype, device):
        s = shape(draw)
        return Sample((tensor(draw, s, dtype, device, a), tensor(draw, s, dtype, device, b)))

    return sample


def _broadcast_pair(a: Domain, b: Domain):
    def sample(draw, dtype, device):
        (sa, sb), _ = broadcast_shapes(draw, 2)
        return Sample((tensor(draw, sa, dtype, device, a), tensor(draw, sb, dtype, device, b)))

    return sample


def _view_as_complex(draw, dtype, device):
    return Sample((tensor(draw, shape(draw, 0, 3) + (2,), dtype, device, contiguous=True),))


# angle of a complex number jumps across the negative real axis (im = 0): the imaginary part keeps away
AWAY = NONZERO
NEAR_ZERO = Domain(-1.2, 1.2)
register(
    OpMirror("complex", nx.complex, torch.complex, _broadcast_pair(REAL, REAL), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("polar", nx.polar, torch.polar, _broadcast_pair(POSITIVE, REAL), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("real", from_parts(lambda z: _lib(z).real(z)), from_parts(torch.real), pair(), dtypes=FLOATS, note=NO_HALF),
    OpMirror("real[real input]", nx.real, torch.real, lambda d, t, v: Sample((tensor(d, shape(d), t, v),))),
    OpMirror("imag", from_parts(lambda z: _lib(z).imag(z)), from_parts(torch.imag), pair(), dtypes=FLOATS, note=NO_HALF),
    OpMirror("Tensor.real", from_parts(lambda z: z.real), from_parts(lambda z: z.real), pair(), dtypes=FLOATS, note=NO_HALF),
    OpMirror("Tensor.imag", from_parts(lambda z: z.imag), from_parts(lambda z: z.imag), pair(), dtypes=FLOATS, note=NO_HALF),
    OpMirror("conj", from_parts(lambda z: _lib(z).conj(z)), from_parts(torch.conj), pair(), output=parts, dtypes=FLOATS,
             note=NO_HALF),
    OpMirror("Tensor.conj", from_parts(lambda z: z.conj()), from_parts(lambda z: z.conj()), pair(), output=parts,
             dtypes=FLOATS, note=NO_HALF),
    OpMirror("conj[real input]", nx.conj, torch.conj, lambda d, t, v: Sample((tensor(d, shape(d), t, v),))),
    OpMirror("conj_physical", from_parts(lambda z: _lib(z).conj_physical(z)), from_parts(torch.conj_physical), pair(),
             output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("Tensor.conj_physical", from_parts(lambda z: z.conj_physical()), from_parts(lambda z: z.conj_physical()),
             pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
    # in place on a complex non-leaf (the derived in-place mirror would take conj_physical's two real parts)
    OpMirror("Tensor.conj_physical_", from_parts(lambda z: z.conj_physical_()), from_parts(lambda z: z.conj_physical_()),
             pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("conj_physical[real input]", nx.conj_physical, torch.conj_physical,
             lambda d, t, v: Sample((tensor(d, shape(d), t, v),))),
    OpMirror("resolve_conj", from_parts(lambda z: _lib(z).resolve_conj(_lib(z).conj(z))),
             from_parts(lambda z: torch.resolve_conj(torch.conj(z))), pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("Tensor.resolve_conj", from_parts(lambda z: z.conj().resolve_conj()),
             from_parts(lambda z: z.conj().resolve_conj()), pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("resolve_conj[real input]", nx.resolve_conj, torch.resolve_conj,
             lambda d, t, v: Sample((tensor(d, shape(d), t, v),))),
    OpMirror("view_as_real", from_parts(lambda z: _lib(z).view_as_real(z)), from_parts(torch.view_as_real), pair(),
             dtypes=FLOATS, note=NO_HALF),
    OpMirror("view_as_complex", nx.view_as_complex, torch.view_as_complex, _view_as_complex, output=parts,
             dtypes=FLOATS, note=NO_HALF),
    OpMirror("angle", nx.angle, torch.angle, lambda d, t, v: Sample((tensor(d, shape(d), t, v, NONZERO),))),
    OpMirror("Tensor.angle", lambda x: x.angle(), lambda x: x.angle(),
             lambda d, t, v: Sample((tensor(d, shape(d), t, v, NONZERO),))),
    OpMirror("angle[complex]", from_parts(lambda z: _lib(z).angle(z)), from_parts(torch.angle), pair(REAL, AWAY),
             dtypes=FLOATS, note=NO_HALF),
    OpMirror("abs[complex]", from_parts(lambda z: _lib(z).abs(z)), from_parts(torch.abs), pair(REAL, AWAY),
             dtypes=FLOATS, note=NO_HALF),
)


# ----- products, quotients and reductions of complex values (their complex rules: COMPLEX_TWINS, COMPLEX_RULES) -----
def operands(real_second: bool = False, second: Domain = REAL, first: Domain = REAL):
    """A complex operand's two parts and a broadcastable second operand (two parts, or one real tensor)."""

    def sample(draw, dtype, device):
        (sa, sb), _ = broadcast_shapes(draw, 2)
        parts_ = (tensor(draw, sa, dtype, device, first), tensor(draw, sa, dtype, device, first))
        other = (tensor(draw, sb, dtype, device, second),)
        return Sample(parts_ + (other if real_second else other + (tensor(draw, sb, dtype, device, second),)))

    return sample


def _both_complex(op):
    return lambda a, b, c, d: op(_lib(a).complex(a, b), _lib(c).complex(c, d))


def _complex_then_real(op):
    return lambda a, b, c: op(_lib(a).complex(a, b), c)


def _real_then_complex(op):
    return lambda a, b, c: op(c, _lib(a).complex(a, b))


def _reduced(name):
    return lambda a, b: getattr(_lib(a).complex(a, b), name)(-1) if a.ndim else getattr(_lib(a).complex(a, b), name)()


# |w| >= 0.2 for a divisor w = c + id: its parts keep away from 0
register(
    OpMirror("mul[complex operands]", _both_complex(operator.mul), _both_complex(operator.mul), operands(),
             output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("mul[complex by real]", _complex_then_real(operator.mul), _complex_then_real(operator.mul),
             operands(real_second=True), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("div[complex operands]", _both_complex(operator.truediv), _both_complex(operator.truediv),
             operands(second=NONZERO), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("div[real by complex]", _real_then_complex(operator.truediv), _real_then_complex(operator.truediv),
             operands(real_second=True, first=NONZERO), output=parts, dtypes=FLOATS, note=NO_HALF),
    *(OpMirror(f"{name}[complex]", from_parts(lambda z, _n=name: getattr(_lib(z), _n)(z)),
               from_parts(getattr(torch, name)), pair(REAL, AWAY), output=parts, dtypes=FLOATS, note=NO_HALF)
      for name in ("exp", "log", "sqrt", "reciprocal", "expm1", "log1p", "square", "sin", "cos", "sinh", "cosh")),
    # (the imaginary part off the branch cuts of log, log1p and sqrt); tanh and sigmoid: |im| < 1.2 keeps off their poles
    *(OpMirror(f"{name}[complex]", from_parts(lambda z, _n=name: getattr(_lib(z), _n)(z)),
               from_parts(getattr(torch, name)), pair(NEAR_ZERO, NEAR_ZERO), output=parts, dtypes=FLOATS, note=NO_HALF)
      for name in ("tanh", "sigmoid")),
    OpMirror("pow[complex base]", lambda re, im, e: _lib(re).complex(re, im) ** e,
             lambda re, im, e: torch.complex(re, im) ** e,
             lambda d, t, v: Sample(pair(REAL, AWAY)(d, t, v).args + (d(st.sampled_from([2, 3, 0, -1, 0.5, 2.5])),)),
             output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("sum[complex]", _reduced("sum"), _reduced("sum"), pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("mean[complex]", _reduced("mean"), _reduced("mean"), pair(), output=parts, dtypes=FLOATS, note=NO_HALF),
)


# ----- the short-time transform ----------------------------------------------------------------------------
def _stft(draw, dtype, device):
    """``stft(x, n_fft, hop_length, win_length, window, ...)``: the window positional so that it is differentiated."""
    length = draw(st.integers(4, 14))
    x = tensor(draw, (length,) if draw(st.booleans()) else (draw(st.integers(1, 3)), length), dtype, device)
    n_fft = draw(st.integers(2, min(length, 8)))
    # hop_length=None is torch's n_fft // 4, 0 (refused by both) below n_fft 4: only drawn where it frames
    hop = draw(st.sampled_from([None, 1, 2, 3] if n_fft >= 4 else [1, 2, 3]))
    win = draw(st.sampled_from([None, n_fft, max(1, n_fft - 1), max(1, n_fft // 2)]))
    window = tensor(draw, (n_fft if win is None else win,), dtype, device) if draw(st.booleans()) else None
    center = draw(st.booleans())
    kwargs = {"center": center, "normalized": draw(st.booleans()), "onesided": draw(st.sampled_from([None, True, False])),
              "return_complex": draw(st.sampled_from([True, True, False]))}
    if center:
        kwargs["pad_mode"] = draw(st.sampled_from(["reflect", "constant", "replicate", "circular"]))
    elif draw(st.booleans()):
        kwargs["align_to_window"] = False  # True: not followed (neuronix/ops/fft_stft.py)
    return Sample((x, n_fft, hop, win, window), kwargs)


def _real_or_parts(y):
    return parts(y) if y.dtype.is_complex else y


# torch 2.13's stft frames its input with as_strided over the input's storage, which goes wrong for a stride-0
# (expanded) input: x = torch.tensor([1.5]).expand(4).requires_grad_(); torch.stft(x, 2, 3, window=torch.ones(2),
# center=False, return_complex=True) has the right values, but its gradient under view_as_real(...).sum() is
# [0.5, 0.5, 0.5, 0.5] where x.contiguous() gives the true [2, 0, 0, 0] (and strided inputs can make its
# as_strided overrun the storage: "setStorage: ... out of bounds"). So torch's side runs on x.contiguous(),
# the same values and derivatives of a correct stft; neuronix gets the drawn layout.
STFT_NOTE = f"{NO_HALF}; torch's side on input.contiguous(): torch 2.13's stft mis-frames stride-0 and strided inputs"


def _torch_stft(x, *args, **kwargs):
    return torch.stft(x.contiguous(), *args, **kwargs)


register(
    OpMirror("stft", nx.stft, _torch_stft, _stft, output=_real_or_parts, dtypes=FLOATS, note=STFT_NOTE),
    OpMirror("Tensor.stft", lambda x, *a, **k: x.stft(*a, **k), _torch_stft, _stft, output=_real_or_parts,
             dtypes=FLOATS, note=STFT_NOTE),
)


def _istft(draw, dtype, device):
    """``istft(complex(re, im), n_fft, hop_length, win_length, window, ...)``: a positive window (its overlap-added
    square must not vanish, or both libraries refuse), every onesided/center/normalized/length/return_complex form."""
    n_fft = draw(st.integers(2, 8))
    win = draw(st.sampled_from([None, n_fft, n_fft - 1]))
    hop = draw(st.sampled_from([None, 1, 2]))
    onesided = draw(st.sampled_from([None, True, False]))
    return_complex = onesided is False and draw(st.booleans())
    size = n_fft if onesided is False else n_fft // 2 + 1
    frames = draw(st.integers(1, 5))
    sizes = (size, frames) if draw(st.booleans()) else (draw(st.integers(1, 2)), size, frames)
    window = tensor(draw, (n_fft if win is None else win,), dtype, device, POSITIVE) if draw(st.booleans()) else None
    kwargs = {"center": draw(st.booleans()), "normalized": draw(st.booleans()), "onesided": onesided,
              "return_complex": return_complex}
    if draw(st.booleans()):
        kwargs["length"] = draw(st.integers(1, n_fft + 2 * frames))
    return Sample(_inputs(draw, sizes, dtype, device, True) + (n_fft, hop, win, window), kwargs)


register(
    OpMirror("istft", from_parts(lambda z, *a, **k: _lib(z).istft(z, *a, **k)), from_parts(torch.istft), _istft,
             output=_real_or_parts, dtypes=FLOATS, note=NO_HALF),
    OpMirror("Tensor.istft", from_parts(lambda z, *a, **k: z.istft(*a, **k)), from_parts(lambda z, *a, **k: z.istft(*a, **k)),
             _istft, output=_real_or_parts, dtypes=FLOATS, note=NO_HALF),
)
