"""``nx.compile`` and ``nx.compiler``: torch's compiler entry points, for a framework that runs eagerly.

torch.compile traces a program into graphs for its own autograd and kernels; Neuronix records its
own graph as the program runs, which a torch tracer cannot see, so there is nothing to compile:
``nx.compile(model)`` returns ``model`` itself (the same function or module object, so its
``state_dict`` keys stay unprefixed: torch's compiled module would add ``_orig_mod.``). It accepts
torch's keywords, checks them as torch does where torch checks them up front, and warns once per
process that the program runs eagerly. ``nx.compiler`` holds the helpers programs call around
compilation: ``is_compiling()`` is always False, ``disable`` and ``allow_in_graph`` return what they
are given, ``reset`` does nothing.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import torch

__all__ = ["allow_in_graph", "assume_constant_result", "compile", "disable", "is_compiling", "is_dynamo_compiling",
           "is_exporting", "reset"]

_warned = False

# torch.compile's keywords differ between versions (2.13's shapes_spec is 2.14's dynamic_shapes): read the
# installed torch's signature once, so neuronix accepts exactly the keywords torch accepts
_TORCH_KEYWORDS = frozenset(
    name for name, p in inspect.signature(torch.compile).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "nx.compile returns the model unchanged: Neuronix records its autograd graph eagerly as the program runs, "
            "which torch.compile's tracer cannot capture, so the model runs eagerly (same results, no compilation)",
            UserWarning,
            stacklevel=3,
        )


def compile(model: Callable | None = None, *, fullgraph: bool = False, dynamic: bool | None = None,  # noqa: A001
            backend: str | Callable | None = "inductor", mode: str | None = None, options: dict | None = None,
            disable: bool = False, **kwargs):
    """``torch.compile``'s signature; returns ``model`` unchanged (or, without ``model``, a decorator that does).

    Warns once per process (UserWarning) unless ``disable=True``. Raises torch's RuntimeError when both
    ``mode`` and ``options`` are given, and TypeError for a keyword the installed torch.compile lacks.
    """
    unknown = sorted(set(kwargs) - _TORCH_KEYWORDS)
    if unknown:
        raise TypeError(f"compile() got an unexpected keyword argument {unknown[0]!r}")
    if model is None:  # @nx.compile(mode=...): the decorator form

        def decorate(model: Callable) -> Callable:
            if model is None:
                raise RuntimeError("Model can't be None")
            return compile(model, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode, options=options,
                           disable=disable, **kwargs)

        return decorate
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    if not callable(model):
        raise TypeError(f"nx.compile: expected a callable (a function or an nn.Module), got {type(model).__name__}")
    if not disable:
        _warn_once()
    return model


def is_compiling() -> bool:
    """False: neuronix programs never run under a compiler's tracer."""
    return False


is_dynamo_compiling = is_compiling
is_exporting = is_compiling


def disable(fn: Callable | None = None, recursive: bool = True, *, reason: str | None = None):
    """``torch.compiler.disable``: ``fn`` itself (nothing is compiled), or a decorator when ``fn`` is None."""
    if fn is None:
        return lambda f: f
    return fn


def allow_in_graph(fn: Callable) -> Callable:
    """``fn`` itself: there is no graph capture to allow it into."""
    return fn


def assume_constant_result(fn: Callable) -> Callable:
    return fn


def reset() -> None:
    """Nothing to reset: no compilation caches exist."""
