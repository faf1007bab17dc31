"""Neuronix tensors inside torch calls: torch's ``__torch_function__`` protocol.

A torch function or ``torch.Tensor`` method that receives an ``nx.Tensor`` anywhere in its
arguments (``torch.exp(x)``, ``torch.cat([a, b])``, ``F.relu(x)``, ``t.view_as(x)``,
``p.data.add_(p.grad)``) calls ``Tensor.__torch_function__`` instead of failing with "must be
Tensor, not Tensor". The handler decides, in this order:

1. A torch method writing in place into a plain ``torch.Tensor`` (``p.data.add_(p.grad)``,
   ``t[i] = x``, ``out=``) runs on the raw data and returns what torch returns (that raw
   tensor). The write cannot be recorded by neuronix, so if a value that requires grad is
   written while grad mode is on, that is an error: the gradient would be lost.
2. When neuronix has a public function or method of the same name (``torch.exp`` ->
   ``nx.exp``, ``torch.nn.functional.relu`` -> ``nx.nn.functional.relu``, ``torch.Tensor.view_as``
   -> ``nx.Tensor.view_as``), that twin runs, so gradients flow; plain torch tensors are
   constants to it, as everywhere in neuronix.
3. Otherwise, if nothing involved requires grad (or grad mode is off), torch's function runs
   on the raw data; tensor results come back as ``nx.Tensor`` (a raw torch tensor that was
   an argument comes back as itself).
4. Otherwise it is an error naming the function: running it would silently detach.

torch's grad mode governs torch's calls: under ``torch.no_grad()`` (metric code, torchvision's
``save_image``) a torch call on neuronix tensors runs with neuronix's recording off too, as the
same call on torch tensors records nothing. (Neuronix methods called directly keep neuronix's own
mode: ``nx.no_grad()`` is what turns them off.)

The other protocols a torch user's code relies on are installed here too, as torch's:
``format(x, ".3f")`` of a 0-d tensor formats its value; ``x.__dlpack__()`` /
``__dlpack_device__()`` export the data (``torch.from_dlpack(x)``, ``np.from_dlpack(x)``),
refusing a tensor that requires grad as torch does; ``torch.utils.data.default_collate`` (and so
a ``DataLoader``) stacks samples holding ``nx.Tensor``s into ``nx.Tensor`` batches (recorded by
``nx.stack`` where a sample requires grad); and ``torch.is_tensor(x)`` is True for an
``nx.Tensor`` (torchvision's ``make_grid``/``save_image`` and other libraries ask it before
calling torch functions, which then dispatch here). A torch user's own ``torch.autograd.Function``
applied to neuronix tensors runs as an ``nx.autograd.Function`` (same ``forward``/``backward``;
its torch calls dispatch here), so its backward is the one recorded, never bypassed.
"""

from __future__ import annotations

import inspect
import threading

import torch

from neuronix.autograd import mode
from neuronix.tensor import Tensor

# In-place methods that are dunders (the ``name_`` convention covers the rest).
_INPLACE_DUNDERS = frozenset({
    "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__idiv__", "__ifloordiv__", "__imod__",
    "__ipow__",
    "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "__imatmul__",
})
# Python plumbing that exists on both classes but is not an op: never a twin.
_PLUMBING = frozenset({
    "__init__", "__new__", "__repr__", "__str__", "__format__", "__reduce__", "__reduce_ex__", "__hash__",
    "__getattribute__", "__getattr__", "__setattr__", "__delattr__", "__dir__", "__sizeof__", "__init_subclass__",
    "__subclasshook__", "__class__", "__torch_function__", "__array__", "__len__", "__iter__", "__bool__",
    "__float__", "__int__", "__index__", "__deepcopy__", "__copy__", "__setstate__", "__getstate__",
})

_state = threading.local()  # the torch functions being dispatched in this thread (a twin must not loop back)
_tables: dict = {}


def _tensor_methods() -> dict:
    """``torch.Tensor`` attribute object -> its names (identified by identity: ``__rtruediv__`` is ``__rdiv__``)."""
    table = _tables.get("methods")
    if table is None:
        table = {}
        for name in dir(torch.Tensor):
            try:
                attr = getattr(torch.Tensor, name)
                table[attr] = table.get(attr, ()) + (name,)
            except (AttributeError, TypeError):  # unhashable or unreadable attributes are not methods
                continue
        _tables["methods"] = table
    return table


