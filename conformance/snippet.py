"""Standalone repro scripts: one example of a case written out as Python that needs only torch and neuronix.

``snippet(case_id, example)`` replays the example (``conformance.shrink.replay``: the runner's
own examples, with what they drew captured) and ``snippet_for(mirror, sample, dtype, device)``
writes any drawn sample. The script holds the inputs as exact literals (``repr`` of a Python
float round-trips, so float64 and float32 values come back bit for bit; NaN and infinities by
name) in their drawn layout (a transposed or strided view is rebuilt with the same strides, a
stride-0 dimension by ``expand``), calls torch and neuronix side by side, compares the outputs,
the gradients under the run's upstream gradient and, where the mirror checks them, the second
derivatives (also w.r.t. the upstream gradient), and prints each max difference.

The call is derived from the mirror when it is the plain public name: ``exp`` -> ``torch.exp`` /
``nx.exp``, ``Tensor.add`` -> ``x0.add(...)``, the derived ``Tensor.add_`` -> ``add_`` on a
graph-connected copy of ``x0``, ``nn.functional.relu`` -> ``torch.nn.functional.relu`` /
``nx.nn.functional.relu``, ``Tensor.__add__`` -> ``operator.add``, ``nn.Linear`` -> the module with
the run's initial weights loaded. Any other mirror (a wrapper, a planted op) is called through
``conformance.mirror.REGISTRY``, which the script says in a comment.

``torch_only=True`` writes a script for torch alone: torch's autograd gradient (and second
derivative) against float64 central finite differences of torch's own function (a module's
parameters too, through ``torch.func.functional_call``), the form in which a suspected torch
defect is reported upstream.

A script redoes the forward, backward and second-derivative checks (and, torch-only, the finite
differences); a failure of another check (graph reuse, guards, forward mode, variants, special
values) is named in its header, and the ``repro`` command replays it. The upstream gradients and
directions are drawn as the drivers draw them; tests compare a script's printed difference with
the run's measured one, so a driver that changes its draws shows there. The code every script
carries (comparison, gradients, finite differences) is in ``conformance/snippet_code.py``.
"""

from __future__ import annotations

import inspect
import math
import operator

import torch

from conformance.kinds.common import TorchLeaf, build_call, grads, leaf_slots, outputs, randn_like, slot_value
from conformance.mirror import FLOATS, ModuleMirror, OpMirror
from conformance.snippet_code import COMPARE, FINITE_DIFFERENCES, HELPERS

# ----- exact literals ----------------------------------------------------------------------------------


def scalar(v) -> str:
    """A Python number as source that evaluates to exactly it (``inf``/``nan`` come from ``math``)."""
    if isinstance(v, bool) or isinstance(v, int):
        return repr(v)
    if isinstance(v, complex):
        return f"complex({scalar(v.real)}, {scalar(v.imag)})"
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)  # the shortest repr that round-trips: exact for float64, and so for float32 values


def _nested(values, indent: str) -> str:
    if not isinstance(values, list):
        return scalar(values)
    if not values or not isinstance(values[0], list):
        return "[" + ", ".join(scalar(v) for v in values) + "]"
    inner = indent + " "
    return "[" + (",\n" + inner).join(_nested(v, inner) for v in values) + "]"


def dtype_name(dtype: torch.dtype) -> str:
    return "torch." + str(dtype).removeprefix("torch.")


def tensor_expr(t: torch.Tensor, indent: str = "    ") -> str:
    """Source that rebuilds ``t``: its values exactly, its dtype, ``DEVICE`` and its strides."""
    t = t.detach().cpu() if t.device.type != "cpu" else t.detach()
    expanded = [d for d in range(t.dim()) if t.stride(d) == 0 and t.shape[d] > 1]
    if expanded:  # stride 0: one copy of the values, broadcast as drawn
        base = t
        for d in expanded:
            base = base.narrow(d, 0, 1)
        return f"{tensor_expr(base, indent)}.expand({tuple(t.shape)})"
    dt = dtype_name(t.dtype)
    if t.is_contiguous():
        if t.numel() == 0:
            return f"torch.empty({tuple(t.shape)}, dtype={dt}, device=DEVICE)"
        return f"torch.tensor({_nested(t.tolist(), indent + '             ')}, dtype={dt}, device=DEVICE)"
    if t.dim() >= 2 and t.mT.is_contiguous():  # a transposed view
        return f"{tensor_expr(t.mT, indent)}.mT"
    return (f"torch.empty_strided({tuple(t.shape)}, {tuple(t.stride())}, dtype={dt}, device=DEVICE)"
            f".copy_({tensor_expr(t.contiguous(), indent)})")


