"""The in-place and thread guards (``conformance/kinds/guards.py``) catch what they are for.

Each fault is planted: an op whose rule reads an input or output the node never saved (so no
version check can see it change), and a grad mode shared by the whole process instead of one
per thread (``process_global_grad_mode``, also used by ``test_harness_replant.py``). The exact
twins pass, and a guarded case leaves no thread behind.
"""

from __future__ import annotations

import threading

import pytest
import torch
from planting import plant as _op

import neuronix as nx
from conformance.mirror import OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor
from neuronix.autograd import mode
from neuronix.ops import registry
from neuronix.ops.registry import apply


def run(mirror, dtype="float64", examples=2):
    return run_case(mirror, dtype, "cpu", examples=examples)


def records(case, check):
    return [r for r in case.records if r.check == check]


GUARDS = ("version_guard", "thread")


def guards_pass(case) -> bool:
    """The guards ran and passed (other checks are other tests' business)."""
    mine = [r for r in case.records if r.check in GUARDS]
    return bool(mine) and all(r.status == "pass" for r in mine)


def _sample(draw, dtype, device):
    return Sample((tensor(draw, (3, 2), dtype, device),))


# ----- a saved input read without a version check -----------------------------------------------
def _sin_mirror(checked: bool) -> OpMirror:
    """``sin``; the unchecked twin's rule reads ``x`` through a box the node does not save (torch saves it)."""
    spec = _op(f"planted_sin_{checked}", lambda x, box: torch.sin(x), lambda g, out, x, box: g * box[0].cos(),
               saves=(0,) if checked else ())

    def call(x):
        return apply(spec, x, box=[x])

    return OpMirror("planted.sin", call, torch.sin, _sample, gradgrad=False)


def test_an_input_changed_in_place_after_use_must_raise_as_torch():
    for dtype in ("float32", "float64"):
        case = run(_sin_mirror(checked=False), dtype)
        guard = records(case, "version_guard")[0]
        assert guard.status == "fail" and guard.case_id == f"planted.sin|{dtype}|cpu"
        assert "non-leaf arg 0" in guard.message and "torch raised" in guard.message
        assert guards_pass(run(_sin_mirror(checked=True), dtype))


# ----- a saved output read without a version check ----------------------------------------------
def _exp_mirror(checked: bool) -> OpMirror:
    """``exp``, whose rule reads its output; the unchecked twin keeps the output in a box instead of ``saves_out``."""
    if checked:
        spec = _op("planted_exp_checked", torch.exp, lambda g, out, x: g * out, saves=(), saves_out=True)
        return OpMirror("planted.exp", lambda x: apply(spec, x), torch.exp, _sample, gradgrad=False)
    spec = _op("planted_exp_unchecked", lambda x, box: torch.exp(x), lambda g, out, x, box: g * box[0], saves=())

    def call(x):
        box = []
        out = apply(spec, x, box=box)
        box.append(out.data)
        return out

    return OpMirror("planted.exp", call, torch.exp, _sample, gradgrad=False)


def test_an_output_changed_in_place_after_use_must_raise_as_torch():
    case = run(_exp_mirror(checked=False))
    guard = records(case, "version_guard")[0]
    assert guard.status == "fail" and "after the output was written in place" in guard.message
    assert guards_pass(run(_exp_mirror(checked=True)))


# ----- an in-place write torch refuses --------------------------------------------------------------
def _view_mirror(refused: bool) -> OpMirror:
    """``x.t()`` returns a view of the leaf ``x``: torch refuses to write it in place (a view of a leaf that
    requires grad). The faulty twin returns a detached alias instead, which neuronix lets the caller write."""

    def call(x):
        out = x.t()
        return out if refused else nx.Tensor(out.data)

    return OpMirror("planted.view", call, torch.t, _sample, gradgrad=False, grad=False)


def test_a_view_of_a_leaf_written_in_place_must_be_refused_as_torch():
    mirror = _view_mirror(refused=False)
    mirror.grad = True  # the outputs are compared; the alias does not require grad, so the backward check fails too
    case = run(mirror)
    guard = records(case, "version_guard")
    assert any(r.status == "fail" and "refused as torch's" in r.message for r in guard)
    assert guards_pass(run(dataclass_replace(_view_mirror(refused=True), grad=True)))


def dataclass_replace(mirror, **changes):
    import dataclasses

    return dataclasses.replace(mirror, **changes)


# ----- grad mode shared by every thread -----------------------------------------------------------
class _ProcessGlobal:
    """A ``ContextVar``'s interface over one variable for the whole process: the grad mode of issue 10."""

    def __init__(self, value) -> None:
        self.value = value

    def get(self):
        return self.value

    def set(self, value):
        token, self.value = self.value, value
        return token

    def reset(self, token) -> None:
        self.value = token


