"""``nx.Tensor``: a ``torch.Tensor`` (``.data``) plus gradient bookkeeping.

The tensor is deliberately thin: arithmetic, reductions and shape ops are registry
functions installed as methods by ``neuronix.ops`` (one definition each), and the
graph lives in ``Node`` objects reached through ``grad_fn``.
"""

from __future__ import annotations

import weakref

import torch


def _check_can_require_grad(data: torch.Tensor, where: str) -> None:
    if data.is_complex():
        # torch differentiates complex tensors with the conjugate (Wirtinger) convention; Neuronix's
        # rules are written for real inputs, so it refuses rather than return a different value.
        raise RuntimeError(
            f"{where}: complex tensors cannot require gradients in Neuronix (got dtype {data.dtype}, shape "
            f"{tuple(data.shape)}); its autograd supports real floating-point dtypes: differentiate the .real and "
            ".imag parts as two real tensors"
        )
    if not data.is_floating_point():
        raise RuntimeError(
            f"{where}: only floating point tensors can require gradients, "
            f"got dtype {data.dtype} (shape {tuple(data.shape)}); convert with .float() or .double() first"
        )


def unwrap(x):
    """The ``torch.Tensor`` inside an ``nx.Tensor``; anything else (a torch tensor, a number, None) as is."""
    return x.data if isinstance(x, Tensor) else x


class Tensor:
    """A tensor with neuronix autograd; ``data`` is the wrapped ``torch.Tensor`` (never requires grad)."""

    # ``_view``: for a tensor that is a view of another one, what an in-place change needs to
    # rewrite the base's history (see ``neuronix/ops/inplace.py``); ``None`` otherwise.
    __slots__ = ("data", "_grad", "requires_grad", "grad_fn", "_hooks", "_view", "__weakref__")
    __array_priority__ = 1000  # numpy defers binary operators to us

    def __init__(self, data, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if not isinstance(data, torch.Tensor):
            raise TypeError(
                f"nx.Tensor wraps a torch.Tensor, got {type(data).__name__}; use nx.tensor(data) to build one from Python data"
            )
        if data.requires_grad:
            data = data.detach()
        if requires_grad:
            _check_can_require_grad(data, "nx.Tensor")
        self.data = data
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self._hooks = None
        self._view = None

    @classmethod
    def _make(cls, data: torch.Tensor, node) -> Tensor:
        """Fast constructor for op results: ``node`` is the recording ``Node`` or ``None``."""
        t = object.__new__(cls)
        t.data = data
        t._grad = None
        t.requires_grad = node is not None
        t.grad_fn = node
        t._hooks = None
        t._view = None
        return t

    @property
    def grad(self):
        """The accumulated gradient (``None`` until a backward reaches this tensor)."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if isinstance(value, torch.Tensor):
                value = Tensor._make(value.detach(), None)
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(value).__name__}")
            for what, mine, theirs in (("size", self.data.shape, value.data.shape),
                                       ("type", self.data.dtype, value.data.dtype),
                                       ("device", self.data.device, value.data.device)):
                if mine != theirs:
                    raise RuntimeError(
                        f"assigned grad has data of a different {what}: the tensor has {what} {_show(mine)}, "
                        f"the grad {_show(theirs)}; a grad must match its tensor's shape, dtype and device"
                    )
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    # ----- metadata -----------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def ndim(self) -> int:
        return self.data.dim()

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda

    def size(self, dim: int | None = None):
        return self.data.size() if dim is None else self.data.size(dim)

    def dim(self) -> int:
        return self.data.dim()

    def numel(self) -> int:
        return self.data.numel()

    def element_size(self) -> int:
        return self.data.element_size()

    def is_floating_point(self) -> bool:
        return self.data.is_floating_point()

    def is_contiguous(self, memory_format=torch.contiguous_format) -> bool:
        return self.data.is_contiguous(memory_format=memory_format)

    def stride(self, dim: int | None = None):
        return self.data.stride() if dim is None else self.data.stride(dim)

    def data_ptr(self) -> int:
        return self.data.data_ptr()

    # ----- conversions --------------------------------------------------------------
    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def numpy(self):
        if self.requires_grad:
            raise RuntimeError(
                "numpy(): can't call numpy() on a Tensor that requires grad; use tensor.detach().numpy()"
            )
        return self.data.numpy()

    def __array__(self, dtype=None, copy=None):
        # as torch's: numpy() (refused for a tensor that requires grad, never a silent detach; CPU only)
        arr = self.numpy()
        arr = arr if dtype is None else arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        return self.data.__index__()

    def __bool__(self) -> bool:
        return bool(self.data)

    def __len__(self) -> int:
        if self.data.dim() == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        body = repr(self.data)[len("tensor(") : -1] if repr(self.data).startswith("tensor(") else repr(self.data)
        if self.grad_fn is not None:
            body += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            body += ", requires_grad=True"
        return f"tensor({body})"

    def __reduce_ex__(self, protocol):
        # Pickling (DataLoader workers, torch.save of plain containers) keeps the value only.
        return (Tensor, (self.data, self.requires_grad if self.is_leaf else False))

    # ----- autograd -----------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if not self.is_leaf:
            if requires_grad:
                return self
            raise RuntimeError(
                "requires_grad_(False): you can only change requires_grad flags of leaf variables; "
                "use .detach() to get a tensor outside the graph"
            )
        if requires_grad:
            _check_can_require_grad(self.data, "requires_grad_")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """A tensor sharing storage (and version counter) with this one, outside any graph."""
        return Tensor._make(self.data, None)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None result replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            hooks = self._hooks if self._hooks is not None else []
            self._hooks = hooks
        else:
            hooks = self.grad_fn.hooks if self.grad_fn.hooks is not None else []
            self.grad_fn.hooks = hooks
        if hooks and getattr(hooks[-1], "retains_grad", False):
            hooks.insert(len(hooks) - 1, hook)  # as torch: retain_grad sees the value after every hook
        else:
            hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for a non-leaf tensor after backward (a no-op on leaves)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None:
            return
        ref = weakref.ref(self)  # a strong reference would make node -> hook -> tensor -> node a cycle

        def keep(grad):
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = Tensor._make(grad.data.clone(), None)
                else:
                    t.grad = Tensor._make(t.grad.data + grad.data, None)

        keep.retains_grad = True
        if any(getattr(h, "retains_grad", False) for h in self.grad_fn.hooks or ()):
            return  # already retained: a second call changes nothing, as torch
        self.register_hook(keep)

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (as ``torch.Tensor.backward``)."""
        from neuronix.autograd.engine import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


def _show(value) -> str:
    return str(tuple(value)) if isinstance(value, torch.Size) else str(value)


class _RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


CustomTensor = Tensor  # the original project's name
