"""torch's housekeeping namespaces in Neuronix: ``nx.cuda``, ``nx.backends``, ``nx.accelerator``,
``nx.set_default_device``/``set_default_dtype``, ``nx.inference_mode``, ``nx.compile``/``nx.compiler`` and
``nx.utils.data`` — each torch's own object where torch is the truth, and behaving as torch's."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
import torch.utils.data as torch_data

import neuronix as nx
import neuronix.amp
import neuronix.compiler
from neuronix.utils import data as nx_data

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _outcome(fn, *args):
    try:
        return "returned", fn(*args)
    except Exception as err:  # noqa: BLE001 - the type and message are what is compared
        return type(err).__name__, str(err)


# ----- nx.cuda -------------------------------------------------------------------------------------
CUDA_NAMES = ["is_available", "device_count", "current_device", "set_device", "get_device_name", "manual_seed",
              "manual_seed_all", "seed", "synchronize", "empty_cache", "memory_allocated", "max_memory_allocated",
              "memory_reserved", "reset_peak_memory_stats", "get_rng_state", "set_rng_state", "is_bf16_supported"]


def test_cuda_functions_are_torchs():
    for name in CUDA_NAMES:
        assert getattr(nx.cuda, name) is getattr(torch.cuda, name), name
    assert set(nx.cuda.__all__) <= set(dir(nx.cuda))


@pytest.mark.parametrize("name", ["is_available", "device_count", "memory_allocated", "max_memory_allocated",
                                  "memory_reserved", "is_bf16_supported", "current_device", "synchronize"])
def test_cuda_queries_answer_as_torch_here(name):
    assert _outcome(getattr(nx.cuda, name)) == _outcome(getattr(torch.cuda, name))


def test_cuda_manual_seed_is_silent_without_a_gpu_and_programs_guarding_on_it_run():
    nx.cuda.manual_seed(0)
    nx.cuda.manual_seed_all(0)
    device = "cuda" if nx.cuda.is_available() else "cpu"
    assert nx.zeros(2, device=device).device.type == device


@needs_cuda
def test_cuda_seed_drives_neuronix_cuda_draws():
    nx.cuda.manual_seed(3)
    a = nx.randn(4, device="cuda")
    torch.cuda.manual_seed(3)
    assert torch.equal(a.data, torch.randn(4, device="cuda"))
    nx.cuda.synchronize()
    assert nx.cuda.memory_allocated() > 0


@pytest.mark.filterwarnings("ignore:`torch.cuda.amp")
def test_cuda_amp_resolves_to_neuronix_amp_for_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(neuronix.amp, "autocast", lambda *a, **k: calls.append((a, k)) or "ctx", raising=False)
    monkeypatch.setattr(neuronix.amp, "GradScaler", lambda *a, **k: calls.append((a, k)) or "scaler", raising=False)
    assert nx.cuda.amp.autocast() == "ctx"
    assert calls[-1] == (("cuda",), {"enabled": True, "dtype": torch.float16, "cache_enabled": True})
    nx.cuda.amp.autocast(dtype=torch.bfloat16, enabled=False)
    assert calls[-1][1]["dtype"] is torch.bfloat16 and calls[-1][1]["enabled"] is False
    assert nx.cuda.amp.GradScaler(init_scale=8.0) == "scaler"
    assert calls[-1] == (("cuda",), {"init_scale": 8.0})


def test_cuda_amp_warns_as_torch():
    with pytest.warns(FutureWarning, match=r"torch.cuda.amp.autocast\(args...\)` is deprecated"):
        with nx.cuda.amp.autocast(enabled=False):
            pass
    with pytest.warns(FutureWarning, match=r"torch.cuda.amp.GradScaler\(args...\)` is deprecated"):
        nx.cuda.amp.GradScaler(enabled=False)


# ----- nx.backends, nx.accelerator ------------------------------------------------------------------
def test_backends_are_torchs_flags_read_and_written_through():
    assert nx.backends.cudnn is torch.backends.cudnn and nx.backends.mps is torch.backends.mps
    for flag in ("benchmark", "deterministic", "enabled", "allow_tf32"):
        before = getattr(torch.backends.cudnn, flag)
        try:
            setattr(nx.backends.cudnn, flag, not before)
            assert getattr(torch.backends.cudnn, flag) is (not before)
            assert getattr(nx.backends.cudnn, flag) is (not before)
        finally:
            setattr(torch.backends.cudnn, flag, before)
    assert nx.backends.cudnn.is_available() == torch.backends.cudnn.is_available()
    assert nx.backends.cudnn.version() == torch.backends.cudnn.version()
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        nx.backends.cuda.matmul.allow_tf32 = not before
        assert torch.backends.cuda.matmul.allow_tf32 is (not before)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert nx.backends.mps.is_available() == torch.backends.mps.is_available()


def test_accelerator_answers_as_torch():
    for name in ("is_available", "current_accelerator", "device_count"):
        assert getattr(nx.accelerator, name) is getattr(torch.accelerator, name)
        assert _outcome(getattr(nx.accelerator, name)) == _outcome(getattr(torch.accelerator, name))


# ----- default device and dtype ---------------------------------------------------------------------
def test_set_default_device_reaches_factories_and_modules():
    assert nx.get_default_device() == torch.get_default_device()
    try:
        nx.set_default_device("meta")
        assert nx.get_default_device().type == "meta" and torch.get_default_device().type == "meta"
        assert nx.zeros(2).device.type == "meta"
        assert nx.randn(2, 3).device.type == "meta"
        assert nx.nn.Linear(2, 3).weight.device.type == "meta"
        assert nx.zeros(2, device="cpu").device.type == "cpu"  # an explicit device still wins
    finally:
        nx.set_default_device(None)
    assert nx.zeros(2).device.type == "cpu"


def test_set_default_dtype_reaches_factories_and_modules():
    assert nx.set_default_dtype is torch.set_default_dtype
    try:
        nx.set_default_dtype(torch.float64)
        assert nx.get_default_dtype() is torch.float64
        assert nx.zeros(2).dtype is torch.float64 and nx.tensor([1.5]).dtype is torch.float64
        assert nx.nn.Linear(2, 3).weight.dtype is torch.float64
    finally:
        nx.set_default_dtype(torch.float32)


# ----- inference mode --------------------------------------------------------------------------------
def test_inference_mode_records_nothing_and_nests_as_torch():
    x = nx.ones(2, requires_grad=True)
    assert not nx.is_inference_mode_enabled()
    with nx.inference_mode():
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None
        assert nx.is_inference_mode_enabled() and not nx.is_grad_enabled()
        with nx.inference_mode(False):  # torch: recording back on, inference off
            assert nx.is_grad_enabled() and not nx.is_inference_mode_enabled()
            assert (x * 2).requires_grad
        assert nx.is_inference_mode_enabled() and not nx.is_grad_enabled()
    assert nx.is_grad_enabled() and not nx.is_inference_mode_enabled()
    # torch's inference_mode(False) turns recording on even inside no_grad
    with nx.no_grad(), nx.inference_mode(False):
        ours = nx.is_grad_enabled()
    with torch.no_grad(), torch.inference_mode(False):
        assert ours == torch.is_grad_enabled()
    y.add_(1)  # not an inference tensor: usable (and updatable in place) outside the block


def test_inference_mode_decorator_forms():
    @nx.inference_mode
    def bare():
        return nx.is_grad_enabled(), nx.is_inference_mode_enabled()

    @nx.inference_mode()
    def called():
        return nx.is_grad_enabled(), nx.is_inference_mode_enabled()

    @nx.inference_mode(mode=False)
    def off():
        return nx.is_grad_enabled(), nx.is_inference_mode_enabled()

    @nx.inference_mode()
    def gen():
        yield nx.is_grad_enabled()
        yield nx.is_inference_mode_enabled()
        return "done"

    assert bare() == called() == (False, True)
    with nx.no_grad():
        assert off() == (True, False)
    it = gen()
    assert next(it) is False and nx.is_grad_enabled()  # the caller's mode between resumptions
    assert next(it) is True and not nx.is_inference_mode_enabled()
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value == "done"


def test_inference_mode_is_per_thread():
    seen = []
    with nx.inference_mode():
        thread = threading.Thread(target=lambda: seen.append((nx.is_grad_enabled(), nx.is_inference_mode_enabled())))
        thread.start()
        thread.join()
    assert seen == [(True, False)]


# ----- compile -----------------------------------------------------------------------------------------
@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(neuronix.compiler, "_warned", False)


def test_compile_returns_the_model_itself_and_warns_once(fresh_warning):
    model = nx.nn.Linear(2, 2)

    def fn(x):
        return x * 2

    with pytest.warns(UserWarning, match="runs eagerly"):
        assert nx.compile(model) is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call stays silent
        assert nx.compile(fn, mode="max-autotune", fullgraph=True, dynamic=False, backend="eager") is fn
        assert nx.compile(model, disable=True) is model
    assert list(nx.compile(model).state_dict()) == ["weight", "bias"]  # no _orig_mod. prefix


@pytest.mark.filterwarnings("ignore:nx.compile returns the model unchanged")
def test_compile_decorator_forms_and_errors(fresh_warning):
    @nx.compile
    def double(x):
        return 2 * x

    @nx.compile(mode="reduce-overhead")
    def triple(x):
        return 3 * x

    assert double(nx.tensor(2.0)).item() == 4.0 and triple.__name__ == "triple"
    with pytest.raises(RuntimeError, match="Either mode or options can be specified"):
        nx.compile(double, mode="default", options={"trace.enabled": True})
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        nx.compile(double, nonsense=1)
    with pytest.raises(RuntimeError, match="Model can't be None"):
        nx.compile()(None)


def test_compile_takes_the_installed_torchs_keywords():
    import inspect

    torch_keywords = {n for n, p in inspect.signature(torch.compile).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert neuronix.compiler._TORCH_KEYWORDS == torch_keywords
    ours = set(inspect.signature(nx.compile).parameters) - {"kwargs", "model"}
    assert ours <= torch_keywords


def test_compiler_helpers():
    assert nx.compiler.is_compiling() is False and nx.compiler.is_dynamo_compiling() is False

    def f():
        return 1

    assert nx.compiler.disable(f) is f and nx.compiler.disable(recursive=False)(f) is f
    assert nx.compiler.allow_in_graph(f) is f
    assert nx.compiler.reset() is None


# ----- nx.utils.data ---------------------------------------------------------------------------------------
def test_utils_data_is_torchs():
    public = [n for n in torch_data.__all__ if not n.startswith("_")]
    assert sorted(nx_data.__all__) == sorted(public)
    for name in public:
        assert getattr(nx.utils.data, name) is getattr(torch_data, name), name


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_batches_neuronix_tensors(workers):
    x = nx.randn(10, 3)
    y = nx.arange(10)
    loader = nx.utils.data.DataLoader(nx.utils.data.TensorDataset(x, y), batch_size=4, num_workers=workers)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    for k, (xb, yb) in enumerate(batches):
        assert isinstance(xb, nx.Tensor) and isinstance(yb, nx.Tensor)
        assert torch.equal(xb.data, x.data[4 * k: 4 * k + 4]) and torch.equal(yb.data, y.data[4 * k: 4 * k + 4])


def test_dataset_utilities_with_neuronix_tensors():
    dataset = nx.utils.data.TensorDataset(nx.arange(10.0))
    generator = torch.Generator().manual_seed(0)
    a, b = nx.utils.data.random_split(dataset, [0.7, 0.3], generator=generator)
    assert len(a) == 7 and len(b) == 3
    joined = nx.utils.data.ConcatDataset([a, b])
    values = sorted(joined[i][0].item() for i in range(len(joined)))
    assert values == [float(v) for v in range(10)]
    batch = nx.utils.data.default_collate([nx.tensor([1.0, 2.0]), nx.tensor([3.0, 4.0])])
    assert isinstance(batch, nx.Tensor) and batch.shape == (2, 2)
    assert nx.utils.data.get_worker_info() is None