def _method_twin(name: str):
    if name in _PLUMBING or (name.startswith("_") and not name.startswith("__")):
        return None
    candidate = getattr(Tensor, name, None)
    if callable(candidate) and not isinstance(candidate, property) and _is_neuronix(candidate):
        return candidate
    return None


def _functions() -> dict:
    """torch function object -> (its public name, e.g. ``torch.special.expit``, its short name, the neuronix
    namespaces that may hold its twin). By identity: ``torch.special.expit.__name__`` is ``special_expit``."""
    table = _tables.get("functions")
    if table is None:
        import torch.nn.functional
        import torch.nn.init

        import neuronix
        import neuronix.autograd
        import neuronix.nn.functional
        import neuronix.nn.init

        table = {}
        for torch_ns, ns_name, nx_namespaces in (
            # torch.conv1d is torch.nn.functional.conv1d (one object, found here first): either twin will do
            (torch, "torch", (neuronix, neuronix.nn.functional)),
            (torch.nn.functional, "torch.nn.functional", (neuronix.nn.functional,)),
            (torch.nn.init, "torch.nn.init", (neuronix.nn.init,)),
            (torch.autograd, "torch.autograd", (neuronix.autograd,)),
            (torch.linalg, "torch.linalg", ()),
            (torch.special, "torch.special", ()),
            (torch.fft, "torch.fft", ()),
        ):
            for name in dir(torch_ns):
                attr = getattr(torch_ns, name, None)
                if callable(attr) and not isinstance(attr, type) and _hashable(attr):
                    table.setdefault(attr, (f"{ns_name}.{name}", name, nx_namespaces))
        _tables["functions"] = table
    return table


def _is_neuronix(fn) -> bool:
    # nx re-exports some torch objects (nx.manual_seed is torch.manual_seed): those are not twins
    return callable(fn) and (getattr(fn, "__module__", "") or "").startswith("neuronix")


def _resolve(func):
    """``(qualified name, method name or None, neuronix twin or None)`` for a torch callable."""
    if not _hashable(func):
        return repr(func), None, None
    names = _tensor_methods().get(func)
    if names is not None:
        # of an alias's names, the one neuronix defines (torch's __rdiv__ is its __rtruediv__)
        method, twin = next(((n, t) for n in names if (t := _method_twin(n)) is not None), (names[0], None))
        return f"torch.Tensor.{method}", method, twin
    found = _functions().get(func)
    if found is None:
        return f"{getattr(func, '__module__', None) or 'torch'}.{getattr(func, '__name__', func)}", None, None
    qualified, name, nx_namespaces = found
    twins = (getattr(ns, name, None) for ns in nx_namespaces)
    return qualified, None, next((t for t in twins if _is_neuronix(t)), None)


def _hashable(obj) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


def _nx_tensors(obj, found: list) -> list:
    if isinstance(obj, Tensor):
        found.append(obj)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _nx_tensors(item, found)
    elif isinstance(obj, dict):
        for item in obj.values():
            _nx_tensors(item, found)
    elif isinstance(obj, slice):
        _nx_tensors((obj.start, obj.stop, obj.step), found)
    return found


def _unwrap(obj):
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, tuple):
        items = [_unwrap(item) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_unwrap(item) for item in obj]
    if isinstance(obj, dict):
        return {key: _unwrap(value) for key, value in obj.items()}
    if isinstance(obj, slice):
        return slice(_unwrap(obj.start), _unwrap(obj.stop), _unwrap(obj.step))
    return obj


def _wrap(out, raw_args: dict, nx_by_data: dict):
    """Torch's result with new tensors as ``nx.Tensor``; arguments returned by torch come back as given."""
    if isinstance(out, torch.Tensor):
        if id(out) in raw_args:
            return out
        owner = nx_by_data.get(id(out))
        return owner if owner is not None else Tensor._make(out, None)
    if isinstance(out, tuple):
        items = [_wrap(item, raw_args, nx_by_data) for item in out]
        if hasattr(out, "_fields"):  # a namedtuple
            return type(out)(*items)
        if type(out) is not tuple:  # torch.return_types.* (structseq): built from one sequence
            return type(out)(items)
        return tuple(items)
    if isinstance(out, list):
        return [_wrap(item, raw_args, nx_by_data) for item in out]
    return out


