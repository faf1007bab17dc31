"""Complex tensors in the graph: torch's complex helpers, differentiable with torch's convention.

The convention (torch's "Autograd for Complex Numbers"): for a real loss ``L``, the gradient held
for a complex tensor ``z = x + iy`` is ``dL/dx + i dL/dy`` (the conjugate Wirtinger derivative,
doubled). So a holomorphic ``w = f(z)`` passes back ``g * conj(f'(z))``, a real ``t`` feeding a
complex result receives ``Re(conj(g) * dz/dt)``, and the engine hands a real input the real part
of a complex gradient (``autograd/engine.py``, ``_fit``). Which ops may carry complex values in the
graph is ``registry.COMPLEX_RULES`` (the rule is stated there, once); leaves stay real.

Each rule below is written in neuronix ops (``real``/``imag``/``complex`` and real arithmetic), so
under ``create_graph`` it records and gives second derivatives.
"""

from __future__ import annotations

import operator

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops.registry import COMPLEX_RULES, COMPLEX_TWINS, apply, defop, public
from neuronix.tensor import Tensor, unwrap


def _zeros(t):
    """A constant real zero tensor like ``t`` (raw: rules build constants from ``.data``)."""
    return torch.zeros_like(unwrap(t))


def _to_complex(g, imaginary: bool = False):
    """A real gradient as the complex ``g + 0i`` (or ``0 + ig``): what flows back into a complex input."""
    zero = _zeros(g)
    return apply(_COMPLEX, zero, g) if imaginary else apply(_COMPLEX, g, zero)


def _parts(z):
    """``(Re z, Im z)`` as recorded ops (``z`` complex)."""
    return apply(_REAL, z), apply(_IMAG, z)


# ----- building and taking apart -----------------------------------------------------------------
_COMPLEX = defop(
    "complex",
    torch.complex,
    lambda g, out, re, im: apply(_REAL, g),
    lambda g, out, re, im: apply(_IMAG, g),
    saves=(),
)
_REAL = defop("real", torch.real, lambda g, out, z: _to_complex(g), saves=())
_IMAG = defop("imag", torch.imag, lambda g, out, z: _to_complex(g, imaginary=True), saves=())
# the physical conjugate: what the gradients of ``conj`` are (a lazily conjugated gradient would reach
# kernels that refuse the conjugate bit, such as view_as_real)
_CONJ_PHYSICAL = defop("conj_physical", torch.conj_physical,
                       lambda g, out, z: apply(_CONJ_PHYSICAL, g), saves=())
_CONJ = defop("conj", torch.conj, lambda g, out, z: apply(_CONJ_PHYSICAL, g), saves=())
# the (..., 2) real parts of a complex tensor and back, as copies that accept any layout and a
# conjugate view: the gradients of view_as_complex and view_as_real
_TO_PARTS = defop("complex_to_parts", lambda z: torch.view_as_real(z.resolve_conj()).clone(),
                  lambda g, out, z: apply(_FROM_PARTS, g), saves=())
_FROM_PARTS = defop("complex_from_parts", lambda r: torch.complex(r[..., 0], r[..., 1]),
                    lambda g, out, r: apply(_TO_PARTS, g), saves=())
_VIEW_AS_REAL = defop("view_as_real", torch.view_as_real, lambda g, out, z: apply(_FROM_PARTS, g), saves=())
_VIEW_AS_COMPLEX = defop("view_as_complex", torch.view_as_complex, lambda g, out, r: apply(_TO_PARTS, g), saves=())


@public(method=False)
def complex(real, imag):
    """``torch.complex``: ``real + i imag`` from two real tensors of one dtype (broadcast); differentiable in both."""
    return apply(_COMPLEX, real, imag)


def real(input):
    """``torch.real``: the real part, a view; a real tensor is returned as it is (as torch)."""
    if not unwrap(input).is_complex():
        return input
    return apply(_REAL, input)


def imag(input):
    """``torch.imag``: the imaginary part, a view (torch refuses real tensors, and so does this)."""
    return apply(_IMAG, input)


