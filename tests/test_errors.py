"""Bad inputs get clear errors: the op, the shapes/dtypes/devices involved and what would be valid."""

from __future__ import annotations

import pytest
import torch

import neuronix as nx


def test_mismatched_broadcast_names_op_shapes_and_rule():
    a, b = nx.ones(2, 3, requires_grad=True), nx.ones(4)
    with pytest.raises(RuntimeError) as err:
        a + b
    message = str(err.value)
    assert "neuronix.add(" in message
    assert "shape=(2, 3)" in message and "shape=(4,)" in message and "dtype=torch.float32" in message
    assert "broadcastable" in message and "equal or one of them 1" in message


def test_mismatched_broadcast_in_other_binary_ops():
    for op, name in ((lambda a, b: a * b, "mul"), (lambda a, b: a - b, "sub"), (lambda a, b: nx.maximum(a, b), "maximum")):
        with pytest.raises(RuntimeError, match=rf"neuronix\.{name}\(.*shape=\(3,\).*shape=\(2, 2\).*broadcastable"):
            op(nx.ones(3), nx.ones(2, 2))


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        nx.ones(2, 3) @ nx.ones(4, 5)


def test_backward_of_non_scalar_without_gradient():
    y = nx.ones(2, 3, requires_grad=True) * 2.0
    with pytest.raises(
        RuntimeError, match=r"backward: grad can be implicitly created only for scalar outputs" r".*shape \(2, 3\).*gradient="
    ):
        y.backward()


def test_backward_gradient_of_wrong_shape():
    y = nx.ones(2, 3, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"gradient for output 0 has shape \(3,\) but the output has shape \(2, 3\)"):
        y.backward(nx.ones(3))