def _twin_kwargs(qualified: str, func, twin, kwargs: dict) -> dict:
    """``kwargs`` without those the twin lacks that hold torch's default: Python-level torch functions
    forward every keyword they were given (``torch.autograd.grad(..., only_inputs=True)``)."""
    try:
        accepted = inspect.signature(twin).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()) or all(k in accepted for k in kwargs):
        return kwargs
    try:
        defaults = inspect.signature(func).parameters
    except (TypeError, ValueError):
        defaults = {}
    kept = {}
    for key, value in kwargs.items():
        if key in accepted:
            kept[key] = value
            continue
        default = defaults[key].default if key in defaults else inspect.Parameter.empty
        if value is not default and not (isinstance(value, (bool, int, float, str)) and value == default):
            raise TypeError(f"{qualified}: its neuronix twin {twin.__module__}.{twin.__name__} does not support "
                            f"{key}={value!r}; leave {key} at torch's default ({default!r})")
    return kept


def _describe(t: Tensor) -> str:
    return f"Tensor(shape={tuple(t.shape)}, dtype={t.dtype}, device={t.device}, requires_grad=True)"


def _lost_gradient(qualified: str, tracked: list, what: str) -> RuntimeError:
    return RuntimeError(
        f"{qualified}: called with a neuronix tensor that requires grad ({_describe(tracked[0])}), but {what}, so "
        "its gradient would be lost (neuronix never detaches silently); use a neuronix op for this step, pass "
        "x.detach() if no gradient should flow, or run it under nx.no_grad()"
    )


def _run_raw(func, args, kwargs):
    raw_args = {id(a): a for a in args if isinstance(a, torch.Tensor)}
    raw_args.update((id(v), v) for v in kwargs.values() if isinstance(v, torch.Tensor))
    nx_by_data = {id(t.data): t for t in _nx_tensors((args, kwargs), [])}
    out = func(*_unwrap(args), **_unwrap(kwargs))
    return _wrap(out, raw_args, nx_by_data)


def torch_function(cls, func, types, args=(), kwargs=None):
    """``Tensor.__torch_function__``: see the module docstring for the four cases."""
    if not torch.is_grad_enabled() and mode.is_grad_enabled():  # torch.no_grad(): this call records nothing
        with mode.no_grad():
            return torch_function(cls, func, types, args, kwargs)
    kwargs = kwargs or {}
    qualified, method, twin = _resolve(func)
    active = getattr(_state, "active", None)
    if active is None:
        active = _state.active = set()
    if func in active:
        twin = None  # the twin itself called torch's function with a neuronix tensor: do not loop
    tracked = [t for t in _nx_tensors((args, kwargs), []) if t.requires_grad] if mode.is_grad_enabled() else []

    writes_raw = kwargs.get("out") is not None or (
        method is not None and (method in _INPLACE_DUNDERS or (method.endswith("_") and not method.startswith("_")))
        and args and isinstance(args[0], torch.Tensor)
    )
    if writes_raw:
        if tracked:
            target = kwargs.get("out", args[0] if args else None)
            shape = tuple(target.shape) if isinstance(target, torch.Tensor) else None
            raise _lost_gradient(qualified, tracked, f"it writes into a plain torch.Tensor (shape {shape}) in place, "
                                                     "which is outside neuronix's graph")
        return _run_raw(func, args, kwargs)

    if twin is not None:
        if method is not None and args and isinstance(args[0], torch.Tensor):
            args = (Tensor._make(args[0], None),) + tuple(args[1:])  # a plain torch self is a constant
        kwargs = _twin_kwargs(qualified, func, twin, kwargs)
        active.add(func)
        try:
            return twin(*args, **kwargs)
        finally:
            active.discard(func)
    if tracked:
        raise _lost_gradient(qualified, tracked, "neuronix has no twin of it to record the step")
    return _run_raw(func, args, kwargs)


# ----- the other protocols: format, DLPack, DataLoader batches, is_tensor ------------------------------------
def _format(self: Tensor, format_spec: str) -> str:
    """``Tensor.__format__``: a 0-d tensor formats as its value (``f"{loss:.3f}"``), others as torch's do."""
    if self.data.dim() == 0 and not self.data.is_meta:
        return self.data.item().__format__(format_spec)
    return object.__format__(self, format_spec)


def _refuse_export(self: Tensor, what: str) -> None:
    if self.requires_grad:
        raise RuntimeError(f"{what}: Can't export tensors that require gradient, use tensor.detach() (a Neuronix tensor "
                           f"of shape {tuple(self.shape)} that requires grad: the export would drop its gradient)")


def _dlpack(self: Tensor, *, stream=-1, max_version=None, dl_device=None, copy=None):
    """``Tensor.__dlpack__``: the data as a DLPack capsule (torch's keywords)."""
    _refuse_export(self, "__dlpack__")
    return self.data.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)


