"""``nx.nn.Module``: the base class of every layer, with torch's registration rules.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it (in ``_parameters``
/ ``_modules``); ``register_buffer`` adds state that is saved but not trained. Everything
that walks the tree (``parameters``, ``state_dict``, ``to``, ``train``) is built on
``named_modules``, which visits each module once even when it is shared.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator

import torch

from neuronix.autograd import mode
from neuronix.nn.hooks import BackwardHookCall, RemovableHandle, add_hook
from neuronix.nn.parameter import Buffer, Parameter
from neuronix.tensor import Tensor, unwrap


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it could not match (empty lists when all matched)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()



def _is_lazy(tensor) -> bool:
    """An ``UninitializedParameter``/``UninitializedBuffer`` (nn/modules/lazy.py): its class names what it becomes."""
    return hasattr(type(tensor), "cls_to_become")


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return lines[0] if len(lines) == 1 else lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _parse_to(args, kwargs):
    """``Module.to`` overloads: (device), (dtype), (device, dtype), (tensor), keywords."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"Module.to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, (Tensor, torch.Tensor)):
            device, dtype = a.device, a.dtype
        elif isinstance(a, (str, int, torch.device)):
            device = torch.device(a)
        elif a is not None:
            raise TypeError(f"Module.to() got an argument of type {type(a).__name__}; expected a device, dtype or tensor")
    if dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}")
    return device, dtype