def py_expr(v) -> str:
    """Source for a non-tensor argument (numbers, dtypes, tuples, slices, ...)."""
    if v is None or isinstance(v, (bool, str)) or v is Ellipsis:
        return repr(v)
    if isinstance(v, (int, float, complex)):
        return scalar(v)
    if isinstance(v, torch.dtype):
        return dtype_name(v)
    if isinstance(v, torch.device):
        return f"torch.device({str(v)!r})"
    if isinstance(v, torch.Size):
        return f"torch.Size({py_expr(list(v))})"
    if isinstance(v, slice):
        return f"slice({py_expr(v.start)}, {py_expr(v.stop)}, {py_expr(v.step)})"
    if isinstance(v, tuple):
        return "(" + ", ".join(py_expr(b) for b in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(py_expr(b) for b in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{py_expr(k)}: {py_expr(b)}" for k, b in v.items()) + "}"
    if type(v).__module__ == "numpy" and hasattr(v, "tolist"):  # an ndarray or a numpy scalar
        return f"numpy.array({_nested(v.tolist(), '    ')}, dtype=numpy.{v.dtype})"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} as a literal")


# ----- the call: the public name when the mirror's callable is it ---------------------------------------


def call_form(mirror) -> tuple[str, str]:
    """``(kind, name)`` of how the script calls the mirror: function, functional, method, in_place,
    operator, module, or registry (the mirror's own callables, through ``REGISTRY``)."""
    import neuronix as nx

    base = mirror.name.split("[", 1)[0]
    if isinstance(mirror, ModuleMirror):
        cls = base.removeprefix("nn.")
        if mirror.nx is getattr(nx.nn, cls, None) and mirror.torch is getattr(torch.nn, cls, None):
            return "module", cls
        return "registry", mirror.name
    fn = mirror.nx
    if fn is getattr(nx, base, None) and mirror.torch is getattr(torch, base, None):
        return "function", base
    short = base.removeprefix("nn.functional.")
    if base.startswith("nn.functional.") and fn is getattr(nx.nn.functional, short, None) \
            and mirror.torch is getattr(torch.nn.functional, short, None):
        return "functional", short
    for kind, helper in (("method", ("conformance.strategies", "method.<locals>.call")),
                         ("in_place", ("conformance.mirrors.inplace", "_in_place.<locals>.call"))):
        names = {_helper_name(f, helper) for f in (fn, mirror.torch)}
        if len(names) == 1 and None not in names:  # both sides the same helper on the same method
            return kind, names.pop()
    if fn is mirror.torch and getattr(operator, getattr(fn, "__name__", ""), None) is fn:
        return "operator", fn.__name__
    return "registry", mirror.name


def _helper_name(fn, helper: tuple[str, str]) -> str | None:
    """The method name a mirror helper (``strategies.method``, the in-place derivation) closes over."""
    if (getattr(fn, "__module__", ""), getattr(fn, "__qualname__", "")) != helper:
        return None
    return inspect.getclosurevars(fn).nonlocals.get("name")


def _call_lines(kind: str, name: str, lib: str, args: list[str], kwargs: list[str]) -> list[str]:
    """The body of ``torch_f`` / ``nx_f``: the call of the mirror in library ``lib`` ("torch" or "nx")."""
    every = ", ".join(args + kwargs)
    if kind == "function":
        return [f"return {lib}.{name}({every})"]
    if kind == "functional":
        return [f"return {lib}.nn.functional.{name}({every})"]
    if kind == "operator":
        return [f"return operator.{name}({every})"]
    rest = ", ".join(args[1:] + kwargs)
    if kind == "method":
        return [f"return {args[0]}.{name}({rest})"]
    if kind == "in_place":  # as the mirror: a leaf cannot be written in place, a copy in the graph can
        return [f"target = {args[0]}.expand({args[0]}.{name}({rest}).shape).clone()",
                f"return target.{name}_({rest})"]
    return [f"return {'TORCH_CALL' if lib == 'torch' else 'NX_CALL'}({every})"]


