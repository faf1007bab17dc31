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
