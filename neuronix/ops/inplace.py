"""In-place ops (``add_``, ``x += 1``, ``x[i] = v``, ``copy_``, ...) recorded as torch records them.

One mechanism serves every in-place method: when nothing needs a gradient (recording off, or
no input requires grad) it is torch's own in-place kernel on ``.data``. Otherwise it is the
registered out-of-place twin (``add_`` -> ``add``) applied to the tensor's current value, the
result is written into the tensor's storage (so every alias and view sees it and its version
counter moves, as torch's), and the tensor's history moves onto the twin's node:

* the twin reads a copy of the old value, so a saved pre-update value never changes under it;
  a node that saved the tensor *before* the update still sees the version move and raises at
  backward, exactly where torch raises;
* a view's update becomes its base's history too: the base gets a ``copy_slices`` node (the
  old base with the view's region replaced; torch's ``CopySlices``), recursively up a chain of
  views, and other views of the base rebuild their ``grad_fn`` when next used
  (``registry.refresh_view``);
* torch's errors are kept: a leaf that requires grad, a view of one, and a view created
  under ``no_grad`` modified with recording on.
"""

from __future__ import annotations

import torch

from neuronix.autograd.mode import is_grad_enabled, no_grad
from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.indexing import getitem, raw_index
from neuronix.ops.registry import METHODS, apply, defop, record, refresh_view
from neuronix.tensor import Tensor, unwrap


# ----- the two ops in-place updates need -----------------------------------------------
def _copy_forward(x, src, src_device=None):
    return torch.as_tensor(src, device=x.device).to(dtype=x.dtype, device=x.device).expand(x.shape).clone()


def _copy_source_grad(g, out, x, src, src_device):
    # runs only for a source in the graph (a tensor); it reads the source's device, never its values
    return g if g.device == src_device else g.to(src_device)


# ``x.copy_(src)`` / ``fill_`` / ``zero_`` out of place: the old value gets a zero gradient (it is overwritten).
# Nothing is saved (as torch's CopyBackwards): the source may change in place after the copy.
_COPY = defop("copy", _copy_forward, zero_gradient, _copy_source_grad, saves=())


def _copy(self, src):
    return apply(_COPY, self, src, src_device=src.device if isinstance(src, (Tensor, torch.Tensor)) else None)


def _copy_slices_forward(base, value, *, view):
    spec, rest, attrs = view
    out = base.clone()
    region = spec.forward(out, *map(unwrap, rest), **attrs)
    region.copy_(value) if isinstance(value, torch.Tensor) else region.fill_(value)
    return out


# torch's CopySlices: the base with one view's region replaced by ``value``.
COPY_SLICES = defop(
    "copy_slices",
    _copy_slices_forward,
    lambda g, out, base, value, view: apply(COPY_SLICES, g, 0.0, view=view),
    lambda g, out, base, value, view: apply(view[0], g, *view[1], **view[2]),
    saves=(),
)


def _index_put_forward(x, value, index):
    out = x.clone()
    out[index] = value
    return out


# ``x[index] = value`` out of place (the twin of ``__setitem__``).
_INDEX_PUT = defop(
    "index_put",
    _index_put_forward,
    lambda g, out, x, value, index: apply(_INDEX_PUT, g, 0.0, index=index),
    lambda g, out, x, value, index: getitem(g, index),  # runs only for a value in the graph (a tensor)
    saves=(),  # as torch's index_put: the value may change in place afterwards
)


def _copy_twin(self, src, non_blocking: bool = False):
    return _copy(self, src)


def _fill_twin(self, value):
    return _copy(self, value)


def _zero_twin(self):
    return _copy(self, 0)


def _setitem_twin(self, index, value):
    return apply(_INDEX_PUT, self, value, index=raw_index(index))


