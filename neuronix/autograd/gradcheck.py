"""``nx.autograd.gradcheck`` / ``gradgradcheck``: torch's checks of a function's gradients, on Neuronix.

As torch's: the Jacobian of every differentiable output w.r.t. every input that requires grad,
from central differences (``eps``) and from Neuronix's backward (one pass per output element),
must agree within ``atol + rtol * |numerical|`` elementwise; ``fast_mode`` compares one random
projection ``v^T J u`` instead (the harness's directional finite difference: ``u`` in input
space, the displacement taken as rounded). A mismatch raises ``GradcheckError`` (a
``RuntimeError``) with torch's message, or returns ``False`` with ``raise_exception=False``.
``gradgradcheck`` runs ``gradcheck`` on the function ``(inputs, grad_outputs) -> its gradients``
built with ``create_graph=True``, so a backward's own derivative is checked.

The verdict is the conformance harness's (``conformance.closeness.measure``: the same
``|a - e| <= atol + rtol |e|`` rule, NaNs and infinities matched by position), so a user's
function is judged as the harness judges built-ins. ``conformance`` ships with ``neuronix`` (one
distribution) and is imported here only when a check runs: ``import neuronix`` never loads it.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from neuronix.autograd import engine, mode
from neuronix.tensor import Tensor


class GradcheckError(RuntimeError):
    """A gradient check failed (torch's ``torch.autograd.gradcheck.GradcheckError``)."""


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, (Tensor, torch.Tensor)) or not isinstance(x, (list, tuple)) else tuple(x)


def _outputs(func, inputs) -> tuple:
    return _as_tuple(func(*inputs))


def _differentiable(t) -> bool:
    return isinstance(t, Tensor) and t.dtype.is_floating_point


class _Tolerance(NamedTuple):
    """What ``conformance.closeness.measure`` reads of a tolerance (the harness's own type needs its TOML reader)."""

    rtol: float
    atol: float


