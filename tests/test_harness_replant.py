"""Each defect class of issue 10, planted again into the real code, fails the conformance gate naming the case.

The faults are monkeypatched into neuronix (never written to a file) and the affected mirrors
run through the real pipeline: ``runner.run_case`` -> ``report.build`` -> ``gate.problems``.
Every test also runs the same cases without the fault, where the gate must pass. The classes:

* a stale fused gradient (a norm's fused kernel keeps its result per node) -> the graph-reuse check;
* NaN through a mask (``where``'s rules, behind every ``masked``/``select``, as ``g * mask``) and a
  kink convention (``abs``'s gradient at 0) -> the special-values check (``kinds/special.py``);
* an unchecked index version (the engine skips the version check of index/mask saves) -> the
  index guard (``kinds/op.py``);
* in-place semantics (``+=`` rebinding, an in-place write behind the version counter, a leaf's
  view written in place) -> the in-place guard, and grad mode shared by every thread -> the thread
  guard (``kinds/guards.py``).
"""

from __future__ import annotations

import pytest
import torch
from test_harness_guards import process_global_grad_mode

import neuronix as nx
import neuronix.autograd.engine as engine
import neuronix.ops.inplace as inplace
from conformance import gate, report
from conformance.coverage import Coverage
from conformance.mirror import REGISTRY
from conformance.runner import case_id, run_case
from neuronix.ops import registry

OPTS = {"dtypes": ["float64"], "devices": ["cpu"], "profile": "ci", "examples": None}


def gate_problems(names, dtype="float64") -> list[tuple[str, list[str]]]:
    """The gate's verdict on the CI-profile cases of the mirrors ``names`` (a filtered run, full coverage)."""
    import conformance.mirrors  # noqa: F401  (registers every mirror)

    records = []
    for name in names:
        records += run_case(REGISTRY[name], dtype, "cpu").records
    data = report.build(records, {**OPTS, "dtypes": [dtype]}, filtered=True, coverage=Coverage([], [], [], {}, []))
    return gate.problems(data)


def assert_caught(names, check: str, dtype="float64") -> None:
    """The gate fails, and a failing line names each case and the check that caught it."""
    found = gate_problems(names, dtype)
    lines = [line for section, lines in found if section == "failed checks" for line in lines]
    for name in names:
        cid = case_id(name, dtype, "cpu")
        assert any(line.startswith(f"{cid} [{check}]") for line in lines), (cid, check, found)


def assert_clean(names, dtype="float64") -> None:
    found = gate_problems(names, dtype)
    assert found == [], found


# ----- 1. a stale fused gradient ------------------------------------------------------------------
def _stale(kernel):
    """``kernel`` keeping its first result per node (keyed by the node's saved input) for every later pass."""
    kept: dict = {}

    def fused(g, out, x, *rest, **kw):
        entry = kept.get(id(x))
        if entry is None or entry[0] is not x:
            entry = kept[id(x)] = (x, kernel(g, out, x, *rest, **kw))
        return entry[1]

    return fused


NORMS = ["nn.functional.layer_norm"]


def test_a_stale_fused_gradient_fails_the_gate(monkeypatch):
    assert_clean(NORMS)
    spec = registry.OPS["layer_norm"]
    monkeypatch.setattr(spec, "fused", _stale(spec.fused))
    assert_caught(NORMS, "backward")


# ----- 2. NaN through a mask ----------------------------------------------------------------------
def _multiplied_by_the_mask(monkeypatch) -> None:
    """Every masked gradient as ``g * mask`` (issue 10): ``where``'s rules, and ``masked``, the select behind
    the rules of clamp, maximum/minimum, hardtanh, max(dim), ... An infinite upstream gradient then gives
    NaN where the mask is 0, where torch gives 0."""
    import neuronix.ops.activation as activation
    import neuronix.ops.elementwise as elementwise

    def multiplied(g, mask, anchor=None):
        return g * mask

    for module in (elementwise, activation):
        monkeypatch.setattr(module, "masked", multiplied)
    spec = registry.OPS["where"]
    taken = lambda g, out, c, x, y, anchor: g * c  # noqa: E731
    other = lambda g, out, c, x, y, anchor: g * c.logical_not()  # noqa: E731
    monkeypatch.setattr(spec, "vjps", (spec.vjps[0], taken, other, *spec.vjps[3:]))


