"""What the op and module drivers share: a sample's differentiable slots, one call in both libraries
(with the one rule for a call that raises), gradients in either library and second derivatives.

A *slot* is the path of a differentiable tensor in a ``Sample``: ``(i,)`` for positional
argument ``i``, ``(i, j)`` for element ``j`` of a list argument. Both libraries get leaves built
from the same drawn tensor at each slot, so they differentiate the very same values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import torch

import neuronix as nx
from conformance.closeness import flatten, to_torch
from conformance.mirror import Comparison, Sample
from conformance.trace import REMOVED_PREFIX, TORCH_REMOVED, Mismatch, Rejected, describe, note, track


def note_sample(sample: Sample) -> None:
    """Record the sample's input shapes and keyword arguments for the report."""
    note(inputs=[describe(a) for a in sample.args], kwargs={k: describe(v) for k, v in sample.kwargs.items()})


def leaf_slots(sample: Sample) -> list[tuple[str, tuple]]:
    """``(label, slot)`` of every differentiable tensor: positional args, or elements of list args."""
    allowed = sample.grad_args
    slots = []
    for i, a in enumerate(sample.args):
        if i in sample.raw_args or (allowed is not None and i not in allowed):
            continue
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            slots.append((f"arg {i}", (i,)))
        elif isinstance(a, (list, tuple)):
            for j, b in enumerate(a):
                if isinstance(b, torch.Tensor) and b.is_floating_point():
                    slots.append((f"arg {i}[{j}]", (i, j)))
    return slots


def substituted(sample: Sample, slots, values) -> Sample:
    """``sample`` with ``values`` at the differentiable ``slots`` (positional args or elements of list args)."""
    args = list(sample.args)
    for (_, path), v in zip(slots, values):
        if len(path) == 1:
            args[path[0]] = v
        else:
            seq = list(args[path[0]])
            seq[path[1]] = v
            args[path[0]] = type(args[path[0]])(seq)
    return dataclasses.replace(sample, args=tuple(args))


def current_example() -> int:
    """The index of the example running now, for checks that rotate over a case's examples
    (``runner.current_example``; imported here, not at module level: the runner imports the drivers)."""
    from conformance import runner

    return runner.current_example()


def slot_value(args, slot: tuple):
    """The argument at ``slot`` of a call's positional ``args``."""
    v = args[slot[0]]
    return v if len(slot) == 1 else v[slot[1]]


class TorchLeaf:
    """Builds torch calls: slots become torch leaves, other tensors pass as they are."""

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().requires_grad_(True)

    const = staticmethod(lambda t: t)


class NxLeaf:
    """Builds neuronix calls: slots become ``nx.Tensor`` leaves, other tensors ``nx.Tensor`` constants."""

    def __call__(self, t: torch.Tensor) -> nx.Tensor:
        return nx.Tensor(t.detach(), requires_grad=True)

    const = staticmethod(lambda t: nx.Tensor(t))


class NxConst(NxLeaf):
    """Builds neuronix calls that record nothing: every tensor a constant."""

    def __call__(self, t: torch.Tensor) -> nx.Tensor:
        return nx.Tensor(t.detach())


def build_call(sample: Sample, slots, leaf) -> tuple[list, dict]:
    """The call's args with the tensors at ``slots`` replaced by ``leaf(t)`` and other tensors by ``leaf.const(t)``."""
    paths = {p for _, p in slots}

    def conv(v, path, raw):
        if path in paths:
            return leaf(v)
        if isinstance(v, torch.Tensor):
            return v if raw else leaf.const(v)
        if isinstance(v, (list, tuple)) and any(isinstance(b, torch.Tensor) for b in v):
            return type(v)(conv(b, path + (j,), raw) for j, b in enumerate(v))
        return v

    args = [conv(a, (i,), i in sample.raw_args) for i, a in enumerate(sample.args)]
    kwargs = {k: conv(v, (k,), False) for k, v in sample.kwargs.items()}
    return args, kwargs


def call_both(sample: Sample, slots, torch_fn: Callable, nx_fn: Callable):
    """``(torch args, torch result, neuronix args, neuronix result)`` of one call in each library.

    When torch raises, neuronix must raise too (called on constants, so nothing is recorded):
    both raising rejects the example as invalid input, neuronix alone returning is a mismatch.
    """
    t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
    try:
        t_result = torch_fn(*t_args, **t_kwargs)
    except Exception as err:  # noqa: BLE001 - any torch error makes the example invalid for torch
        c_args, c_kwargs = build_call(sample, slots, NxConst())
        try:
            nx_fn(*c_args, **c_kwargs)
        except Exception as nx_err:  # noqa: BLE001 - both raised: a consistent rejection
            if TORCH_REMOVED in str(err):  # the installed torch removed the function: neuronix raises its error
                if type(nx_err) is not type(err) or str(nx_err) != str(err):
                    raise Mismatch("forward", f"torch raised {type(err).__name__}: {err}; neuronix raised another "
                                              f"error: {type(nx_err).__name__}: {nx_err}") from None
                raise Rejected(f"{REMOVED_PREFIX}{type(err).__name__}: {err}") from None
            raise Rejected(f"torch and neuronix both raised ({type(err).__name__}: {err})") from None
        raise Mismatch("forward", f"torch raised {type(err).__name__}: {err}; neuronix returned a result") from None
    n_args, n_kwargs = build_call(sample, slots, NxLeaf())
    return t_args, t_result, n_args, nx_fn(*n_args, **n_kwargs)