# ----- the script ------------------------------------------------------------------------------------------

class _Names:
    """Variable names for the sample's tensors: ``x<i>``, ``x<i>_<j>`` in list arguments, ``k_<name>`` keywords."""

    def __init__(self, sample, slots):
        self.sample, self.paths = sample, {p: label for label, p in slots}
        self.defs: list[str] = []  # "name = <expr>" lines
        self.params: list[str] = []  # the differentiated tensors, in slot order: the parameters of torch_f / nx_f
        self.t_args, self.n_args, self.t_kwargs, self.n_kwargs = [], [], [], []
        raw = set(sample.raw_args)
        for i, a in enumerate(sample.args):
            self.t_args.append(self._arg(a, (i,), f"x{i}", "torch"))
            self.n_args.append(self._arg(a, (i,), f"x{i}", "nx", i in raw))
        for k, v in sample.kwargs.items():
            self.t_kwargs.append(f"{k}={self._arg(v, (k,), f'k_{k}', 'torch')}")
            self.n_kwargs.append(f"{k}={self._arg(v, (k,), f'k_{k}', 'nx')}")
        order = {p: n for n, p in enumerate(p for _, p in slots)}
        self.params.sort(key=lambda name_path: order[name_path[1]])
        self.params = [n for n, _ in self.params]

    def _arg(self, v, path, name, lib, raw=False) -> str:
        if isinstance(v, torch.Tensor):
            if lib == "torch":  # define each tensor once
                self.defs.append(f"{name} = {tensor_expr(v)}")
                if path in self.paths:
                    self.params.append((name, path))
            if path in self.paths or lib == "torch" or raw:
                return name
            return f"nx.Tensor({name})"  # a constant: neuronix takes its tensors wrapped
        if isinstance(v, (list, tuple)) and any(isinstance(b, torch.Tensor) for b in v):
            inner = [self._arg(b, path + (j,), f"{name}_{j}", lib, raw) for j, b in enumerate(v)]
            return "[" + ", ".join(inner) + "]" if isinstance(v, list) else "(" + ", ".join(inner) + ",)"
        return py_expr(v)


# The checks a script redoes (outputs, gradients, second derivatives; finite differences through the
# torch-only form); a failure of another check (graph reuse, guards, forward mode, variants, special
# values, an exception inside one of them) is named in the header, its replay is the repro command.
REDONE = ("forward", "backward", "double_backward", "finite_difference", "buffers")


def _header(case: str | None, note: str, failure: str, kind: str, torch_only: bool, fd: bool = True) -> list[str]:
    lines = ["# Standalone repro" + (f" of conformance case {case!r}" if case else "") + "."]
    if note:
        lines.append(f"# {note}")
    if failure:
        lines.append(f"# The harness saw: {failure}")
        if failure.split(" ", 1)[0].rstrip(":") not in REDONE and failure != "no failure in this example":
            lines.append("# (a check this script does not redo: it compares outputs, gradients and second derivatives)")
    if case:
        lines.append(f"# The case in the harness: python -m conformance repro '{case}'")
    lines.append("# Torch only: torch's autograd against float64 finite differences of torch's own function."
                 if torch_only else "# Runs with torch and neuronix: both libraries on the same values, side by side.")
    lines.append("# Inputs are exact literals (each float's repr round-trips) in their drawn layout.")
    if kind == "registry":
        lines.append("# The mirror's callables are not a plain public name: they come from the conformance registry.")
    if torch_only and not fd:
        lines.append("# The harness does not compare this mirror with finite differences (fd=False): torch's gradient"
                     " is a convention here (a tie, a kink, a scaled or masked gradient), not the derivative.")
    return lines


def _registry_lines(mirror, kind: str, torch_only: bool) -> list[str]:
    """The imports a registry-called (or output-picking) mirror needs."""
    if kind != "registry" and mirror.output is None:
        return []
    lines = ["import conformance.mirrors  # noqa: F401  (registers the mirrors)",
             "from conformance.mirror import REGISTRY", "", "", f"MIRROR = REGISTRY[{mirror.name!r}]"]
    if kind == "registry":
        lines.append("TORCH_CALL = MIRROR.torch" + ("" if torch_only else "\nNX_CALL = MIRROR.nx"))
    if mirror.output is not None:
        lines.append("PICK = MIRROR.output  # the outputs the harness compares and differentiates")
    return lines


