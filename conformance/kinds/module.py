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
from conformance.closeness import to_torch
from conformance.kinds import common, twins
from conformance.mirror import FLOATS, Comparison, ModuleMirror
from conformance.trace import Mismatch, describe, note, track


def _state(module) -> dict:
    return {k: to_torch(v) for k, v in module.state_dict().items()}


def _buffers(module) -> dict:
    return {k: to_torch(v) for k, v in module.named_buffers()}


def _params(module) -> tuple[list[str], list]:
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def _seeded(module, seed: int):
    """``module`` called with torch's RNG reseeded first, so both libraries draw the same dropout masks."""

    def call(*args, **kwargs):
        torch.manual_seed(seed)
        return module(*args, **kwargs)

    return call


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
    common.note_sample(sample)
    slots = common.leaf_slots(sample)
    gen = torch.Generator().manual_seed(init_seed)
    for mode in mirror.modes:
        t_mod.train(mode == "train")
        n_mod.train(mode == "train")
        seed = draw(st.integers(0, 2**31 - 1))
        yield from _compare_call(mirror, t_mod, n_mod, sample, slots, seed, gen, mode)
        yield from twins.module_twin(mirror, t_mod, n_mod, sample, slots, seed, mode, dtype)
        yield Comparison("buffers", f"buffers after {mode} forward", _buffers(n_mod), _buffers(t_mod))


def _compare_call(mirror, t_mod, n_mod, sample, slots, seed, gen, mode) -> Iterator[Comparison]:
    t_args, t_result, n_args, n_result = common.call_both(sample, slots, _seeded(t_mod, seed), _seeded(n_mod, seed))
    t_out, n_out = common.outputs(mirror, t_result), common.outputs(mirror, n_result)
    yield common.forward_comparison(t_out, n_out, f"{mode} output", label=f"{mode} output")
    if len(t_out) != len(n_out):
        return
    floats = [k for k, (_, t) in enumerate(t_out) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if not floats:
        return
    upstream = [common.randn_like(t_out[k][1], gen) for k in floats]
    names, t_params = _params(t_mod)
    _, n_params = _params(n_mod)
    labels = [label for label, _ in slots] + [f"parameter {n}" for n in names]
    t_wrt = [common.slot_value(t_args, p) for _, p in slots] + t_params
    n_wrt = [common.slot_value(n_args, p) for _, p in slots] + n_params
    if not t_wrt:
        return
    create = mirror.gradgrad and t_wrt[0].dtype in FLOATS  # second derivatives: float32/float64 only
    t_up, n_up = ((common.upstream_leaves(upstream, torch), common.upstream_leaves(upstream, nx)) if create
                  else (upstream, upstream))
    t_grads = common.grads([t_out[k][1] for k in floats], t_wrt, t_up, torch, create)
    n_grads = common.grads([n_out[k][1] for k in floats], n_wrt, n_up, nx, create)
    track(*n_grads, label=f"{mode} gradient")
    for label, ng, tg in zip(labels, n_grads, t_grads):
        yield Comparison("backward", f"{mode} grad {label}", to_torch(ng), to_torch(tg))
    if create:  # w.r.t. the inputs, the parameters and the upstream gradients
        ups = ([f"upstream gradient {k}" for k in floats], t_up, n_up)
        yield from common.double_backward(labels, t_wrt, n_wrt, t_grads, n_grads, gen, prefix=f"{mode} ", upstream=ups)
