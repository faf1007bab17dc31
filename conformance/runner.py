"""Runs one case (entry x dtype x device): draws examples, judges Comparisons, checks leaks.

A case id is ``"<entry>|<dtype>|<device>"`` (``"exp|float64|cpu"``); its seed is a hash of
the id, so ``python -m conformance repro CASE_ID`` replays exactly the same examples.
Hypothesis draws the inputs (generation only, no shrinking: a case records the worst of
its examples instead of stopping at the first failure). Drivers yield ``Comparison``s;
this module alone applies tolerances, so every kind of entry is judged the same way.

``conformance.record`` holds what a case leaves behind: its examples and the typed records
that summarise it, one per (entry, check, dtype, device).
"""

from __future__ import annotations

import gc
import hashlib
import time
import traceback
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

try:  # torch imports torch._dynamo lazily, at its first double backward (or optimizer): an exception caught inside that
    # import keeps a traceback -> frame cycle alive that reaches the running example's tensors, and with gc off during
    # an example the leak check would report it against whichever mirror came first in the process. Imported here,
    # once, before any example runs.
    import torch._dynamo  # noqa: F401
except Exception:  # noqa: BLE001 - a torch without dynamo has no such lazy import either
    pass

import neuronix as nx
from conformance import strategies, trace
from conformance.closeness import measure
from conformance.kinds import driver
from conformance.record import CaseResult, ExampleResult, Judged, summarise
from conformance.tolerances import Tolerances, load


@dataclass(frozen=True)
class Profile:
    """How many examples each kind of entry gets per case."""

    name: str
    examples: dict

    def count(self, kind: str, mirror_examples: dict | None = None) -> int:
        """Examples per case: the mirror's own count for this profile when it sets one, else its kind's."""
        if mirror_examples and self.name in mirror_examples:
            return mirror_examples[self.name]
        return self.examples.get(kind, self.examples["op"])


PROFILES = {
    # 2-core CI budget: several hundred entries x 2 dtypes in well under 15 minutes.
    "ci": Profile("ci", {"op": 4, "module": 3, "optimizer": 2, "scheduler": 2}),
    "thorough": Profile("thorough", {"op": 40, "module": 15, "optimizer": 10, "scheduler": 10}),
}


def case_id(name: str, dtype: torch.dtype | str, device: str) -> str:
    return f"{name}|{str(dtype).removeprefix('torch.')}|{device}"


def parse_case_id(cid: str) -> tuple[str, str, str]:
    """``(entry, dtype, device)``; the entry name may itself contain ``|``."""
    name, dtype, device = cid.rsplit("|", 2)
    return name, dtype, device


