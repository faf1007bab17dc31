"""Mixed torch / Neuronix programs from issue 13's interop section (``neuronix/interop.py``): data
pipelines, torchvision utilities, ``default_collate``, ``p.data``, metrics, ``format``, numpy and
DLPack, each as a torch user writes it. ``tests/test_interop.py`` covers the dispatch itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

import neuronix as nx


# ----- format, numpy, DLPack ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["", ".3f", ">10.2e", "+.1%"])
def test_format_of_a_0d_tensor_is_torchs(spec):
    value = torch.tensor(3.14159)
    assert format(nx.Tensor(value), spec) == format(value, spec)
    assert f"{nx.Tensor(value, requires_grad=True):{spec}}" == format(value, spec)  # a loss printed while training


def test_format_of_a_1d_tensor_refuses_a_spec_as_torch():
    assert format(nx.tensor([1.0, 2.0])) == str(nx.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="unsupported format string"):
        format(nx.tensor([1.0, 2.0]), ".3f")


def test_numpy_asarray_shares_memory_and_refuses_a_tensor_that_requires_grad():
    x = nx.tensor([1.0, 2.0])
    arr = np.asarray(x)
    arr[0] = 7.0  # torch's __array__ is numpy(): the same memory
    assert float(x.data[0]) == 7.0
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        np.asarray(nx.tensor([1.0], requires_grad=True))


def test_dlpack_exports_the_data_and_refuses_a_tensor_that_requires_grad():
    x = nx.tensor([1.0, 2.0, 3.0])
    t = torch.from_dlpack(x)
    assert isinstance(t, torch.Tensor) and t.data_ptr() == x.data.data_ptr()
    assert x.__dlpack_device__() == x.data.__dlpack_device__()
    np.testing.assert_array_equal(np.from_dlpack(x), [1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="Can't export tensors that require gradient.*Neuronix"):
        torch.from_dlpack(nx.tensor([1.0], requires_grad=True))


# ----- data pipelines ---------------------------------------------------------------------------------------
class Pairs(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": nx.Tensor(torch.full((2, 3), float(i))), "label": i}


def test_default_collate_stacks_nx_samples_into_an_nx_batch():
    batch = default_collate([Pairs()[0], Pairs()[3]])
    assert isinstance(batch["x"], nx.Tensor) and batch["x"].shape == (2, 2, 3)
    torch.testing.assert_close(batch["x"].data, torch.stack([torch.zeros(2, 3), torch.full((2, 3), 3.0)]))
    assert torch.equal(batch["label"], torch.tensor([0, 3]))  # plain numbers: torch's batch, as torch


def test_default_collate_of_samples_that_require_grad_is_recorded():
    a, b = nx.tensor([1.0, 2.0], requires_grad=True), nx.tensor([3.0, 4.0], requires_grad=True)
    batch = default_collate([a, b])
    assert batch.requires_grad
    (batch * nx.tensor([[1.0, 1.0], [2.0, 2.0]])).sum().backward()
    torch.testing.assert_close(b.grad.data, torch.full((2,), 2.0))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_dataloader_over_nx_samples_gives_nx_batches(workers):
    batches = list(DataLoader(Pairs(), batch_size=2, num_workers=workers))
    assert [tuple(b["x"].shape) for b in batches] == [(2, 2, 3), (2, 2, 3), (1, 2, 3)]
    assert all(isinstance(b["x"], nx.Tensor) for b in batches)
    torch.testing.assert_close(batches[2]["x"].data, torch.full((1, 2, 3), 4.0))


# ----- training loops: p.data, metrics ----------------------------------------------------------------------
def test_parameter_data_edits_as_torch_code_writes_them():
    p = nx.nn.Parameter(torch.ones(3)) if hasattr(nx.nn, "Parameter") else nx.Tensor(torch.ones(3), requires_grad=True)
    ema = nx.Tensor(torch.zeros(3))
    (p * nx.tensor([1.0, 2.0, 3.0])).sum().backward()
    p.data.add_(p.grad.data, alpha=-0.1)  # an SGD step written against .data
    ema.data.mul_(0.9).add_(p.data, alpha=0.1)  # an exponential moving average of the weights
    p.data = p.data.clamp(max=0.85)  # .data reassigned
    torch.testing.assert_close(p.data, torch.tensor([0.85, 0.8, 0.7]))
    torch.testing.assert_close(ema.data, 0.1 * torch.tensor([0.9, 0.8, 0.7]))
    (p * 2).sum().backward()  # the graph reads the new data
    torch.testing.assert_close(p.grad.data, torch.tensor([3.0, 4.0, 5.0]))


@pytest.mark.parametrize("no_grad", [torch.no_grad, nx.no_grad])
def test_metric_code_calls_torch_functions_on_tracked_tensors_under_no_grad(no_grad):
    logits = nx.Tensor(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]]), requires_grad=True)
    target = torch.tensor([0, 1, 1])
    with no_grad():
        accuracy = (torch.argmax(logits, dim=1) == target).float().mean()
        confidence = torch.softmax(logits, dim=1).amax(dim=1).mean()
        error = torch.nn.functional.cross_entropy(logits, target)
    assert float(accuracy) == pytest.approx(2 / 3)
    assert not confidence.requires_grad and not error.requires_grad
    torch.testing.assert_close(error.data, torch.nn.functional.cross_entropy(logits.data, target))
    with pytest.raises(RuntimeError, match=r"torch\.special\.expit: .*Neuronix|torch\.special\.expit: .*gradient"):
        torch.special.expit(logits)  # with grad on, a call Neuronix cannot record is refused, never detached


def test_torch_is_tensor_accepts_nx_tensors_only_in_addition():
    assert torch.is_tensor(nx.tensor([1.0])) and torch.is_tensor(torch.ones(1))
    assert not torch.is_tensor([1.0]) and not torch.is_tensor(np.ones(1))


# ----- torchvision (CI installs it) --------------------------------------------------------------------------
def test_torchvision_save_image_of_an_nx_batch(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    images = torch.rand(4, 3, 5, 6)
    for label, batch in (("rgb", images), ("gray", images[:, :1])):
        nx_path, torch_path = tmp_path / f"nx_{label}.png", tmp_path / f"torch_{label}.png"
        torchvision.utils.save_image(nx.Tensor(batch), nx_path, nrow=2, normalize=True)
        torchvision.utils.save_image(batch, torch_path, nrow=2, normalize=True)
        assert nx_path.read_bytes() == torch_path.read_bytes()
    grid = torchvision.utils.make_grid(nx.Tensor(images), nrow=2)
    assert isinstance(grid, nx.Tensor)
    torch.testing.assert_close(grid.data, torchvision.utils.make_grid(images, nrow=2))


def test_mixed_torch_cat_and_view_as_with_gradients():
    a = nx.Tensor(torch.rand(2, 3), requires_grad=True)
    b = nx.Tensor(torch.rand(1, 3))
    joined = torch.cat([a, b, torch.zeros(1, 3)])
    shaped = torch.arange(12.0).view_as(joined)
    assert isinstance(joined, nx.Tensor) and isinstance(shaped, nx.Tensor) and shaped.shape == (4, 3)
    (joined * shaped).sum().backward()
    torch.testing.assert_close(a.grad.data, torch.arange(6.0).view(2, 3))


# ----- a torch user's own autograd.Function on neuronix tensors -----------------------------------------------
class StraightThroughRound(torch.autograd.Function):
    """Rounds, and passes the gradient through unchanged: its backward is not its forward's derivative (zero)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class TorchSquare(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])  # for torch's jvp; Neuronix's forward mode comes from backward

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * torch.mul(grad, x)