# ----- the mechanism ---------------------------------------------------------------------
def _requires_grad(values) -> bool:
    for v in values:
        if isinstance(v, Tensor) and v.requires_grad:
            return True
        if isinstance(v, (list, tuple)) and _requires_grad(v):
            return True
    return False


def _check_allowed(self: Tensor, name: str) -> None:
    """torch's refusals, with the op named."""
    if self.requires_grad and self.grad_fn is None:
        raise RuntimeError(
            f"{name}: a leaf Variable that requires grad is being used in an in-place operation "
            f"(shape {tuple(self.shape)}, dtype {self.dtype}); wrap the update in nx.no_grad() if it is an "
            "optimizer-style update, or operate on a clone"
        )
    view = self._view
    while view is not None:
        base, recorded = view[0], view[5]
        if not recorded:
            raise RuntimeError(
                f"{name}: A view was created in no_grad mode and is being modified inplace with grad mode enabled "
                f"(view shape {tuple(self.shape)}, base shape {tuple(base.shape)}). Move both the view and the "
                "in-place op inside the no_grad block (not tracked) or both outside it (tracked)"
            )
        if base.requires_grad and base.grad_fn is None:
            raise RuntimeError(
                f"{name}: a view of a leaf Variable that requires grad is being used in an in-place operation "
                f"(view shape {tuple(self.shape)}, leaf shape {tuple(base.shape)}); modify a clone of the leaf, "
                "or the leaf itself under nx.no_grad()"
            )
        view = base._view


def _no_grad_view_of_graph(t: Tensor) -> bool:
    """A view made under ``no_grad`` of a tensor that requires grad (torch's view would require grad too)."""
    view = t._view
    return view is not None and not view[5] and view[0].requires_grad


def _rebase(view_tensor: Tensor, value: Tensor) -> None:
    """Make a view's in-place update part of its base's history (and its base's base's, ...)."""
    base, spec, rest, attrs, _, recorded = view_tensor._view
    node = record(COPY_SLICES, (base, value), base.data, {"view": (spec, rest, attrs)})
    if base._view is not None:
        _rebase(base, Tensor._make(base.data, node))
    else:
        base.grad_fn = node
        base.requires_grad = node is not None
    if base.requires_grad:
        view_tensor.grad_fn = apply(spec, base, *rest, **attrs).grad_fn
        view_tensor.requires_grad = True
    view_tensor._view = (base, spec, rest, attrs, view_tensor.data._version, recorded)


def _recorded(self: Tensor, name: str, twin, args, kwargs) -> Tensor:
    _check_allowed(self, name)
    if twin is None:
        raise RuntimeError(
            f"{name}: this in-place op has no differentiable twin in Neuronix and an input requires grad "
            f"(shape {tuple(self.shape)}, dtype {self.dtype}); run it under nx.no_grad() or on detached tensors"
        )
    if name in _RESTRIDE:
        result = twin(self, *args, **kwargs)
        getattr(self.data, name)(*(unwrap(a) for a in args), **{k: unwrap(v) for k, v in kwargs.items()})
        self.grad_fn, self.requires_grad, self._view = result.grad_fn, result.requires_grad, None
        return self
    old = Tensor._make(self.data.clone(), self.grad_fn if self.requires_grad else None)
    old.requires_grad = self.requires_grad
    result = twin(old, *args, **kwargs)
    if result.shape != self.shape:
        raise RuntimeError(
            f"{name}: output with shape {tuple(self.shape)} doesn't match the broadcast shape {tuple(result.shape)}; "
            "an in-place op cannot change its tensor's shape"
        )
    if result.dtype != self.dtype:
        if not torch.can_cast(result.dtype, self.dtype):
            raise RuntimeError(
                f"{name}: result type {result.dtype} can't be cast to the desired output type {self.dtype}"
            )
        result = result.to(self.dtype)
    self.data.copy_(result.data)
    node = result.grad_fn
    if node is not None and node.saved_out is result.data:
        # the op saved its output: keep the tensor itself, so a later in-place change is caught as in torch
        node.saved_out = self.data
        node.versions = (*node.versions[:-1], self.data._version)
    if self._view is not None:
        _rebase(self, result)
    else:
        self.grad_fn = node
        self.requires_grad = node is not None
    return self


