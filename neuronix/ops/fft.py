"""torch.fft: each transform is torch's own call, differentiated by its adjoint transform.

Every public transform runs exactly torch's function (so values, errors and kernels are torch's) and
records how it resized its input (``_Plan``). The rules, as torch's ``fft_*_backward``:

* ``fft``/``ifft``/``fftn``... (complex to complex, linear): the gradient is the adjoint transform,
  the other direction with the scaling swapped (``_ADJOINT_NORM``), then the input's resize undone;
  a real input takes the real part (the engine does, ``ops/registry.py``).
* ``rfft``/``rfftn`` (real to half spectrum): the half-spectrum gradient zero-filled to the full
  length, the complex adjoint, the real part.
* ``irfft``/``irfftn`` (half spectrum to real): ``rfftn`` of the gradient with the scaling swapped,
  the bins that stand for two of the full spectrum (1 .. n - n//2 - 1) doubled.

The rules call the public transforms and two linear helpers (``_RESIZE``, ``_DOUBLE``), all recorded,
so second derivatives come free. ``hfft*``/``ihfft*`` are ``irfft*``/``rfft*`` with a conjugate (as
torch computes them), ``fftshift`` is ``roll``. The complex path is ``ops/complex.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuronix.ops import complex as cx
from neuronix.ops.movement import roll
from neuronix.ops.registry import COMPLEX_RULES, apply, defop, public
from neuronix.tensor import Tensor, unwrap

# the scaling of the adjoint: an unscaled transform's adjoint is the unscaled other direction
_ADJOINT_NORM = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}


def _swapped(norm):
    """The other direction's name for ``norm``'s scaling; anything else as is, for torch to reject."""
    return _ADJOINT_NORM.get(norm, norm) if isinstance(norm, (str, type(None))) else norm


@dataclass(frozen=True)
class _Plan:
    """How a transform resized its input: the transformed ``dims`` (non-negative, in order), the input's
    sizes along them and the sizes it was padded or cropped to before the transform."""

    dims: tuple[int, ...]
    in_sizes: tuple[int, ...]
    sizes: tuple[int, ...]


def _dims(x: torch.Tensor, s, dim, ndim_default: int | None) -> tuple[int, ...]:
    """torch's choice of dims: ``dim`` given; else the last ``len(s)`` dims; else the default (all, or the last 2)."""
    rank = x.dim()
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
    elif s is not None:
        dims = tuple(range(rank - len(s), rank))
    elif ndim_default is None:
        dims = tuple(range(rank))
    else:
        dims = tuple(range(rank - ndim_default, rank))
    return tuple(d % max(rank, 1) for d in dims)


