"""Forward mode, checked three ways, on every op example with differentiable inputs (float32, float64).

Neuronix's forward mode is derived from the op's one VJP rule (``nx.func.jvp``: the double-VJP
trick), so a rule whose dependence on the upstream gradient is wrong under recording makes the
JVP wrong even where every first derivative is right. One random tangent ``v`` per differentiable
input (float64 draws cast to the dtype, as the upstream gradient), and ``J v`` is compared:

(a) with torch's forward AD (``torch.func.jvp`` on ``mirror.torch``), check ``forward_ad``, where
    torch implements it for the op (when torch raises ``NotImplementedError``/``RuntimeError``
    the example notes ``forward_ad_torch`` with torch's reason and (a) is skipped, never b/c);
(b) in float64, element by element with the central difference ``(f(x + h v) - f(x - h v)) / 2h``
    (check ``finite_difference``, the step of the op driver), so a mistake shared with torch
    cannot hide;
(c) with Neuronix's own reverse mode: ``<u, J v>`` (``u`` the example's upstream gradient) against
    ``<J^T u, v>`` (the example's gradients), check ``forward_ad`` -- the ∇Fuzz oracle: both modes of
    Neuronix must agree. Above unit scale each side is divided by the sum of the magnitudes of the
    terms, so the tolerance measures the error against what the sums add up, not a cancelled total.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds.common import NxConst, TorchLeaf, build_call, outputs, randn_like, slot_value, substituted
from conformance.mirror import FLOATS, Comparison
from conformance.trace import Mismatch, note, track

TORCH_LACKS = (NotImplementedError, RuntimeError)  # what torch.func.jvp raises where an op has no forward AD

# Mirrors where torch's forward AD and torch's own backward follow different conventions, so that
# torch fails its own (c): neuronix's forward mode is the transpose of its backward, which follows
# torch's backward (checked by the backward check); (a) is skipped with this reason, (c) still runs.
TORCH_FORWARD_AD_DIFFERS = {
    "nn.functional.embedding[padding_idx]": "torch's forward AD differentiates the padding_idx rows as any other row "
    "(the output copies them), while its backward gives them no gradient by convention",
    "nn.functional.embedding[scale_grad_by_freq]": "torch's forward AD is the true derivative of the lookup, while its "
    "backward divides each row's gradient by the index's frequency in the batch by convention",
    **{f"nn.Module.register_full_backward_{name}": "torch's forward AD ignores backward hooks, while its backward "
       "applies their rescaling (conformance/mirrors/hooks.py)"
       for name in ("hook[scale]", "pre_hook[scale]", "pre_hook[scale]+hook[scale]")},
    **{name: "at a NaN median torch's forward AD (evenly_read_jvp: input == result matches nothing) is NaN, while its "
       "backward (evenly_distribute_backward) shares the gradient among the NaN inputs"
       for name in ("median[nan]", "nanmedian[nan]")},
    "scatter_reduce[prod]": "torch 2.13's forward AD of scatter_reduce(reduce='prod') is identically zero: "
    "torch.func.jvp(lambda x: x.scatter_reduce(0, torch.tensor([0, 0]), torch.tensor([2., 3.]), 'prod'), "
    "(torch.tensor([1.5, 2.]),), (torch.ones(2),)) gives [0, 0] (should be [6, 1]); its backward is right",
    **{name: "torch 2.13's forward AD of cholesky_inverse disagrees with finite differences (by ~5e-2 for L = "
       "cholesky(X X^T + 3 I), X = randn(3, 3) float64, seed 0, tangent randn(3, 3), on L.tril()); its backward is right"
       for name in ("cholesky_inverse", "Tensor.cholesky_inverse")},
    **{name: "torch 2.13's forward AD of triangular_solve(..., transpose=True) disagrees with finite differences "
       "(by ~0.1 for b = ones(3, 2), A upper triangular, float64); its backward is right"
       for name in ("triangular_solve", "Tensor.triangular_solve")},
}



def _load_torch_forward_ad() -> None:
    """torch's first forward-AD calls import modules (its jvp decompositions, ``torch._dynamo`` for the
    decomposed ops) whose import keeps the caller's frames alive in reference cycles: run from the
    running example, they would keep that example's tensors alive (a leak the runner reports, with the
    cyclic collector off). So they run here, in a thread of its own, whose stack holds nothing of any
    example (this module is first imported inside the first example)."""

    def load() -> None:
        import torch._dynamo  # noqa: F401

        torch.func.jvp(torch.sin, (torch.zeros(1),), (torch.ones(1),))

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()


_load_torch_forward_ad()


def check(ex) -> Iterator[Comparison]:
    """Yield the forward-mode Comparisons of one op example (see kinds.op.OpExample)."""
    if ex.dtype not in FLOATS or not ex.slots or not ex.floats:
        return
    mirror, sample, slots, floats = ex.mirror, ex.sample, ex.slots, ex.floats
    primals = [slot_value(sample.args, p).detach() for _, p in slots]
    tangents = [randn_like(x, ex.gen) for x in primals]
    n_fn = _function(mirror.nx, mirror, sample, slots, floats, NxConst())
    try:
        with nx.no_grad():  # the transform records what it needs; its results come back detached
            n_out, n_jv = nx.func.jvp(n_fn, tuple(nx.Tensor(x) for x in primals), tuple(nx.Tensor(v) for v in tangents))
    except Exception as err:  # noqa: BLE001 - any failure of neuronix's forward mode is this check's
        raise Mismatch("forward_ad", f"nx.func.jvp raised {type(err).__name__}: {err}") from None
    track(*n_jv, label="jvp")
    n_out, n_jv = [to_torch(t) for t in n_out], [to_torch(t) for t in n_jv]
    yield from _torch_forward_ad(mirror, sample, slots, floats, primals, tangents, n_jv)
    if ex.dtype == torch.float64 and mirror.fd:
        yield from _finite_difference(mirror, sample, slots, floats, primals, tangents, n_out, n_jv)
    yield from _both_modes(ex.dtype, ex.upstream, n_jv, ex.n_grads, tangents)


def _torch_forward_ad(mirror, sample, slots, floats, primals, tangents, n_jv) -> Iterator[Comparison]:
    """(a): ``J v`` against torch's forward AD, where torch has it and follows its own backward."""
    if mirror.name in TORCH_FORWARD_AD_DIFFERS:
        note(forward_ad_torch=f"skipped: {TORCH_FORWARD_AD_DIFFERS[mirror.name]}")
        return
    t_fn = _function(mirror.torch, mirror, sample, slots, floats, TorchLeaf())
    try:
        t_out, t_jv = torch.func.jvp(t_fn, tuple(primals), tuple(tangents))
    except TORCH_LACKS as err:
        note(forward_ad_torch=f"skipped: torch has no forward AD here ({type(err).__name__}: {str(err)[:200]})")
        return
    for k, (nv, to, tv) in enumerate(zip(n_jv, t_out, t_jv)):
        # in its output's dtype: torch 2.13 gives a float64 tangent for the float32 0-d result of a reflected
        # operator with a Python number (2.0 + x); the dtype of the result itself is the forward check's
        yield Comparison("forward_ad", f"jvp of output {k} vs torch forward AD", nv, tv.detach().to(to.dtype))