def process_global_grad_mode(monkeypatch) -> None:
    """Plant a process-global grad mode into ``neuronix.autograd.mode`` (and the names bound to it elsewhere)."""
    var = _ProcessGlobal(True)
    monkeypatch.setattr(mode, "_enabled", var)
    monkeypatch.setattr(mode, "state", var.get)
    monkeypatch.setattr(mode, "set_state", var.set)
    monkeypatch.setattr(mode, "reset_state", var.reset)
    monkeypatch.setattr(registry, "grad_state", var.get)


def _exp_case():
    return OpMirror("planted.threads", nx.exp, torch.exp, _sample)


def test_the_planted_mode_really_is_process_global(monkeypatch):
    process_global_grad_mode(monkeypatch)
    seen = []
    with nx.no_grad():
        thread = threading.Thread(target=lambda: seen.append((nx.ones(2, requires_grad=True) * 2).requires_grad))
        thread.start()
        thread.join(10)
    assert seen == [False]  # a thread started under another's no_grad records nothing


def test_a_process_global_grad_mode_is_caught_by_the_thread_check(monkeypatch):
    process_global_grad_mode(monkeypatch)
    case = run(_exp_case())
    thread = records(case, "thread")[0]
    assert thread.status == "fail" and thread.case_id == "planted.threads|float64|cpu"
    assert "main thread is in no_grad" in thread.message or "toggles grad mode" in thread.message


def test_the_thread_check_passes_on_the_exact_code_and_leaves_no_thread():
    before = set(threading.enumerate())
    for dtype in ("float32", "float64"):
        case = run(_exp_case(), dtype)
        assert guards_pass(case) and records(case, "thread"), case.failure_message()
    assert set(threading.enumerate()) <= before


# ----- what the in-place guard found: programs torch runs, which neuronix refused -------------------
FOUND = {
    "copy_ source": lambda lib, x: (x * 1).copy_(_changed_later(x * 2)),
    "x[i] = value": lambda lib, x: _setitem(x * 1, _changed_later(x * 2)),
    "x ** 2, output": lambda lib, x: _changed_later(x ** 2),
    "3 / x, divisor": lambda lib, x: 3 / _changed_later(x * 1),
    "lerp with a number weight": lambda lib, x: lib.lerp(_changed_later(x * 1), x * 2, 0.25),
    "adaptive_avg_pool2d to 1": lambda lib, x: lib.nn.functional.adaptive_avg_pool2d(_changed_later(x * 1), 1),
    "circular pad": lambda lib, x: lib.nn.functional.pad(_changed_later(x * 1), (1, 1, 1, 1), mode="circular"),
    "one-operand einsum": lambda lib, x: lib.einsum("abij->j", _changed_later(x * 1)),
    "matrix @ batch (folded by a copy)": lambda lib, x: (x[0, 0, :, :3] * 1) @ _changed_later(x[0] * 1),
}
_LATER: list = []


def _changed_later(t):
    _LATER.append(t)
    return t


def _setitem(t, value):
    t[0, 0, 0] = value[0, 0, 0]
    return t


@pytest.mark.parametrize("name", sorted(FOUND))
def test_a_tensor_changed_after_an_op_that_keeps_none_of_it_is_no_error(name):
    """Each program changes, after the forward, a tensor torch's backward does not keep: it runs in torch."""
    grads = []
    for lib in (torch, nx):
        x = (torch.rand(1, 2, 3, 4, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
        x = x if lib is torch else nx.Tensor(x.detach(), requires_grad=True)
        _LATER.clear()
        y = FOUND[name](lib, x)
        for t in _LATER:
            t.add_(0.5)
        y.sum().backward()
        grads.append(x.grad.data if lib is nx else x.grad)
    torch.testing.assert_close(grads[1], grads[0])


def test_group_norm_of_a_channels_last_input_without_grad_does_not_crash():
    """Found running the harness: torch 2.13's CPU group-norm backward kernel segfaults when asked for the
    weight gradient alone on a channels-last input (torch's own backward does, for such an input that does
    not require grad); neuronix asks its fused kernel for the input's gradient too."""
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, generator=torch.Generator().manual_seed(1))
    weight = nx.Tensor(w.clone(), requires_grad=True)
    nx.nn.functional.group_norm(nx.Tensor(x), 2, weight).sum().backward()
    expected = torch.nn.functional.group_norm(x.contiguous(), 2, w.requires_grad_())  # torch, contiguous: no crash
    torch.testing.assert_close(weight.grad.data, torch.autograd.grad(expected.sum(), [w])[0])
