"""``nx.Tensor``: a ``torch.Tensor`` (``.data``) plus gradient bookkeeping.

The tensor is deliberately thin: arithmetic, reductions and shape ops are registry
functions installed as methods by ``neuronix.ops`` (one definition each), and the
graph lives in ``Node`` objects reached through ``grad_fn``.
"""

from __future__ import annotations

import weakref

import torch

from neuronix.autograd import mode


def _check_can_require_grad(data: torch.Tensor, where: str) -> None:
    if not (data.is_floating_point() or data.is_complex()):
        raise RuntimeError(
            f"{where}: only floating point and complex tensors can require gradients, "
            f"got dtype {data.dtype} (shape {tuple(data.shape)}); convert with .float() or .double() first"
        )


class Tensor:
    """A tensor with neuronix autograd; ``data`` is the wrapped ``torch.Tensor`` (never requires grad)."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_hooks", "__weakref__")
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
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self._hooks = None

    @classmethod
    def _make(cls, data: torch.Tensor, node) -> Tensor:
        """Fast constructor for op results: ``node`` is the recording ``Node`` or ``None``."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = node is not None
        t.grad_fn = node
        t._hooks = None
        return t

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
        arr = self.data.detach().cpu().numpy()
        return arr if dtype is None else arr.astype(dtype)

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

        self.register_hook(keep)

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (as ``torch.Tensor.backward``)."""
        from neuronix.autograd.engine import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ----- in-place updates (outside the graph) --------------------------------------
    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and mode.grad_enabled:
            kind = "a leaf Variable that requires grad" if self.is_leaf else "a tensor that is part of a graph"
            raise RuntimeError(
                f"{op}: in-place operation on {kind} (shape {tuple(self.shape)}); "
                "wrap it in nx.no_grad() or operate on .detach()"
            )

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data.zero_()
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        self.data.fill_(value.data if isinstance(value, Tensor) else value)
        return self

    def copy_(self, src) -> Tensor:
        self._check_inplace("copy_")
        self.data.copy_(src.data if isinstance(src, Tensor) else src)
        return self

    def __setitem__(self, index, value) -> None:
        from neuronix.ops.indexing import raw_index  # ops import this module

        self._check_inplace("__setitem__")
        if isinstance(value, Tensor) and value.requires_grad and mode.grad_enabled:
            raise RuntimeError(
                f"__setitem__: the value (shape {tuple(value.shape)}) requires grad, but writing into a tensor is not "
                "recorded by neuronix autograd; build the result out of place (e.g. nx.where, nx.cat, index_add) "
                "or write value.detach()"
            )
        self.data[raw_index(index)] = value.data if isinstance(value, Tensor) else value


def _inplace(name: str):
    def method(self, *args, **kwargs):
        self._check_inplace(name)
        getattr(self.data, name)(*(a.data if isinstance(a, Tensor) else a for a in args), **kwargs)
        return self

    method.__name__ = name
    method.__doc__ = f"In-place ``{name}`` on the data (outside the graph), as ``torch.Tensor.{name}``."
    return method


for _name in ("add_", "sub_", "mul_", "div_", "clamp_min_", "clamp_max_", "pow_", "lerp_", "addcmul_", "addcdiv_"):
    setattr(Tensor, _name, _inplace(_name))


class _RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


CustomTensor = Tensor  # the original project's name