def _plan(kind: str, x: torch.Tensor, out: torch.Tensor, s, dim, ndim_default) -> _Plan:
    """The resize a transform of ``kind`` ("c2c", "r2c", "c2r") did, read from its input, output and arguments."""
    dims = _dims(x, s, dim, ndim_default)
    in_sizes = tuple(x.shape[d] for d in dims)
    if kind == "c2c":
        sizes = tuple(out.shape[d] for d in dims)
    elif kind == "r2c":  # the signal length along the last dim: s[-1] (or the input's), not the half spectrum
        sizes = tuple(out.shape[d] for d in dims[:-1]) + (in_sizes[-1] if s is None or s[-1] == -1 else s[-1],)
    else:  # c2r: the half spectrum of the output length
        sizes = tuple(out.shape[d] for d in dims[:-1]) + (out.shape[dims[-1]] // 2 + 1,)
    return _Plan(dims, in_sizes, sizes)


# ----- linear helpers of the rules -------------------------------------------------------------------
def _resize_forward(x, dims, sizes, back):
    pads = [0] * (2 * x.dim())
    for d, size in zip(dims, sizes):
        pads[2 * (x.dim() - 1 - d) + 1] = size - x.shape[d]  # a negative pad crops
    return torch.constant_pad_nd(x, pads, 0)


# zero-pad or crop along dims: its adjoint is the resize back
_RESIZE = defop(
    "fft_resize", _resize_forward,
    lambda g, out, x, dims, sizes, back: apply(_RESIZE, g, dims=dims, sizes=back, back=sizes), saves=(),
)


def _resize(t, dims, sizes, back):
    """``t`` padded with zeros or cropped to ``sizes`` along ``dims`` (``back``: its sizes there now)."""
    return t if sizes == back else apply(_RESIZE, t, dims=dims, sizes=sizes, back=back)


def _double_forward(x, dim, count):
    out = x.clone()
    out.narrow(dim, 1, count).mul_(2)  # those bins alone, as torch: a product with 1 would turn inf + 0i into inf + NaN i
    return out


# bins 1 .. count along dim doubled (irfft's rule): self-adjoint
_DOUBLE = defop("fft_double", _double_forward, lambda g, out, x, dim, count: apply(_DOUBLE, g, dim=dim, count=count),
                saves=())


# ----- the rules -------------------------------------------------------------------------------------
def _c2c_grad(inverse):
    adjoint = "fftn" if inverse else "ifftn"

    def rule(g, out, x, s, dim, norm, aux):
        back = _TRANSFORMS[adjoint](g, dim=aux.dims, norm=_swapped(norm))
        return _resize(back, aux.dims, aux.in_sizes, aux.sizes)

    return rule


def _r2c_grad(g, out, x, s, dim, norm, aux):
    last = aux.dims[-1]
    full = _resize(g, (last,), (aux.sizes[-1],), (g.shape[last],))  # the missing half of the spectrum: zeros
    back = _TRANSFORMS["ifftn"](full, dim=aux.dims, norm=_swapped(norm))
    return cx.real(_resize(back, aux.dims, aux.in_sizes, aux.sizes))


def _c2r_grad(g, out, x, s, dim, norm, aux):
    last = aux.dims[-1]
    half = _TRANSFORMS["rfftn"](g, dim=aux.dims, norm=_swapped(norm))
    doubled = g.shape[last] - aux.sizes[-1]  # bins 1 .. n - (n//2 + 1) each stand for two of the full spectrum
    if doubled > 0:
        half = apply(_DOUBLE, half, dim=last, count=doubled)
    return _resize(half, aux.dims, aux.in_sizes, aux.sizes)


_TRANSFORMS: dict = {}  # name -> the public function (the rules call them, recorded)
_KINDS = {"fft": "c2c", "ifft": "c2c", "rfft": "r2c", "irfft": "c2r"}
_RULES = {"fft": _c2c_grad(False), "ifft": _c2c_grad(True), "rfft": _r2c_grad, "irfft": _c2r_grad}


def _transform(base: str, suffix: str):
    """The op and public function ``torch.fft.<base><suffix>`` (suffix "", "2", "n")."""
    name = base + suffix
    kind, fn = _KINDS[base], getattr(torch.fft, name)
    default = 2 if suffix == "2" else None

    def forward(x, s, dim, norm):
        out = fn(x, s, dim, norm)
        if suffix == "":  # torch's 1-d signature: n and one dim
            return out, _plan(kind, x, out, None if s is None else (s,), dim, None)
        return out, _plan(kind, x, out, s, dim, default)

    spec = defop(f"fft.{name}", forward, _RULES[base], saves=(), aux=True)
    COMPLEX_RULES.add(spec.name)

    if suffix == "":
        def call(input, n=None, dim=-1, norm=None):
            return apply(spec, input, s=n, dim=dim, norm=norm)[0]
        doc = f"``torch.fft.{name}(input, n=None, dim=-1, norm=None)``: differentiable (adjoint transform)."
    else:
        def call(input, s=None, dim=(-2, -1) if suffix == "2" else None, norm=None):
            return apply(spec, input, s=_sizes(s), dim=_sizes(dim), norm=norm)[0]
        doc = f"``torch.fft.{name}(input, s=None, dim={call.__defaults__[1]}, norm=None)``: differentiable."
    call.__name__ = call.__qualname__ = name
    call.__doc__ = doc
    _TRANSFORMS[name] = call
    return public(call, namespace="fft")


def _sizes(v):
    """A list argument as torch takes it (a tuple; an int stays an int)."""
    return tuple(v) if isinstance(v, (list, tuple)) else v


for _base in ("fft", "ifft", "rfft", "irfft"):
    for _suffix in ("", "2", "n"):
        _transform(_base, _suffix)
globals().update(_TRANSFORMS)  # importable by name, as the functions defined below: from neuronix.ops.fft import rfft


# ----- Hermitian transforms: irfft/rfft of the conjugate, as torch computes them -----------------------
@public(namespace="fft")
def hfft(input, n=None, dim=-1, norm=None):
    """``torch.fft.hfft``: the real spectrum of a Hermitian signal given by its half, ``irfft(conj(x))``."""
    return _TRANSFORMS["irfft"](cx.conj(input), n, dim, _swapped(norm))


@public(namespace="fft")
def ihfft(input, n=None, dim=-1, norm=None):
    """``torch.fft.ihfft``: the inverse of ``hfft``, ``conj(rfft(x))`` (a conjugate view, as torch's)."""
    return cx.conj(_TRANSFORMS["rfft"](input, n, dim, _swapped(norm)))


@public(namespace="fft")
def hfft2(input, s=None, dim=(-2, -1), norm=None):
    """``torch.fft.hfft2``: ``irfft2(conj(x))`` with the scaling swapped."""
    return _TRANSFORMS["irfft2"](cx.conj(input), s, dim, _swapped(norm))


@public(namespace="fft")
def ihfft2(input, s=None, dim=(-2, -1), norm=None):
    """``torch.fft.ihfft2``: ``conj(rfft2(x))`` with the scaling swapped."""
    return cx.conj(_TRANSFORMS["rfft2"](input, s, dim, _swapped(norm)))


@public(namespace="fft")
def hfftn(input, s=None, dim=None, norm=None):
    """``torch.fft.hfftn``: ``irfftn(conj(x))`` with the scaling swapped."""
    return _TRANSFORMS["irfftn"](cx.conj(input), s, dim, _swapped(norm))


@public(namespace="fft")
def ihfftn(input, s=None, dim=None, norm=None):
    """``torch.fft.ihfftn``: ``conj(rfftn(x))`` with the scaling swapped."""
    return cx.conj(_TRANSFORMS["rfftn"](input, s, dim, _swapped(norm)))


# ----- shifts and frequencies ------------------------------------------------------------------------
def _shift(input, dim, sign: int):
    x = unwrap(input)
    dims = tuple(range(x.dim())) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    shifts = tuple(sign * (x.shape[d] // 2) for d in dims)
    return roll(input, shifts, dims)


@public(namespace="fft")
def fftshift(input, dim=None):
    """``torch.fft.fftshift``: the zero frequency to the centre (``roll`` by ``n // 2`` along ``dim``)."""
    return _shift(input, dim, 1)


@public(namespace="fft")
def ifftshift(input, dim=None):
    """``torch.fft.ifftshift``: the inverse of ``fftshift`` (``roll`` by ``-(n // 2)``)."""
    return _shift(input, dim, -1)


def _frequencies(fn, n, d, dtype, layout, device, requires_grad):
    t = fn(n, d, dtype=dtype, layout=layout, device=device)
    return Tensor(t, requires_grad=requires_grad)


@public(namespace="fft")
def fftfreq(n, d=1.0, *, dtype=None, layout=torch.strided, device=None, requires_grad=False):
    """``torch.fft.fftfreq``: the sample frequencies of an ``n``-point ``fft`` (a leaf)."""
    return _frequencies(torch.fft.fftfreq, n, d, dtype, layout, device, requires_grad)


@public(namespace="fft")
def rfftfreq(n, d=1.0, *, dtype=None, layout=torch.strided, device=None, requires_grad=False):
    """``torch.fft.rfftfreq``: the sample frequencies of an ``n``-point ``rfft`` (a leaf)."""
    return _frequencies(torch.fft.rfftfreq, n, d, dtype, layout, device, requires_grad)


COMPLEX_RULES.update((_RESIZE.name, _DOUBLE.name))

from neuronix.ops import fft_stft  # noqa: E402,F401  (torch.stft, composed of the transforms above)