def seed_of(cid: str) -> int:
    return int.from_bytes(hashlib.sha256(cid.encode()).digest()[:4], "little")


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _cuda_allocated(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.memory_allocated(device)


_example_index = [0]  # the example running now: see ``current_example``


def current_example() -> int:
    """The index of the example running now (bookkeeping only: what an example *draws* must not depend
    on it, or Hypothesis sees two examples with one prefix draw differently and stops the case)."""
    return _example_index[0]


def _run_example(mirror, compare, index: int, ex_seed: int, draw, dtype, device, tolerances: Tolerances, cid: str):
    """One example under the leak check: gc off, a scoped graph, weak references to what the driver tracked."""
    result = ExampleResult(index, ex_seed)
    _example_index[0] = index
    dtype_name, device_type = str(dtype).removeprefix("torch."), device.type
    was_enabled = gc.isenabled()
    gc.disable()
    raised = False
    start = time.perf_counter()
    baseline = _cuda_allocated(device)
    try:
        with trace.recording() as example:
            torch.manual_seed(ex_seed)
            strategies.reset_salt()
            with nx.AutogradGraph() as graph:
                try:
                    for comparison in compare(mirror, draw, dtype, device):
                        result.judged.append(_judge(comparison, index, mirror.name, dtype_name, device_type, tolerances, cid))
                        comparison = None
                except trace.Rejected as err:
                    result.status, result.error, raised = "rejected", str(err), True
                except trace.Mismatch as err:
                    result.status, result.error, result.error_check, raised = "error", str(err), err.check, True
                    err.__traceback__ = None
                except Exception as err:  # noqa: BLE001 - a crash in either library is a reported failure
                    result.status, result.error, raised = "error", _describe_error(err), True
                    err.__traceback__ = None
                    del err
            if not raised:
                result.leak = _leaks(graph, example, device, baseline)
    finally:
        if was_enabled:
            gc.enable()
        if raised:
            gc.collect()  # an exception's traceback holds frames in a cycle: not a leak of neuronix's
    result.info = example.info
    result.seconds = time.perf_counter() - start
    if result.leak:
        gc.collect()  # free the leaked graph so it cannot disturb the next example
    return result


def _describe_error(err: BaseException) -> str:
    """The exception and the last few frames inside neuronix / conformance (not torch's or Hypothesis's)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "/torch/" not in f.filename and "hypothesis" not in f.filename]
    where = "".join(f"\n  at {'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} {f.line}" for f in frames[-3:])
    return f"{type(err).__name__}: {err}{where}"


def _leaks(graph, example: trace.Example, device, baseline) -> str:
    problems = []
    live = graph.live_nodes()
    if live:
        names = sorted({n.name() for n in graph.nodes()})
        problems.append(f"{live} graph node(s) still alive after the example ({', '.join(names)})")
    alive = [label for label, ref in example.refs if ref() is not None]
    if alive:
        problems.append(f"{len(alive)} tensor(s) still referenced: {', '.join(alive[:6])}")
    after = _cuda_allocated(device)
    if baseline is not None and after is not None and after > baseline:
        problems.append(f"CUDA memory {after - baseline} bytes above its baseline")
    return "; ".join(problems)


def _judge(c, index: int, name: str, dtype: str, device: str, tolerances: Tolerances, cid: str) -> Judged:
    tol = tolerances.lookup(name, c.check, dtype, device, cid)
    m = measure(c.actual, c.expected, tol)
    problem = m.problem
    if not m.ok and c.explain is not None:
        try:
            problem = (problem + "; " if problem else "") + c.explain()
        except Exception as err:  # noqa: BLE001 - the diagnosis is a courtesy; never mask the failure
            problem += f" (diagnosis failed: {err})"
    return Judged(index, c.check, c.what, m.max_abs, m.max_rel, m.headroom, m.ok, tol.rule, tol.rtol, tol.atol, problem)


def run_case(mirror, dtype: torch.dtype | str, device: str | torch.device = "cpu", profile: str = "ci",
             tolerances: Tolerances | None = None, examples: int | None = None, only_example: int | None = None,
             seed: int | None = None, classify: bool = True) -> CaseResult:
    """Run every example of one case and summarise it into records (see module docstring).

    ``seed`` replaces the case's own (fresh-seed reruns); ``classify`` labels failing records
    (``conformance.classify``: it reruns failing examples, so its own reruns pass False)."""
    tolerances = tolerances or load()
    dtype = _dtype(dtype) if isinstance(dtype, str) else dtype
    device = torch.device(device)
    device_name = device.type
    cid = case_id(mirror.name, dtype, device_name)
    prof = PROFILES[profile]
    n = examples if examples is not None else prof.count(mirror.kind, getattr(mirror, "examples", None))
    case = CaseResult(cid, mirror.name, mirror.kind, str(dtype).removeprefix("torch."), device_name, profile,
                      seed_of(cid) if seed is None else seed)
    start = time.perf_counter()
    try:
        compare = driver(mirror.kind)
    except (ImportError, AttributeError, KeyError) as err:
        case.examples.append(ExampleResult(0, case.seed, status="error",
                                           error=f"no comparison driver for kind {mirror.kind!r}: {type(err).__name__}: {err}"))
        case.records = summarise(case, tolerances)
        return case
    counter = [0]

    @settings(max_examples=n, database=None, deadline=None, derandomize=False, print_blob=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @hypothesis_seed(case.seed)
    @given(st.data())
    def body(data):
        index = counter[0]
        counter[0] += 1
        ex_seed = data.draw(st.integers(0, 2**31 - 1))
        # Hypothesis generates each example from what the earlier ones drew (and drivers draw as
        # they run), so example K replays only after examples 0..K-1 have run: their results are dropped.
        # The examples after K run too: one that returned at once would draw less than an earlier one
        # with the same first draw, which Hypothesis stops as "inconsistent data generation" (and with
        # fewer max_examples it generates other examples).
        result = _run_example(mirror, compare, index, ex_seed, data.draw, dtype, device, tolerances, cid)
        if only_example is None or index == only_example:
            case.examples.append(result)

    body()
    case.seconds = time.perf_counter() - start
    case.records = summarise(case, tolerances)
    if classify and case.failed:
        from conformance.classify import label_case

        case.records = label_case(case, mirror, tolerances)
    return case
