"""The module driver: a torch ``nn.Module`` and its neuronix twin with the same weights.

Per example:

1. Build both from the drawn constructor arguments after the same ``torch.manual_seed``:
   their default initialisation must already agree (``initial state_dict``), since
   neuronix's initialisers draw from torch's RNG exactly as torch's do.
2. Load the torch module's ``state_dict`` into the neuronix one (torch tensors in, the
   interop path users take) and convert both to the case's dtype and device.
3. In each of ``mirror.modes`` (train, eval) run both on the same drawn inputs, with the
   torch RNG reseeded identically before each forward (dropout masks agree), and compare:
   the outputs; under one random upstream gradient, the gradient of every differentiable
   input and every parameter; optionally the second derivative (``gradgrad``); and every
   buffer (running statistics) after the forward.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.closeness import flatten, to_torch
from conformance.kinds.op import _build, _dot, _get, _grads, _leaf_slots, _NxConst, _NxLeaf, _TorchLeaf
from conformance.mirror import Comparison, ModuleMirror
from conformance.trace import Mismatch, Rejected, describe, note, track


def _outputs(mirror: ModuleMirror, result):
    return flatten(mirror.output(result) if mirror.output else result)


def _state(module) -> dict:
    return {k: to_torch(v) for k, v in module.state_dict().items()}


def _params(module, lib):
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def _call(mirror, t_mod, n_mod, sample, slots, seed):
    """Both forwards on the same inputs and RNG state; both raising is a rejected example."""
    t_args, t_kwargs = _build(sample, slots, _TorchLeaf())
    try:
        torch.manual_seed(seed)
        t_result = t_mod(*t_args, **t_kwargs)
    except Exception as err:  # noqa: BLE001 - any torch error makes the example invalid for torch
        c_args, c_kwargs = _build(sample, slots, _NxConst())
        try:
            torch.manual_seed(seed)
            n_mod(*c_args, **c_kwargs)
        except Exception:  # noqa: BLE001 - both raised: a consistent rejection
            raise Rejected(f"torch and neuronix both raised ({type(err).__name__}: {err})") from None
        raise Mismatch("forward", f"torch raised {type(err).__name__}: {err}; neuronix returned a result") from None
    n_args, n_kwargs = _build(sample, slots, _NxLeaf())
    torch.manual_seed(seed)
    n_result = n_mod(*n_args, **n_kwargs)
    return t_args, t_result, n_args, n_result


def compare_module(mirror: ModuleMirror, draw, dtype: torch.dtype, device: torch.device) -> Iterator[Comparison]:
    """Run one drawn example of ``mirror``; yield its Comparisons (the runner judges them)."""
    args, kwargs = mirror.build(draw)
    note(constructor={"args": [describe(a) for a in args], "kwargs": {k: describe(v) for k, v in kwargs.items()}})
    init_seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(init_seed)
    t_mod = mirror.torch(*args, **kwargs)
    torch.manual_seed(init_seed)
    n_mod = mirror.nx(*args, **kwargs)
    yield Comparison("forward", "initial state_dict (default init)", _state(n_mod), _state(t_mod))
    missing, unexpected = n_mod.load_state_dict(t_mod.state_dict())
    if missing or unexpected:
        raise Mismatch("forward", f"state_dict keys differ: missing {missing}, unexpected {unexpected}")
    t_mod.to(device=device, dtype=dtype)
    n_mod.to(device=device, dtype=dtype)
    sample = mirror.sample(draw, args, kwargs, dtype, device)
    note(inputs=[describe(a) for a in sample.args], kwargs={k: describe(v) for k, v in sample.kwargs.items()})
    slots = _leaf_slots(sample)
    gen = torch.Generator().manual_seed(init_seed)
    for mode in mirror.modes:
        t_mod.train(mode == "train")
        n_mod.train(mode == "train")
        yield from _compare_call(mirror, t_mod, n_mod, sample, slots, draw(st.integers(0, 2**31 - 1)), gen, mode, device)
        yield Comparison("buffers", f"buffers after {mode} forward", _buffers(n_mod), _buffers(t_mod))


def _buffers(module) -> dict:
    return {k: to_torch(v) for k, v in module.named_buffers()}


def _compare_call(mirror, t_mod, n_mod, sample, slots, seed, gen, mode, device) -> Iterator[Comparison]:
    t_args, t_result, n_args, n_result = _call(mirror, t_mod, n_mod, sample, slots, seed)
    t_out, n_out = _outputs(mirror, t_result), _outputs(mirror, n_result)
    track(*[v for _, v in n_out], label=f"{mode} output")
    for (path, t), (_, n) in zip(t_out, n_out):
        if isinstance(t, torch.Tensor) and not isinstance(n, nx.Tensor):
            raise Mismatch("forward", f"output{path}: neuronix returned {type(n).__name__}, expected nx.Tensor")
    yield Comparison("forward", f"{mode} output", to_torch([v for _, v in n_out]), to_torch([v for _, v in t_out]))
    if len(t_out) != len(n_out):
        return
    floats = [k for k, (_, t) in enumerate(t_out) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if not floats:
        return
    upstream = [torch.randn(t_out[k][1].shape, generator=gen, dtype=torch.float64).to(t_out[k][1].dtype).to(device)
                for k in floats]
    names, t_params = _params(t_mod, torch)
    _, n_params = _params(n_mod, nx)
    labels = [label for label, _ in slots] + [f"parameter {n}" for n in names]
    t_wrt = [_get(t_args, p) for _, p in slots] + t_params
    n_wrt = [_get(n_args, p) for _, p in slots] + n_params
    if not t_wrt:
        return
    create = mirror.gradgrad
    t_grads = _grads([t_out[k][1] for k in floats], t_wrt, upstream, torch, create)
    n_grads = _grads([n_out[k][1] for k in floats], n_wrt, upstream, nx, create)
    track(*n_grads, label=f"{mode} gradient")
    for label, ng, tg in zip(labels, n_grads, t_grads):
        yield Comparison("backward", f"{mode} grad {label}", to_torch(ng), to_torch(tg))
    if create:
        vs = [torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype).to(device) for x in t_wrt]
        t_s = _dot(t_grads, vs, torch)
        n_s = _dot(n_grads, [nx.Tensor(v) for v in vs], nx)
        if t_s is None or n_s is None:
            return
        t_second = _grads([t_s], t_wrt, [torch.ones_like(t_s)], torch, False)
        n_second = _grads([n_s], n_wrt, [torch.ones_like(n_s.data)], nx, False)
        for label, ng, tg in zip(labels, n_second, t_second):
            yield Comparison("double_backward", f"{mode} grad of <grad, v> wrt {label}", to_torch(ng), to_torch(tg))
