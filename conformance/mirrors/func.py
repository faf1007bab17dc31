"""Mirrors of ``nx.func`` (torch.func's transforms) and ``nx.autograd.forward_ad`` on representative functions.

Each transform is applied to a small function written once for both libraries (tensor methods and
operators only) and compared with torch's transform of the same function. The harness then also
differentiates the transform's results (reverse over forward, grad of grad: the nesting), takes
their JVP (forward over the transform) and their finite differences, like any op's.
Shapes stay small: a Jacobian costs one pass per element.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as torch_forward_ad
from hypothesis import strategies as st

import neuronix as nx
from conformance.kinds import special
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.strategies import Domain, tensor
from neuronix.autograd import forward_ad as nx_forward_ad

SMOOTH = Domain(-1.5, 1.5)


def _pair(x, y):
    """Two inputs, two outputs: an elementwise and a contracting one."""
    return (x * y).tanh(), (x.exp() * y).sum(-1)


def _scalar(x, y):
    return ((x * y).sin() ** 2).sum() + (x - y).exp().mean()


def _vector(x):
    return (x.sin() * x.roll(1, 0)).cumsum(0)


def _sides(draw) -> tuple[int, int]:
    return draw(st.integers(1, 3)), draw(st.integers(1, 3))


def _two(draw, dtype, device):
    """x, y of one small shape."""
    shape = _sides(draw)
    return Sample((tensor(draw, shape, dtype, device, SMOOTH), tensor(draw, shape, dtype, device, SMOOTH)))


def _two_with_tangents(draw, dtype, device):
    """x, y and a tangent (or cotangent) for each."""
    shape = _sides(draw)
    return Sample(tuple(tensor(draw, shape, dtype, device, SMOOTH) for _ in range(4)))


def _vector_sample(draw, dtype, device):
    return Sample((tensor(draw, (draw(st.integers(1, 4)),), dtype, device, SMOOTH),))


def _jvp(func):
    return lambda x, y, vx, vy: func.jvp(_pair, (x, y), (vx, vy))


def _vjp(func):
    def run(x, y, cx, cy):
        out, pullback = func.vjp(_pair, x, y)
        return out, pullback((cx * cy, (cx - cy).sum(-1)))

    return run


def _grad(func):
    return lambda x, y: func.grad(_scalar, argnums=(0, 1))(x, y)


def _grad_and_value(func):
    return lambda x, y: func.grad_and_value(lambda a, b: (_scalar(a, b), a * b), argnums=1, has_aux=True)(x, y)


def _copies(tree):
    """Copies of a transform's result tensors: torch.func's Jacobians come out as views of one batched
    result (writing one in place raises), neuronix's as plain tensors; the layout is no part of the
    contract, the values and their derivatives are (the guards check would otherwise compare it)."""
    if isinstance(tree, tuple):
        return tuple(_copies(t) for t in tree)
    return tree.clone()


def _jacobian(func, name):
    return lambda x, y: _copies(getattr(func, name)(_pair, argnums=(0, 1))(x, y))


def _hessian(func):
    return lambda x: _copies(func.hessian(lambda a: (_vector(a) ** 2).sum())(x))


def _dual_program(fw):
    """``dual_level`` / ``make_dual`` / ``unpack_dual``: tangents of a result, of a zero and of a non-dual value."""

    def run(x, y, vx):
        with fw.dual_level():
            d = fw.make_dual(x, vx)
            out = fw.unpack_dual((d * y).tanh() + d.exp())
            zero = fw.unpack_dual(d * 0)
            plain = fw.unpack_dual(y * 2)
        return out.primal, out.tangent, zero.tangent, plain.tangent is None

    return run


def _mirror(name: str, transform, sample, **kw) -> OpMirror:
    return OpMirror(name, transform(nx.func), transform(torch.func), sample, dtypes=FLOATS, **kw)


# At +-inf and NaN inputs a Jacobian's NaN pattern depends on how it is batched: torch's own jacrev
# and jacfwd disagree there (on _pair: 9 against 18 NaNs in one block). The other transforms' results are
# derivatives too: differentiating them at +-inf sums several infinite paths, and whether two meet as
# inf - inf (NaN) or one stays inf depends on how each library's double-backward formulas group their
# terms (func.vjp: -inf against torch's NaN at one element). Each op's own mirror checks its special values;
# the finite special points (zeros of both signs, kinks) stay for the transforms.
special.FINITE_ONLY.update({
    **dict.fromkeys(("func.jacrev*", "func.jacfwd*", "func.hessian*"),
                    "a Jacobian's NaN pattern at +-inf/NaN inputs depends on its batching: torch's jacrev and "
                    "jacfwd differ there"),
    **dict.fromkeys(("func.jvp", "func.vjp", "func.grad", "func.grad_and_value"),
                    "the derivative of a derivative at +-inf sums infinite paths whose inf - inf depends on how the "
                    "double-backward formulas group terms; each op's special values are checked in its own mirror"),
})

register(
    _mirror("func.jvp", _jvp, _two_with_tangents),
    _mirror("func.vjp", _vjp, _two_with_tangents),
    _mirror("func.grad", _grad, _two),
    _mirror("func.grad_and_value", _grad_and_value, _two),
    _mirror("func.jacrev", lambda f: _jacobian(f, "jacrev"), _two),
    _mirror("func.jacfwd", lambda f: _jacobian(f, "jacfwd"), _two),
    _mirror("func.hessian", _hessian, _vector_sample),
    *(OpMirror(f"autograd.forward_ad.{name}", _dual_program(nx_forward_ad), _dual_program(torch_forward_ad),
               lambda draw, dtype, device: Sample(_two_with_tangents(draw, dtype, device).args[:3]), dtypes=FLOATS,
               note="one program exercises dual_level, make_dual and unpack_dual together")
      for name in ("dual_level", "make_dual", "unpack_dual")),
)