def _needs_recording(self: Tensor, values) -> bool:
    """Whether an in-place change of ``self`` by ``values`` must be recorded (after refreshing a stale view)."""
    view = self._view
    if view is not None and self.data._version != view[4]:
        refresh_view(self)
    return is_grad_enabled() and (self.requires_grad or _requires_grad(values) or _no_grad_view_of_graph(self))


def make_inplace(name: str, twin):
    """The in-place method ``name`` (torch's in-place kernel on ``.data``, or recorded through ``twin``)."""

    def method(self, *args, **kwargs):
        if _needs_recording(self, (*args, *kwargs.values())):
            return _recorded(self, name, twin, args, kwargs)
        getattr(self.data, name)(*(unwrap(a) for a in args), **{k: unwrap(v) for k, v in kwargs.items()})
        return self

    method.__name__ = name
    method.__doc__ = f"In place, as ``torch.Tensor.{name}``; recorded in the graph when a gradient is needed."
    return method


def in_place(input, name: str, twin, *args, **kwargs) -> Tensor:
    """``twin(input, *args)`` written into ``input`` — what ``inplace=True`` of a functional means.

    Recorded exactly as the in-place methods are; with nothing to record, the twin runs without
    recording and its values are copied into ``input``'s storage (its version counter moves, as torch's).
    """
    if not isinstance(input, Tensor):
        input = Tensor(input)  # shares the torch tensor's storage: the caller's tensor is the one written
    if _needs_recording(input, (*args, *kwargs.values())):
        return _recorded(input, name, twin, args, kwargs)
    with no_grad():
        result = twin(input, *args, **kwargs)
    input.data.copy_(result.data)
    return input


def _setitem(self, index, value) -> None:
    if _needs_recording(self, (value,)):
        _recorded(self, "__setitem__", _setitem_twin, (index, value), {})
        return
    self.data[raw_index(index)] = unwrap(value)


# Python's augmented assignments, as torch.Tensor defines them.
_AUGMENTED = {
    "__iadd__": "add_", "__isub__": "sub_", "__imul__": "mul_", "__itruediv__": "div_", "__ifloordiv__": "floor_divide_",
    "__imod__": "remainder_", "__ipow__": "pow_", "__iand__": "bitwise_and_", "__ior__": "bitwise_or_",
    "__ixor__": "bitwise_xor_",
}

# In-place ops that change a tensor's shape or strides, not its values: the torch tensor is
# restrided in place and its history becomes the twin's (torch: ``unsqueeze_`` and friends).
_RESTRIDE = {"squeeze_", "unsqueeze_", "t_", "transpose_", "swapaxes_", "swapdims_"}


def install_inplace_methods() -> None:
    """Every ``<name>_`` torch has for a public ``<name>`` method, plus copy_/fill_/zero_, ``[]=`` and ``+=``."""
    twins = {"copy_": _copy_twin, "fill_": _fill_twin, "zero_": _zero_twin}
    for name, fn in METHODS.items():
        # an in-place method registered in its own right (random.py's bernoulli_) is not derived
        if hasattr(torch.Tensor, name + "_") and not name.startswith("_") and name + "_" not in METHODS:
            twins[name + "_"] = fn
    for name in _AUGMENTED.values():
        twins.setdefault(name, None)  # no differentiable twin: torch's kernel when nothing needs a gradient
    methods = {name: make_inplace(name, twin) for name, twin in twins.items()}
    for name, method in methods.items():
        setattr(Tensor, name, method)
    for dunder, name in _AUGMENTED.items():
        setattr(Tensor, dunder, methods[name])
    Tensor.__setitem__ = _setitem
