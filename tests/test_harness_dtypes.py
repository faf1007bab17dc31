"""dtypes beyond float32/float64, and the claims: each planted fault is caught in the dtype it lives in.

Half precision (float16, bfloat16) compares values and first derivatives with torch in the same dtype
and takes finite differences with a per-dtype step; complex (complex64/128) compares values only.
Each fault is a throwaway op (removed again after the test) next to its correct twin, which must pass.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from planting import plant as _op
from planting import torch_times_three

import conformance.mirrors  # noqa: F401  (fills the registry)
import neuronix as nx
from conformance import dtype_claims, html, report
from conformance.coverage import Coverage
from conformance.kinds import op as op_kind
from conformance.mirror import COMPLEX, FLOATS, HALF, REGISTRY, OpMirror, Sample
from conformance.runner import run_case
from conformance.strategies import tensor, unary
from neuronix.ops.registry import apply


def run(mirror, dtype, examples=3):
    return run_case(mirror, dtype, "cpu", examples=examples)


def status(case) -> dict:
    return {r.check: r.status for r in case.records}


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ----- half precision: a rule right in float32/float64, wrong only in half ---------------------
def _half_scaled_mirror(factor: float) -> OpMirror:
    """``3 x`` whose rule is off by ``factor`` in half only (3 %: ~8 bfloat16 ulps, ~60 float16 ulps)."""

    def vjp(g, out, x):
        return g * (3 * (factor if g.dtype in HALF else 1.0))

    spec = _op(f"planted_half_scale_{factor}", lambda x: x * 3, vjp, saves=())
    return OpMirror("planted.half_scale", lambda x: apply(spec, x), lambda x: x * 3, unary())


def test_rule_scaled_only_in_half_is_caught_in_float16_and_bfloat16():
    bad = _half_scaled_mirror(1.03)
    for dtype in FLOATS:  # the fault does not exist there (float32/float64 run further checks, judged elsewhere)
        checks = status(run(bad, dtype, examples=2))
        assert checks["backward"] == checks["double_backward"] == "pass", (dtype, checks)
    for dtype in HALF:
        checks = status(run(bad, dtype))
        assert checks["forward"] == "pass" and checks["backward"] == "fail", (dtype, checks)


def test_exact_rule_passes_in_half():
    good = _half_scaled_mirror(1.0)
    for dtype in HALF:
        case = run(good, dtype)
        assert not case.failed, case.failure_message()
        assert {"forward", "backward", "finite_difference"} <= set(status(case))
        assert "double_backward" not in status(case)  # second derivatives: float32/float64 only


N_BROADCAST = 1024


def _broadcast_mirror(accumulate_in_half: bool) -> OpMirror:
    """``x.repeat(N)`` of a one-element ``x``: its rule sums the upstream gradient over N elements.

    The fault accumulates that sum one addition at a time in the input dtype, as a rule that forgot
    to accumulate in float32 would; torch accumulates half sums in float32 and rounds once."""

    def vjp(g, out, x):
        if accumulate_in_half and g.dtype in HALF:
            total = torch.zeros((), dtype=g.dtype)
            for value in g.data.reshape(-1):
                total = total + value  # rounds to half after every addition
            return nx.Tensor(total.reshape(1))
        return g.sum(0, keepdim=True)

    spec = _op(f"planted_repeat_{accumulate_in_half}", lambda x: x.repeat(N_BROADCAST), vjp, saves=())

    def sample(draw, dtype, device):
        return Sample((tensor(draw, (1,), dtype, device),))

    return OpMirror("planted.repeat", lambda x: apply(spec, x), lambda x: x.repeat(N_BROADCAST), sample,
                    gradgrad=False)


def test_gradient_accumulated_in_half_is_caught_in_float16_and_bfloat16():
    good, bad = _broadcast_mirror(False), _broadcast_mirror(True)
    for dtype in HALF:
        assert not run(good, dtype, examples=2).failed, dtype
        case = run(bad, dtype, examples=2)
        assert status(case)["backward"] == "fail", (dtype, case.failure_message())
    assert status(run(bad, torch.float32, examples=2))["backward"] == "pass"  # the fault lives in half only


# ----- finite differences: a step per dtype, and a second oracle in half too ---------------------
def _shared_fault_mirror(slope: float) -> OpMirror:
    spec = _op(f"planted_shared_{slope}", lambda x: x * 3, lambda g, out, x: g * slope, saves=())
    # torch's twin with the same wrong derivative as neuronix's (6): only finite differences see it
    twin = torch_times_three(6) if slope != 3 else (lambda x: x * 3)
    return OpMirror("planted.shared", lambda x: apply(spec, x), twin, unary(), gradgrad=False)


def test_finite_differences_in_half_catch_a_fault_shared_with_torch():
    bad, good = _shared_fault_mirror(6.0), _shared_fault_mirror(3.0)
    for dtype in (torch.float64, *HALF):
        checks = status(run(bad, dtype))
        assert checks["backward"] == "pass" and checks["finite_difference"] == "fail", (dtype, checks)
        assert status(run(good, dtype))["finite_difference"] == "pass", dtype


def test_finite_differences_use_the_step_of_the_case_dtype(monkeypatch):
    steps = []
    real = op_kind._finite_differences

    def spy(*args):
        steps.append(args[-1])
        yield from real(*args)

    monkeypatch.setattr(op_kind, "_finite_differences", spy)
    mirror = _shared_fault_mirror(3.0)
    for dtype in (torch.float64, torch.float16, torch.bfloat16, torch.float32):
        steps.clear()
        run(mirror, dtype, examples=2)
        expected = {op_kind.FD_STEP[dtype]} if dtype in op_kind.FD_STEP else set()
        assert set(steps) == expected, dtype
    assert torch.float32 not in op_kind.FD_STEP  # float32 is compared with torch only (see FD_STEP)
    assert op_kind.FD_STEP[torch.float64] < op_kind.FD_STEP[torch.float16] < op_kind.FD_STEP[torch.bfloat16]


def test_names_whose_kinks_a_half_step_crosses_skip_half_finite_differences_only():
    assert not dtype_claims.half_finite_differences("frac") and dtype_claims.half_finite_differences("exp")
    assert "finite_difference" not in status(run(REGISTRY["frac"], torch.float16, examples=2))
    assert "finite_difference" in status(run(REGISTRY["exp"], torch.float16, examples=2))


# ----- complex: values only -------------------------------------------------------------------
def _complex_mirror(conjugated: bool) -> OpMirror:
    def forward(x):
        return (x * 2).conj_physical() if conjugated else x * 2

    spec = _op(f"planted_conj_{conjugated}", forward, lambda g, out, x: g * 2, saves=())
    return OpMirror("planted.conj", lambda x: apply(spec, x), lambda x: x * 2, unary())


def test_complex_forward_compare_catches_a_conjugated_result():
    for dtype in COMPLEX:
        good = run(_complex_mirror(False), dtype)
        assert not good.failed, good.failure_message()
        assert set(status(good)) == {"forward", "leak"}  # complex: values only, nothing differentiated
        bad = run(_complex_mirror(True), dtype)
        assert status(bad)["forward"] == "fail", dtype


def test_complex_samples_have_an_independent_imaginary_part():
    case = run(REGISTRY["exp"], torch.complex64, examples=1)
    assert not case.failed, case.failure_message()
    x = torch.tensor(0.0)

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=1, database=None)
    @given(st.data())
    def draw(data):
        nonlocal x
        x = tensor(data.draw, (50,), torch.complex128, "cpu")

    draw()
    assert x.is_complex() and not torch.equal(x.real, x.imag) and x.imag.abs().min() >= 0 and x.imag.std() > 0.1


def test_requires_grad_on_a_complex_tensor_raises_as_documented():
    z = torch.tensor([1 + 2j, 3 - 1j])
    torch_leaf = z.clone().requires_grad_()  # torch differentiates complex tensors (Wirtinger calculus) ...
    assert torch_leaf.requires_grad
    with pytest.raises(RuntimeError, match="complex tensors cannot require gradients"):  # ... neuronix refuses
        nx.Tensor(z, requires_grad=True)
    with pytest.raises(RuntimeError, match="complex tensors cannot require gradients"):
        nx.Tensor(z).requires_grad_()
    real = nx.Tensor(torch.tensor([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="complex"):  # a complex result of an op without complex rules
        nx.tan(nx.mul(real, nx.Tensor(z)))
    assert torch.equal(nx.mul(nx.Tensor(torch.tensor([1.0, 2.0])), nx.Tensor(z)).data, torch.tensor([1.0, 2.0]) * z)


# ----- the claims -----------------------------------------------------------------------------
def test_op_and_module_mirrors_claim_half_unless_they_opt_out_with_a_reason():
    for table in (dtype_claims.NO_HALF, dtype_claims.NO_HALF_FD):
        for key, reason in table.items():
            assert reason.strip(), key
            only = key.partition("|")[2]
            assert any(dtype_claims._reason({key: reason}, n, only) for n in REGISTRY), f"stale entry {key}"
    for name, m in REGISTRY.items():  # (a mirror may also declare its dtypes itself: func.* declare FLOATS)
        for dtype in HALF:
            if dtype_claims._reason(dtype_claims.NO_HALF, name, _name(dtype)) is not None:
                assert dtype not in m.dtypes, (name, dtype)
        if m.kind in ("optimizer", "scheduler"):
            assert not set(HALF) & set(m.dtypes), name
    assert set(HALF) <= set(REGISTRY["exp"].dtypes) and set(HALF) <= set(REGISTRY["nn.Linear"].dtypes)
    # an opt-out may name one half dtype: torch's float16 grouped convolution crashes, its bfloat16 one works
    assert torch.bfloat16 in REGISTRY["nn.functional.conv2d[groups]"].dtypes
    assert torch.float16 not in REGISTRY["nn.functional.conv2d[groups]"].dtypes


def test_complex_claims_name_registered_op_mirrors():
    assert dtype_claims.COMPLEX_NAMES <= set(REGISTRY)
    for name, m in REGISTRY.items():
        assert (set(COMPLEX) <= set(m.dtypes)) == (name in dtype_claims.COMPLEX_NAMES), name
    assert {"exp", "matmul", "reshape", "add", "sum"} <= dtype_claims.COMPLEX_NAMES


def test_the_report_matrix_shows_claimed_dtypes_a_run_did_not_cover():
    records = run_case(REGISTRY["exp"], "float32", "cpu", examples=1).records
    opts = {"dtypes": ["float32"], "devices": ["cpu"], "profile": "ci", "examples": 1}
    data = report.build(records, opts, filtered=True, coverage=Coverage(["exp"], ["exp"], [], {}, []))
    assert data["claims"]["exp"]["dtypes"] == ["float32", "float64", "float16", "bfloat16", "complex64", "complex128"]
    columns, rows = html.matrix(data)
    assert columns == [f"{d}/cpu" for d in ("float32", "float64", "float16", "bfloat16", "complex64", "complex128")]
    cells = rows[0]["cells"]
    assert cells["float32/cpu"]["status"] == "pass"
    assert {c: cells[c]["status"] for c in columns[1:]} == {c: "not run" for c in columns[1:]}
    page = html.render(data)
    assert 'class="cell notrun"' in page and "not run" in page


def test_list_prints_each_mirrors_claimed_dtypes():
    from conformance.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    assert "float32,float64,float16,bfloat16,complex64,complex128" in lines["exp"]
    assert "float32,float64,float16,bfloat16 " in lines["nn.functional.relu"]
    assert _name(torch.float16) not in lines["optim.SGD"]


# ----- found by the float16 run -----------------------------------------------------------------
def test_eval_batch_norm_weight_gradient_in_float16_sums_in_float32_as_torch():
    """The weight's gradient sums g * xhat over the batch; here the terms cancel to 1/20 of their size, so
    half-precision products (as neuronix's rule had them) were 2 % off where torch's kernel is exact to an ulp."""
    h = torch.float16
    x = torch.tensor([-1.755859375, -1.1015625, -1.0634765625, -1.2919921875], dtype=h).reshape(4, 1)
    w, b = torch.tensor([-0.091552734375], dtype=h), torch.zeros(1, dtype=h)
    rm, rv = torch.tensor([1.669921875], dtype=h), torch.tensor([0.261474609375], dtype=h)
    g = torch.tensor([1.541015625, -0.29345703125, -2.1796875, 0.568359375], dtype=h).reshape(4, 1)
    t_w = w.clone().requires_grad_()
    torch.nn.functional.batch_norm(x, rm, rv, t_w, b, training=False).backward(g)
    n_w = nx.Tensor(w.clone(), requires_grad=True)
    nx.nn.functional.batch_norm(nx.Tensor(x), nx.Tensor(rm), nx.Tensor(rv), n_w, nx.Tensor(b), training=False).backward(
        nx.Tensor(g))
    assert n_w.grad.dtype == h and torch.equal(n_w.grad.data, t_w.grad)


@pytest.mark.parametrize("call", [
    lambda F, a, b: F.mse_loss(a, b), lambda F, a, b: F.smooth_l1_loss(a, b), lambda F, a, b: F.huber_loss(a, b),
    lambda F, a, b: F.kl_div(a, b, reduction="batchmean"), lambda F, a, b: F.kl_div(a, b, reduction="sum", log_target=True),
    lambda F, a, b: F.dropout(a, 0.5),
])
def test_what_torch_refuses_for_complex_inputs_raises_in_neuronix_too(call):
    """Found by trying every op mirror on complex inputs: these returned a complex value where torch raises
    (the losses: a value that is no distance; dropout: torch has no complex mask kernel)."""
    a, b = torch.randn(3, dtype=torch.complex64), torch.randn(3, dtype=torch.complex64)
    with pytest.raises((NotImplementedError, RuntimeError)):
        call(torch.nn.functional, a, b)
    with pytest.raises((NotImplementedError, RuntimeError), match="complex"):
        call(nx.nn.functional, nx.Tensor(a), nx.Tensor(b))


def test_complex_losses_torch_computes_still_compute():
    a, b = torch.randn(3, dtype=torch.complex64), torch.randn(3, dtype=torch.complex64)
    for name, kwargs in (("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0})):  # beta = 0 is l1_loss in torch
        expected = getattr(torch.nn.functional, name)(a, b, **kwargs)
        assert torch.equal(getattr(nx.nn.functional, name)(nx.Tensor(a), nx.Tensor(b), **kwargs).data, expected)
