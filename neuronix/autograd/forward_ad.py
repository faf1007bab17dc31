"""``nx.autograd.forward_ad``: torch's forward-mode AD API (``dual_level``, ``make_dual``,
``unpack_dual``) on Neuronix's one rule per op.

How it works. ``make_dual(x, t)`` returns ``x + s`` where ``s`` is a hidden *seed*: a leaf of
``-0.0`` that requires grad (adding ``-0.0`` keeps every value, the sign of zero included). The
level remembers each seed with its tangent ``t``. Every op on the dual tensor is recorded as usual,
so ``unpack_dual(y)`` can compute ``y``'s tangent as ``sum_k J_k t_k`` (``J_k`` the Jacobian of ``y``
w.r.t. seed ``k``) by the double-VJP trick: the reverse pass under a dummy upstream gradient ``u``
gives ``g_k(u) = J_k^T u``, linear in ``u``, and the gradient of ``sum_k <g_k(u), t_k>`` w.r.t. ``u``
is the tangent. No second rule table exists: forward mode is checked against torch's forward AD by
the conformance harness (``conformance/kinds/forward_mode.py``).

Limits, compared with torch:

* Cost: each ``unpack_dual`` of a tensor that depends on a seed runs two reverse passes (the second
  over the recorded rules), and the graph of the dual computation is kept until the level exits.
* Tangents travel through the recorded graph, so a level turns recording on inside it (also when
  it is opened under ``nx.no_grad``: results then ``requires_grad``, unlike torch's); an op run under
  a ``nx.no_grad`` *inside* the level (or on ``.detach()``) drops the tangent: ``unpack_dual`` then
  gives ``tangent=None``, where torch's ``no_grad`` does not affect forward AD.
* A dual tensor ``requires_grad`` (it is in the graph of its seed), and ``unpack_dual(y).primal`` is
  ``y`` itself: reverse mode through it is exact (the seed adds nothing), but ops on that primal still
  carry the tangent, where torch's primal view carries none.
* One level at a time (as torch: a nested ``dual_level`` raises); levels are per thread.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import torch

from neuronix.autograd import engine, mode
from neuronix.autograd.mode import enable_grad, is_grad_enabled
from neuronix.ops.public import public
from neuronix.tensor import Tensor


class UnpackedDualTensor(NamedTuple):
    """What ``unpack_dual`` returns, as torch's: the ``primal`` and its ``tangent`` (``None`` when none)."""

    primal: object
    tangent: object


class _Level:
    """The seeds of one dual level, each with its tangent."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.seeds: list[Tensor] = []
        self.tangents: list[Tensor] = []


class _Levels(threading.local):
    def __init__(self) -> None:
        self.current: _Level | None = None
        self.count = 0


_levels = _Levels()


def _current(level, where: str) -> _Level | None:
    lvl = _levels.current
    if level is not None and (lvl is None or level != lvl.index):
        raise RuntimeError(f"{where}: level {level} is not the current dual level "
                           f"({'none is open' if lvl is None else lvl.index})")
    return lvl


@public(namespace="autograd.forward_ad")
class dual_level:
    """Context manager of a forward-AD level (as torch's): dual tensors made inside lose their tangents on exit.

    ``with dual_level() as level:`` gives the level's index, for the optional ``level=`` arguments.
    """

    def __enter__(self) -> int:
        if _levels.current is not None:
            raise RuntimeError("Nested forward mode AD is not supported at the moment")
        _levels.current = _Level(_levels.count)
        _levels.count += 1
        self.mode = mode.state()
        mode.set_state(True)  # tangents travel through the recorded graph, even when the level opens in no_grad
        return _levels.current.index

    def __exit__(self, *exc) -> None:
        _levels.current = None  # the seeds and tangents go with it: unpack_dual gives None afterwards
        mode.set_state(self.mode)


@public(namespace="autograd.forward_ad")
def make_dual(tensor, tangent, *, level=None):
    """A tensor with the values of ``tensor`` whose tangent is ``tangent`` (same shape), as torch's ``make_dual``."""
    lvl = _current(level, "make_dual")
    if lvl is None:
        raise RuntimeError("Trying to create a dual Tensor for forward AD but no level exists, make sure to "
                           "enter_dual_level() first.")
    tensor = tensor if isinstance(tensor, Tensor) else Tensor(torch.as_tensor(tensor))
    tangent = tangent if isinstance(tangent, Tensor) else Tensor(torch.as_tensor(tangent))
    for what, t in (("primal", tensor), ("tangent", tangent)):
        if not t.data.is_floating_point():
            raise ValueError(f"Expected {what} to be floating point or complex, but got: {t.dtype}")
    if tangent.shape != tensor.shape:
        raise RuntimeError("Trying to set a forward gradient that has a different size than that of the original "
                           f"Tensor, this is not supported. Tensor is of size {list(tensor.shape)} while the given "
                           f"forward gradient is of size {list(tangent.shape)}.")
    seed = Tensor(torch.full_like(tensor.data, -0.0), requires_grad=True)
    with enable_grad():
        dual = tensor + seed
    lvl.seeds.append(seed)
    lvl.tangents.append(tangent)
    return dual


@public(namespace="autograd.forward_ad")
def unpack_dual(tensor, *, level=None):
    """``UnpackedDualTensor(primal, tangent)`` of ``tensor`` in the current level, as torch's ``unpack_dual``.

    ``tangent`` is ``None`` when ``tensor`` does not depend on any dual tensor of the level (or no
    level is open), zeros when it does but its value does not change along the tangents.
    """
    lvl = _current(level, "unpack_dual")
    if lvl is None or not lvl.seeds or not isinstance(tensor, Tensor) or not tensor.requires_grad:
        return UnpackedDualTensor(tensor, None)
    create = is_grad_enabled()  # the tangent stays differentiable (reverse over forward) when recording
    with enable_grad():
        u = Tensor(torch.zeros_like(tensor.data), requires_grad=True)
        gs = engine.grad([tensor], lvl.seeds, grad_outputs=[u], retain_graph=True, create_graph=True,
                         allow_unused=True)
        reached = [(g, t) for g, t in zip(gs, lvl.tangents) if g is not None]
        if not reached:
            return UnpackedDualTensor(tensor, None)
        terms = [(g * t).sum() for g, t in reached if g.requires_grad]
        jv = None
        if terms:
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            jv = engine.grad([total], [u], retain_graph=create, create_graph=create, allow_unused=True)[0]
    if jv is None:
        jv = Tensor._make(torch.zeros_like(tensor.data), None)
    return UnpackedDualTensor(tensor, jv)