def outputs(mirror, result) -> list[tuple[str, object]]:
    """The compared ``(path, value)`` outputs of a result: those ``mirror.output`` picks, else all."""
    return flatten(mirror.output(result) if mirror.output else result)


def forward_comparison(t_out, n_out, what: str, label: str = "output") -> Comparison:
    """The forward Comparison, after checking that neuronix returns ``nx.Tensor`` wherever torch returns a tensor."""
    track(*[v for _, v in n_out], label=label)
    for (path, t), (_, n) in zip(t_out, n_out):
        if isinstance(t, torch.Tensor) and not isinstance(n, nx.Tensor):
            raise Mismatch("forward", f"output{path}: neuronix returned {type(n).__name__}, expected nx.Tensor")
    return Comparison("forward", what, to_torch([v for _, v in n_out]), to_torch([v for _, v in t_out]))


def randn_like(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Normal draws shaped like ``t``, drawn in float64 so both dtypes of a case see the same numbers."""
    return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype).to(t.device)


def grads(outs, inputs, upstream, lib, create_graph: bool, retain: bool | None = None) -> list:
    """Gradients of ``outs`` (those that require grad) w.r.t. ``inputs`` in ``lib`` (torch or nx); zeros where unused."""
    if lib is torch:
        pairs = [(o, u) for o, u in zip(outs, upstream) if o.requires_grad]
        grad_fn = torch.autograd.grad
    else:
        pairs = [(o, u if isinstance(u, nx.Tensor) else nx.Tensor(u))
                 for o, u in zip(outs, upstream) if isinstance(o, nx.Tensor) and o.requires_grad]
        grad_fn = nx.autograd.grad
    got = [None] * len(inputs)
    if pairs:
        got = list(grad_fn([o for o, _ in pairs], inputs, grad_outputs=[u for _, u in pairs],
                           allow_unused=True, create_graph=create_graph, retain_graph=retain))
    return [g if g is not None else _zeros(x, lib) for g, x in zip(got, inputs)]


def upstream_leaves(upstream: list, lib) -> list:
    """The upstream gradients as leaves that require grad, for a ``create_graph`` backward.

    The second-derivative check then differentiates w.r.t. them too, as torch's ``gradgradcheck``
    does with its grad_outputs: a rule whose dependence on the upstream gradient is wrong under
    recording (it reads the raw value, or scales it) changes only those derivatives, and for a
    linear op (add, reshape, index_select, pooling, a convolution's backward) they are its whole
    second-order behaviour.
    """
    if lib is torch:
        return [u.clone().requires_grad_() for u in upstream]
    return [nx.Tensor(u.clone(), requires_grad=True) for u in upstream]


def _zeros(x, lib):
    z = torch.zeros_like(x.detach() if lib is torch else x.data)
    return z if lib is torch else nx.Tensor(z)


def _dot(grads, vs):
    """``sum_i <grads_i, v_i>`` over the gradients that are in a graph (None when none is)."""
    terms = [(g * v).sum() for g, v in zip(grads, vs) if g.requires_grad]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def double_backward(labels, t_wrt, n_wrt, t_grads, n_grads, gen, prefix: str = "", upstream=None) -> Iterator[Comparison]:
    """The second derivative: the gradient of ``<grad, v>`` for a random ``v``, compared per input.

    ``t_grads`` / ``n_grads`` must come from ``grads(..., create_graph=True)``. A gradient
    outside any graph has a zero second derivative, in either library. ``upstream`` is
    ``(labels, torch leaves, neuronix leaves)`` of the upstream gradients the first derivatives
    were taken under (``upstream_leaves``): they are differentiated too, wherever torch can.
    """
    vs = [randn_like(x, gen) for x in t_wrt]
    t_s = _dot(t_grads, vs)
    n_s = _dot(n_grads, [nx.Tensor(v) for v in vs])
    if upstream is not None:
        up_labels, t_up, n_up = upstream
        try:
            if t_s is not None:
                grads([t_s], t_up, [torch.ones_like(t_s)], torch, False, retain=True)
        except RuntimeError:  # torch cannot differentiate its own backward w.r.t. grad_output here
            upstream = None
        else:
            labels, t_wrt, n_wrt = list(labels) + up_labels, list(t_wrt) + t_up, list(n_wrt) + n_up
    try:
        t_second = grads([t_s], t_wrt, [torch.ones_like(t_s)], torch, False) if t_s is not None else None
    except RuntimeError as err:
        raise Mismatch("double_backward", f"torch has no second derivative here ({err}); set gradgrad=False") from None
    track(n_s, label="<grad, v>")
    n_second = grads([n_s], n_wrt, [torch.ones_like(n_s.data)], nx, False) if n_s is not None else None
    for k, label in enumerate(labels):
        tg = t_second[k] if t_second is not None else torch.zeros_like(t_wrt[k].detach())
        ng = n_second[k] if n_second is not None else torch.zeros_like(n_wrt[k].data)
        yield Comparison("double_backward", f"{prefix}grad of <grad, v> wrt {label}", to_torch(ng), to_torch(tg))
