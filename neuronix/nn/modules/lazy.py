"""Lazy modules: shapes inferred at the first forward; ``UninitializedParameter``/``UninitializedBuffer``.

A lazy module is built with placeholder tensors (``Uninitialized*``, no shape yet). Its first
``forward`` (through a forward pre-hook) reads the input's shape, materialises the placeholders,
runs the ordinary ``reset_parameters`` (so the draws equal the eager class's under the same seed)
and then *becomes* the eager class (``cls_to_become``), as torch's ``LazyModuleMixin`` does.
Loading a state_dict into a still-lazy module materialises each placeholder with the shape found
in the checkpoint (``Module._prepare_load``), so ``load_state_dict`` works before any forward.
"""

from __future__ import annotations

import torch

from neuronix.nn import parameter as _parameter_module
from neuronix.nn.modules.linear import Linear
from neuronix.nn.parameter import Parameter
from neuronix.tensor import Tensor

# LazyModuleMixin stays in this module (torch.nn.modules.lazy.LazyModuleMixin; torch.nn does not export it)
__all__ = ["LazyLinear", "UninitializedBuffer", "UninitializedParameter"]


class UninitializedTensorMixin:
    """Shared by the placeholders: no shape until ``materialize``; then the object changes class in place."""

    __slots__ = ()  # same layout as the class it becomes, so ``__class__`` can be reassigned
    cls_to_become: type

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Give the placeholder data of ``shape`` (uninitialised memory; the owner's reset_parameters fills it)."""
        device = self.data.device if device is None else device
        dtype = self.data.dtype if dtype is None else dtype
        self.data = torch.empty(shape, device=device, dtype=dtype)
        self.__class__ = self.cls_to_become

    @property
    def shape(self):
        raise RuntimeError(
            "Can't access the shape of an uninitialized parameter or buffer. This error usually happens in "
            "`load_state_dict` when trying to load an uninitialized parameter into an initialized one. "
            "Call `forward` to initialize the parameters before accessing their attributes."
        )

    def share_memory_(self):
        raise RuntimeError(
            "Can't share memory on an uninitialized parameter or buffer. Call `forward` to initialize the "
            "parameters before calling `module.share_memory()`."
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def __reduce_ex__(self, protocol):
        # copy.deepcopy / pickle keep the placeholder (the base classes' reduce would rebuild a shaped tensor)
        return (type(self), (self.requires_grad, self.data.device, self.data.dtype))


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A ``Parameter`` whose shape is not known yet; ``materialize(shape)`` turns it into a ``Parameter``."""

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device=None, dtype=None) -> None:
        super().__init__(torch.empty(0, device=device, dtype=dtype), requires_grad)


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer whose shape is not known yet; ``materialize(shape)`` turns it into an ``nx.Tensor``.

    ``persistent`` is accepted for torch's signature; as in torch, ``register_buffer``'s own
    ``persistent`` argument is what decides whether the buffer is saved.
    """

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device=None, dtype=None, persistent: bool = True) -> None:
        super().__init__(torch.empty(0, device=device, dtype=dtype), requires_grad)


def is_lazy(tensor) -> bool:
    """Whether ``tensor`` is an ``UninitializedParameter`` or ``UninitializedBuffer``."""
    return isinstance(tensor, UninitializedTensorMixin)


# torch exposes these in torch.nn.parameter; publish them on neuronix.nn.parameter too (they are
# defined here, beside the mixin that uses them, so parameter.py stays free of lazy-module logic)
for _name, _value in (("UninitializedTensorMixin", UninitializedTensorMixin),
                      ("UninitializedParameter", UninitializedParameter),
                      ("UninitializedBuffer", UninitializedBuffer), ("is_lazy", is_lazy)):
    setattr(_parameter_module, _name, _value)
del _name, _value


class LazyModuleMixin:
    """Mixin (listed first) for modules whose parameter shapes come from the first input.

    The subclass creates ``Uninitialized*`` placeholders in ``__init__`` and implements
    ``initialize_parameters(*args, **kwargs)``, which materialises them from the forward
    arguments and resets them. After that first forward the module becomes ``cls_to_become``.
    """

    cls_to_become: type | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._register_lazy_hook()

    def _register_lazy_hook(self) -> None:
        """The forward pre-hook that materialises (for subclasses that call the eager ``__init__`` themselves)."""
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def initialize_parameters(self, *args, **kwargs) -> None:
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    def has_uninitialized_params(self) -> bool:
        """Whether any parameter or buffer is still a placeholder."""
        tensors = list(self._parameters.values()) + list(self._buffers.values())
        return any(is_lazy(t) for t in tensors)

    def _prepare_load(self, state_dict, prefix: str) -> None:
        # as torch's lazy load hook: a placeholder takes the checkpoint's shape (the copy fills it);
        # a placeholder in the checkpoint too leaves ours a placeholder
        for name, tensor in list(self._parameters.items()) + list(self._buffers.items()):
            key = prefix + name
            if tensor is not None and key in state_dict and is_lazy(tensor):
                source = state_dict[key]
                if not is_lazy(source) and hasattr(source, "shape"):
                    tensor.materialize(source.shape)

    @staticmethod
    def _infer_parameters(module, args, kwargs=None):
        module.initialize_parameters(*args, **(kwargs or {}))
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {module._get_name()} has not been fully initialized")
        module._initialize_hook.remove()
        del module._initialize_hook
        if module.cls_to_become is not None:
            module.__class__ = module.cls_to_become

    def _replicate_for_data_parallel(self):
        raise RuntimeError(
            "Modules with uninitialized parameters can't be used with `DataParallel`. "
            "Run a dummy forward pass to correctly initialize the modules"
        )


class LazyLinear(LazyModuleMixin, Linear):
    """``Linear`` whose ``in_features`` is read from the last dim of the first input."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(0, 0, False)
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_features = out_features
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input) -> None:
        if not self.has_uninitialized_params() and self.in_features == 0:
            # materialised by load_state_dict: torch leaves in_features 0; neuronix's forward checks it, so read it
            self.in_features = self.weight.shape[1]
        if self.has_uninitialized_params():
            self.in_features = input.shape[-1]
            self.weight.materialize((self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.materialize((self.out_features,))
            self.reset_parameters()