public(real, method=False)
public(imag, method=False)
# torch's Tensor.real / Tensor.imag are attributes, not methods
Tensor.real = property(real, doc="The real part (``torch.Tensor.real``): a view, differentiable.")
Tensor.imag = property(imag, doc="The imaginary part (``torch.Tensor.imag``): a view, differentiable.")


@public
def conj(input):
    """``torch.conj``: the complex conjugate (a lazy view, as torch's); a real tensor is returned as it is."""
    if not unwrap(input).is_complex():
        return input
    return apply(_CONJ, input)


@public
def conj_physical(input):
    """``torch.conj_physical``: the conjugate computed into new memory; a real tensor is returned as it is."""
    if not unwrap(input).is_complex():
        return input
    return apply(_CONJ_PHYSICAL, input)


_RESOLVE_CONJ = defop("resolve_conj", torch.resolve_conj, lambda g, out, z: g, saves=())


@public
def resolve_conj(input):
    """``torch.resolve_conj``: a conjugate view made physical (what ``view_as_real`` needs); else ``input``."""
    if not unwrap(input).is_conj():
        return input
    return apply(_RESOLVE_CONJ, input)


@public(method=False)
def view_as_real(input):
    """``torch.view_as_real``: a complex tensor as a real view with a trailing dimension of 2 (re, im)."""
    return apply(_VIEW_AS_REAL, input)


@public(method=False)
def view_as_complex(input):
    """``torch.view_as_complex``: a real tensor with a trailing dimension of 2 as a complex view."""
    return apply(_VIEW_AS_COMPLEX, input)


# ----- polar form ------------------------------------------------------------------------------
def _safe_divisor(a):
    """``a`` with its zeros replaced by 1 (a constant mask): a quotient that a ``where`` discards there
    then has a finite derivative, where ``x / 0`` would make it NaN even with a zero upstream gradient."""
    zero = unwrap(a) == 0
    return ew.select(zero, 1.0, a), zero


def abs_complex_grad(g, out, z):
    """The gradient of ``abs`` at a complex ``z`` (``elementwise.abs`` calls it): torch's ``grad * sgn(z)``,
    with ``sgn(z) = z / |z|`` and ``sgn(0) = 0``. torch promotes the real ``grad`` to ``grad + 0i`` and multiplies
    as complex numbers, multiplied out here term by term: a NaN in either part of ``sgn`` (z with an infinite or
    NaN part) makes both parts of the gradient NaN, as torch's (``0 * NaN``)."""
    sre, sim = _sgn_parts(z)
    return apply(_COMPLEX, g * sre - sim * 0, g * sim + sre * 0)




def _angle_grad(g, out, z):
    """torch's: 0 for real input; ``g i z / |z|^2`` for complex, 0 where ``z == 0``: torch's
    ``where(z == 0, 0, g z / |z|^2 i)``, its quotient unguarded as torch's, so that under create_graph the second
    derivative at ``z == 0`` is NaN as torch's (the discarded branch's 0 / 0 under its zero upstream gradient)."""
    if not unwrap(z).is_complex():
        return ew.zero_gradient(g)
    re, im = _parts(z)
    zero = unwrap(z) == 0
    sq = re * re + im * im
    a, b = g * re / sq, g * im / sq  # then times i, multiplied out as torch's complex product: a*0 - b, a + b*0
    return apply(_COMPLEX, ew.select(zero, 0.0, a * 0 - b), ew.select(zero, 0.0, a + b * 0))


_ANGLE = defop("angle", torch.angle, _angle_grad)


@public
def angle(input):
    """``torch.angle``: the argument of a complex number (0 or pi for reals, gradient 0 there)."""
    return apply(_ANGLE, input)


def _sgn_parts(z):
    """The parts of torch's ``sgn(z)``: ``z / |z|``, 0 where ``z == 0``."""
    re, im = _parts(z)
    a, zero = _safe_divisor(ew.abs(z))
    return ew.select(zero, 0.0, re / a), ew.select(zero, 0.0, im / a)


# torch's polar_backward, from the result alone (as torch saves it), with its complex products multiplied
# out term by term (so inf and NaN land where torch's do): abs gets Re(conj(g) sgn(out)), angle Re(conj(g) i out)
def _polar_abs_grad(g, out, magnitude, phase):
    gre, gim = _parts(g)
    sre, sim = _sgn_parts(out)
    return gre * sre + gim * sim


