"""The ``nx.Tensor`` API from SPEC: wrapping, metadata, conversions, autograd attributes, factories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuronix as nx


def test_wraps_without_copying_and_data_never_requires_grad():
    t = torch.arange(6.0).reshape(2, 3)
    x = nx.Tensor(t, requires_grad=True)
    assert x.data is t
    assert not x.data.requires_grad
    x.data[0, 0] = 100.0
    assert t[0, 0] == 100.0
    y = x * 2.0
    assert y.requires_grad and not y.data.requires_grad


def test_wrapping_a_torch_tensor_that_requires_grad_detaches_it():
    t = torch.ones(2, requires_grad=True)
    x = nx.Tensor(t)
    assert not x.data.requires_grad and not x.requires_grad
    assert x.data.data_ptr() == t.data_ptr()


def test_wrapping_something_else_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"nx.Tensor wraps a torch.Tensor, got list.*nx.tensor"):
        nx.Tensor([1.0, 2.0])


def test_custom_tensor_is_the_same_class():
    assert nx.CustomTensor is nx.Tensor
    assert isinstance(nx.CustomTensor(torch.zeros(1)), nx.Tensor)


def test_leaf_and_grad_fn():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    c = nx.tensor([1.0, 2.0])
    y = x * 2.0
    assert x.is_leaf and x.grad_fn is None
    assert c.is_leaf and not c.requires_grad
    assert not y.is_leaf and y.grad_fn is not None and y.grad_fn.name() == "mul"
    assert (c * 2.0).is_leaf  # no input requires grad: no node
    assert x.grad is None


def test_metadata_mirrors_torch():
    t = torch.randn(2, 3, 4, dtype=torch.float64)
    x = nx.Tensor(t)
    assert x.shape == t.shape == torch.Size([2, 3, 4])
    assert x.dtype is torch.float64 and nx.float64 is torch.float64
    assert x.device == torch.device("cpu")
    assert x.ndim == 3 and x.dim() == 3
    assert x.numel() == 24 and x.size() == t.size() and x.size(1) == 3
    assert len(x) == 2


def test_python_value_conversions():
    x = nx.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert nx.tensor(2.5).item() == 2.5
    assert float(nx.tensor(2.5)) == 2.5 and int(nx.tensor(3)) == 3
    arr = x.numpy()
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 2)
    arr[0, 0] = 9.0  # numpy() shares memory, as torch
    assert x.data[0, 0] == 9.0
    assert np.asarray(x).shape == (2, 2)


def test_numpy_of_tensor_that_requires_grad_raises_as_torch():
    x = nx.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad.*detach\(\)\.numpy\(\)"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0]


def test_detach_shares_storage_and_version_counter():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert d.data.data_ptr() == x.data.data_ptr()
    d.data.add_(1.0)
    assert x.data.tolist() == [2.0, 3.0]
    assert x.data._version == d.data._version == 1


def test_dtype_and_device_conversions_are_differentiable():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    assert x.float() is x and x.to(torch.float32) is x and x.cpu() is x  # nothing to change: self, as torch
    y = x.double()
    assert y.dtype == torch.float64 and y.grad_fn is not None
    z = x.to("cpu", torch.float64)
    assert z.dtype == torch.float64 and x.to(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64
    (y * y).sum().backward()
    assert x.grad.dtype == torch.float32  # the gradient comes back in the input's dtype
    assert x.grad.tolist() == [2.0, 4.0]
    assert nx.tensor([1, 2]).float().dtype == torch.float32


def test_requires_grad_():
    x = nx.tensor([1.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = nx.tensor([1.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf"):
        y.requires_grad_(False)


def test_zero_and_inplace_rules():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"zero_: a leaf Variable that requires grad.*in-place operation \(shape \(2,\)"):
        x.zero_()
    with nx.no_grad():
        assert x.zero_() is x
    assert x.data.tolist() == [0.0, 0.0]
    x.grad = nx.tensor([3.0, 4.0])
    x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0]


def test_grad_is_an_nx_tensor_outside_the_graph():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad, nx.Tensor) and not x.grad.requires_grad and x.grad.grad_fn is None


def test_repr_shows_autograd_state():
    x = nx.tensor([1.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<mulBackward>" in repr(x * 2.0)


def test_tensors_hash_by_identity_and_compare_elementwise():
    a, b = nx.tensor([1.0]), nx.tensor([1.0])
    assert len({a, b}) == 2
    assert isinstance(a == b, nx.Tensor) and (a == b).dtype == torch.bool


@pytest.mark.parametrize(
    "make, shape, dtype",
    [
        (lambda: nx.zeros(2, 3), (2, 3), torch.float32),
        (lambda: nx.ones((2,), dtype=torch.float64), (2,), torch.float64),
        (lambda: nx.full((2, 2), 7.0), (2, 2), torch.float32),
        (lambda: nx.empty(4), (4,), torch.float32),
        (lambda: nx.arange(5), (5,), torch.int64),
        (lambda: nx.linspace(0, 1, 3), (3,), torch.float32),
        (lambda: nx.eye(3), (3, 3), torch.float32),
        (lambda: nx.rand(2), (2,), torch.float32),
        (lambda: nx.randn(2, 2), (2, 2), torch.float32),
        (lambda: nx.randint(0, 5, (3,)), (3,), torch.int64),
        (lambda: nx.zeros_like(nx.ones(2, dtype=torch.float64)), (2,), torch.float64),
        (lambda: nx.ones_like(torch.zeros(3)), (3,), torch.float32),
        (lambda: nx.randn_like(nx.ones(2)), (2,), torch.float32),
        (lambda: nx.full_like(nx.ones(2), 3.0), (2,), torch.float32),
    ],
)
def test_factories(make, shape, dtype):
    t = make()
    assert isinstance(t, nx.Tensor) and tuple(t.shape) == shape and t.dtype == dtype and not t.requires_grad


def test_factories_take_requires_grad_and_follow_torch_rng():
    x = nx.zeros(2, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    torch.manual_seed(0)
    a = nx.randn(3)
    torch.manual_seed(0)
    assert torch.equal(a.data, torch.randn(3))
    assert nx.tensor([[1, 2]]).tolist() == [[1, 2]]


def test_type_names_and_casts_as_torch():
    x = nx.tensor([1.5, 2.0], requires_grad=True)
    assert x.type() == torch.tensor([1.5]).type() == "torch.FloatTensor"
    y = x.type(torch.float64)
    assert y.dtype == torch.float64 and x.type("torch.DoubleTensor").dtype == torch.float64
    assert x.type(torch.float32) is x  # nothing to change: the tensor itself, as torch
    y.sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.tolist() == [1.0, 1.0]
    assert x.detach().type(torch.int64).tolist() == [1, 2]
    with pytest.raises(ValueError, match="invalid type"):
        x.type("torch.Nope")
