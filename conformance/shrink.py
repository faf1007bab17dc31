"""Minimal failing examples: a case's examples replayed, or shrunk by Hypothesis, with what they drew.

The runner draws with generation only (a case records the worst of its examples instead of
stopping at the first failure). Here the same examples run under the same Hypothesis seed and
settings, through the runner's own ``_run_example`` (leak check included), on a copy of the
mirror whose strategies also *capture* what they drew (``Drawn``): the sample, the torch seed
the driver derives its upstream gradients from, and for a module its constructor arguments,
initial weights and per-mode RNG seeds. ``replay`` returns example K as the run saw it;
``shrink`` lets Hypothesis shrink the first failing example while it fails the same check,
within a time cap, and writes the smallest one seen as a standalone snippet
(``conformance.snippet``).

What shrinks: a mirror draws shapes, options and layouts from Hypothesis directly, but tensor
*values* from seeds (``strategies._values``), so shrinking makes tensors smaller, fewer-dimensional
and contiguous and picks simpler options; the values of the minimal example are still random
(from a shrunk seed), not 0 or 1.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from conformance.kinds import driver
from conformance.mirror import ModuleMirror, OpMirror
from conformance.record import CHECK_ORDER, ExampleResult
from conformance.runner import PROFILES, _judge, _run_example, parse_case_id, seed_of
from conformance.tolerances import Tolerances, load

SHRINK_SECONDS = 60.0  # default cap of one shrink (``repro --shrink``)
REPORT_CASES = 10  # at most this many failing cases get a shrunk snippet in a report
REPORT_SECONDS = 10.0  # ... each shrunk for at most this long
REPORT_BUDGET = 60.0  # ... and all of them written within this long


@dataclass
class Drawn:
    """What one example drew: enough to write it out as a standalone snippet."""

    sample: object = None  # the Sample the driver ran (torch values)
    seed: int = 0  # torch.initial_seed() when an op's sample was drawn / a module was built
    constructor: tuple | None = None  # modules: the constructor's (args, kwargs)
    state: dict | None = None  # modules: the torch module's state_dict right after construction
    mode_seeds: dict = field(default_factory=dict)  # modules: the torch seed before the forward of each mode


class _Box:
    """The ``Drawn`` of the example now running (the capturing strategies fill it)."""

    def __init__(self) -> None:
        self.drawn = Drawn()


def capturing(mirror, box: _Box):
    """A copy of ``mirror`` whose strategies record their first draw of each example into ``box.drawn``.

    Draws pass through unchanged, so Hypothesis sees the very same test function as the runner's.
    Only the first call counts: later checks (special values, variants) may draw the sample again.
    """
    if isinstance(mirror, OpMirror):
        def sample(draw, dtype, device):
            s = mirror.sample(draw, dtype, device)
            if box.drawn.sample is None:
                box.drawn.sample, box.drawn.seed = s, torch.initial_seed()
            return s

        return dataclasses.replace(mirror, sample=sample)
    if isinstance(mirror, ModuleMirror):
        def build(draw):
            args, kwargs = mirror.build(draw)
            if box.drawn.constructor is None:
                box.drawn.constructor = (args, kwargs)
            return args, kwargs

        def make_torch(*args, **kwargs):
            module = mirror.torch(*args, **kwargs)
            if box.drawn.state is None:  # the driver seeded torch right before: that seed draws the upstream too
                box.drawn.seed = torch.initial_seed()
                box.drawn.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                module.register_forward_pre_hook(lambda m, a: _note_mode_seed(box.drawn, m))
            return module

        def sample(draw, args, kwargs, dtype, device):
            s = mirror.sample(draw, args, kwargs, dtype, device)
            if box.drawn.sample is None:
                box.drawn.sample = s
            return s

        return dataclasses.replace(mirror, build=build, torch=make_torch, sample=sample)
    return mirror  # optimizers and schedulers: no sample to write out


def _note_mode_seed(drawn: Drawn, module) -> None:
    """The driver reseeds torch before each mode's forward: the first forward in a mode is the compared
    one (later forwards in that mode, e.g. the variants' module twin, reuse or redraw seeds)."""
    drawn.mode_seeds.setdefault("train" if module.training else "eval", torch.initial_seed())


def resolve(cid: str):
    """``(mirror, dtype, device)`` of a case id; the registry is loaded on first use."""
    import conformance.mirrors  # noqa: F401
    from conformance.mirror import REGISTRY

    name, dtype, device = parse_case_id(cid)
    if name not in REGISTRY:
        raise KeyError(f"no mirror named {name!r}; `python -m conformance list` shows the registry")
    return REGISTRY[name], getattr(torch, dtype), torch.device(device)


def _settings(n: int, phases) -> settings:
    """The runner's settings (``runner.run_case``), with the phases asked for."""
    return settings(max_examples=n, database=None, deadline=None, derandomize=False, print_blob=False,
                    suppress_health_check=list(HealthCheck), phases=phases, report_multiple_bugs=False)


def _count(mirror, profile: str, examples: int | None) -> int:
    return examples if examples is not None else PROFILES[profile].count(mirror.kind, getattr(mirror, "examples", None))


class _Found(Exception):
    """Raised by ``replay`` once its example has run."""


def replay(cid: str, example: int, profile: str = "ci", tolerances: Tolerances | None = None,
           examples: int | None = None) -> tuple[Drawn, ExampleResult]:
    """Example ``example`` of case ``cid`` exactly as ``run_case`` ran it, and what it drew.

    As in the runner, examples 0..K-1 run first: Hypothesis generates each example from what
    the earlier ones drew.
    """
    mirror, dtype, device = resolve(cid)
    tolerances = tolerances or load()
    box = _Box()
    wrapped, compare = capturing(mirror, box), driver(mirror.kind)
    counter, found = [0], []

    @_settings(_count(mirror, profile, examples), [Phase.generate])
    @hypothesis_seed(seed_of(cid))
    @given(st.data())
    def body(data):
        index = counter[0]
        counter[0] += 1
        ex_seed = data.draw(st.integers(0, 2**31 - 1))
        if found:
            raise _Found  # stop Hypothesis: any later example only costs time (and see below)
        box.drawn = Drawn()
        result = _run_example(wrapped, compare, index, ex_seed, data.draw, dtype, device, tolerances, cid)
        if index == example:
            found.append((box.drawn, result))
            raise _Found

    # Stopping right after example K (run_case(only_example=K) runs the examples after it too) spares
    # their time, and Hypothesis never meets a later example that repeats a prefix of an earlier one
    # and draws less: it calls that "inconsistent data generation" (nn.ConvTranspose2d).
    try:
        body()
    except Exception:  # noqa: BLE001 - _Found, or Hypothesis's complaint about its own replay of it
        if not found:
            raise
    if not found:
        raise IndexError(f"{cid} has no example {example} in profile {profile!r}")
    return found[0]


def failing_checks(result: ExampleResult) -> list[str]:
    """The checks an example failed, in the report's order (an error counts under its check)."""
    checks = {j.check for j in result.judged if not j.ok}
    if result.status == "error":
        checks.add(result.error_check)
    if result.leak:
        checks.add("leak")
    return sorted(checks, key=lambda c: CHECK_ORDER.index(c) if c in CHECK_ORDER else len(CHECK_ORDER))


def size(drawn: Drawn) -> tuple[int, int]:
    """How big an example is: (tensor elements, tensor dimensions) over its arguments."""
    tensors = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            tensors.append(v)
        elif isinstance(v, (list, tuple)):
            for b in v:
                walk(b)
        elif isinstance(v, dict):
            for b in v.values():
                walk(b)

    if drawn.sample is not None:
        walk(list(drawn.sample.args) + list(drawn.sample.kwargs.values()))
    return sum(t.numel() for t in tensors), sum(t.dim() for t in tensors)


@dataclass
class Shrunk:
    """The smallest failing example a shrink found."""

    case_id: str
    check: str  # the failing check it keeps failing
    drawn: Drawn
    result: ExampleResult
    first: int  # index of the first failing example of the case (what was shrunk)
    tried: int  # examples run (generation + shrinking)
    seconds: float
    capped: bool  # the time cap stopped the shrink before Hypothesis finished
    snippet: str = ""


def shrink(cid: str, profile: str = "ci", example: int | None = None, seconds: float = SHRINK_SECONDS,
           tolerances: Tolerances | None = None, examples: int | None = None, check: str | None = None,
           snippet: bool = True, torch_only: bool = False) -> Shrunk | None:
    """Shrink the first failing example of ``cid`` (at or after index ``example``) while it fails ``check``.

    ``check`` defaults to the first failing check of that example. Returns ``None`` when no
    example fails. Hypothesis runs the case's examples under the runner's seed until one fails,
    then its shrink phase; past ``seconds`` every further example is skipped (counted as passing),
    Hypothesis's own final replay is ignored and the smallest failure seen is returned.
    """
    mirror, dtype, device = resolve(cid)
    tolerances = tolerances or load()
    box = _Box()
    state = {"index": 0, "check": check, "first": None, "capped": False}
    wrapped, compare = capturing(mirror, box), _stopping(driver(mirror.kind), state, tolerances, cid)
    start = time.perf_counter()
    failures: list[tuple[Drawn, ExampleResult, int]] = []

    @_settings(_count(mirror, profile, examples), [Phase.generate, Phase.shrink])
    @hypothesis_seed(seed_of(cid))
    @given(st.data())
    def body(data):
        index = state["index"]
        state["index"] += 1
        ex_seed = data.draw(st.integers(0, 2**31 - 1))
        if time.perf_counter() - start > seconds:  # past the cap every further example is skipped
            state["capped"] = True
            return
        box.drawn = Drawn()
        result = _run_example(wrapped, compare, index, ex_seed, data.draw, dtype, device, tolerances, cid)
        failed = failing_checks(result)
        armed = state["first"] is not None or example is None or index >= example
        if not (armed and failed):
            return
        if state["check"] is None:
            state["check"] = failed[0]
        if state["check"] in failed:
            if state["first"] is None:
                state["first"] = index
            failures.append((box.drawn, result, len(failures)))
            raise AssertionError(f"{cid}: example fails {state['check']}")

    try:
        body()
    except Exception:  # noqa: BLE001 - Hypothesis re-raises the failure (or calls a replay flaky): expected
        pass
    if not failures:
        return None
    drawn, result, _ = min(failures, key=lambda f: (*size(f[0]), -f[2]))  # smallest; of equals, the latest
    found = Shrunk(cid, state["check"], drawn, result, state["first"], state["index"],
                   time.perf_counter() - start, state["capped"])
    if snippet:
        from conformance.snippet import snippet_for

        elements, _ = size(drawn)
        header = (f"the smallest failing example Hypothesis found ({elements} tensor elements) by shrinking example "
                  f"{found.first}, failing {found.check}; {found.tried} examples in {found.seconds:.1f} s"
                  + (" (time cap reached)" if found.capped else ""))
        found.snippet = snippet_for(mirror, drawn.sample, dtype, device, torch_only, drawn=drawn, case=cid, note=header,
                                    failure=_first_failure(result, found.check))
    return found


def _stopping(compare, state: dict, tolerances: Tolerances, cid: str):
    """``compare`` that ends an example at its first failing comparison of ``state["check"]``.

    A shrink only asks whether that check fails: the later checks' time is saved, and so are their
    draws, so a later check that behaves differently on a replay cannot make Hypothesis call the
    data generation inconsistent. Until the target is known (and for leaks and errors, seen only at
    the end) examples run whole, as in the runner.
    """
    name, dtype, device = parse_case_id(cid)

    def run(mirror, draw, dtype_, device_):
        inner = compare(mirror, draw, dtype_, device_)
        try:
            for c in inner:
                yield c
                if c.check == state["check"] and not _judge(c, 0, name, dtype, device, tolerances, cid).ok:
                    return
        finally:
            inner.close()

    return run


def _first_failure(result: ExampleResult, check: str) -> str:
    """One line on how the example failed ``check``, for the snippet's header."""
    if result.status == "error" and result.error_check == check:
        return f"{check}: {result.error.splitlines()[0]}"
    if check == "leak":
        return f"leak: {result.leak}"
    j = next((j for j in result.judged if not j.ok and j.check == check), None)
    if j is None:
        return ""
    detail = j.problem or f"max abs error {j.max_abs:.3e}, max rel error {j.max_rel:.3e}"
    return f"{j.check} {j.what}: {detail} (allowed atol={j.atol:g} + rtol={j.rtol:g}*|expected|)"


def report_snippets(records, opts: dict, cases: int = REPORT_CASES, seconds: float = REPORT_SECONDS,
                    budget: float = REPORT_BUDGET) -> dict:
    """``{case_id: {...}}`` for up to ``cases`` failing cases of a report, within ``budget`` seconds.

    A case failing a check its script redoes (``snippet.REDONE``, or an exception) is shrunk for at
    most ``seconds`` while it fails that check; any other (graph reuse, guards, forward mode,
    variants, special values draw their own inputs, so shrinking the sample says little there) gets
    the script of its worst example, unshrunk. Entries not in the registry (planted in tests) are
    skipped; one that raises leaves its error instead of a script (the report never fails for it).
    """
    import conformance.mirrors  # noqa: F401
    from conformance.flaky import CRASHED
    from conformance.mirror import REGISTRY
    from conformance.record import CHECK_ORDER
    from conformance.snippet import REDONE, snippet

    failing: dict[str, list] = {}
    for r in records:
        if r.status != "pass" and r.entry in REGISTRY and isinstance(REGISTRY[r.entry], (OpMirror, ModuleMirror)):
            failing.setdefault(r.case_id, []).append(r)
    for cid in [cid for cid, rows in failing.items() if any(CRASHED in r.message for r in rows)]:
        del failing[cid]  # its worker crashed: replaying it here could take the report down with it
    tolerances = load(opts.get("tolerances"))
    start, out = time.perf_counter(), {}
    for cid in sorted(failing)[:cases]:
        if time.perf_counter() - start > budget:
            out[cid] = {"error": f"no script: the report's {budget:.0f} s for scripts was spent on earlier cases"}
            continue
        first = min(failing[cid], key=lambda r: CHECK_ORDER.index(r.check) if r.check in CHECK_ORDER else len(CHECK_ORDER))
        try:
            if first.check in REDONE or first.check == "error":
                found = shrink(cid, first.profile, seconds=seconds, tolerances=tolerances, examples=opts.get("examples"),
                               check=first.check)
                if found is None:
                    out[cid] = {"error": "no example failed on replay (nondeterministic?)"}
                    continue
                out[cid] = {"check": found.check, "elements": size(found.drawn)[0], "shrunk": True,
                            "seconds": round(found.seconds, 2), "capped": found.capped, "snippet": found.snippet}
            else:
                example = first.worst.example if first.worst else 0
                text = snippet(cid, example, first.profile, examples=opts.get("examples"), tolerances=tolerances)
                out[cid] = {"check": first.check, "example": example, "shrunk": False, "snippet": text}
        except Exception as err:  # noqa: BLE001 - a courtesy of the report: never mask the failures themselves
            out[cid] = {"error": f"{type(err).__name__}: {err}"}
    return out