def _polar_angle_grad(g, out, magnitude, phase):
    gre, gim = _parts(g)
    ore, oim = _parts(out)
    return gre * (ore * 0 - oim) + gim * (ore + oim * 0)


_POLAR = defop("polar", torch.polar, _polar_abs_grad, _polar_angle_grad, saves=(), saves_out=True)


@public(method=False)
def polar(abs, angle):
    """``torch.polar``: ``abs * (cos(angle) + i sin(angle))``; differentiable in both."""
    return apply(_POLAR, abs, angle)


# ----- products and quotients: torch's rules conjugate the other factor -------------------------------
def _conj(v):
    """``conj(v)`` for a tensor of either kind or a Python number (a no-op for real values)."""
    if isinstance(v, (Tensor, torch.Tensor)):
        return conj(v)
    return v.conjugate()


def _twin(name: str, forward, *vjps, **options):
    """The spec ``registry`` records for op ``name`` where complex values meet it (``COMPLEX_TWINS``)."""
    COMPLEX_TWINS[name] = defop(f"{name}[complex]", forward, *vjps, **options)


_twin("mul", operator.mul, lambda g, out, x, y: g * _conj(y), lambda g, out, x, y: g * _conj(x), reads=((1,), (0,)))
_twin("div", operator.truediv, lambda g, out, x, y: g / _conj(y), lambda g, out, x, y: -g * _conj((x / y) / y),
      reads=((1,), (0, 1)))
# holomorphic functions pass back g * conj(f'(z)), each grouped as torch's formula
_twin("exp", torch.exp, lambda g, out, x: g * _conj(out), saves=(), saves_out=True)
_twin("log", torch.log, lambda g, out, x: g / _conj(x))
_twin("sqrt", torch.sqrt, lambda g, out, x: g / (_conj(out) * 2), saves=(), saves_out=True)
_twin("reciprocal", torch.reciprocal, lambda g, out, x: -(g * _conj(out * out)), saves=(), saves_out=True)
_twin("expm1", torch.expm1, lambda g, out, x: g * _conj(out + 1), saves=(), saves_out=True)
_twin("log1p", torch.log1p, lambda g, out, x: g / _conj(x + 1))
_twin("square", torch.square, lambda g, out, x: g * _conj(x * 2))
_twin("sin", torch.sin, lambda g, out, x: g * _conj(x.cos()))
_twin("cos", torch.cos, lambda g, out, x: g * -_conj(x.sin()))
_twin("sinh", torch.sinh, lambda g, out, x: g * _conj(x.cosh()))
_twin("cosh", torch.cosh, lambda g, out, x: g * _conj(x.sinh()))
_twin("tanh", torch.tanh, lambda g, out, x: g * _conj(1 - out * out), saves=(), saves_out=True)
_twin("sigmoid", torch.sigmoid, lambda g, out, x: g * _conj((1 - out) * out), saves=(), saves_out=True)
_twin("pow_number_exponent", operator.pow,  # z ** number; a tensor exponent (pow) has no complex rules
      lambda g, out, x, y: ew.zero_gradient(g) if y == 0 else g * _conj(x.pow(y - 1) * y), saves=(0, 1))


# every op above follows the convention, and so do these existing ones: linear maps with real
# coefficients, whose real rules are their complex adjoints unchanged
COMPLEX_RULES.update(
    spec.name for spec in (_COMPLEX, _REAL, _IMAG, _CONJ, _CONJ_PHYSICAL, _TO_PARTS, _FROM_PARTS, _VIEW_AS_REAL,
                           _VIEW_AS_COMPLEX, _ANGLE, _POLAR, _RESOLVE_CONJ)
)
COMPLEX_RULES.update(("abs", "add", "sub", "neg", "sum", "mean", "roll", "flip", "getitem", "getitem_backward", "cat", "stack",
                      "reshape", "view", "squeeze", "unsqueeze", "permute", "transpose", "movedim", "expand",
                      "copy", "copy_slices", "index_put"))  # the in-place twins (ops/inplace.py)
