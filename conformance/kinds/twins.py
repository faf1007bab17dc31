"""Module vs functional: each module mirror's ``nn.functional`` twin, in neuronix against torch.

``nn.LeakyReLU`` -> ``F.leaky_relu``: the twin's name is derived from the class name (``_twin_name``) or given
by ``ModuleMirror.functional`` (a name, or a call for BatchNorm's running statistics), and its arguments are
the module's attributes of the twin's parameter names. It is compared (check ``variant``: outputs, gradients
of inputs and parameters) wherever torch's module and torch's twin agree exactly, i.e. where the derivation
holds for the drawn constructor arguments (a conv with ``padding_mode="reflect"`` pads before F.conv2d: no twin).
The module driver calls ``module_twin`` after each mode's comparisons.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds import variants
from conformance.kinds.common import (
    NxLeaf,
    TorchLeaf,
    build_call,
    current_example,
    grads,
    outputs,
    randn_like,
    slot_value,
)
from conformance.mirror import FLOATS, Comparison
from conformance.trace import Mismatch, track


def _twin_name(class_name: str) -> str | None:
    """``nn.<class_name>``'s functional twin in torch: the ``F`` name that spells the class without case and
    underscores (``LeakyReLU`` -> ``leaky_relu``), its ``Loss`` suffix or its ``1d``/``2d`` suffix dropped."""
    index = {n.replace("_", "").lower(): n for n in dir(torch.nn.functional) if not n.startswith("_") and not n.endswith("_")}
    key = class_name.lower()
    for candidate in (key, key.removesuffix("loss"), re.sub(r"\dd$", "", key)):
        if candidate in index:
            return index[candidate]
    return None


def functional_twin(mirror) -> tuple[str, Callable] | None:
    """``(label, call(lib, module, inputs))`` of a module mirror's ``nn.functional`` twin, or None.

    ``ModuleMirror.functional`` names the twin or gives the call where the class name does not tell;
    otherwise ``_twin_name`` derives it. The derived call passes the module's attributes by the twin's
    parameter names (``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``), buffers as copies,
    so running the twin never moves a running statistic.
    """
    given = getattr(mirror, "functional", None)
    if callable(given):
        return f"functional twin {getattr(given, '__name__', 'call')}", given
    name = given or _twin_name(mirror.name.rsplit(".", 1)[-1])
    if not name or not callable(getattr(torch.nn.functional, name, None)) or not variants.public_function("nn.functional", name):
        return None

    def call(lib, module, inputs):
        space = torch.nn.functional if lib is torch else nx.nn.functional
        fn = getattr(space, name)
        buffers = dict(module.named_buffers())
        params = list(inspect.signature(getattr(nx.nn.functional, name)).parameters.values())[len(inputs):]
        kwargs = {}
        for p in params:
            if p.name == "training":
                kwargs[p.name] = module.training
            elif p.name in buffers:
                kwargs[p.name] = buffers[p.name].clone()
            elif p.name != "inplace" and hasattr(module, p.name) and not inspect.ismethod(getattr(module, p.name)):
                kwargs[p.name] = getattr(module, p.name)
        return fn(*inputs, **kwargs)

    return f"functional twin F.{name}", call


def _identical(a, b) -> bool:
    a, b = to_torch(a), to_torch(b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.isnan(), b.isnan()) and torch.equal(
            a.nan_to_num(0.0), b.nan_to_num(0.0))
    return a == b


def _module_output(module, args, seed):
    """``module(*args)`` with torch's RNG at ``seed`` and every buffer restored after (running statistics)."""
    saved = {k: v.clone() for k, v in module.named_buffers()}
    torch.manual_seed(seed)
    result = module(*args)
    with torch.no_grad():
        for k, v in module.named_buffers():
            v.copy_(saved[k])
    return result


def module_twin(mirror, t_mod, n_mod, sample, slots, seed: int, mode: str, dtype) -> Iterator[Comparison]:
    """The module's functional twin in neuronix against torch's (outputs, gradients of inputs and parameters),
    wherever torch's module and torch's twin agree exactly (the derivation holds for these constructor args)."""
    twin = functional_twin(mirror) if dtype in FLOATS and not sample.kwargs else None
    k = current_example()
    if twin is None or variants.ROTATION > 1 and (k % 2 or mode != mirror.modes[k // 2 % len(mirror.modes)]):
        return  # to stay cheap: even examples only, one mode each, alternating (0: train, 2: eval, ...)
    label, call = twin
    t_args, _ = build_call(sample, slots, TorchLeaf())
    t_module = _module_output(t_mod, t_args, seed)
    torch.manual_seed(seed)
    try:
        t_result = call(torch, t_mod, t_args)
    except Exception:  # noqa: BLE001 - torch's twin refuses these arguments: no twin here
        return
    if not _identical(t_result, t_module):
        return
    n_args, _ = build_call(sample, slots, NxLeaf())
    torch.manual_seed(seed)
    try:
        n_result = call(nx, n_mod, n_args)
    except Exception as err:  # noqa: BLE001 - torch's twin returned: neuronix's must too
        raise Mismatch("variant", f"{mode} {label}: torch returned, neuronix raised {type(err).__name__}: {err}") from None
    t_out, n_out = outputs(mirror, t_result), outputs(mirror, n_result)
    track(*[o for _, o in n_out], label=f"{mode} {label} output")
    yield Comparison("variant", f"{mode} {label}: output", to_torch([o for _, o in n_out]), to_torch([o for _, o in t_out]))
    floats = [k for k, (_, o) in enumerate(t_out) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not floats or len(t_out) != len(n_out):
        return
    names = [n for n, p in t_mod.named_parameters() if p.requires_grad]
    t_wrt = [slot_value(t_args, p) for _, p in slots] + [p for p in t_mod.parameters() if p.requires_grad]
    n_wrt = [slot_value(n_args, p) for _, p in slots] + [p for p in n_mod.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    ups = [randn_like(t_out[k][1], gen) for k in floats]
    t_grads = grads([t_out[k][1] for k in floats], t_wrt, ups, torch, False)
    n_grads = grads([n_out[k][1] for k in floats], n_wrt, ups, nx, False)
    track(*n_grads, label=f"{mode} {label} gradient")
    for what, ng, tg in zip([label for label, _ in slots] + [f"parameter {n}" for n in names], n_grads, t_grads):
        yield Comparison("variant", f"{mode} {label}: grad {what}", to_torch(ng), to_torch(tg))
