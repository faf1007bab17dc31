"""``python -m conformance mutate``: the harness measures its own sensitivity.

It plants one fault at a time into one ``OpSpec`` of the registry (``neuronix/ops/registry.py``),
in process, by swapping the spec's ``forward``, ``vjps`` or ``fused`` for a wrapper and restoring
it afterwards; runs the conformance cases of the mirrors that exercise that op; and calls the fault
*killed* when a check of one of those cases that passes unmutated fails or errors. The kill rate (killed / (killed +
survived)) per fault kind, per op and overall is the measured sensitivity of the harness.

Three steps:

1. **The map** (``build_map``): every op and module mirror runs once in float64, unmutated, with
   the core checks only (values, gradients, second derivatives, finite differences, graph reuse)
   and every spec observed: which forwards ran (directly, or inside a backward pass), which rule
   ran in which mode (plain or recorded), which rule's result the engine had to un-broadcast,
   which fused kernel ran. A case chosen as a witness then runs once unmutated with every check
   (its *baseline*): a check failing there cannot witness a fault, only one that passes unmutated
   and fails planted kills it. Map and baselines are cached in ``<report-dir>/mutation-map.json``
   under a key of the commit, the local changes and the examples per case; they are
   deterministic (cases are seeded from their ids).
2. **The faults** (``faults``): ``KINDS`` below, each applied only where it means something.
3. **The runs** (``run_fault``): the exercising mirrors, those that apply the op themselves
   first, float64 then float32, until a check that passes unmutated fails (killed) or the
   profile's cap is reached.

Equivalent faults (no observable can change) are listed in ``tolerances.toml`` as
``[[mutation.equivalent]]`` with a reason, shown as such and not counted; ``[mutation]
min_kill_rate`` is the threshold (the exit status and ``python -m conformance gate`` judge it).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SCHEMA = "neuronix-mutation/1"
REPORT = "mutation.json"
MAP = "mutation-map.json"

# Every planted numerical fault is off by this relative amount: a typo-sized error (a constant
# wrong in its third digit), far above every tolerance in tolerances.toml (the loosest override
# allows 3e-4 absolute and 1e-5 relative in float32) and far below "obviously broken". It is also
# above the 1e-4 agreement band of ``elementwise.kernel_valued``, so a scaled rule of an op with a
# fused kernel is replaced by the kernel's value under create_graph and shows in the derivative
# it then lacks (the second derivative), which is exactly what that design must get right.
FACTOR = 1e-3

KINDS = {
    "forward": "the op's output perturbed (x + 1e-3 (1 + |x|); integers + 1, booleans negated)",
    "scaled": "rule i's result x (1 + 1e-3), on every backward pass",
    "dropped": "rule i returns zeros",
    "plain_only": "rule i's result x (1 + 1e-3) only on a plain backward (raw tensors; ops without a fused kernel)",
    "recorded_only": "rule i's result x (1 + 1e-3) only under create_graph (nx.Tensors: recorded)",
    "upstream_raw": "under create_graph rule i reads the upstream gradient detached: wrong only w.r.t. the upstream gradient",
    "broadcast_mean": "a broadcast input's gradient reduced with mean instead of sum (where a mirror broadcasts input i)",
    "fused": "the fused kernel's results x (1 + 1e-3) while the rules stay right",
}
RULE_KINDS = ("scaled", "dropped", "plain_only", "recorded_only", "upstream_raw", "broadcast_mean")
PROGRESS = 100  # faults between progress lines
VARIADIC_RULES = 2  # a variadic op (cat, stack, einsum: ``PerInput`` rules) is mutated in its first two inputs
MAX_RULES = 8  # more rules than this: one per index of a variadic op (backward_hook_gate has 64)


@dataclass(frozen=True)
class Profile:
    sample: int | None  # ops mutated (a deterministic sample); None: every op
    max_mirrors: int  # exercising mirrors tried per fault (and dtype) before it is called a survivor
    examples: int  # examples per case


PROFILES = {
    # CI: the examples per case of ``conformance run --profile ci`` (with 2, the dropout mirror never
    # draws a p that applies the dropout op); about 2 CPU-minutes, map included. Of 146 faults killed
    # in a 24-op sample, 141 fell to the first exercising case and 5 to the second, none to the third.
    "ci": Profile(sample=16, max_mirrors=2, examples=4),
    "thorough": Profile(sample=None, max_mirrors=6, examples=4),
}


@dataclass(frozen=True)
class Fault:
    op: str
    kind: str
    rule: int | None = None  # the input whose rule is planted (rule kinds only)

    @property
    def label(self) -> str:
        return f"{self.op}:{self.kind}" + ("" if self.rule is None else f":rule{self.rule}")


@dataclass
class Outcome:
    """What became of one fault: ``killed``, ``survived`` or ``equivalent`` (and why)."""

    op: str
    kind: str
    rule: int | None
    status: str
    reason: str = ""
    killed_by: dict | None = None  # {case_id, checks, message}
    cases_run: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ----- swapping a spec's rules -----------------------------------------------------------------
class _Rules:
    """A spec's ``vjps`` with rule ``only`` (every rule when None) passed through ``wrap(i, rule)``.

    Indexable like the tuple or ``PerInput`` it wraps (the engine and ``apply`` only index and zip it).
    """

    __slots__ = ("inner", "only", "wrap")

    def __init__(self, inner, only: int | None, wrap: Callable) -> None:
        self.inner, self.only, self.wrap = inner, only, wrap

    def __getitem__(self, i: int):
        rule = self.inner[i]  # IndexError ends iteration, as the tuple's own
        if rule is None or (self.only is not None and i != self.only):
            return rule
        return self.wrap(i, rule)


_current = threading.local()  # the node whose rules are running in this thread (for the gradient's target shape)


@contextmanager
def _tracking_nodes():
    """Let a planted rule see its node: ``engine._node_grads`` is looked up by name at each step."""
    from neuronix.autograd import engine

    real = engine._node_grads

    def tracked(node, *args):
        previous = getattr(_current, "node", None)
        _current.node = node
        try:
            return real(node, *args)
        finally:
            _current.node = previous

    engine._node_grads = tracked
    try:
        yield
    finally:
        engine._node_grads = real


def _target_shape(i: int):
    """The shape of input ``i`` of the node whose rule runs now (None outside the engine)."""
    node = getattr(_current, "node", None)
    if node is None or i >= node.n or node[i] is None:
        return None
    return tuple(node[i].shape)


@contextmanager
def _swapped(specs, forward=None, rules=None, fused=None):
    """Replace ``forward``/``vjps``/``fused`` of ``specs`` by ``make(spec, original)``; always restored."""
    saved = [(s, s.forward, s.vjps, s.fused) for s in specs]
    try:
        for spec, fwd, vjps, fus in saved:
            if forward:
                spec.forward = forward(spec, fwd)
            if rules:
                spec.vjps = rules(spec, vjps)
            if fused and fus is not None:
                spec.fused = fused(spec, fus)
        with _tracking_nodes():
            yield
    finally:
        for spec, fwd, vjps, fus in saved:
            spec.forward, spec.vjps, spec.fused = fwd, vjps, fus


# ----- step 1: which mirror exercises what --------------------------------------------------------
def _in_backward() -> bool:
    from neuronix.autograd import engine

    return bool(engine._passes.queues)


@contextmanager
def observing(uses: set):
    """Record into ``uses`` what runs: ``forward:OP:direct|inner``, ``rule:OP:I:plain|recorded``,
    ``broadcast:OP:I`` (the engine un-broadcasts rule I's result) and ``fused:OP``."""
    from neuronix.ops.registry import OPS
    from neuronix.tensor import Tensor

    def forward(spec, fwd):
        def observed(*args, **kwargs):
            uses.add(f"forward:{spec.name}:{'inner' if _in_backward() else 'direct'}")
            return fwd(*args, **kwargs)
        return observed

    def rule_wrap(spec):
        def wrap(i, rule):
            def observed(g, *args, **kwargs):
                result = rule(g, *args, **kwargs)
                if result is not None:
                    uses.add(f"rule:{spec.name}:{i}:{'recorded' if isinstance(g, Tensor) else 'plain'}")
                    shape = _target_shape(i)
                    if shape is not None and tuple(getattr(result, "shape", shape)) != shape:
                        uses.add(f"broadcast:{spec.name}:{i}")
                return result
            return observed
        return wrap

    def fused(spec, fus):
        def observed(*args, **kwargs):
            uses.add(f"fused:{spec.name}")
            return fus(*args, **kwargs)
        return observed

    with _swapped(list(OPS.values()), forward=forward, rules=lambda s, v: _Rules(v, None, rule_wrap(s)), fused=fused):
        yield


def mirrors(patterns: list[str] | None = None) -> dict:
    """The op and module mirrors (those that run neuronix ops under autograd), by name."""
    import conformance.mirrors  # noqa: F401  (registers every mirror)
    from conformance.mirror import REGISTRY

    return {n: m for n, m in REGISTRY.items() if m.kind in ("op", "module") and _matches(n, patterns)}


def _matches(name: str, patterns: list[str] | None) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _cache_key(examples: int, mirror_patterns: list[str] | None, device: str = "cpu") -> dict:
    """The map's validity: commit + local changes under neuronix/ and conformance/ + what was run."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--", "neuronix", "conformance"], cwd=root,
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        commit, diff = "unknown", str(time.time()).encode()  # no git: never reuse a map
    return {"schema": SCHEMA, "commit": commit, "changes": hashlib.sha256(diff).hexdigest()[:16], "examples": examples,
            "torch": torch.__version__, "mirrors": ",".join(mirror_patterns or ["*"]), "device": device}


@contextmanager
def _core_checks_only():
    """The op driver's further checks (variants, special values, forward mode, guards) left out: the map
    needs which code runs in each mode, which the core checks (values, gradients, second derivatives,
    finite differences, graph reuse) show, not their verdicts; they cost several times the core."""
    from conformance.kinds import op

    real = op.example_checks
    reuse = getattr(op, "_graph_reuse", None)  # plain backward passes through a retained graph
    op.example_checks = lambda: (reuse,) if reuse else ()
    try:
        yield
    finally:
        op.example_checks = real


def build_map(examples: int, mirror_patterns: list[str] | None = None, cache: Path | None = None,
              log: Callable[[str], None] = lambda s: None, device: str = "cpu") -> tuple[dict, dict]:
    """``({case_id: {"uses": [...]}}, baselines)`` for every op/module mirror in float64 (``observing``).

    ``baselines`` (``{case_id: [checks failing unmutated] or None}``) starts empty and is filled by the
    ``Runner``; both are cached together (``save_map``) under ``_cache_key``.
    """
    from conformance.runner import case_id, run_case

    key = _cache_key(examples, mirror_patterns, device)
    if cache is not None and cache.exists():
        try:
            stored = json.loads(cache.read_text())
        except ValueError:
            stored = {}
        if stored.get("key") == key:
            log(f"mutate: map reused from {cache}")
            return stored["cases"], stored.get("baselines", {})
    start = time.perf_counter()
    cases = {}
    with _core_checks_only():
        for name, mirror in mirrors(mirror_patterns).items():
            if torch.float64 not in mirror.dtypes or torch.device(device).type not in mirror.devices:
                continue
            uses: set = set()
            with observing(uses):
                run_case(mirror, "float64", device, examples=examples)
            cases[case_id(name, "float64", device)] = {"uses": sorted(uses)}
    log(f"mutate: mapped {len(cases)} cases in {time.perf_counter() - start:.1f} s")
    save_map(cache, key, cases, {})
    return cases, {}


def save_map(cache: Path | None, key: dict, cases: dict, baselines: dict) -> None:
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "cases": cases, "baselines": baselines}, indent=1, sort_keys=True))


# ----- step 2: the faults ---------------------------------------------------------------------------
def _rule_indices(spec) -> list[int]:
    """The inputs whose rules are mutated: all of a fixed-arity op's, the first ``VARIADIC_RULES`` of a
    variadic one (``PerInput`` rules, or more than ``MAX_RULES`` made per index, as backward_hook_gate's)."""
    if isinstance(spec.vjps, (tuple, list)) and len(spec.vjps) <= MAX_RULES:
        return [i for i, r in enumerate(spec.vjps) if r is not None]
    return [i for i in range(VARIADIC_RULES) if spec.vjps[i] is not None]


def faults(ops: list[str], kinds: list[str], cases: dict) -> list[Fault]:
    """Every fault of ``kinds`` that means something for ``ops`` (see ``KINDS``), in a fixed order."""
    from neuronix.ops.registry import COMPLEX_TWINS, OPS

    broadcast = {u for c in cases.values() for u in c["uses"] if u.startswith("broadcast:")}
    # a complex twin (``cos[complex]``) is recorded in place of its op where complex values meet it, but the
    # forward that runs is its op's (``cos``): only its rules are its own, so a fault in its forward is dead code
    twins = {twin.name for twin in COMPLEX_TWINS.values()}
    found = []
    for op in ops:
        spec = OPS[op]
        for kind in kinds:
            if kind == "forward":
                if op not in twins:
                    found.append(Fault(op, kind))
            elif kind == "fused":
                if spec.fused is not None:
                    found.append(Fault(op, kind))
            else:
                for i in _rule_indices(spec):
                    if kind == "plain_only" and spec.fused is not None:
                        continue  # a plain backward runs the fused kernel, not the rule (kind ``fused``)
                    if kind == "broadcast_mean" and f"broadcast:{op}:{i}" not in broadcast:
                        continue
                    found.append(Fault(op, kind, i))
    return found


def _witness_use(fault: Fault) -> tuple[str, ...]:
    """The map entries showing that a case exercises what ``fault`` changes (any one suffices)."""
    op, i = fault.op, fault.rule
    return {
        "forward": (f"forward:{op}:direct", f"forward:{op}:inner"),
        "fused": (f"fused:{op}",),
        "plain_only": (f"rule:{op}:{i}:plain",),
        "recorded_only": (f"rule:{op}:{i}:recorded",),
        "upstream_raw": (f"rule:{op}:{i}:recorded",),
        "broadcast_mean": (f"broadcast:{op}:{i}",),
    }.get(fault.kind, (f"rule:{op}:{i}:plain", f"rule:{op}:{i}:recorded"))


def witnesses(fault: Fault, cases: dict) -> list[str]:
    """The cases that exercise ``fault``'s target: those applying the op themselves first, then
    those naming it, then the most focused (fewest ops used); ties by name, so the order is fixed."""
    from conformance.runner import parse_case_id

    wanted = _witness_use(fault)
    found = [cid for cid, c in cases.items() if any(u in c["uses"] for u in wanted)]

    def order(cid):
        uses = cases[cid]["uses"]
        name = parse_case_id(cid)[0]
        named = name.split(".")[-1].split("[")[0].rstrip("_") == fault.op
        return (f"forward:{fault.op}:direct" not in uses, not named, len(uses), cid)

    return sorted(found, key=order)


# ----- planting -----------------------------------------------------------------------------------
def _perturbed(out):
    if isinstance(out, torch.Tensor):
        if out.is_floating_point() or out.is_complex():
            return out + FACTOR * (1 + out.abs())
        return out.logical_not() if out.dtype == torch.bool else out + 1
    if isinstance(out, (tuple, list)):
        return type(out)(_perturbed(o) for o in out)
    return out


def _zeros_like(r):
    from neuronix.tensor import Tensor

    if isinstance(r, Tensor):
        return Tensor._make(torch.zeros_like(r.data), None)
    return torch.zeros_like(r) if isinstance(r, torch.Tensor) else 0.0 * r


def _mean_reduced(r, shape):
    """``r`` reduced to ``shape`` by a mean over the broadcast dims (the fault) instead of a sum."""
    from neuronix.ops.reduce import sum_to_shape
    from neuronix.tensor import Tensor

    if shape is None or tuple(r.shape) == shape:
        return r
    count = r.numel() // max(1, torch.Size(shape).numel()) if isinstance(r, torch.Tensor) else \
        r.data.numel() // max(1, torch.Size(shape).numel())
    summed = sum_to_shape(r, shape) if isinstance(r, Tensor) else r.sum_to_size(shape)
    return summed / count


class PlantingError(Exception):
    """The planting code itself failed (not the op it wraps): evidence of nothing, never a kill. Not one of
    the errors ``registry.apply`` rewraps, so its name reaches the case's error record."""


@contextmanager
def _planting():
    try:
        yield
    except Exception as err:
        raise PlantingError(f"{type(err).__name__}: {err}") from err


def _planted_rule(kind: str):
    """``wrap(i, rule)`` for a rule fault of ``kind``."""
    from neuronix.tensor import Tensor

    def wrap(i, rule):
        def planted(g, *args, **kwargs):
            recording = isinstance(g, Tensor)  # the engine passes nx.Tensors only under create_graph
            if kind == "upstream_raw" and recording:
                g = Tensor._make(g.data, None)  # same value, cut from the graph of the upstream gradient
            result = rule(g, *args, **kwargs)
            if result is None:
                return None
            with _planting():
                if kind == "dropped":
                    return _zeros_like(result)
                if kind == "broadcast_mean":
                    return _mean_reduced(result, _target_shape(i))
                scale = kind == "scaled" or (kind == "plain_only" and not recording) or (kind == "recorded_only" and recording)
                return result * (1 + FACTOR) if scale else result
        return planted
    return wrap


@contextmanager
def planted(fault: Fault):
    """The registry with ``fault`` planted in its op (restored on exit)."""
    from neuronix.ops.registry import OPS

    spec = OPS[fault.op]
    if fault.kind == "forward":
        def forward(s, fwd):
            def perturbed(*args, **kwargs):
                out = fwd(*args, **kwargs)
                with _planting():
                    return (_perturbed(out[0]), out[1]) if s.aux else _perturbed(out)
            return perturbed
        swap = {"forward": forward}
    elif fault.kind == "fused":
        def fused(s, fus):
            def scaled(*args, **kwargs):
                values = fus(*args, **kwargs)
                with _planting():
                    return [None if v is None else v * (1 + FACTOR) for v in values]
            return scaled
        swap = {"fused": fused}
    elif fault.kind in RULE_KINDS:
        swap = {"rules": lambda s, v: _Rules(v, fault.rule, _planted_rule(fault.kind))}
    else:
        raise ValueError(f"mutate: unknown fault kind {fault.kind!r} (known: {', '.join(KINDS)})")
    with _swapped([spec], **swap):
        yield


# ----- step 3: running a fault ----------------------------------------------------------------------
def _failing_checks(case) -> list[str]:
    return sorted({r.check for r in case.records if r.status != "pass"})


def _why_unexercised(fault: Fault, cases: dict) -> str:
    """What the map says about an op no case exercises the way ``fault`` needs."""
    applied = {u.rsplit(":", 1)[1] for c in cases.values() for u in c["uses"] if u.startswith(f"forward:{fault.op}:")}
    if not applied:
        return ": no mirror case applies this op"
    if applied == {"inner"} and fault.rule is not None:
        return (": the op is applied only inside other ops' rules (a backward pass), so its own rules run only for a "
                "higher derivative (recorded: the third) than the harness checks (up to the second)")
    return ""


class Runner:
    """Runs cases for faults. A case witnesses faults through the checks that pass unmutated: those are
    found by one unmutated run of it (all checks), made when it is first needed and remembered."""

    def __init__(self, cases: dict, examples: int, max_mirrors: int, mirror_patterns: list[str] | None = None,
                 device: str = "cpu", baselines: dict | None = None) -> None:
        self.cases, self.examples, self.max_mirrors, self.device = cases, examples, max_mirrors, device
        self.registry = mirrors(mirror_patterns)
        self.baselines = {} if baselines is None else baselines  # case id -> checks failing unmutated, or None

    def _run(self, name: str, dtype: str):
        from conformance.runner import run_case

        return run_case(self.registry[name], dtype, self.device, examples=self.examples)

    def baseline(self, name: str, dtype: str) -> list[str] | None:
        """The checks failing unmutated; None when no check passes (the case cannot witness anything)."""
        from conformance.runner import case_id

        cid = case_id(name, dtype, self.device)
        if cid not in self.baselines:
            if getattr(torch, dtype) not in self.registry[name].dtypes:
                self.baselines[cid] = None
            else:
                case = self._run(name, dtype)
                self.baselines[cid] = _failing_checks(case) if any(r.status == "pass" for r in case.records) else None
        return self.baselines[cid]

    def run_fault(self, fault: Fault) -> Outcome:
        from conformance.runner import case_id, parse_case_id

        start = time.perf_counter()
        outcome = Outcome(fault.op, fault.kind, fault.rule, "survived")
        names = []
        for cid in witnesses(fault, self.cases):
            if len(names) == self.max_mirrors:
                break
            name = parse_case_id(cid)[0]
            if self.baseline(name, "float64") is not None:
                names.append(name)
        if not names:
            outcome.reason = "no mirror case exercises it (" + " or ".join(_witness_use(fault)) + ")" + _why_unexercised(
                fault, self.cases)
        for dtype, name in [(dtype, name) for dtype in ("float64", "float32") for name in names]:
            baseline = self.baseline(name, dtype)
            if baseline is None:
                continue
            with planted(fault):
                case = self._run(name, dtype)
            outcome.cases_run.append(case_id(name, dtype, self.device))
            new = [r for r in case.records if r.status != "pass" and r.check not in baseline]
            own = next((r.message for r in new if "PlantingError" in r.message), None)
            if own:  # the planting code itself failed: no evidence about the harness either way
                outcome.reason = f"the planted wrapper raised (a bug of conformance/mutate.py): {own[:300]}"
                break
            if new:
                outcome.status = "killed"
                outcome.killed_by = {"case_id": case.case_id, "checks": sorted({r.check for r in new}),
                                     "message": new[0].message[:300]}
                break
        if outcome.status == "survived" and names and not outcome.reason:
            outcome.reason = f"every check of {len(outcome.cases_run)} exercising case(s) passed"
        outcome.seconds = round(time.perf_counter() - start, 3)
        return outcome


# ----- policy (tolerances.toml) and arithmetic ---------------------------------------------------
@dataclass
class Policy:
    """``[mutation]`` of tolerances.toml: the threshold and the equivalent faults with their reasons."""

    min_kill_rate: float = 1.0
    equivalent: list[dict] = field(default_factory=list)  # {op, kind, rule?, reason}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        from conformance.tolerances import DEFAULT_PATH

        with open(Path(path) if path else DEFAULT_PATH, "rb") as f:
            section = tomllib.load(f).get("mutation", {})
        policy = cls(float(section.get("min_kill_rate", 1.0)), list(section.get("equivalent", [])))
        for k, e in enumerate(policy.equivalent):
            if not str(e.get("reason", "")).strip():
                raise ValueError(f"tolerances.toml: [[mutation.equivalent]] #{k} ({e.get('op')}) has no reason")
        return policy

    def equivalent_reason(self, fault: Fault) -> str | None:
        """The reason of the first entry matching ``fault``: ``op`` and ``kind`` (a glob or a list of globs),
        ``rule`` (an input index) and ``rule_is`` (names of rule functions, e.g. ``zero_gradient``)."""
        for e in self.equivalent:
            if (_any_glob(fault.op, e.get("op", "*")) and _any_glob(fault.kind, e.get("kind", "*"))
                    and e.get("rule") in (None, fault.rule)
                    and ("rule_is" not in e or _rule_name(fault) in _as_list(e["rule_is"]))):
                return str(e["reason"]).strip()
        return None


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _any_glob(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in _as_list(patterns))


def _rule_name(fault: Fault) -> str | None:
    """The ``__name__`` of the planted rule's function (None for forward/fused faults and unnamed rules)."""
    from neuronix.ops.registry import OPS

    if fault.rule is None or fault.op not in OPS:
        return None
    try:
        rule = OPS[fault.op].vjps[fault.rule]
    except IndexError:
        return None
    return getattr(rule, "__name__", None)


def tally(outcomes: list[Outcome], key: Callable[[Outcome], str]) -> dict:
    """``{group: {faults, killed, survived, equivalent, kill_rate}}``; equivalents are not counted in the rate."""
    groups: dict[str, dict] = {}
    for o in outcomes:
        g = groups.setdefault(key(o), {"faults": 0, "killed": 0, "survived": 0, "equivalent": 0})
        g["faults"] += 1
        g[o.status] += 1
    for g in groups.values():
        g["kill_rate"] = kill_rate(g["killed"], g["survived"])
    return dict(sorted(groups.items()))


def kill_rate(killed: int, survived: int) -> float:
    """Killed over counted faults; 1.0 when nothing was counted (no survivor)."""
    return killed / (killed + survived) if killed + survived else 1.0


def sample_ops(ops: list[str], n: int | None) -> list[str]:
    """A deterministic sample: the ``n`` ops first in the order of their names' SHA-256 (all when None)."""
    if n is None or n >= len(ops):
        return sorted(ops)
    return sorted(sorted(ops, key=lambda op: hashlib.sha256(op.encode()).hexdigest())[:n])


def report(outcomes: list[Outcome], policy: Policy, run: dict) -> dict:
    total = tally(outcomes, lambda o: "all").get("all", {"faults": 0, "killed": 0, "survived": 0, "equivalent": 0,
                                                           "kill_rate": 1.0})
    checks: dict[str, int] = {}
    for o in outcomes:
        for c in (o.killed_by or {}).get("checks", []):
            checks[c] = checks.get(c, 0) + 1
    return {
        "schema": SCHEMA, "run": run, "threshold": policy.min_kill_rate,
        "passed": total["kill_rate"] >= policy.min_kill_rate, "summary": total,
        "by_kind": tally(outcomes, lambda o: o.kind), "by_op": tally(outcomes, lambda o: o.op),
        "killing_checks": dict(sorted(checks.items())), "kinds": KINDS, "factor": FACTOR,
        "survivors": [asdict(o) for o in outcomes if o.status == "survived"],
        "equivalent": [asdict(o) for o in outcomes if o.status == "equivalent"],
        "faults": [asdict(o) for o in outcomes],
    }


def problems(data: dict) -> list[str]:
    """What the gate reports about a mutation report: empty when the kill rate meets its threshold."""
    if data.get("schema") != SCHEMA:
        return [f"mutation report schema {data.get('schema')!r} is not {SCHEMA!r}"]
    if data["passed"]:
        return []
    s = data["summary"]
    lines = [f"kill rate {s['kill_rate']:.3f} < min_kill_rate {data['threshold']} (tolerances.toml [mutation]): "
             f"{s['survived']} of {s['killed'] + s['survived']} faults survived"]
    lines += [f"{_label(o)}: {o['reason']}" for o in data["survivors"]]
    return lines


def _label(o: dict) -> str:
    return Fault(o["op"], o["kind"], o["rule"]).label


def table(data: dict) -> str:
    s = data["summary"]
    rows = [f"{'kind':16s} {'faults':>6s} {'killed':>6s} {'survived':>8s} {'equiv':>5s} {'kill rate':>9s}"]
    for kind, g in {**data["by_kind"], "ALL": s}.items():
        rows.append(f"{kind:16s} {g['faults']:6d} {g['killed']:6d} {g['survived']:8d} {g['equivalent']:5d} "
                    f"{g['kill_rate']:9.3f}")
    weak = {op: g for op, g in data["by_op"].items() if g["survived"]}
    if weak:
        rows.append("ops with survivors: " + ", ".join(f"{op} {g['kill_rate']:.2f}" for op, g in weak.items()))
    for o in data["survivors"]:
        rows.append(f"SURVIVED {_label(o)}: {o['reason']}" + (f" [{', '.join(o['cases_run'])}]" if o["cases_run"] else ""))
    reasons: dict[str, list[str]] = {}
    for o in data["equivalent"]:
        reasons.setdefault(o["reason"], []).append(_label(o))
    for reason, labels in reasons.items():
        rows.append(f"equivalent ({len(labels)}): {', '.join(labels)}\n  because {' '.join(reason.split())}")
    rows.append(f"kill rate {s['kill_rate']:.3f} (threshold {data['threshold']}): {'PASS' if data['passed'] else 'FAIL'}")
    return "\n".join(rows)


# ----- the command ----------------------------------------------------------------------------------
def mutate(ops_patterns=None, kinds=None, profile="ci", sample=None, examples=None, mirror_patterns=None,
           report_dir="reports", policy: Policy | None = None, log: Callable[[str], None] = print,
           device: str = "cpu") -> dict:
    """Plant every selected fault, one at a time; write and return the report (see module docstring)."""
    from neuronix.ops.registry import OPS

    start = time.perf_counter()
    prof = PROFILES[profile]
    examples = examples or prof.examples
    policy = policy or Policy.load()
    kinds = kinds or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"mutate: unknown fault kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    chosen = [op for op in OPS if _matches(op, ops_patterns)]
    chosen = sample_ops(chosen, sample if sample is not None else (None if ops_patterns else prof.sample))
    cache = Path(report_dir) / MAP
    cases, baselines = build_map(examples, mirror_patterns, cache, log, device)
    runner = Runner(cases, examples, prof.max_mirrors, mirror_patterns, device, baselines)
    outcomes = []
    planned = faults(chosen, kinds, cases)
    for k, fault in enumerate(planned, 1):
        reason = policy.equivalent_reason(fault)
        outcome = Outcome(fault.op, fault.kind, fault.rule, "equivalent", reason) if reason else runner.run_fault(fault)
        outcomes.append(outcome)
        if k % PROGRESS == 0:
            log(f"mutate: {k}/{len(planned)} faults, {sum(o.status == 'survived' for o in outcomes)} survived so far, "
                f"{time.perf_counter() - start:.0f} s")
    save_map(cache, _cache_key(examples, mirror_patterns, device), cases, runner.baselines)
    run = {"profile": profile, "examples": examples, "ops": chosen, "kinds": kinds, "max_mirrors": prof.max_mirrors,
           "mirrors": mirror_patterns or ["*"], "device": device, "torch": torch.__version__, "map_cases": len(cases),
           "commit": _cache_key(examples, None)["commit"], "seconds": round(time.perf_counter() - start, 1),
           "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    data = report(outcomes, policy, run)
    path = Path(report_dir) / REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    _refresh_html(Path(report_dir))
    return data


def _refresh_html(directory: Path) -> None:
    """Re-render the conformance HTML report beside, so it shows these results too."""
    conformance = directory / "conformance.json"
    if conformance.exists():
        from conformance.report import write_html

        write_html(json.loads(conformance.read_text()), directory / "conformance.html")


def load_report(path: str | Path) -> dict | None:
    """The mutation report at ``path`` (``<report-dir>/mutation.json``), or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"schema": "unreadable"}


def _globs(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", help="op name globs, comma-separated (default: the profile's sample)")
    parser.add_argument("--kinds", help=f"fault kinds, comma-separated (default all: {', '.join(KINDS)})")
    parser.add_argument("--profile", default="ci", choices=tuple(PROFILES))
    parser.add_argument("--sample", type=int, default=None, help="mutate this many ops (deterministic sample)")
    parser.add_argument("--examples", type=int, default=None, help="examples per case (default: the profile's)")
    parser.add_argument("--mirrors", help="mirror name globs the map may use (default: every op/module mirror)")
    parser.add_argument("--device", default="cpu", help="device of the cases (cpu or cuda)")
    parser.add_argument("--report-dir", default="reports")
    parser.add_argument("--tolerances", default=None, help="tolerances.toml holding [mutation]")
    args = parser.parse_args(argv)
    try:
        policy = Policy.load(args.tolerances)
        data = mutate(_globs(args.ops), _globs(args.kinds), args.profile, args.sample, args.examples,
                      _globs(args.mirrors), args.report_dir, policy, device=args.device)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    print(table(data))
    print(f"mutate: {data['summary']['faults']} faults on {len(data['run']['ops'])} ops in {data['run']['seconds']} s; "
          f"report {Path(args.report_dir) / REPORT}")
    return 0 if data["passed"] else 1
