"""Mirrors: how each public neuronix name is checked against its torch twin.

"Mirror" is the harness's word for such an entry, apart from neuronix's ``OpSpec`` (an op's
forward and rules); the mirrors are defined per family in ``conformance/mirrors/``.

Every public name (``nx.<fn>``, ``Tensor.<method>``, ``nn.functional.<fn>``, ``nn.<Module>``,
``optim.<Optimizer>``, ``optim.lr_scheduler.<Scheduler>``) is registered here exactly once
with ``register``. The harness enumerates neuronix's public surface by introspection
(``conformance.coverage``) and reports every name without a mirror as a coverage hole.

A mirror says *what* to compare; ``conformance.runner`` says *how* (values, gradients under
a random upstream gradient, second derivatives, float64 finite differences, leaks).
Input strategies take Hypothesis's ``draw`` plus the dtype and device of the case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

Draw = Callable  # hypothesis ``draw`` function
FLOATS = (torch.float32, torch.float64)  # every check runs in these (second derivatives, forward mode, variants, ...)
HALF = (torch.float16, torch.bfloat16)  # values and first derivatives vs torch in the same dtype (+ finite differences)
COMPLEX = (torch.complex64, torch.complex128)  # values only: neuronix refuses requires_grad on complex tensors
WITH_HALF = FLOATS + HALF  # what op and module mirrors claim; opt-outs and complex claims: conformance/dtype_claims.py


@dataclass
class Sample:
    """One call: positional ``args`` and ``kwargs`` as torch values.

    Floating torch tensors at the positions ``grad_args`` (default: every floating tensor
    argument) are differentiated; the harness turns them into ``nx.Tensor`` leaves that
    require grad for the neuronix call and into torch leaves for the torch call. Other
    tensors are passed as constants (wrapped in ``nx.Tensor`` unless ``raw_args`` lists them).
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad_args: tuple[int, ...] | None = None
    raw_args: tuple[int, ...] = ()


@dataclass
class OpMirror:
    """A function or Tensor method: ``nx(*args, **kwargs)`` must equal ``torch(*args, **kwargs)``."""

    name: str
    nx: Callable
    torch: Callable
    sample: Callable[[Draw, torch.dtype, torch.device], Sample]
    grad: bool = True  # check first derivatives of every differentiable input
    gradgrad: bool = True  # check second derivatives (only where torch has them)
    # ... also w.r.t. the upstream gradients; False only where torch's is wrong (say why in ``note``)
    gradgrad_upstream: bool = True
    # False where the installed torch picks which of several tied inputs receives the gradient by an unspecified
    # selection (torch 2.14's quantile): the checks that make ties on purpose (special values, stride-0 expanded
    # inputs) then skip this mirror, and the samples it draws itself are compared as everywhere (say why in ``note``)
    tie_gradients: bool = True
    fd: bool = True  # central finite differences of neuronix's own gradient (float64; half: kinds/op.py FD_STEP)
    dtypes: tuple = WITH_HALF
    output: Callable[[Any], Any] | None = None  # picks the compared/differentiated output(s)
    note: str = ""
    kind: str = "op"
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types this entry claims to support


@dataclass
class ModuleMirror:
    """An ``nn.Module``: same constructor args, torch weights loaded into neuronix via state_dict.

    Compares outputs, input and parameter gradients, and buffers after the forward, in
    train and eval mode (``modes``).
    """

    name: str
    nx: Callable  # the neuronix class (or a builder)
    torch: Callable  # the torch class (or a builder)
    build: Callable[[Draw], tuple[tuple, dict]]  # constructor (args, kwargs)
    sample: Callable[[Draw, tuple, dict, torch.dtype, torch.device], Sample]  # forward inputs for that module
    modes: tuple[str, ...] = ("train", "eval")
    gradgrad: bool = False
    dtypes: tuple = WITH_HALF
    output: Callable[[Any], Any] | None = None
    note: str = ""
    kind: str = "module"
    examples: dict[str, int] = field(default_factory=dict)  # per profile ("ci"): examples per case, replacing the kind's
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types this entry claims to support
    # the nn.functional twin compared with it (kinds/twins.py): an F name, or a call (lib, module, inputs) -> result;
    # None derives the name from the class name (nn.LeakyReLU -> F.leaky_relu)
    functional: str | Callable | None = None


@dataclass
class OptimizerMirror:
    """An optimizer: the parameter and state trajectory over ``steps`` steps with drawn hyper-parameters."""

    name: str
    nx: Callable
    torch: Callable  # torch class, or a reference implementation with the same interface
    hyper: Callable[[Draw], dict]  # constructor keyword arguments (per group when it returns a list)
    steps: int = 50
    dtypes: tuple = FLOATS
    note: str = ""
    kind: str = "optimizer"
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types this entry claims to support


@dataclass
class SchedulerMirror:
    """A learning-rate scheduler: the LR sequence over ``steps`` steps."""

    name: str
    nx: Callable
    torch: Callable
    build: Callable[[Draw], dict]  # constructor keyword arguments (besides the optimizer)
    steps: int = 200
    metrics: Callable[[Draw, int], list] | None = None  # ReduceLROnPlateau: the metric fed at each step
    note: str = ""
    kind: str = "scheduler"
    dtypes: tuple = (torch.float64,)
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types this entry claims to support


@dataclass
class AmpMirror:
    """Mixed precision: a small model trained ``steps`` steps under autocast with a GradScaler in both libraries
    (``kinds/amp.py``); the case dtype is the autocast dtype, each step's output dtypes must be equal."""

    name: str
    model: Callable  # model(lib) -> the module, built in ``lib`` (``neuronix`` or ``torch``), float32
    data: Callable  # data(draw) -> (inputs, target): float32 / int64 torch tensors on the CPU
    forward: Callable  # forward(lib, module, inputs, target) -> [(label, tensor), ...], the loss last
    steps: int = 5
    dtypes: tuple = HALF
    note: str = ""
    kind: str = "amp"
    devices: tuple[str, ...] = ("cpu", "cuda")
    examples: dict[str, int] = field(default_factory=dict)


@dataclass
class Comparison:
    """One measured pair: ``actual`` (neuronix) against ``expected`` (the oracle).

    ``check`` is the check kind that picks the tolerance rule: ``forward``, ``backward``,
    ``double_backward``, ``finite_difference``, ``buffers``, ``trajectory``, ``lr``.
    ``what`` names the compared quantity (``"output"``, ``"grad input 1"``, ``"weight @ step 17"``).
    """

    check: str
    what: str
    actual: Any
    expected: Any
    explain: Callable[[], str] | None = None  # called only when the check fails: a longer diagnosis


Mirror = OpMirror | ModuleMirror | OptimizerMirror | SchedulerMirror | AmpMirror
REGISTRY: dict[str, Mirror] = {}


def register(*mirrors: Mirror) -> None:
    """Add mirrors to the registry; a name registered twice is a bug in the mirror definitions."""
    from conformance.dtype_claims import claimed

    for m in mirrors:
        if m.name in REGISTRY:
            raise ValueError(f"conformance: mirror {m.name!r} registered twice")
        m.dtypes = claimed(m)  # the half opt-outs and complex claims, one table for all families
        REGISTRY[m.name] = m