def test_a_torch_autograd_function_on_nx_tensors_records_its_own_backward():
    x = nx.Tensor(torch.tensor([0.4, 1.6, -2.2], dtype=torch.float64), requires_grad=True)
    y = StraightThroughRound.apply(x)
    assert isinstance(y, nx.Tensor) and repr(y.grad_fn) == "<StraightThroughRoundBackward>"
    y.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.ones(3, dtype=torch.float64))  # round's own derivative is zero
    assert nx.autograd.gradcheck(TorchSquare.apply, (x,)) and nx.autograd.gradgradcheck(TorchSquare.apply, (x,))
    t = torch.tensor([0.4], requires_grad=True)
    assert StraightThroughRound.apply(t).grad_fn is not None  # torch tensors: torch's own machinery, as before


def test_a_utility_that_demands_torch_tensor_runs_on_raw_data_whatever_the_import_order(tmp_path, monkeypatch):
    """Planted: a module imported after neuronix whose function refuses anything but a torch.Tensor (as torchvision's
    make_grid does); the import hook adapts it: raw data when nothing requires grad, an error naming it otherwise."""
    import sys

    from neuronix import interop

    package = tmp_path / "plantedvision"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "utils.py").write_text(
        "import torch\n"
        "def make_grid(t, scale=2.0):\n"
        "    if not isinstance(t, torch.Tensor):\n"
        "        raise TypeError('tensor should be of type torch.Tensor')\n"
        "    return t * scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(interop.RAW_DATA_UTILITIES, "plantedvision.utils", ("make_grid",))
    monkeypatch.delitem(sys.modules, "plantedvision.utils", raising=False)
    import plantedvision.utils as utils

    out = utils.make_grid(nx.Tensor(torch.ones(2)))
    assert isinstance(out, nx.Tensor) and out.tolist() == [2.0, 2.0]
    plain = utils.make_grid(torch.ones(2))
    assert type(plain) is torch.Tensor  # a plain torch call is untouched
    with pytest.raises(RuntimeError, match=r"plantedvision\.utils\.make_grid: .*requires grad.*gradient would be lost"):
        utils.make_grid(nx.ones(2, requires_grad=True))
    sys.modules.pop("plantedvision.utils", None)
    sys.modules.pop("plantedvision", None)


def test_torchvision_save_image_of_a_tensor_requiring_grad_names_the_lost_gradient(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    x = nx.rand(2, 3, 4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"torchvision\.utils\.save_image: .*gradient would be lost"):
        torchvision.utils.save_image(x, tmp_path / "x.png")
    torchvision.utils.save_image(x.detach(), tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 0