def _function(fn, mirror, sample, slots, floats, leaf):
    """The example as a function of its differentiable inputs, returning its floating outputs (a tuple).

    The inputs come in as the library's tensors already (transform inputs), so they are put in
    the call after ``build_call`` has wrapped every other tensor as a constant (``leaf.const``).
    """
    def f(*values):
        args, kwargs = build_call(sample, [], leaf)
        args = list(substituted(dataclasses.replace(sample, args=tuple(args)), slots, values).args)
        outs = outputs(mirror, fn(*args, **kwargs))
        return tuple(outs[k][1] for k in floats)

    return f


def _fd_step() -> float:
    from conformance.kinds import op  # the op driver owns the step (one place)

    step = op.FD_STEP
    return step[torch.float64] if isinstance(step, dict) else step


def _finite_difference(mirror, sample, slots, floats, primals, tangents, n_out, n_jv) -> Iterator[Comparison]:
    """(b): ``J v`` against central differences of neuronix's own forward along ``v`` (float64); ``n_out``
    is the forward at the primals."""
    step = _fd_step()

    def at(values) -> list[torch.Tensor]:
        with nx.no_grad():
            args, kwargs = build_call(substituted(sample, slots, values), [], NxConst())
            outs = outputs(mirror, mirror.nx(*args, **kwargs))
        return [to_torch(outs[k][1]).double() for k in floats]

    if not all(bool(o.isfinite().all()) for o in n_out):
        return  # not finite here (the forward check compared it with torch): nothing to differentiate
    plus = at([x + step * v for x, v in zip(primals, tangents)])
    minus = at([x - step * v for x, v in zip(primals, tangents)])
    for k, (p, m, jv) in enumerate(zip(plus, minus, n_jv)):
        yield Comparison("finite_difference", f"jvp of output {k} vs central difference", jv.double(),
                         (p - m) / (2 * step))


def _both_modes(dtype, upstream, n_jv, n_grads, tangents) -> Iterator[Comparison]:
    """(c): ``<u, J v>`` from forward mode against ``<J^T u, v>`` from reverse mode (see the module doc).

    Summed in float64 and, above unit scale, divided by the sum of the terms' magnitudes. Skipped when
    an output is of a coarser dtype than the example (``x.half()``: ``J v`` is rounded to it, ``J^T u``
    is not; (a) compares it with torch's, rounded alike) or a sum is not finite ((a) compares the pattern).
    """
    if any(torch.finfo(jv.dtype).eps > torch.finfo(dtype).eps for jv in n_jv if jv.is_floating_point()):
        return
    fwd = [u.double() * jv.double() for u, jv in zip(upstream, n_jv)]
    rev = [to_torch(g).double() * v.double() for g, v in zip(n_grads, tangents)]
    f_sum, r_sum = sum(float(t.sum()) for t in fwd), sum(float(t.sum()) for t in rev)
    if not (math.isfinite(f_sum) and math.isfinite(r_sum)):
        return
    scale = max(1.0, sum(float(t.abs().sum()) for t in fwd + rev))
    yield Comparison("forward_ad", "<u, J v> (forward mode) vs <J^T u, v> (reverse mode), over the sum of |terms|",
                     torch.tensor(f_sum / scale, dtype=torch.float64), torch.tensor(r_sum / scale, dtype=torch.float64))