def _preamble(mirror, device: torch.device, dtype: torch.dtype, torch_only: bool, kind: str) -> list[str]:
    lines = ["import copy  # noqa: F401", "import operator  # noqa: F401", "from math import inf, nan  # noqa: F401", "",
             "import numpy  # noqa: F401", "import torch", ""]
    if not torch_only:
        lines += ["import neuronix as nx", ""]
    registry = _registry_lines(mirror, kind, torch_only)
    if registry:
        lines += registry + [""]
    if torch_only:  # the helpers name nx.Tensor; a torch-only script never makes one
        lines += ["", "class nx:  # noqa: N801 - stands in for neuronix: this script needs torch alone",
                  "    class Tensor:", "        pass", "", ""]
    return lines + [f"DEVICE = {str(device)!r}", f"DTYPE = {dtype_name(dtype)}", "", ""]


def _op_draws(mirror: OpMirror, sample, seed: int, dtype: torch.dtype):
    """What the op driver derives from the sample: slots, float outputs, upstream gradients, ``v``, and
    whether torch differentiates its gradient w.r.t. the upstream gradient — drawn as ``compare_op`` draws them."""
    slots = leaf_slots(sample) if mirror.grad else []
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
        try:
            t_out = outputs(mirror, mirror.torch(*t_args, **t_kwargs))
        except Exception:  # noqa: BLE001 - torch raised: the script shows it; nothing to differentiate
            return slots, [], [], [], False
        after = torch.initial_seed()
    floats = [k for k, (_, t) in enumerate(t_out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not slots or not floats:
        return slots, floats, [], [], False
    gen = torch.Generator().manual_seed(after % 2**63)
    upstream = [randn_like(t_out[k][1], gen) for k in floats]
    leaves = [slot_value(t_args, p) for _, p in slots]
    second = second_order(mirror, dtype)
    v = [randn_like(x, gen) for x in leaves] if second else []
    return slots, floats, upstream, v, second and mirror.gradgrad_upstream and _torch_has_upstream(
        [t_out[k][1] for k in floats], leaves, upstream, v)


def second_order(mirror, dtype: torch.dtype) -> bool:
    """Whether the drivers check second derivatives: where the mirror has them, in float32/float64 only."""
    return bool(mirror.gradgrad) and dtype in FLOATS



def _torch_has_upstream(outs, leaves, upstream, v) -> bool:
    """Whether torch differentiates its gradient w.r.t. the upstream gradient here (the harness checks
    those derivatives only then)."""
    ups = [u.clone().requires_grad_() for u in upstream]
    try:
        gs = grads(outs, leaves, ups, torch, True)
        terms = [(g * x).sum() for g, x in zip(gs, v) if g.requires_grad]
        if terms:
            torch.autograd.grad([sum(terms[1:], terms[0])], ups, allow_unused=True)
    except RuntimeError:
        return False
    return True


def _list(name: str, tensors: list[torch.Tensor], what: str) -> list[str]:
    if not tensors:
        return [f"{name} = []  # {what}"]
    return [f"{name} = [  # {what}"] + [f"    {tensor_expr(t, '    ')}," for t in tensors] + ["]"]


def _op_script(mirror: OpMirror, sample, dtype, device, torch_only: bool, seed: int, head: list[str]) -> str:
    kind, name = call_form(mirror)
    slots, floats, upstream, v, by_upstream = _op_draws(mirror, sample, seed, dtype)
    names = _Names(sample, slots)
    pick = "PICK(" if mirror.output is not None else "("
    lines = head + _preamble(mirror, device, dtype, torch_only, kind)
    lines += ["# ----- the drawn inputs (torch values: both libraries see these very tensors) -----"]
    lines += names.defs
    lines += _list("UPSTREAM", upstream, "the upstream gradient of each floating output")
    lines += _list("V", v, "directions of the second derivative: the gradient of <grad, V>")
    lines += [f"LABELS = {[label for label, _ in slots]!r}  # the differentiated inputs",
              f"FLOATS = {floats!r}  # the floating outputs, differentiated under UPSTREAM",
              f"SECOND = {bool(v)!r}  # second derivatives checked (float32/float64, where torch has them)",
              f"BY_UPSTREAM = {by_upstream!r}  # ... also w.r.t. the upstream gradient (gradgradcheck's grad_outputs)",
              "", ""]
    params = ", ".join(names.params)
    lines += [f"def torch_f({params}):"] + ["    " + s for s in _call_lines(kind, name, "torch", names.t_args,
                                                                                 names.t_kwargs)] + ["", ""]
    if not torch_only:
        lines += [f"def nx_f({params}):"] + ["    " + s for s in _call_lines(kind, name, "nx", names.n_args,
                                                                              names.n_kwargs)] + ["", ""]
    lines += [HELPERS.strip(), "", ""]
    inputs = "[" + ", ".join(names.params) + "]"
    if torch_only:
        lines += [FINITE_DIFFERENCES.strip(), "", "",
                  f"torch_vs_fd(lambda *xs: {pick}torch_f(*xs)), {inputs}, LABELS, FLOATS, UPSTREAM, V, SECOND)"]
    else:
        lines += [COMPARE.strip(), "", "",
                  f"t_in = [x.detach().requires_grad_() for x in {inputs}]",
                  f"n_in = [nx.Tensor(x, requires_grad=True) for x in {inputs}]",
                  f"t_out, n_out = both(lambda: flat({pick}torch_f(*t_in))), lambda: flat({pick}nx_f(*n_in))))",
                  "if t_out is not None:",
                  "    compare(t_out, n_out, t_in, n_in, LABELS, FLOATS, UPSTREAM, V, SECOND, BY_UPSTREAM)"]
    lines += ["print(f'max difference: {WORST[0]:.3e}')", ""]
    return "\n".join(lines)


def _module_draws(mirror: ModuleMirror, drawn, sample, dtype, device):
    """Per mode, the upstream gradients and ``v`` the module driver draws (one generator seeded by the
    module's init seed, drawn mode after mode), and the float outputs they belong to."""
    args, kwargs = drawn.constructor
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    slots = leaf_slots(sample)
    gen = torch.Generator().manual_seed(drawn.seed)
    per_mode = []
    with torch.random.fork_rng(devices=devices):
        t_mod = mirror.torch(*args, **kwargs)
        t_mod.load_state_dict(drawn.state)
        t_mod.to(device=device, dtype=dtype)
        for mode in mirror.modes:
            t_mod.train(mode == "train")
            seed = drawn.mode_seeds.get(mode, drawn.seed)
            t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
            torch.manual_seed(seed)
            try:
                t_out = outputs(mirror, t_mod(*t_args, **t_kwargs))
            except Exception:  # noqa: BLE001 - torch raised: the script shows it
                per_mode.append((mode, seed, [], [], [], False))
                continue
            floats = [k for k, (_, t) in enumerate(t_out)
                      if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
            wrt = [slot_value(t_args, p) for _, p in slots] + [p for p in t_mod.parameters() if p.requires_grad]
            upstream = [randn_like(t_out[k][1], gen) for k in floats]  # drawn before the driver looks at wrt
            v = [randn_like(x, gen) for x in wrt] if second_order(mirror, dtype) and floats and wrt else []
            by_upstream = bool(v) and _torch_has_upstream([t_out[k][1] for k in floats], wrt, upstream, v)
            per_mode.append((mode, seed, floats, upstream, v, by_upstream))
    return slots, per_mode


def _module_script(mirror: ModuleMirror, sample, dtype, device, torch_only: bool, drawn, head: list[str]) -> str:
    if drawn is None or drawn.constructor is None or drawn.state is None:
        raise ValueError(f"{mirror.name}: a module snippet needs the drawn constructor and weights (use snippet())")
    kind, name = call_form(mirror)
    slots, per_mode = _module_draws(mirror, drawn, sample, dtype, device)
    names = _Names(sample, slots)
    args, kwargs = drawn.constructor
    ctor = ", ".join([py_expr(a) for a in args] + [f"{k}={py_expr(v)}" for k, v in kwargs.items()])
    pick = "PICK(" if mirror.output is not None else "("
    lines = head + _preamble(mirror, device, dtype, torch_only, kind)
    t_new = f"torch.nn.{name}({ctor})" if kind == "module" else f"TORCH_CALL({ctor})"
    n_new = f"nx.nn.{name}({ctor})" if kind == "module" else f"NX_CALL({ctor})"
    lines += ["# the torch module's initial weights, as the run drew them (neuronix loads torch's state_dict)",
              "STATE = {"] + [f"    {k!r}: {tensor_expr(t, '    ')}," for k, t in drawn.state.items()] + ["}"]
    lines += [f"t_mod = {t_new}", "t_mod.load_state_dict(STATE)", "t_mod.to(device=DEVICE, dtype=DTYPE)"]
    if not torch_only:
        lines += [f"n_mod = {n_new}", "n_mod.load_state_dict(STATE)", "n_mod.to(device=DEVICE, dtype=DTYPE)"]
    lines += ["", "# ----- the drawn inputs (torch values: both libraries see these very tensors) -----"]
    lines += names.defs
    lines += [f"LABELS = {[label for label, _ in slots]!r}  # the differentiated inputs (then every parameter)",
              f"SECOND = {second_order(mirror, dtype)!r}  # second derivatives checked (float32/float64)",
              "MODES = []  # (mode, torch seed before the forward (dropout masks agree), floating outputs,",
              "            #  their upstream gradients, v, second derivatives also w.r.t. the upstream gradient)"]
    for mode, seed, floats, upstream, v, by_upstream in per_mode:
        lines += _list("UPSTREAM", upstream, f"{mode}: the upstream gradient of each floating output")
        lines += _list("V", v, f"{mode}: directions of the second derivative (inputs, then parameters)")
        lines += [f"MODES.append(({mode!r}, {seed}, {floats!r}, UPSTREAM, V, {by_upstream!r}))"]
    lines += ["", ""]
    params = ", ".join(names.params)
    call = ", ".join(names.t_args + names.t_kwargs)
    seeded = "    torch.manual_seed(seed)  # before each forward, as the harness: both draw the same dropout masks"
    lines += [f"def torch_f(mod, seed, {params}):" if params else "def torch_f(mod, seed):", seeded,
              f"    return mod({call})", "", ""]
    if not torch_only:
        n_call = ", ".join(names.n_args + names.n_kwargs)
        lines += [f"def nx_f(mod, seed, {params}):" if params else "def nx_f(mod, seed):", seeded,
                  f"    return mod({n_call})", "", ""]
    lines += [HELPERS.strip(), "", ""]
    inputs = "[" + ", ".join(names.params) + "]"
    if torch_only:
        lines += [FINITE_DIFFERENCES.strip(), "", "",
                  "class Called(torch.nn.Module):",
                  "    \"\"\"torch_f as a module, so torch.func.functional_call can swap the parameters in.\"\"\"", "",
                  "    def __init__(self, mod):", "        super().__init__()", "        self.mod = mod", "",
                  "    def forward(self, seed, *inputs):", "        return torch_f(self.mod, seed, *inputs)", "", "",
                  "# the inputs and every parameter against finite differences (those in a float64 copy of the module)",
                  "for mode, seed, floats, upstream, v, _ in MODES:",
                  "    t_mod.train(mode == 'train')",
                  "    called, called64 = Called(t_mod), Called(copy.deepcopy(t_mod).double())",
                  "    names = [n for n, p in t_mod.named_parameters() if p.requires_grad]",
                  f"    n = len({inputs})",
                  "",
                  "    def f(*xs, seed=seed, called=called, called64=called64, names=names, n=n):",
                  "        module = called if xs[0].dtype == DTYPE else called64",
                  "        params = {'mod.' + k: x for k, x in zip(names, xs[n:])}",
                  f"        return {pick}torch.func.functional_call(module, params, (seed, *xs[:n])))",
                  "",
                  f"    wrt = {inputs} + [p.detach() for p in t_mod.parameters() if p.requires_grad]",
                  "    if wrt:",
                  "        labels = LABELS + [f'parameter {k}' for k in names]",
                  "        torch_vs_fd(f, wrt, labels, floats, upstream, v, SECOND, prefix=mode + ' ')"]
    else:
        lines += [COMPARE.strip(), "", "",
                  "for mode, seed, floats, upstream, v, by_upstream in MODES:",
                  "    t_mod.train(mode == 'train')",
                  "    n_mod.train(mode == 'train')",
                  f"    t_in = [x.detach().requires_grad_() for x in {inputs}]",
                  f"    n_in = [nx.Tensor(x, requires_grad=True) for x in {inputs}]",
                  f"    t_out, n_out = both(lambda: flat({pick}torch_f(t_mod, seed, *t_in))),",
                  f"                        lambda: flat({pick}nx_f(n_mod, seed, *n_in))))",
                  "    if t_out is None:",
                  "        continue",
                  "    names = [n for n, p in t_mod.named_parameters() if p.requires_grad]",
                  "    t_wrt = t_in + [p for p in t_mod.parameters() if p.requires_grad]",
                  "    n_wrt = n_in + [p for p in n_mod.parameters() if p.requires_grad]",
                  "    labels = LABELS + [f'parameter {n}' for n in names]",
                  "    compare(t_out, n_out, t_wrt, n_wrt, labels, floats, upstream, v, SECOND and bool(v), by_upstream,",
                  "            prefix=mode + ' ')",
                  "    for (k, b), (_, t) in zip(n_mod.named_buffers(), t_mod.named_buffers()):",
                  "        show(f'{mode} buffer {k}', b, t)"]
    lines += ["print(f'max difference: {WORST[0]:.3e}')", ""]
    return "\n".join(lines)


def snippet_for(mirror, sample, dtype: torch.dtype, device, torch_only: bool = False, *, drawn=None,
                case: str | None = None, note: str = "", failure: str = "") -> str:
    """A standalone script for one drawn ``sample`` of ``mirror`` (see the module docstring).

    ``drawn`` (a ``conformance.shrink.Drawn``) supplies the torch seed the run derived its upstream
    gradients from, and for a module its constructor arguments, initial weights and RNG seeds;
    without it an op's upstream gradient is drawn from seed 0. ``case``, ``note`` and ``failure`` go
    into the script's header.
    """
    device = torch.device(device)
    head = _header(case, note, failure, call_form(mirror)[0], torch_only, getattr(mirror, "fd", True))
    if isinstance(mirror, OpMirror):
        return _op_script(mirror, sample, dtype, device, torch_only, drawn.seed if drawn else 0, head)
    if isinstance(mirror, ModuleMirror):
        return _module_script(mirror, sample, dtype, device, torch_only, drawn, head)
    raise ValueError(f"{mirror.name}: snippets are written for op and module mirrors, not {mirror.kind}")


def worst_example(case) -> int:
    """The example a case's snippet shows by default: the first failing one (in the report's check
    order), else the one that came closest to failing."""
    from conformance.record import CHECK_ORDER

    ranked = sorted(case.records, key=lambda r: (r.status == "pass", CHECK_ORDER.index(r.check)
                                                 if r.check in CHECK_ORDER else len(CHECK_ORDER), -(r.headroom or 0.0)))
    return next((r.worst.example for r in ranked if r.worst is not None), 0)


def snippet(case_id: str, example: int | None = None, profile: str = "ci", torch_only: bool = False, *,
            examples: int | None = None, tolerances=None) -> str:
    """The standalone script of example ``example`` of ``case_id`` (default: ``worst_example``),
    replayed exactly as the run drew it (``examples`` overrides the profile's count, as in ``run``)."""
    from conformance.runner import run_case
    from conformance.shrink import _first_failure, failing_checks, replay, resolve

    mirror, dtype, device = resolve(case_id)
    if example is None:
        example = worst_example(run_case(mirror, dtype, device, profile, tolerances, examples))
    drawn, result = replay(case_id, example, profile, tolerances, examples)
    failed = failing_checks(result)
    failure = _first_failure(result, failed[0]) if failed else "no failure in this example"
    return snippet_for(mirror, drawn.sample, dtype, device, torch_only, drawn=drawn, case=case_id,
                       note=f"Example {example} (seed {result.seed}) of profile {profile!r}; in the harness alone: "
                            f"python -m conformance repro '{case_id}' --example {example}", failure=failure)
