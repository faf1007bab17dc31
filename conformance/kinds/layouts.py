"""Layouts: the op example's gradients under non-contiguous upstream gradients and stride-0 expanded inputs.

``upstream_layouts`` reruns neuronix's backward on one retained graph with the upstream gradient laid out
transposed, strided, stride-0 expanded (constant along a dim) and channels-last, against torch's gradient
under the same upstream: a rule that reads the upstream gradient's storage as if it were contiguous shows
only there. ``expanded_inputs`` reruns the example with its differentiable inputs stride-0 expanded.
Both are part of the ``variant`` check (``variants.check`` calls them, rotating over a case's examples);
channels-last inputs come from ``strategies.tensor``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds import variants
from conformance.kinds.common import grads, slot_value
from conformance.kinds.op import forward_pair
from conformance.kinds.variants import Variant, run_variant
from conformance.mirror import Comparison
from conformance.trace import Mismatch, track


def expanded_inputs(ex) -> Iterator[Comparison]:
    """The example rerun with each differentiable input that has a dim longer than 1 laid out stride-0
    expanded along its last such dim (its values constant there, so torch reruns too): values and gradients.

    Here rather than in ``strategies.tensor``: other checks write into the sample's tensors in place,
    which a stride-0 tensor forbids."""
    if not getattr(ex.mirror, "tie_gradients", True):
        return  # a stride-0 input is all ties along its expanded dim (OpMirror.tie_gradients)
    args, changed = list(ex.sample.args), False
    for _, path in ex.slots:
        t = slot_value(args, path)
        wide = _expanded(t) if t.dim() and t.stride()[-1] != 0 else None
        if wide is None:
            continue
        changed = True
        if len(path) == 1:
            args[path[0]] = wide
        else:
            seq = list(args[path[0]])
            seq[path[1]] = wide
            args[path[0]] = type(args[path[0]])(seq)
    if not changed:
        return
    mirror = ex.mirror

    def call(lib, a, k, shape):
        return (mirror.torch if lib is torch else mirror.nx)(*a, **k)

    yield from run_variant(ex, Variant("stride-0 expanded inputs", call), None,
                           dataclasses.replace(ex.sample, args=tuple(args)))


# ----- non-contiguous upstream gradients ----------------------------------------------------------
def _transposed(u: torch.Tensor):
    if u.dim() < 2 or u.shape[-1] < 2 or u.shape[-2] < 2:
        return None
    return u.transpose(-1, -2).contiguous().transpose(-1, -2)


def _strided(u: torch.Tensor):
    if u.dim() < 1 or u.shape[-1] < 2:
        return None
    wide = u.new_zeros(u.shape[:-1] + (2 * u.shape[-1],))
    wide[..., ::2] = u
    return wide[..., ::2]


def _expanded(u: torch.Tensor):
    """Constant along the last dim longer than 1, with stride 0 there (different values: torch recomputes)."""
    dims = [d for d in range(u.dim()) if u.shape[d] > 1]
    if not dims:
        return None
    return u.narrow(dims[-1], 0, 1).expand(u.shape)


def _channels_last(u: torch.Tensor):
    if u.dim() != 4 or u.is_contiguous(memory_format=torch.channels_last):
        return None
    return u.contiguous(memory_format=torch.channels_last)


UPSTREAM_LAYOUTS = {"transposed": _transposed, "strided": _strided, "stride-0 expanded": _expanded,
                    "channels-last": _channels_last}


def upstream_layouts(ex, part: int = 0) -> Iterator[Comparison]:
    """Neuronix's gradients on one retained graph under non-contiguous layouts of the upstream gradient:
    of the layouts that apply to this example's upstream, the even positions for an even ``part``, else
    the odd ones (all of them when ``variants.ROTATION`` is 1)."""
    if not ex.slots or not ex.floats or not ex.mirror.grad:
        return
    layouts = []
    for name, lay in UPSTREAM_LAYOUTS.items():
        # an empty gradient has no layout to vary (every stride is "contiguous"), and torch's own backward can refuse
        # one that kept a strided view's strides (view_as_real: "must have a last dimension with stride 1")
        laid = [lay(u) if u.numel() else None for u in ex.upstream]
        if any(v is not None for v in laid):
            layouts.append((name, [v if v is not None else u for v, u in zip(laid, ex.upstream)]))
    layouts = [layout for i, layout in enumerate(layouts) if variants.ROTATION == 1 or i % 2 == part % 2]
    if not layouts:
        return
    t_leaves, t_out, n_leaves, n_out = forward_pair(ex.mirror, ex.sample, ex.slots)
    n_outs = [n_out[k][1] for k in ex.floats]
    track(*n_outs, label="output (upstream layouts)")
    t_outs = [t_out[k][1] for k in ex.floats]
    for i, (name, ups) in enumerate(layouts):
        last = i == len(layouts) - 1
        # torch under the same layout: its kernels may sum in another order for another layout (float32 rounding)
        expected = grads(t_outs, t_leaves, ups, torch, False, retain=not last)
        try:
            got = grads(n_outs, n_leaves, ups, nx, False, retain=not last)
        except Exception as err:  # noqa: BLE001 - torch's backward took this layout
            raise Mismatch("variant", f"backward under a {name} upstream gradient raised {type(err).__name__}: {err}") from None
        track(*got, label=f"gradient ({name} upstream)")
        for (label, _), ng, tg in zip(ex.slots, got, expected):
            yield Comparison("variant", f"grad {label} under a {name} upstream gradient", to_torch(ng), to_torch(tg))