class Module:
    """Base class for all neural-network modules (as ``torch.nn.Module``).

    Subclasses call ``super().__init__()`` first, assign parameters and submodules as
    attributes, and implement ``forward``; call the module itself (``model(x)``) so hooks run.
    """

    training: bool
    _version: int = 1  # written into state_dict metadata, as torch does

    def __init__(self, *args, **kwargs) -> None:
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments {args} {kwargs}")
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", OrderedDict())
        set_(self, "_buffers", OrderedDict())
        set_(self, "_non_persistent_buffers_set", set())
        set_(self, "_modules", OrderedDict())
        set_(self, "_forward_pre_hooks", OrderedDict())
        set_(self, "_forward_pre_hooks_with_kwargs", OrderedDict())
        set_(self, "_forward_hooks", OrderedDict())
        set_(self, "_forward_hooks_with_kwargs", OrderedDict())
        set_(self, "_forward_hooks_always_called", OrderedDict())
        set_(self, "_backward_hooks", OrderedDict())
        set_(self, "_backward_pre_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        """Define the computation; subclasses override it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # ----- registration --------------------------------------------------------------
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or ``None``: a declared but absent parameter, like ``bias=False``)."""
        self._check_init("parameter")
        self._check_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' (nx.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add a buffer: state saved in ``state_dict`` (when ``persistent``) but not trained (e.g. running_mean)."""
        self._check_init("buffer")
        self._check_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, (Tensor, torch.Tensor)):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
        if isinstance(tensor, torch.Tensor):
            tensor = Tensor(tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module, reachable as an attribute ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_init("child module")
        self._check_name(name, "module", self._modules)
        self._modules[name] = module

    register_module = add_module

    def _check_name(self, name, what: str, table: dict) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{what} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f'{what} name can\'t be empty or contain ".", got: {name!r}')
        if hasattr(self, name) and name not in table and not self._owns(name):
            raise KeyError(f"attribute '{name}' already exists")

    def _owns(self, name: str) -> bool:
        return name in self._parameters or name in self._buffers or name in self._modules

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep=self._parameters)  # a reassigned name keeps its place, as in torch
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' (nx.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' (Module or None expected)")
            self._modules[name] = None
        elif isinstance(value, Buffer):  # torch >= 2.5: assigning an nn.Buffer registers it, with its persistence
            self._check_init("buffer")
            self.register_buffer(name, value, persistent=value.persistent)
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, (Tensor, torch.Tensor)):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = Tensor(value) if isinstance(value, torch.Tensor) else value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict | None = None) -> None:
        self.__dict__.pop(name, None)
        for table in (self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        # only reached when normal lookup fails: parameters, buffers and children live in tables
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ----- traversal -----------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(name, module)`` for this module and every descendant, each once (pre-order)."""
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if module in memo:
                    continue
                memo.add(module)
            yield name, module
            children = [(f"{name}.{key}" if name else key, child) for key, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and child not in seen:
                seen.add(child)
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for key, value in getattr(module, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{key}" if module_prefix else key), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(name, parameter)``; a parameter shared by several modules is yielded once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path ``target`` (``""`` is this module)."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}` (looking up {target!r})")
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._parameters:
            raise AttributeError(f"{type(module).__name__} has no parameter `{name}`")
        return module._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._buffers:
            raise AttributeError(f"{type(module).__name__} has no buffer `{name}`")
        return module._buffers[name]

    # ----- modes and in-place conversions ----------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every descendant (affects Dropout, BatchNorm)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad`` (to ``None`` by default, as torch)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:  # zero in place (an optimizer may hold this tensor), out of any graph
                if p.grad.grad_fn is not None:
                    p.grad = p.grad.detach()
                p.grad.data.zero_()

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every child (recursively) then on this module, e.g. for custom init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Module:
        """Replace every parameter's, gradient's and buffer's data by ``fn(data)``, keeping the objects."""
        for m in self.modules():
            for p in m._parameters.values():
                if p is None:
                    continue
                p.data = fn(p.data)
                if p.grad is not None:
                    p.grad.data = fn(p.grad.data)
            for b in m._buffers.values():
                if b is not None:
                    b.data = fn(b.data)
        return self

    def to(self, *args, **kwargs) -> Module:
        """Move and/or cast in place (floating tensors only change dtype), as ``torch.nn.Module.to``."""
        kwargs = dict(kwargs)
        memory_format = kwargs.pop("memory_format", None)
        device, dtype = _parse_to(args, kwargs)

        def convert(t: torch.Tensor) -> torch.Tensor:
            cast = dtype if dtype is not None and (t.is_floating_point() or t.is_complex()) else None
            if memory_format is not None and t.dim() in (4, 5):  # as torch: only conv-shaped tensors change layout
                return t.to(device=device, dtype=cast, memory_format=memory_format)
            return t.to(device=device, dtype=cast)

        return self._apply(convert)

    def cpu(self) -> Module:
        return self._apply(lambda t: t.cpu())

    def cuda(self, device=None) -> Module:
        return self._apply(lambda t: t.cuda(device))

    def type(self, dst_type) -> Module:
        return self._apply(lambda t: t.type(dst_type))

    def _cast_floats(self, dtype) -> Module:
        return self._apply(lambda t: t.to(dtype) if t.is_floating_point() else t)

    def float(self) -> Module:
        return self._cast_floats(torch.float32)

    def double(self) -> Module:
        return self._cast_floats(torch.float64)

    def half(self) -> Module:
        return self._cast_floats(torch.float16)

    def bfloat16(self) -> Module:
        return self._cast_floats(torch.bfloat16)

    # ----- hooks ----------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args)`` (or ``hook(module, args, kwargs)``) runs before ``forward``; may replace the inputs."""
        handle = add_hook(self._forward_pre_hooks, hook, prepend, (self._forward_pre_hooks_with_kwargs,))
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(
        self, hook, *, prepend: bool = False, with_kwargs: bool = False, always_call: bool = False
    ) -> RemovableHandle:
        """``hook(module, args, output)`` (``hook(module, args, kwargs, output)``) runs after ``forward``; may replace output."""
        handle = add_hook(self._forward_hooks, hook, prepend,
                          (self._forward_hooks_with_kwargs, self._forward_hooks_always_called))
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:  # also run (with output None) when forward raises
            self._forward_hooks_always_called[handle.id] = True
        return handle

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs once the gradients of the module's inputs are known.

        ``grad_input`` has one entry per positional argument (``None`` for non-tensors and tensors
        that need no gradient); a non-None return value replaces ``grad_input``.
        """
        return add_hook(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_output)`` runs before the module's backward; a non-None return replaces ``grad_output``."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks):
            return self.forward(*args, **kwargs)  # no hooks (the common case): nothing else to do
        for hid, hook in list(self._forward_pre_hooks.items()):
            if hid in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), but got {result}"
                        )
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_call = None
        if (self._backward_hooks or self._backward_pre_hooks) and mode.is_grad_enabled():
            backward_call = BackwardHookCall(self, list(self._backward_hooks.values()), list(self._backward_pre_hooks.values()))
            args = backward_call.wrap_inputs(args)
        try:
            output = self.forward(*args, **kwargs)
        except Exception:
            for hid in self._forward_hooks_always_called:
                self._call_forward_hook(hid, args, kwargs, None)
            raise
        for hid in list(self._forward_hooks):
            result = self._call_forward_hook(hid, args, kwargs, output)
            if result is not None:
                output = result
        if backward_call is not None:
            output = backward_call.wrap_outputs(output)
        return output

    def _call_forward_hook(self, hid, args, kwargs, output):
        hook = self._forward_hooks[hid]
        if hid in self._forward_hooks_with_kwargs:
            return hook(self, args, kwargs, output)
        return hook(self, args, output)

    # ----- state_dict -------------------------------------------------------------------
    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers under torch's dotted key names.

        Values are the raw ``torch.Tensor`` data (sharing storage, as torch's detached tensors),
        so ``torch_model.load_state_dict(nx_model.state_dict())`` works; ``keep_vars=True``
        gives the neuronix ``Parameter``/``Tensor`` objects instead.
        """
        if args:  # torch's deprecated positional form state_dict(destination, prefix, keep_vars)
            destination, prefix, keep_vars = (list(args) + [destination, prefix, keep_vars][len(args) :])[:3]
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        metadata = getattr(destination, "_metadata", None)
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            if metadata is not None:
                metadata[module_prefix] = {"version": module._version}
            head = f"{module_prefix}." if module_prefix else ""
            for key, p in module._parameters.items():
                if p is not None:  # an uninitialised (lazy) parameter is saved as itself, as torch
                    destination[head + key] = p if keep_vars or _is_lazy(p) else p.data
            for key, b in module._buffers.items():
                if b is not None and key not in module._non_persistent_buffers_set:
                    destination[head + key] = b if keep_vars or _is_lazy(b) else b.data
        return destination

    def _prepare_load(self, state_dict, prefix: str) -> None:
        """Called on every module before ``load_state_dict`` reads it (lazy modules materialise here, as torch's pre-hook)."""

    def _load_defaults(self, state_dict, prefix: str) -> None:
        """Subclasses fill keys that older checkpoints lack (BatchNorm's num_batches_tracked)."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from ``state_dict`` (torch or neuronix tensors) into this module.

        Raises ``RuntimeError`` listing missing/unexpected keys (when ``strict``) and every shape
        mismatch (always); returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)
        for module_prefix, module in self.named_modules(remove_duplicate=False):
            module._prepare_load(state_dict, f"{module_prefix}." if module_prefix else "")
        if metadata is None:
            for module_prefix, module in self.named_modules(remove_duplicate=False):
                module._load_defaults(state_dict, f"{module_prefix}." if module_prefix else "")
        expected = {}
        for module_prefix, module in self.named_modules(remove_duplicate=False):
            head = f"{module_prefix}." if module_prefix else ""
            for key, p in module._parameters.items():
                if p is not None:
                    expected[head + key] = (module, "_parameters", key)
            for key, b in module._buffers.items():
                if b is not None and key not in module._non_persistent_buffers_set:
                    expected[head + key] = (module, "_buffers", key)
        errors = []
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        for key, (module, table, name) in expected.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            raw = unwrap(value)
            if not isinstance(raw, torch.Tensor):
                errors.append(
                    f'While copying the parameter named "{key}", expected a Tensor from checkpoint but received {type(value)}'
                )
                continue
            target = getattr(module, table)[name]
            if _is_lazy(target):  # still uninitialised: its source was too (torch copies nothing either)
                continue
            if raw.shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {raw.shape} from checkpoint, "
                    f"the shape in current model is {target.shape}."
                )
                continue
            if assign:  # take the checkpoint's storage instead of copying into ours
                target.data = raw.detach() if raw.requires_grad else raw
            else:
                target.data.copy_(raw.detach())
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(type(self).__name__, "\n\t".join(errors))
            )
        return _IncompatibleKeys(missing, unexpected)

    # ----- repr -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (constructor arguments); override it."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for key, module in self._modules.items():
            lines.append(f"({key}): " + _indent(repr(module), 2))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
