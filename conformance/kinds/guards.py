"""In-place and thread guards: faults planted on purpose around every op example (issue 12, item 7).

Two checks run after an op example's value and gradient checks (``kinds.op.example_checks``):

* ``version_guard`` — saved tensors. For each differentiable input, the op gets a non-leaf copy
  of the leaf (``leaf.clone()``, in both libraries), and after the forward the copy is written in
  place (``copy += 1``); then the same for every floating output (``exp``, ``tanh``, ``sigmoid`` ...
  save theirs). The write must be refused where torch refuses it (a leaf, a view of a leaf that
  requires grad) and land in place where torch's does. It is an augmented assignment on purpose:
  an ``__iadd__`` that rebinds instead of updating leaves the caller's tensor unchanged. Then the
  backward: neuronix must not raise where torch does not (a valid torch program would fail), and
  where it does not raise its gradients must be the untouched forward's (``OpExample.n_grads``),
  so it cannot have read a new value: an op that reads a saved tensor its node does not
  version-check, or an in-place op that does not move the version counter, gives another
  gradient. Where torch raises only because it keeps a whole tensor whose shape its formula reads
  (gather, masked_select, the losses' inputs), neuronix may keep less, as long as that gradient is
  right. (Index and mask arguments are guarded by ``kinds.op``'s index guard.)
* ``thread`` — grad mode belongs to a thread. While a second thread toggles the mode in a loop
  (``set_grad_enabled(False)``, ``no_grad``, ``enable_grad``), this thread runs the forward and
  the backward: every output must be recorded as torch's is, and the gradients must be the
  example's own. Then the other way round: under ``no_grad`` here, a second thread's forward
  and backward must record. A process-global mode fails either half. Threads start a few
  hundred microseconds each, so this runs on example 0 of a case only; every thread is joined
  with a timeout (a thread still alive afterwards is reported, never left behind).

Each library runs its whole trial (forward, write, backward) before the other's: the leaves of
both wrap the same drawn tensors, so one library's write must not move the other's counters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds.common import build_call, current_example, grads, outputs, slot_value
from conformance.mirror import FLOATS, Comparison
from conformance.trace import Mismatch, track

JOIN_TIMEOUT = 10.0  # seconds; a thread still running after this is reported as a failure


def check(ex) -> Iterator[Comparison]:
    """Yield the in-place and thread guards' Comparisons for one op example (see kinds.op.OpExample)."""
    if ex.dtype not in FLOATS or not ex.slots or not ex.floats:
        return
    for label, path in ex.slots:
        yield from _saved_input(ex, label, slot_value(ex.sample.args, path))
    yield from _saved_outputs(ex)
    if current_example() == 0:
        yield from _threads(ex)


# ----- building calls ---------------------------------------------------------------------------
class _Leaves:
    """Builds one library's call (as ``kinds.common``'s leaf builders): every slot a fresh leaf, kept
    in ``leaves``; the slot holding ``target`` gets a non-leaf copy of its leaf, kept in ``copies``."""

    def __init__(self, lib, target=None) -> None:
        self.lib, self.target = lib, target
        self.leaves, self.copies = [], []

    def __call__(self, t: torch.Tensor):
        leaf = t.detach().requires_grad_(True) if self.lib is torch else nx.Tensor(t.detach(), requires_grad=True)
        self.leaves.append(leaf)
        if t is not self.target:
            return leaf
        copy = leaf.clone()
        self.copies.append(copy)
        return copy

    def const(self, t: torch.Tensor):
        return t if self.lib is torch else nx.Tensor(t)


def _forward(ex, lib, target=None):
    """A fresh forward of the example in ``lib``: (its leaves, the non-leaf copies of ``target``, the
    floating outputs compared)."""
    build = _Leaves(lib, target)
    args, kwargs = build_call(ex.sample, ex.slots, build)
    # build_call's converter is a reference cycle holding the builder until the collector runs (off
    # during an example): the builder must not keep the tensors, or their graph would count as leaked
    leaves, copies = build.leaves, build.copies
    build.leaves = build.copies = None
    fn = ex.mirror.torch if lib is torch else ex.mirror.nx
    result = outputs(ex.mirror, fn(*args, **kwargs))
    outs = [result[k][1] for k in ex.floats]
    if lib is nx:
        track(*outs, label="output (guards)")
    return leaves, copies, outs


def _error(run: Callable[[], object]) -> str | None:
    """The message of the RuntimeError ``run()`` raised, or None (torch's refusals are RuntimeErrors)."""
    try:
        run()
    except RuntimeError as err:
        return f"{type(err).__name__}: {err}"
    return None


WRITTEN = 1.0  # what the in-place write adds: a changed saved value changes a gradient that reads it


def _write_in_place(t) -> None:
    """``t += 1``: an augmented assignment, so an ``__iadd__`` that rebinds instead of updating leaves the
    caller's ``t`` (and what the op saved) unchanged, which ``_compare_trials`` sees."""
    t += WRITTEN


def _flags(errors) -> torch.Tensor:
    return torch.tensor([float(e is not None) for e in errors], dtype=torch.float64)


def _explain(what: str, t_errors, n_errors) -> Callable[[], str]:
    def explain() -> str:
        lines = [f"{what} {i}: torch {'raised ' + t if t else 'did not raise'}; "
                 f"neuronix {'raised ' + n if n else 'did not raise'}"
                 for i, (t, n) in enumerate(zip(t_errors, n_errors)) if (t is None) != (n is None)]
        return "; ".join(line[:400] for line in lines)

    return explain