def test_backward_through_freed_graph():
    x = nx.ones(2, requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*'exp'.*retain_graph=True"):
        y.backward()


def test_grad_with_respect_to_tensor_that_does_not_require_grad():
    x = nx.ones(2, requires_grad=True)
    c = nx.ones(2)
    with pytest.raises(
        RuntimeError, match=r"grad: input 1 \(shape \(2,\), dtype torch." r"float32, device cpu\) does not require grad"
    ):
        nx.autograd.grad((x * c).sum(), [x, c])


def test_backward_of_tensor_that_does_not_require_grad():
    with pytest.raises(
        RuntimeError, match=r"backward: element 0 of tensors does not require grad" r".*shape \(\).*requires_grad=True"
    ):
        nx.ones(3).sum().backward()


def test_grad_of_unused_input_says_how_to_allow_it():
    x, w = nx.ones(2, requires_grad=True), nx.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(2,\).*not have been used.*allow_unused=True"):
        nx.autograd.grad((x * 2.0).sum(), [x, w])


def test_integer_tensors_asked_to_require_grad():
    with pytest.raises(
        RuntimeError, match=r"nx\.tensor: only floating point tensors" r".*torch\.int64.*\(shape \(2,\)\).*\.float\(\)"
    ):
        nx.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"nx\.arange: only floating point.*torch\.int64"):
        nx.arange(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires_grad_: only floating point.*torch\.int32"):
        nx.zeros(2, dtype=torch.int32).requires_grad_()
    with pytest.raises(RuntimeError, match=r"nx\.Tensor: only floating point.*torch\.bool"):
        nx.Tensor(torch.tensor([True]), requires_grad=True)


def _device_pair():
    """Two devices that cannot be mixed: cuda and cpu when there is a GPU, else 'meta' and cpu."""
    other = "cuda" if torch.cuda.is_available() else "meta"
    try:
        torch.ones(2, device=other) + torch.ones(2)
    except RuntimeError:
        return other
    pytest.skip(f"torch on this machine mixes {other} and cpu tensors without error")


def test_device_mismatch_names_op_devices_and_fix():
    other = _device_pair()
    a = nx.ones(2, device=other, requires_grad=True)
    b = nx.ones(2)
    with pytest.raises(RuntimeError) as err:
        a * b
    message = str(err.value)
    assert "neuronix.mul(" in message
    assert f"device={other}" in message and "device=cpu" in message
    assert ".to(device)" in message


def test_backward_gradient_on_another_device():
    other = _device_pair()
    y = nx.ones(2, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=rf"gradient for output 0 is on device {other}.* on cpu"):
        y.backward(nx.ones(2, device=other))


def test_dtype_mismatch_in_matmul_names_dtypes():
    with pytest.raises(RuntimeError, match=r"torch.float32.*torch.float64|torch.float64.*torch.float32"):
        nx.ones(2, 2) @ nx.ones(2, 2, dtype=torch.float64)


def test_in_place_modification_of_saved_tensor_names_op_and_versions():
    x = nx.ones(3, requires_grad=True)
    h = x * 2.0
    y = (h * x).sum()
    with nx.no_grad():
        h.add_(1.0)
    with pytest.raises(
        RuntimeError, match=r"inplace operation: input 0 of 'mul' \(shape \(3,\)" r".*version 1; expected version 0"
    ):
        y.backward()


def test_in_place_on_leaf_requiring_grad_under_grad_mode():
    x = nx.ones(3, requires_grad=True)
    with pytest.raises(
        RuntimeError, match=r"add_: a leaf Variable that requires grad is being used in an in-place operation"
        r" \(shape \(3,\).*no_grad"
    ):
        x.add_(1.0)


def test_backward_and_grad_pair_up_outputs_and_gradients():
    x = nx.ones(2, requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="got 2 gradients for 1 tensors"):
        nx.autograd.backward([y], [nx.ones(2), nx.ones(2)])
    with pytest.raises(RuntimeError, match="got 2 grad_outputs for 1 outputs"):
        nx.autograd.grad([y], [x], grad_outputs=[nx.ones(2), nx.ones(2)])


# ----- issue 10, item 18: errors with context -------------------------------------------------------------
def _unavailable_device() -> str:
    """A device torch cannot use here: 'cuda' on a CPU-only build, else a GPU index past the last one."""
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


FACTORY_CALLS = [
    ("zeros", lambda lib, dev: lib.zeros(2, 3, device=dev)),
    ("tensor", lambda lib, dev: lib.tensor([1.0, 2.0], device=dev)),
    ("randn", lambda lib, dev: lib.randn(4, device=dev)),
    ("full", lambda lib, dev: lib.full((2,), 1.5, device=dev)),
    ("arange", lambda lib, dev: lib.arange(5, device=dev)),
    ("eye", lambda lib, dev: lib.eye(3, device=dev)),
]


@pytest.mark.parametrize(("name", "call"), FACTORY_CALLS, ids=[n for n, _ in FACTORY_CALLS])
def test_factory_on_an_unavailable_device_says_what_it_means_and_what_is_valid(name, call):
    device = _unavailable_device()
    with pytest.raises(Exception) as expected:  # noqa: B017 - the oracle: whatever torch raises
        call(torch, device)
    with pytest.raises(type(expected.value)) as err:
        call(nx, device)
    message = str(err.value)
    assert f"neuronix.{name}(" in message and f"device='{device}'" in message
    assert str(expected.value).splitlines()[0] in message  # torch's reason, kept
    assert "valid devices here: 'cpu'" in message


def test_moving_to_an_unavailable_device_names_the_op_and_the_valid_devices():
    device = _unavailable_device()
    x = nx.ones(2, 3)
    with pytest.raises(Exception) as expected:  # noqa: B017 - the oracle
        torch.ones(2, 3).to(device)
    moves = [lambda: x.to(device), lambda: x.to(device=device, dtype=torch.float64)]
    if not torch.cuda.is_available():
        moves.append(x.cuda)
    for move in moves:
        with pytest.raises(type(expected.value)) as err:
            move()
        message = str(err.value)
        assert "neuronix.to_copy(Tensor(shape=(2, 3), dtype=torch.float32, device=cpu)" in message
        assert "valid devices here: 'cpu'" in message


@pytest.mark.parametrize("err", [RuntimeError("CUDA error: invalid device ordinal"),
                                 RuntimeError("No CUDA GPUs are available"),
                                 AssertionError("Torch not compiled with CUDA enabled")])
def test_an_op_failing_on_an_unusable_device_says_what_is_valid(err):
    # what a CUDA machine raises for a GPU index past the last one, simulated in an op's forward
    from neuronix.ops.registry import OpSpec, apply

    def forward(x):
        raise err

    with pytest.raises(type(err), match=r"neuronix\.moved\(Tensor\(shape=\(2,\).*valid devices here: 'cpu'"):
        apply(OpSpec("moved", forward, (None,), (), False, False, None), nx.zeros(2))


def test_torchs_backend_dispatch_table_is_cut_to_its_reason():
    from neuronix.factories import device_error

    err = device_error("neuronix.zeros(2, device='mps')", NotImplementedError(
        "Could not run 'aten::empty.memory_format' with arguments from the 'MPS' backend. This could be because "
        "...\n\nCPU: registered at ...\nMeta: registered at ..."))
    assert isinstance(err, NotImplementedError)
    assert "registered at" not in str(err) and "'MPS' backend." in str(err) and "valid devices here" in str(err)


def _dim_call(name: str, fn, lib, x, bad: int):
    """Call ``fn`` (an nx or torch function) with one dim-like argument out of range, the others valid."""
    index = lib.zeros((1, 3), dtype=torch.int64) if lib is torch else nx.zeros((1, 3), dtype=torch.int64)
    special = {
        "cat": lambda: fn([x, x], bad), "concat": lambda: fn([x, x], bad), "concatenate": lambda: fn([x, x], bad),
        "stack": lambda: fn([x, x], bad), "split": lambda: fn(x, 1, bad), "chunk": lambda: fn(x, 2, bad),
        "narrow": lambda: fn(x, bad, 0, 1), "select": lambda: fn(x, bad, 0), "roll": lambda: fn(x, 1, bad),
        "unflatten": lambda: fn(x, bad, (3, 1)), "movedim": lambda: fn(x, bad, 0), "moveaxis": lambda: fn(x, bad, 0),
        "transpose": lambda: fn(x, bad, 0), "swapaxes": lambda: fn(x, bad, 0), "swapdims": lambda: fn(x, 0, bad),
        "diagonal": lambda: fn(x, 0, bad, 0), "flatten": lambda: fn(x, bad), "gather": lambda: fn(x, bad, index),
        "index_select": lambda: fn(x, bad, index[0]), "flip": lambda: fn(x, (bad,)), "permute": lambda: fn(x, (bad, 0)),
        "unbind": lambda: fn(x, bad), "squeeze": lambda: fn(x, bad), "unsqueeze": lambda: fn(x, bad),
        "cumsum": lambda: fn(x, bad), "cumprod": lambda: fn(x, bad), "softmax": lambda: fn(x, bad),
        "log_softmax": lambda: fn(x, bad), "logsumexp": lambda: fn(x, bad), "norm": lambda: fn(x, 2, bad),
        "index_add": lambda: fn(x, bad, index[0, :2], x), "scatter": lambda: fn(x, bad, index, x),
        "scatter_add": lambda: fn(x, bad, index, x),
        **dict.fromkeys(("aminmax", "gradient", "trapezoid", "trapz", "cumulative_trapezoid", "unique",
                         "unique_consecutive"), lambda: fn(x, dim=bad)),
        "diff": lambda: fn(x, 1, bad),
        # the issue-13 names whose dim is not the second positional argument (torch's signatures)
        **dict.fromkeys(("cosine_similarity", "cross"), lambda: fn(x, x, bad)),
        **dict.fromkeys(("diag_embed", "diagonal_copy"), lambda: fn(x, 0, bad, 0)),
        "diagonal_scatter": lambda: fn(x, x.diagonal(), 0, bad, 1),
        "narrow_copy": lambda: fn(x, bad, 0, 1), "select_copy": lambda: fn(x, bad, 0),
        "select_scatter": lambda: fn(x, x[0], bad, 0), "slice_scatter": lambda: fn(x, x, bad),
        "index_copy": lambda: fn(x, bad, index[0, :2], x), "index_fill": lambda: fn(x, bad, index[0, :2], 1.0),
        "index_reduce": lambda: fn(x, bad, index[0, :2], x, "prod"), "scatter_reduce": lambda: fn(x, bad, index, x, "sum"),
        "nuclear_norm": lambda: fn(x, (bad, 0)), "permute_copy": lambda: fn(x, (bad, 0)),
        "transpose_copy": lambda: fn(x, bad, 0), "rot90": lambda: fn(x, 1, (bad, 0)),
        "repeat_interleave": lambda: fn(x, 2, bad), "take_along_dim": lambda: fn(x, index, bad),
        "tensordot": lambda: fn(x, x, ([bad], [0])),
        **dict.fromkeys(("split_copy", "unsafe_split"), lambda: fn(x, 1, bad)),
        **dict.fromkeys(("tensor_split", "unsafe_chunk"), lambda: fn(x, 2, bad)),
        **dict.fromkeys(("split_with_sizes", "split_with_sizes_copy", "unsafe_split_with_sizes"),
                        lambda: fn(x, [1, 1], bad)),
    }
    return special.get(name, lambda: fn(x, bad))()


# Functions implemented by another op name their primitive (concat -> cat); either name is fine.
_PRIMITIVE = {"concat": "cat", "concatenate": "cat", "swapaxes": "transpose", "swapdims": "transpose",
              "moveaxis": "movedim", "max": "max_dim", "min": "min_dim"}
_DIM_PARAMS = {"dim", "dims", "dim0", "dim1", "start_dim", "source", "axis", "axis0"}


def _dim_taking_functions():
    import inspect

    from neuronix.ops.registry import FUNCTIONS

    for name, fn in sorted(FUNCTIONS.items()):
        params = set(inspect.signature(fn).parameters)
        if "destination" not in params:  # 'source' is a dim only beside 'destination' (movedim); else it is the
            params.discard("source")  # tensor of values (index_copy, masked_scatter, put)
        if _DIM_PARAMS & params and hasattr(torch, name) and name != "tile":  # tile's dims are counts
            yield name, fn


@pytest.mark.parametrize(("name", "fn"), list(_dim_taking_functions()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("bad", [7, -8])
def test_every_dim_taking_function_names_itself_when_the_dim_is_out_of_range(name, fn, bad):
    x_torch = torch.randn(2, 3)
    with pytest.raises((IndexError, RuntimeError)) as expected:  # the oracle rejects it too
        _dim_call(name, getattr(torch, name), torch, x_torch, bad)
    with pytest.raises(type(expected.value)) as err:
        _dim_call(name, fn, nx, nx.Tensor(x_torch), bad)
    message = str(err.value)
    assert f"neuronix.{name}" in message or f"neuronix.{_PRIMITIVE.get(name, name)}" in message, message
    assert "shape=(2, 3)" in message or "(2, 3)" in message


REDUCTION_CALLS = [lambda m, x: x.sum(3), lambda m, x: x.mean((0, 0)), lambda m, x: x.amax(-3),
                   lambda m, x: x.max(2), lambda m, x: x.var(5), lambda m, x: x.norm(dim=4),
                   lambda m, x: m.tensor(1.0).sum(1), lambda m, x: x.cumsum(2), lambda m, x: x.prod(2),
                   lambda m, x: m.logsumexp(x, (1, -1))]


@pytest.mark.parametrize("call", REDUCTION_CALLS)
def test_reduction_dim_errors_are_torchs_with_the_op(call):
    x = torch.randn(2, 3)
    with pytest.raises((IndexError, RuntimeError)) as expected:
        call(torch, x)
    with pytest.raises(type(expected.value), match=r"neuronix\.\w+\(Tensor\(shape=") as err:
        call(nx, nx.Tensor(x))
    assert str(expected.value) in str(err.value)
