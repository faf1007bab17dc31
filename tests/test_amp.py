"""Mixed precision: nx.autocast against torch.autocast op by op, and nx.amp.GradScaler against torch.amp.GradScaler."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch

import neuronix as nx
from neuronix.amp import policy

HALVES = (torch.bfloat16, torch.float16)


def _pair(*shapes, grad=True, seed=0):
    """The same float32 leaves in both libraries."""
    gen = torch.Generator().manual_seed(seed)
    base = [torch.randn(s, generator=gen) for s in shapes]
    return ([t.clone().requires_grad_(grad) for t in base],
            [nx.Tensor(t.clone(), requires_grad=grad) for t in base])


def _raw(t):
    return t.data if isinstance(t, nx.Tensor) else t.detach()


# Each call runs in both libraries (lib is torch or neuronix) on float32 leaves; under CPU autocast its
# result must have torch's dtype and value, and the leaves torch's gradients (in their own dtype, float32).
CALLS = {
    "linear": ((4, 5), (3, 5), (3,)), "matmul": ((4, 5), (5, 3)), "operator @": ((2, 4, 5), (5, 3)),
    "mm": ((4, 5), (5, 3)), "bmm": ((2, 4, 5), (2, 5, 3)), "addmm": ((4, 3), (4, 5), (5, 3)),
    "baddbmm": ((2, 4, 3), (2, 4, 5), (2, 5, 3)), "conv1d": ((2, 3, 7), (4, 3, 3)), "conv2d": ((2, 3, 6, 6), (4, 3, 3, 3)),
    "conv_transpose2d": ((2, 3, 5, 5), (3, 2, 3, 3)), "prelu": ((2, 3, 4), (3,)),
    "scaled_dot_product_attention": ((2, 4, 8), (2, 4, 8), (2, 4, 8)),
    "mse_loss of a lowered input": ((4, 5), (3, 5), (4, 3)), "cross_entropy of a lowered input": ((4, 5), (3, 5)),
    "l1_loss": ((4, 5), (3, 5), (4, 3)), "binary_cross_entropy_with_logits": ((4, 5), (3, 5), (4, 3)),
    "softmax (no CPU policy)": ((4, 5), (3, 5)), "exp (no CPU policy)": ((4, 5), (3, 5)),
    "layer_norm (no CPU policy)": ((4, 5), (3, 5), (3,), (3,)), "cat (promote)": ((4, 5), (3, 5), (2, 3)),
    "stack (promote, all lowered)": ((4, 5), (3, 5)), "cdist (fp32)": ((4, 5), (3, 5), (6, 3)),
    "linalg.inv (fp32)": ((4, 5), (5, 5)),
}


def _call(name, lib, xs):
    F = lib.nn.functional
    if name == "linear":
        return F.linear(*xs)
    if name == "operator @":
        return xs[0] @ xs[1]
    if name in ("matmul", "mm", "bmm", "addmm", "baddbmm"):
        return getattr(lib, name)(*xs)
    if name in ("conv1d", "conv2d", "conv_transpose2d", "prelu", "scaled_dot_product_attention"):
        return getattr(F, name)(*xs)
    low = F.linear(xs[0], xs[1])  # a lower-precision intermediate, as in a real model
    if name == "mse_loss of a lowered input":
        return F.mse_loss(low, xs[2])
    if name == "cross_entropy of a lowered input":
        return F.cross_entropy(low, torch.tensor([0, 2, 1, 1]))
    if name == "l1_loss":
        return F.l1_loss(low, xs[2])
    if name == "binary_cross_entropy_with_logits":
        return F.binary_cross_entropy_with_logits(low, xs[2].sigmoid())
    if name == "softmax (no CPU policy)":
        return F.softmax(low, dim=1)
    if name == "exp (no CPU policy)":
        return lib.exp(low)
    if name == "layer_norm (no CPU policy)":
        return F.layer_norm(low, (3,), xs[2], xs[3])
    if name == "cat (promote)":
        return lib.cat([low, xs[2]])
    if name == "stack (promote, all lowered)":
        return lib.stack([low, low * 2])
    if name == "cdist (fp32)":
        return lib.cdist(low, xs[2])
    if name == "linalg.inv (fp32)":
        return lib.linalg.inv(xs[1] + 5 * lib.eye(5)) @ xs[0].T
    raise AssertionError(name)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_cpu_autocast_op_matches_torch(name, dtype):
    shapes = CALLS[name]
    ts, ns = _pair(*shapes)
    with torch.autocast("cpu", dtype=dtype):
        expected = _call(name, torch, ts)
    with nx.autocast("cpu", dtype=dtype):
        actual = _call(name, nx, ns)
    assert actual.dtype == expected.dtype, f"{name}: {actual.dtype} under autocast, torch {expected.dtype}"
    # the half tolerances of tolerances.toml: a composed op (addmm = mm + add) rounds once more than torch's kernel
    tol = {"rtol": 1.6e-2, "atol": 3.2e-2} if dtype == torch.bfloat16 else {"rtol": 2e-3, "atol": 4e-3}
    torch.testing.assert_close(_raw(actual), _raw(expected), **tol)
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1)).to(expected.dtype)
    expected.backward(upstream)
    actual.backward(upstream)
    for t, n in zip(ts, ns):
        assert n.grad.dtype == t.grad.dtype == torch.float32
        torch.testing.assert_close(n.grad.data, t.grad, **tol)


def test_lowered_result_is_recorded_and_gradient_comes_back_in_the_inputs_dtype():
    (x, w), (nx_x, nx_w) = _pair((3, 4), (2, 4))
    with nx.autocast("cpu"):
        y = nx.nn.functional.linear(nx_x, nx_w)
    assert y.dtype == torch.bfloat16 and y.grad_fn is not None
    y.sum().backward()
    assert nx_x.grad.dtype == nx_w.grad.dtype == torch.float32


def test_float64_and_integer_inputs_are_not_cast():
    a, b = nx.randn(3, 4, dtype=torch.float64), nx.randn(4, 2, dtype=torch.float64)
    with nx.autocast("cpu"):
        assert nx.matmul(a, b).dtype == torch.float64
        i = nx.ones(2, 2, dtype=torch.int64)
        assert nx.matmul(i, i).dtype == torch.int64
    with torch.autocast("cpu"):
        assert torch.matmul(a.data, b.data).dtype == torch.float64


def test_promote_refuses_a_float16_input_under_bfloat16_autocast_as_torch():
    x16, x32 = torch.randn(2, 2, dtype=torch.float16), torch.randn(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="prioritize"):
        torch.cat([x16, x32])
    with nx.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="prioritize") as err:
        nx.cat([nx.Tensor(x16), nx.Tensor(x32)])
    assert "cat" in str(err.value) and "float16" in str(err.value)


def test_nested_regions_disabled_hole_decorator_and_state_restored():
    a, b = nx.randn(2, 3), nx.randn(3, 2)
    assert not nx.is_autocast_enabled("cpu") and nx.get_autocast_dtype("cpu") == torch.bfloat16
    with nx.autocast("cpu"):
        assert nx.is_autocast_enabled("cpu") and nx.mm(a, b).dtype == torch.bfloat16
        with nx.autocast("cpu", enabled=False):
            assert not nx.is_autocast_enabled("cpu") and nx.mm(a, b).dtype == torch.float32
        with nx.autocast("cpu", dtype=torch.float16):
            assert nx.get_autocast_dtype("cpu") == torch.float16 and nx.mm(a, b).dtype == torch.float16
        assert nx.get_autocast_dtype("cpu") == torch.bfloat16 and nx.mm(a, b).dtype == torch.bfloat16
    assert not nx.is_autocast_enabled("cpu") and nx.mm(a, b).dtype == torch.float32

    @nx.autocast("cpu", dtype=torch.float16)
    def forward(x, y):
        return x @ y

    assert forward(a, b).dtype == torch.float16 and (a @ b).dtype == torch.float32
    assert nx.amp.autocast is nx.autocast
    with pytest.raises(TypeError, match="callable"):
        nx.autocast("cpu")(3)


def test_an_exception_inside_the_region_restores_the_state():
    with pytest.raises(ValueError), nx.autocast("cpu"):
        raise ValueError("boom")
    assert not nx.is_autocast_enabled("cpu")
    assert nx.mm(nx.randn(2, 2), nx.randn(2, 2)).dtype == torch.float32


def test_autocast_state_is_thread_local():
    seen = {}

    def other():
        seen["enabled"] = nx.is_autocast_enabled("cpu")
        seen["dtype"] = nx.mm(nx.randn(2, 2), nx.randn(2, 2)).dtype

    with nx.autocast("cpu"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == {"enabled": False, "dtype": torch.float32}


def test_an_op_inside_an_autocast_op_is_not_cast_again():
    """torch excludes autocast while a listed op runs: cross_entropy (fp32) is not lowered by its own ops."""
    logits = nx.randn(4, 3, requires_grad=True)
    with nx.autocast("cpu"):
        loss = nx.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]))
    assert loss.dtype == torch.float32


def test_constructor_errors_and_warnings_as_torch():
    with pytest.raises(ValueError, match="device_type"):
        nx.autocast(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'tpu9'"):
        nx.autocast("tpu9")
    with pytest.warns(UserWarning, match="CPU Autocast only supports dtypes of torch.bfloat16, torch.float16"):
        region = nx.autocast("cpu", dtype=torch.float32)
    with region:
        assert not nx.is_autocast_enabled("cpu")
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            cuda_region = nx.autocast("cuda")
        with cuda_region:
            assert not nx.is_autocast_enabled("cuda")


def test_double_backward_under_autocast_matches_torch():
    (x, w), (nx_x, nx_w) = _pair((3, 4), (2, 4))
    results = []
    for lib, (a, b) in ((torch, (x, w)), (nx, (nx_x, nx_w))):
        with lib.autocast("cpu", dtype=torch.float16):
            y = lib.nn.functional.linear(a, b)  # float16, through recorded casts
            loss = (y.float().tanh() ** 2).sum()
        (gx,) = lib.autograd.grad(loss, [a], create_graph=True)
        (ggw,) = lib.autograd.grad((gx ** 2).sum(), [b])
        results.append((_raw(gx), _raw(ggw)))
    for expected, actual in zip(*results):
        assert actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected, rtol=2e-3, atol=2e-3)


def test_backward_inside_the_region_gives_the_same_gradients():
    (_, _), (nx_x, nx_w) = _pair((3, 4), (2, 4))
    grads = []
    for inside in (False, True):
        nx_w.grad = None
        with nx.autocast("cpu"):
            loss = nx.nn.functional.mse_loss(nx.nn.functional.linear(nx_x, nx_w), nx.zeros(3, 2))
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
        grads.append(nx_w.grad.data.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_policy_names_are_torch_ops():
    """A misspelt name in the table would silently leave that op uncast."""
    python_level = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "norm"}
    # torch 2.14 removed cholesky and qr (neuronix's raise its removal error there); their entries serve torch 2.13
    removed = {"cholesky", "qr"}
    for device, table in policy.POLICIES.items():
        unknown = [op for op in table if op not in python_level | removed and not hasattr(torch.ops.aten, op)]
        assert not unknown, f"{device}: not torch ops: {unknown}"


def test_listed_public_functions_are_wrapped_once():
    assert nx.nn.functional.linear.__autocast_op__ == "linear"
    assert nx.nn.functional.cross_entropy.__autocast_op__ == "cross_entropy_loss"
    assert nx.Tensor.matmul is nx.matmul and nx.matmul.__autocast_op__ == "matmul"
    assert not hasattr(nx.add, "__autocast_op__")  # not on any list: untouched


# ----- GradScaler -------------------------------------------------------------------------------
def _scaled_training(lib, planted_steps, steps=6, **scaler_kwargs):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    if lib is nx:
        nx_model = nx.nn.Linear(4, 3)
        nx_model.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
        model = nx_model
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    scaler = lib.amp.GradScaler("cpu", **scaler_kwargs)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    trajectory = []
    for step in range(steps):
        opt.zero_grad()
        with lib.autocast("cpu"):
            out = model(x if lib is torch else nx.Tensor(x))
            loss = lib.nn.functional.mse_loss(out, torch.zeros(5, 3))
        scaler.scale(loss).backward()
        if step in planted_steps:
            model.weight.grad.data[0, 0] = float("nan") if step % 2 else float("inf")
        scaler.step(opt)
        scaler.update()
        trajectory.append((scaler.get_scale(), scaler._get_growth_tracker(), _raw(model.weight).clone()))
    return trajectory, scaler


def test_grad_scaler_trajectory_skips_planted_steps_as_torch():
    planted = {1, 4}
    expected, torch_scaler = _scaled_training(torch, planted, init_scale=2.0**8, growth_interval=2)
    actual, nx_scaler = _scaled_training(nx, planted, init_scale=2.0**8, growth_interval=2)
    for step, ((s, g, w), (ts, tg, tw)) in enumerate(zip(actual, expected)):
        assert (s, g) == (ts, tg), f"step {step}: scale/tracker {(s, g)}, torch {(ts, tg)}"
        torch.testing.assert_close(w, tw, rtol=1e-6, atol=1e-6)
    assert [s for s, _, _ in actual] == [256.0, 128.0, 128.0, 256.0, 128.0, 128.0]
    assert torch.equal(actual[1][2], actual[0][2])  # the planted step left the weight alone
    assert nx_scaler.state_dict() == torch_scaler.state_dict()


def test_grad_scaler_state_dict_round_trip_and_torch_keys():
    _, scaler = _scaled_training(nx, set(), steps=3, init_scale=4.0, growth_interval=2)
    state = scaler.state_dict()
    assert list(state) == list(torch.amp.GradScaler("cpu").state_dict())
    fresh = nx.amp.GradScaler("cpu")
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state and fresh.get_scale() == state["scale"]
    torch_fresh = torch.amp.GradScaler("cpu")
    torch_fresh.load_state_dict(state)  # a neuronix checkpoint resumes a torch scaler, and back
    assert torch_fresh.state_dict() == state
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        fresh.load_state_dict({})


def test_grad_scaler_misuse_raises_as_torch():
    model = nx.nn.Linear(2, 1)
    opt = nx.optim.SGD(model.parameters(), lr=0.1)
    scaler = nx.amp.GradScaler("cpu")
    with pytest.raises(AssertionError, match="did not use scaler.scale"):
        scaler.step(opt)
    scaler.scale(model(nx.ones(1, 2)).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: None)
    scaler.update()
    half = nx.nn.Parameter(nx.ones(2, dtype=torch.float16))
    half_opt = nx.optim.SGD([half], lr=0.1)
    scaler.scale(half.sum()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(half_opt)
    with pytest.raises(AssertionError, match="growth factor"):
        nx.amp.GradScaler("cpu", growth_factor=1.0)


def test_unscale_then_clip_then_step():
    model = nx.nn.Linear(3, 2)
    opt = nx.optim.SGD(model.parameters(), lr=0.1)
    scaler = nx.amp.GradScaler("cpu", init_scale=1024.0)
    loss = model(nx.ones(4, 3)).sum()
    scaler.scale(loss).backward()
    scaled = model.weight.grad.data.clone()
    scaler.unscale_(opt)
    torch.testing.assert_close(model.weight.grad.data, scaled / 1024.0)
    before = model.weight.data.clone()
    scaler.step(opt)  # no second unscale
    torch.testing.assert_close(model.weight.data, before - 0.1 * scaled / 1024.0)


def test_disabled_and_cuda_less_scalers_as_torch():
    scaler = nx.amp.GradScaler("cpu", enabled=False)
    loss = nx.ones(2, requires_grad=True).sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    assert not scaler.is_enabled()
    if not torch.cuda.is_available():
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            cuda_scaler = nx.amp.GradScaler()
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            torch.amp.GradScaler()
        assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
        assert not cuda_scaler.is_enabled()


def test_update_with_a_new_scale():
    scaler = nx.amp.GradScaler("cpu")
    scaler.scale(nx.ones(1))
    scaler.update(8.0)
    assert scaler.get_scale() == 8.0
    scaler.update(torch.tensor(2.0))
    assert scaler.get_scale() == 2.0
    with pytest.raises(AssertionError, match="new_scale"):
        scaler.update(torch.ones(2))


def test_scale_of_a_list_of_outputs():
    scaler = nx.amp.GradScaler("cpu", init_scale=4.0)
    a, b = nx.ones(2, requires_grad=True), nx.ones(3, dtype=torch.bfloat16)
    sa, sb = scaler.scale([a, b])
    assert sa.dtype == torch.float32 and sb.dtype == torch.bfloat16  # a 0-d scale keeps each output's dtype
    assert torch.equal(sa.data, torch.full((2,), 4.0)) and sa.grad_fn is not None


# ----- the conformance mirror finds what it is there for ---------------------------------------------
def test_amp_mirror_passes_and_catches_a_wrong_cast(monkeypatch):
    import conformance.mirrors  # noqa: F401
    from conformance.mirror import REGISTRY
    from conformance.runner import run_case

    mirror = REGISTRY["amp.autocast+GradScaler"]
    case = run_case(mirror, "bfloat16", "cpu", examples=1, classify=False)
    assert all(r.ok for r in case.records if hasattr(r, "ok")), case.records
    assert not any(e.status == "error" for e in case.examples), [e.error for e in case.examples]
    monkeypatch.delitem(policy.POLICIES["cpu"], "cross_entropy_loss")  # the loss would stay bfloat16: torch's is float32
    case = run_case(mirror, "bfloat16", "cpu", examples=1, classify=False)
    errors = [e.error for e in case.examples if e.status == "error"]
    assert errors and "cross_entropy @ step 0: dtype torch.bfloat16 under autocast, torch's torch.float32" in errors[0]


# ----- custom autograd Functions under autocast ---------------------------------------------------
def _custom_function(lib, cast_inputs):
    amp = lib.amp

    class MatmulTanh(lib.autograd.Function):
        @staticmethod
        @amp.custom_fwd(device_type="cpu", cast_inputs=cast_inputs)
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            ctx.inside = lib.is_autocast_enabled("cpu")
            return (x @ w).tanh()

        @staticmethod
        @amp.custom_bwd(device_type="cpu")
        def backward(ctx, grad):
            x, w = ctx.saved_tensors
            ctx.backward_inside = lib.is_autocast_enabled("cpu")
            out = (x @ w).tanh()
            g = grad * (1 - out * out)
            return g @ w.T, x.T @ g

    return MatmulTanh


@pytest.mark.parametrize("cast_inputs", [None, torch.float32], ids=["no cast", "cast to float32"])
def test_custom_fwd_and_custom_bwd_as_torch(cast_inputs):
    (x, w), (nx_x, nx_w) = _pair((3, 4), (4, 2))
    results = []
    for lib, (a, b) in ((torch, (x, w)), (nx, (nx_x, nx_w))):
        fn = _custom_function(lib, cast_inputs)
        with lib.autocast("cpu", dtype=torch.bfloat16):
            y = fn.apply(a.to(torch.bfloat16), b)
        y.float().sum().backward()
        results.append((_raw(y), a.grad.clone() if lib is torch else a.grad.data.clone(), _raw(b.grad)))
    for expected, actual in zip(*results):
        assert actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected, rtol=1.6e-2, atol=3.2e-2)
    with pytest.raises(ValueError, match="device_type"):
        nx.amp.custom_fwd(device_type=torch.device("cpu"))


# ----- the CUDA table, run on CPU tensors (no GPU here): the machinery for each CUDA policy --------------
@pytest.fixture
def cuda_autocast_on_cpu_tensors(monkeypatch):
    """CUDA's lists applied to CPU tensors: the device the casting code sees is 'cuda' (torch's CUDA autocast itself
    needs a GPU, so the expectations are its documented policies: tests on a GPU compare with torch directly)."""
    from neuronix.amp import casting

    monkeypatch.setattr(casting, "_device_type", lambda args, kwargs: "cuda")
    monkeypatch.setattr(casting, "_eligible", lambda t, device: t.dtype.is_floating_point and t.dtype != torch.float64)
    nx.amp.set_autocast_enabled("cuda", True)
    nx.amp.set_autocast_dtype("cuda", torch.float16)
    yield
    nx.amp.set_autocast_enabled("cuda", False)


def test_cuda_policies(cuda_autocast_on_cpu_tensors):
    F = nx.nn.functional
    x32 = nx.randn(3, 4, requires_grad=True)
    x16 = nx.randn(3, 4).half()
    assert nx.mm(x32, x32.T).dtype == torch.float16  # lower
    assert nx.exp(x16).dtype == torch.float32 and (x16 ** 2).dtype == torch.float32  # fp32 (CUDA only)
    assert F.layer_norm(x16, (4,)).dtype == torch.float32
    assert F.softmax(x16, dim=1).dtype == torch.float32  # fp32_set_opt_dtype: dtype=float32 added
    assert F.softmax(x16, dim=1, dtype=torch.float16).dtype == torch.float16  # ... unless the caller gave one
    assert nx.sum(x16).dtype == torch.float32 and x16.cumsum(0).dtype == torch.float32
    assert nx.addcmul(x32, x16, x16).dtype == torch.float32 and nx.addcmul(x16, x16, x16).dtype == torch.float16
    with pytest.raises(RuntimeError, match="unsafe to autocast.*binary_cross_entropy_with_logits"):
        F.binary_cross_entropy(x32.sigmoid(), torch.rand(3, 4))
    F.cross_entropy(nx.mm(x32, x32.T), torch.tensor([0, 1, 2])).backward()  # recorded casts: the gradient flows
    assert x32.grad.dtype == torch.float32 and x32.grad.abs().sum().item() > 0


def test_torch_autocast_region_is_adopted_with_recorded_casts():
    """A program that kept ``torch.autocast`` gets the casts Neuronix records (torch's own would happen unrecorded
    inside Neuronix's kernels: a bfloat16 result over float32 saved inputs, and a backward that mixes dtypes)."""
    (x, w, b), (nx_x, nx_w, nx_b) = _pair((2, 4), (3, 4), (3,))
    grads = []
    for region in (nx.autocast, torch.autocast):
        nx_w.grad = None
        with region("cpu"):
            y = nx.nn.functional.linear(nx_x, nx_w, nx_b)
            loss = nx.nn.functional.mse_loss(y, nx.zeros(2, 3))
        assert y.dtype == torch.bfloat16 and loss.dtype == torch.float32
        loss.backward()
        grads.append(nx_w.grad.data.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_is_cast_by_its_mode_as_torch(mode):
    """F.pad is torch's reflection/replication_padNd (on the CPU float32 list) or constant_pad_nd (on none)."""
    (x, w), (nx_x, nx_w) = _pair((2, 3, 4), (4, 4))
    outs = []
    for lib, (a, b) in ((torch, (x, w)), (nx, (nx_x, nx_w))):
        with lib.autocast("cpu"):
            outs.append(lib.nn.functional.pad(lib.matmul(a, b), (1, 2), mode=mode))
    assert outs[1].dtype == outs[0].dtype
    torch.testing.assert_close(outs[1].data, outs[0].detach(), rtol=0, atol=0)


def test_two_optimizers_skip_separately_and_back_off_together():
    """torch: an inf in one optimizer's gradients skips that optimizer's step only; update() backs off once."""
    results = []
    for lib in (torch, nx):
        torch.manual_seed(0)
        a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
        if lib is nx:
            na, nb = nx.nn.Linear(3, 2), nx.nn.Linear(2, 1)
            na.load_state_dict(a.state_dict())
            nb.load_state_dict(b.state_dict())
            a, b = na, nb
        opts = [lib.optim.SGD(a.parameters(), lr=0.1), lib.optim.Adam(b.parameters(), lr=0.1)]
        scaler = lib.amp.GradScaler("cpu", init_scale=64.0, growth_interval=1)
        x = torch.ones(4, 3)
        trace = []
        for step in range(3):
            for o in opts:
                o.zero_grad()
            loss = b(a(x if lib is torch else nx.Tensor(x))).sum()
            scaler.scale(loss).backward()
            if step == 1:
                b.bias.grad.data[0] = float("inf")
            for o in opts:
                scaler.step(o)
            scaler.update()
            trace.append((scaler.get_scale(), _raw(a.weight).clone(), _raw(b.weight).clone()))
        results.append(trace)
    for (s, aw, bw), (ts, taw, tbw) in zip(results[1], results[0]):
        assert s == ts
        torch.testing.assert_close(aw, taw)
        torch.testing.assert_close(bw, tbw)
    assert [s for s, _, _ in results[1]] == [128.0, 64.0, 128.0]
    assert not torch.equal(results[1][1][1], results[1][0][1])  # the first optimizer stepped at the inf step
    assert torch.equal(results[1][1][2], results[1][0][2])  # the second did not


# ----- a real program: the char GPT example under CPU autocast --------------------------------------------
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_char_gpt_example_under_cpu_autocast_follows_torch(dtype):
    """examples/char_gpt.py autocasts on CUDA only; with its CPU guard removed (in both programs) it trains under
    CPU autocast, float16 with a GradScaler("cpu"), unscale_ and gradient clipping: the dtypes of the attention
    and MLP outputs are torch's at every call, and the losses follow torch's (measured 1e-5 relative on torch
    2.13 and 2.14; the losses alone would not show a missing cast: without any they still agree to 2e-5)."""
    import test_examples as examples

    path = examples.EXAMPLES / "char_gpt.py"
    guard = 'ctx = nullcontext() if device_type == "cpu" else '
    source = path.read_text()
    assert guard in source
    source = source.replace(guard, "ctx = ")
    argv = [*examples.SHORT_RUNS["char_gpt.py"], "--dtype", dtype]
    seen = {"torch": [], "neuronix": []}

    def recording(library):
        def patch(program):
            for cls in (program.CausalSelfAttention, program.MLP):
                def forward(self, x, _forward=cls.forward):
                    out = _forward(self, x)
                    seen[library].append(out.dtype)
                    return out
                cls.forward = forward
        return patch

    expected = examples.run_main("_torch_amp_gpt", examples.torch_twin(source), "<torch twin>", argv, recording("torch"))
    actual = examples.run_main("_neuronix_amp_gpt", source, str(path), argv, recording("neuronix"))
    assert seen["neuronix"] == seen["torch"] and getattr(torch, dtype) in seen["torch"]
    examples.assert_losses_agree(f"char_gpt.py ({dtype} CPU autocast)", actual, expected, 1e-3)