# ----- saved inputs and outputs -----------------------------------------------------------------
@dataclass
class _Trial:
    """One library's forward, in-place writes and backward."""

    writes: list  # the error each write raised (None: accepted)
    written: list  # the written tensors' values afterwards (torch tensors)
    backward: str | None  # the error the backward raised
    grads: list | None  # the gradients, when it did not raise


def _trial(ex, lib, target=None) -> _Trial:
    """With ``target`` the non-leaf copy of that input is written, else every floating output."""
    leaves, copies, outs = _forward(ex, lib, target)
    written = copies if target is not None else outs
    writes = [_error(lambda t=t: _write_in_place(t)) for t in written]
    got = []
    backward = _error(lambda: got.extend(grads(outs, leaves, ex.upstream, lib, False)))
    return _Trial(writes, [to_torch(t).detach().clone() for t in written], backward,
                  [to_torch(g) for g in got] if backward is None else None)


def _compare_trials(ex, what: str, t: _Trial, n: _Trial) -> Iterator[Comparison]:
    """The write refused as torch's, in place as torch's; then the backward.

    Neuronix must not raise where torch does not (a valid torch program would fail). Where torch
    raises because it kept the written tensor, neuronix may have kept less (only what its rules
    read: a shape, an intermediate); then its gradient must be the one of the untouched forward, so
    it cannot have read the new value. Where neither raises, the same holds.
    """
    yield Comparison("version_guard", f"{what} written in place after the forward: refused as torch's",
                     _flags(n.writes), _flags(t.writes), explain=_explain(what, t.writes, n.writes))
    if _flags(n.writes).tolist() != _flags(t.writes).tolist():
        return  # the backward would run on other histories
    yield Comparison("version_guard", f"{what} after its in-place write (in place, as torch's)", n.written, t.written)
    raised_alone = n.backward is not None and t.backward is None
    yield Comparison("version_guard", f"backward after {what} was written in place: neuronix raises only where torch does",
                     torch.tensor(float(raised_alone)), torch.tensor(0.0),
                     explain=_explain(f"backward after writing {what}", [t.backward], [n.backward]))
    if n.grads is not None:
        for (label, _), got, own in zip(ex.slots, n.grads, ex.n_grads):
            yield Comparison("version_guard", f"grad {label} after {what} was written in place "
                             f"(torch {'raised' if t.backward else 'did not raise'}): the forward's own, never the new value",
                             got, to_torch(own))


def _saved_input(ex, label: str, value: torch.Tensor) -> Iterator[Comparison]:
    yield from _compare_trials(ex, f"a non-leaf {label}", _trial(ex, torch, value), _trial(ex, nx, value))


def _saved_outputs(ex) -> Iterator[Comparison]:
    yield from _compare_trials(ex, "the output", _trial(ex, torch), _trial(ex, nx))


# ----- threads ------------------------------------------------------------------------------------
def _toggle_grad_mode(stop: threading.Event, started: threading.Event) -> None:
    """Switch grad mode in every way neuronix offers until ``stop``; mostly off, so that a mode shared
    with the other thread would be off there too."""
    nx.set_grad_enabled(False)
    started.set()
    while not stop.is_set():
        with nx.enable_grad():
            with nx.no_grad():
                pass
        nx.set_grad_enabled(True)
        nx.set_grad_enabled(False)
        time.sleep(0)  # hand the interpreter back at once: torch kernels release it, and would wait out a whole switch interval


def _join(thread: threading.Thread, what: str) -> None:
    thread.join(JOIN_TIMEOUT)
    if thread.is_alive():
        raise Mismatch("thread", f"{what}: the thread was still running after {JOIN_TIMEOUT:.0f} s")


def _recorded_forward_and_backward(ex) -> tuple[list[bool], list]:
    """A neuronix forward and backward in the calling thread: (each output recorded?, the gradients)."""
    leaves, _, outs = _forward(ex, nx)
    recorded = [isinstance(o, nx.Tensor) and o.requires_grad for o in outs]
    return recorded, grads(outs, leaves, ex.upstream, nx, False)


def _in_thread(run: Callable[[], object], what: str):
    """``run()`` in a new thread, joined; its result (its exception re-raised as a mismatch)."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = run()
        except Exception as err:  # noqa: BLE001 - reported in the calling thread
            box["error"] = f"{type(err).__name__}: {err}"

    thread = threading.Thread(target=target, name=f"conformance guards: {what}", daemon=True)
    thread.start()
    _join(thread, what)
    if "error" in box:
        raise Mismatch("thread", f"{what}: {box['error']}")
    return box["result"]


def _threads(ex) -> Iterator[Comparison]:
    _, _, t_outs = _forward(ex, torch)
    expected = torch.tensor([float(o.requires_grad) for o in t_outs])
    del t_outs
    own = [to_torch(g) for g in ex.n_grads]

    stop, started = threading.Event(), threading.Event()
    toggler = threading.Thread(target=_toggle_grad_mode, args=(stop, started), daemon=True,
                               name="conformance guards: toggles grad mode")
    toggler.start()
    try:
        started.wait(JOIN_TIMEOUT)
        here = _recorded_forward_and_backward(ex)
    finally:
        stop.set()
        _join(toggler, "the thread toggling grad mode")
    with nx.no_grad():
        there = _in_thread(lambda: _recorded_forward_and_backward(ex), "a thread recording while this one is in no_grad")
    for (recorded, got), where in ((here, "while another thread toggles grad mode"),
                                   (there, "in a thread while the main thread is in no_grad")):
        yield Comparison("thread", f"outputs recorded {where}", torch.tensor([float(r) for r in recorded]), expected)
        for (label, _), g, mine in zip(ex.slots, got, own):
            yield Comparison("thread", f"grad {label} {where}", to_torch(g), mine)