def _judge(actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> bool:
    from conformance.closeness import measure  # the harness's comparison: one verdict for built-ins and users' ops

    return measure(actual, expected, _Tolerance(rtol=rtol, atol=atol)).ok


def _fail(message: str, raise_exception: bool) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False


def _checked_inputs(where: str, inputs) -> tuple:
    inputs = _as_tuple(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError(f"{where} expects at least one input tensor to require gradient, but none of them have "
                         "requires_grad=True.")
    for i in wrt:
        if inputs[i].dtype != torch.float64:
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point or complex. "
                          "This check will likely fail if all the inputs are not of double precision floating point "
                          "or complex. ", stacklevel=3)
    return inputs


def _replaced(inputs: tuple, i: int | None = None, data: torch.Tensor | None = None) -> tuple:
    """``inputs`` as new leaves (input ``i`` with values ``data``), each requiring grad as the original did:
    the function may differentiate inside (gradgradcheck's does)."""
    return tuple(Tensor(data if k == i else x.data, requires_grad=x.requires_grad) if isinstance(x, Tensor) else x
                 for k, x in enumerate(inputs))


def _numerical(func, inputs: tuple, wrt: list, n_outputs: int, eps: float) -> list:
    """``J[i][o]``: (numel of input i, numel of output o) central differences of output o."""
    jac = []
    with mode.enable_grad():
        base = _outputs(func, _replaced(inputs))
        for i in wrt:
            x = inputs[i].data
            cols = [torch.zeros(x.numel(), _numel(base[o]), dtype=x.dtype) for o in range(n_outputs)]
            for j in range(x.numel()):
                plus, minus = x.clone(), x.clone()
                plus.view(-1)[j] += eps
                minus.view(-1)[j] -= eps
                f_plus, f_minus = _outputs(func, _replaced(inputs, i, plus)), _outputs(func, _replaced(inputs, i, minus))
                for o in range(n_outputs):
                    if _differentiable(base[o]):
                        cols[o][j] = ((f_plus[o].data - f_minus[o].data).reshape(-1) / (2 * eps)).to(x.dtype)
            jac.append(cols)
    return jac


def _numel(t) -> int:
    return t.numel() if isinstance(t, (Tensor, torch.Tensor)) else 0


def _analytical(outputs: tuple, inputs: tuple, wrt: list) -> list:
    """``J[i][o]`` from one backward pass per element of each differentiable output."""
    jac = [[torch.zeros(inputs[i].numel(), _numel(o), dtype=inputs[i].dtype) for o in outputs] for i in wrt]
    targets = [inputs[i] for i in wrt]
    for o, out in enumerate(outputs):
        if not (_differentiable(out) and out.requires_grad):
            continue
        for k in range(out.numel()):
            seed = torch.zeros(out.numel(), dtype=out.dtype, device=out.device)
            seed[k] = 1
            got = engine.grad(out, targets, Tensor(seed.reshape(out.shape)), retain_graph=True, allow_unused=True)
            for n, g in enumerate(got):
                if g is not None:
                    jac[n][o][:, k] = g.data.reshape(-1).cpu()
    return jac


def _grad_dtypes(outputs: tuple, inputs: tuple, wrt: list) -> str:
    """torch's check_grad_dtypes: each gradient has its input's dtype and device."""
    for out in outputs:
        if _differentiable(out) and out.requires_grad:
            got = engine.grad(out, [inputs[i] for i in wrt], Tensor(torch.ones_like(out.data)), retain_graph=True,
                              allow_unused=True)
            for i, g in zip(wrt, got):
                if g is not None and (g.dtype != inputs[i].dtype or g.device != inputs[i].device):
                    return (f"Gradient has dtype mismatch: input {i} has dtype {inputs[i].dtype} on {inputs[i].device}, "
                            f"its gradient {g.dtype} on {g.device}")
    return ""


def gradcheck(func, inputs, *, eps: float = 1e-06, atol: float = 1e-05, rtol: float = 0.001,
              raise_exception: bool = True, nondet_tol: float = 0.0, check_undefined_grad: bool = True,
              check_grad_dtypes: bool = False, check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True, fast_mode: bool = False,
              masked: bool | None = None) -> bool:
    """Check ``func``'s gradients at ``inputs`` against central differences (as ``torch.autograd.gradcheck``).

    ``check_undefined_grad``: each output's Jacobian rows come from a backward through that output
    alone, so every other output's gradient is undefined there (``None`` to a custom Function's
    backward under ``set_materialize_grads(False)``, zeros otherwise), and must act as zero.
    ``check_forward_ad`` compares Neuronix's forward mode (``nx.func.jvp``) with the same central
    differences; the batched checks need torch's vmap, which Neuronix does not have: asking for them
    raises ``NotImplementedError``.
    """
    for flag, name in ((check_batched_grad, "check_batched_grad"), (check_batched_forward_grad, "check_batched_forward_grad")):
        if flag:
            raise NotImplementedError(f"gradcheck: {name}=True needs torch's vmap, which Neuronix does not have; "
                                      "leave it False")
    if masked:
        raise NotImplementedError("gradcheck: masked=True is for torch's sparse tensors, which Neuronix does not have")
    inputs = _checked_inputs("gradcheck", inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    with mode.enable_grad():
        outputs = _outputs(func, inputs)
    if check_forward_ad and not _forward_ad_matches(func, inputs, wrt, outputs, eps, atol, rtol, raise_exception):
        return False
    if not check_backward_ad:
        return True
    if fast_mode:
        return _fast(func, inputs, wrt, outputs, eps, atol, rtol, raise_exception)
    numerical = _numerical(func, inputs, wrt, len(outputs), eps)
    for o, out in enumerate(outputs):  # an output outside the graph must not depend on the inputs
        if _differentiable(out) and not out.requires_grad:
            for n in range(len(wrt)):
                if not _judge(numerical[n][o], torch.zeros_like(numerical[n][o]), atol, rtol):
                    return _fail("Numerical gradient for function expected to be zero", raise_exception)
    analytical = _analytical(outputs, inputs, wrt)
    for n, i in enumerate(wrt):
        for o, out in enumerate(outputs):
            if not (_differentiable(out) and out.requires_grad):
                continue
            a, e = analytical[n][o], numerical[n][o]
            if not _judge(a, e, atol, rtol):
                return _fail(f"Jacobian mismatch for output {o} with respect to input {i},\nnumerical:{e}\n"
                             f"analytical:{a}\n", raise_exception)
    again = _analytical(_outputs_recorded(func, inputs), inputs, wrt)
    for n in range(len(wrt)):
        for o in range(len(outputs)):
            if not _judge(again[n][o], analytical[n][o], nondet_tol, 0.0):
                return _fail("Backward is not reentrant, i.e., running backward with same input and grad_output "
                             "multiple times gives different values, although analytical gradient matches numerical "
                             f"gradient. The tolerance for nondeterminism was {nondet_tol}.", raise_exception)
    if check_grad_dtypes:
        problem = _grad_dtypes(outputs, inputs, wrt)
        if problem:
            return _fail(problem, raise_exception)
    return True


def _forward_ad_matches(func, inputs, wrt, outputs, eps, atol, rtol, raise_exception) -> bool:
    """``check_forward_ad``: the Jacobian from Neuronix's forward mode (``nx.func.jvp``, one unit tangent per
    input element) against central differences."""
    from neuronix.func import jvp  # nx.func imports the autograd package

    numerical = _numerical(func, inputs, wrt, len(outputs), eps)
    for n, i in enumerate(wrt):
        x = inputs[i]

        def along(value, i=i):
            return _outputs(func, tuple(value if k == i else a for k, a in enumerate(inputs)))

        for j in range(x.numel()):
            unit = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
            unit[j] = 1
            _, tangents = jvp(along, (x.detach(),), (Tensor(unit.reshape(x.shape)),))
            for o, out in enumerate(outputs):
                if not _differentiable(out):
                    continue
                t = tangents[o]
                column = torch.zeros(out.numel(), dtype=x.dtype) if t is None else t.data.reshape(-1).to(x.dtype).cpu()
                if not _judge(column, numerical[n][o][j], atol, rtol):
                    return _fail(f"Jacobian computed with forward mode mismatch for output {o} with respect to input "
                                 f"{i},\nnumerical:{numerical[n][o][j]}\nanalytical:{column}\n(element {j} of the "
                                 "input)", raise_exception)
    return True


def _outputs_recorded(func, inputs) -> tuple:
    with mode.enable_grad():
        return _outputs(func, inputs)


def _fast(func, inputs, wrt, outputs, eps, atol, rtol, raise_exception) -> bool:
    """torch's fast mode: ``v^T J u`` for one random ``u`` (input space) and ``v`` (output space) per output."""
    gen = torch.Generator().manual_seed(0)
    dirs = {i: torch.randn(inputs[i].shape, generator=gen, dtype=torch.float64).to(inputs[i].dtype) for i in wrt}
    for o, out in enumerate(outputs):
        if not _differentiable(out):
            continue
        v = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
        plus, minus = _replaced(inputs), _replaced(inputs)
        for k in dirs:
            plus[k].data, minus[k].data = plus[k].data + eps * dirs[k], minus[k].data - eps * dirs[k]
        with mode.enable_grad():
            f_plus, f_minus = _outputs(func, plus)[o].data, _outputs(func, minus)[o].data
        taken = {k: (plus[k].data.double() - minus[k].data.double()) / (2 * eps) for k in dirs}  # as rounded
        numerical = ((f_plus.double() - f_minus.double()) / (2 * eps) * v.double()).sum()
        analytical = torch.zeros((), dtype=torch.float64)
        if out.requires_grad:
            got = engine.grad(out, [inputs[i] for i in wrt], Tensor(v), retain_graph=True, allow_unused=True)
            for i, g in zip(wrt, got):
                if g is not None:
                    analytical = analytical + (g.data.double() * taken[i]).sum()
        if not _judge(analytical, numerical, atol, rtol):
            return _fail(f"Jacobian mismatch for output {o} with respect to input {wrt[0]},\nnumerical:{float(numerical)}\n"
                         f"analytical:{float(analytical)}\n\nThe above quantities relating the numerical and analytical "
                         "jacobians are computed in fast mode (a random projection v^T J u). Rerun with fast_mode=False "
                         "for the full Jacobians.\n", raise_exception)
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-06, atol: float = 1e-05, rtol: float = 0.001,
                  gen_non_contig_grad_outputs: bool = False, raise_exception: bool = True, nondet_tol: float = 0.0,
                  check_undefined_grad: bool = True, check_grad_dtypes: bool = False, check_batched_grad: bool = False,
                  check_fwd_over_rev: bool = False, check_rev_over_rev: bool = True, fast_mode: bool = False,
                  masked: bool = False) -> bool:
    """Check the second derivatives of ``func`` (as ``torch.autograd.gradgradcheck``): ``gradcheck`` of the
    map ``(inputs, grad_outputs) -> d<grad_outputs, func(inputs)>/d inputs`` (recorded with create_graph).

    ``grad_outputs`` default: random values in [-1, 1) that require grad, one per differentiable output.
    """
    if check_fwd_over_rev:
        raise NotImplementedError("gradgradcheck: check_fwd_over_rev=True needs torch's forward AD over reverse; "
                                  "Neuronix's gradgradcheck runs reverse over reverse only")
    inputs = _checked_inputs("gradgradcheck", inputs)
    if not check_rev_over_rev:
        return True
    with mode.enable_grad():
        outputs = _outputs(func, inputs)
    diff = [o for o, out in enumerate(outputs) if _differentiable(out) and out.requires_grad]
    if grad_outputs is None:
        gen = torch.Generator().manual_seed(0)
        grad_outputs = tuple(Tensor(torch.rand(outputs[o].shape, generator=gen, dtype=torch.float64)
                                    .mul(2).sub(1).to(outputs[o].dtype), requires_grad=True) for o in diff)
    else:
        grad_outputs = tuple(g if isinstance(g, Tensor) else Tensor(g) for g in _as_tuple(grad_outputs))
    if gen_non_contig_grad_outputs:
        grad_outputs = tuple(_non_contiguous(g) for g in grad_outputs)
    n_in = len(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def first_derivatives(*args):
        ins, ups = args[:n_in], args[n_in:]
        outs = _outputs(func, ins)
        got = engine.grad([outs[o] for o in diff], [ins[i] for i in wrt], list(ups), create_graph=True,
                          allow_unused=True)
        return tuple(g for g in got if g is not None)

    return gradcheck(first_derivatives, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, nondet_tol=nondet_tol, check_undefined_grad=check_undefined_grad,
                     check_grad_dtypes=check_grad_dtypes, check_batched_grad=check_batched_grad, fast_mode=fast_mode)


def _non_contiguous(g: Tensor) -> Tensor:
    """The same values in a non-contiguous layout (every other element of a twice-as-long buffer)."""
    wide = torch.empty(*g.shape, 2, dtype=g.dtype, device=g.device)[..., 0]
    wide.copy_(g.data)
    return Tensor(wide, requires_grad=g.requires_grad)