def _dlpack_device(self: Tensor):
    return self.data.__dlpack_device__()


def collate(batch, *, collate_fn_map=None):
    """``default_collate`` of samples that are ``nx.Tensor``s: torch's stacking (into shared memory in a
    worker), as an ``nx.Tensor``; ``nx.stack`` (recorded) when a sample requires grad."""
    from torch.utils.data._utils.collate import collate_tensor_fn

    if mode.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in batch):
        from neuronix.ops.movement import stack  # the ops package imports this module's users

        return stack(list(batch))
    return Tensor._make(collate_tensor_fn([t.data if isinstance(t, Tensor) else t for t in batch]), None)


_torch_is_tensor = torch.is_tensor


def is_tensor(obj, /) -> bool:
    """``torch.is_tensor``, True for an ``nx.Tensor`` too (it speaks torch's protocol)."""
    return isinstance(obj, Tensor) or _torch_is_tensor(obj)


# torch's own ``Function.apply`` as its class defines it: a Python ``classmethod`` in some torch versions, a C
# ``classmethod_descriptor`` in others (2.14); both bind to a subclass with ``__get__(None, cls)``
_torch_function_apply = next(vars(k)["apply"] for k in torch.autograd.Function.__mro__ if "apply" in vars(k))


def _function_apply(cls, *args, **kwargs):
    """``torch.autograd.Function.apply``: with a neuronix tensor among the arguments, Neuronix's Function
    machinery (torch's would call forward with them as plain objects and never call backward)."""
    if any(isinstance(a, Tensor) for a in args) or any(isinstance(v, Tensor) for v in kwargs.values()):
        from neuronix.autograd import function

        return function.run(cls, torch.autograd.Function, args, kwargs)
    return _torch_function_apply.__get__(None, cls)(*args, **kwargs)


# ----- torch-ecosystem utilities that demand a torch.Tensor ----------------------------------------------------
# Some utilities check ``isinstance(x, torch.Tensor)`` instead of going through torch's protocol (torchvision's
# make_grid/save_image do, after the protocol already ran their first steps), so an ``nx.Tensor`` stops them with a
# TypeError. They are not differentiable steps of a model: they get torch's third and fourth cases above, raw
# data when nothing requires grad (tensor results back as nx.Tensor), else the error naming what would be lost.
RAW_DATA_UTILITIES = {"torchvision.utils": ("make_grid", "save_image", "draw_bounding_boxes",
                                            "draw_segmentation_masks", "draw_keypoints", "flow_to_image")}


def _raw_data_utility(qualified: str, fn):
    def call(*args, **kwargs):
        found = _nx_tensors((args, kwargs), [])
        if not found:  # a plain torch call: untouched
            return fn(*args, **kwargs)
        tracked = [t for t in found if t.requires_grad] if mode.is_grad_enabled() else []
        if tracked:
            raise _lost_gradient(qualified, tracked, "it runs on raw torch data (it is not a neuronix op)")
        return _run_raw(fn, args, kwargs)

    call.__wrapped__, call.neuronix_adapted = fn, True
    call.__name__, call.__qualname__, call.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return call


def _adapt_utilities(module) -> None:
    for name in RAW_DATA_UTILITIES.get(module.__name__, ()):
        fn = getattr(module, name, None)
        if callable(fn) and not getattr(fn, "neuronix_adapted", False):
            setattr(module, name, _raw_data_utility(f"{module.__name__}.{name}", fn))


class _UtilityImportHook:
    """A ``sys.meta_path`` finder that adapts a RAW_DATA_UTILITIES module right after it is executed, whatever the
    import order (a module imported before neuronix is adapted at install)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in RAW_DATA_UTILITIES:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            _adapt_utilities(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    import sys

    from torch.utils.data._utils.collate import default_collate_fn_map

    for name in RAW_DATA_UTILITIES:
        if name in sys.modules:
            _adapt_utilities(sys.modules[name])
    if not any(isinstance(f, _UtilityImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _UtilityImportHook())

    Tensor.__torch_function__ = classmethod(torch_function)
    Tensor.__format__ = _format
    Tensor.__dlpack__ = _dlpack
    Tensor.__dlpack_device__ = _dlpack_device
    default_collate_fn_map[Tensor] = collate
    torch.is_tensor = is_tensor
    torch.autograd.Function.apply = classmethod(_function_apply)


install()