# (clamp with both bounds meets a masked element under an inf/NaN upstream gradient in only some CI-profile draws)
MASKED = ["where", "maximum", "clamp_min"]


def test_nan_through_a_mask_fails_the_gate(monkeypatch):
    assert_clean(MASKED)
    _multiplied_by_the_mask(monkeypatch)
    assert_caught(MASKED, "special_values")


# ----- 3. a kink convention ----------------------------------------------------------------------
def _abs_slope_one_at_zero(g, out, x):
    """d|x|/dx taken as 1 at x = 0 (torch: 0, the sign)."""
    return g * (x.sign() + (x == 0).to(g.dtype))


def test_a_changed_kink_convention_fails_the_gate(monkeypatch):
    assert_clean(["abs"])
    spec = registry.OPS["abs"]
    monkeypatch.setattr(spec, "vjps", (_abs_slope_one_at_zero,))
    assert_caught(["abs"], "special_values")


# ----- 4. an unchecked index version ----------------------------------------------------------------
INDEXED = ["gather", "Tensor.__getitem__[int tensor]", "index_select"]


def test_an_unchecked_index_version_fails_the_gate(monkeypatch):
    assert_clean(INDEXED)
    real = engine._check_saved

    def saved_inputs_only(node):
        """The engine's saved-tensor check without the index and mask tensors (``node.checked``)."""
        checked, node.checked = node.checked, None
        try:
            return real(node)
        finally:
            node.checked = checked

    monkeypatch.setattr(engine, "_check_saved", saved_inputs_only)
    assert_caught(INDEXED, "version_guard")


# ----- 5. in-place semantics -----------------------------------------------------------------------
SAVES_INPUT = ["sin", "mul"]


def test_an_augmented_assignment_that_rebinds_fails_the_gate(monkeypatch):
    """No ``__iadd__`` (issue 10): ``x += 1`` makes a new tensor and leaves ``x``, and what an op saved of it, alone."""
    assert_clean(SAVES_INPUT)
    monkeypatch.delattr(nx.Tensor, "__iadd__")
    assert_caught(SAVES_INPUT, "version_guard")


def test_an_in_place_write_behind_the_version_counter_fails_the_gate(monkeypatch):
    """The update lands in the storage through an alias with a counter of its own (torch's ``t.data``): a node
    that saved the tensor sees neither a new version nor a reason to raise, and reads the new values."""
    assert_clean(SAVES_INPUT)
    real = inplace._recorded

    def behind_the_counter(self, name, twin, args, kwargs):
        data = self.data
        self.data = data.data  # same storage, own version counter
        try:
            return real(self, name, twin, args, kwargs)
        finally:
            self.data = data

    monkeypatch.setattr(inplace, "_recorded", behind_the_counter)
    assert_caught(SAVES_INPUT, "version_guard")


VIEWS = ["Tensor.transpose", "Tensor.view"]


def test_a_view_of_a_leaf_written_in_place_fails_the_gate(monkeypatch):
    """torch refuses an in-place write to a leaf that requires grad or a view of one; the fault lets it through."""
    assert_clean(VIEWS)
    monkeypatch.setattr(inplace, "_check_allowed", lambda self, name: None)
    assert_caught(VIEWS, "version_guard")


# ----- 6. grad mode shared by every thread -----------------------------------------------------------
THREADED = ["exp", "matmul"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_process_global_grad_mode_fails_the_gate(monkeypatch, dtype):
    assert_clean(THREADED, dtype)
    process_global_grad_mode(monkeypatch)
    assert_caught(THREADED, "thread", dtype)
    assert torch.is_grad_enabled()  # torch's own mode was never touched
