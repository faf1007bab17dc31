"""torch calls with neuronix tensors: ``nx.Tensor.__torch_function__`` (issue 10, item 18).

Before, ``p.data.add_(p.grad)``, ``torch_t.view_as(nx_t)`` and ``torch.exp(nx_t)`` failed with
"must be Tensor, not Tensor". Now a torch call dispatches to the neuronix twin of the same name
(gradients flow), runs on the raw data when nothing requires grad, and otherwise raises a clear
error: never a silent detach (the sweeps at the end try every torch function and method).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx


def _pair(*shape, requires_grad=True):
    t = torch.rand(*shape, dtype=torch.float64) + 0.5
    return t.clone().requires_grad_(requires_grad), nx.Tensor(t.clone(), requires_grad=requires_grad)


# ----- the cases of the issue -------------------------------------------------------------------------------
def test_optimizer_style_update_of_data_with_grad():
    p = nx.Tensor(torch.ones(3), requires_grad=True)
    (p * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    raw = p.data
    result = p.data.add_(p.grad, alpha=-0.5)
    assert result is raw  # a torch in-place method on a torch tensor returns that torch tensor
    torch.testing.assert_close(p.data, torch.tensor([0.5, 0.0, -0.5]))
    p.data.copy_(nx.zeros(3))
    torch.testing.assert_close(p.data, torch.zeros(3))


def test_torch_view_as_an_nx_tensor():
    t = torch.arange(6.0)
    v = t.view_as(nx.zeros(2, 3))
    assert isinstance(v, nx.Tensor) and v.shape == (2, 3)
    assert v.data.data_ptr() == t.data_ptr()  # a view, as torch's
    torch.testing.assert_close(v.data, t.view(2, 3))


@pytest.mark.parametrize("requires_grad", [True, False])
def test_torch_exp_of_an_nx_tensor(requires_grad):
    xt, xn = _pair(2, 3, requires_grad=requires_grad)
    yt, yn = torch.exp(xt), torch.exp(xn)
    assert isinstance(yn, nx.Tensor) and yn.requires_grad == requires_grad
    torch.testing.assert_close(yn.data, yt.detach())
    if requires_grad:
        g = torch.randn(2, 3, dtype=torch.float64)
        yt.backward(g)
        yn.backward(nx.Tensor(g))
        torch.testing.assert_close(xn.grad.data, xt.grad)


def test_torch_cat_of_nx_tensors_and_a_torch_constant():
    (at, an), (bt, bn) = _pair(2, 3), _pair(1, 3, requires_grad=False)
    c = torch.rand(2, 3, dtype=torch.float64)
    yt, yn = torch.cat([at, bt, c]), torch.cat([an, bn, c])
    assert isinstance(yn, nx.Tensor) and yn.requires_grad
    torch.testing.assert_close(yn.data, yt.detach())
    g = torch.randn(5, 3, dtype=torch.float64)
    yt.backward(g)
    yn.backward(nx.Tensor(g))
    torch.testing.assert_close(an.grad.data, at.grad)


def test_torch_functional_relu_of_an_nx_tensor():
    xt, xn = _pair(4)
    xt.data.sub_(1.0)
    xn.data.sub_(1.0)
    yt, yn = TF.relu(xt), TF.relu(xn)
    assert isinstance(yn, nx.Tensor)
    g = torch.randn(4, dtype=torch.float64)
    yt.backward(g)
    yn.backward(nx.Tensor(g))
    torch.testing.assert_close(xn.grad.data, xt.grad)


def test_a_torch_function_without_twin_refuses_to_drop_a_gradient():
    _, xn = _pair(3)
    with pytest.raises(RuntimeError, match=r"torch\.special\.expit: .*requires grad.*shape=\(3,\).*gradient would be lost"):
        torch.special.expit(xn)
    with nx.no_grad():  # nothing is recorded, so nothing is lost
        y = torch.special.expit(xn)
    assert isinstance(y, nx.Tensor) and not y.requires_grad
    torch.testing.assert_close(y.data, torch.special.expit(xn.data))
    y = torch.special.expit(xn.detach())
    assert isinstance(y, nx.Tensor)


def test_writing_a_tracked_value_into_a_torch_tensor_is_refused():
    _, xn = _pair(3)
    target = torch.zeros(3)
    with pytest.raises(RuntimeError, match=r"torch\.Tensor\.add_: .*plain torch\.Tensor \(shape \(3,\)\).*lost"):
        target.add_(xn)
    with pytest.raises(RuntimeError, match=r"torch\.Tensor\.__setitem__"):
        target[0:3] = xn
    with pytest.raises(RuntimeError, match=r"torch\.exp.*gradient would be lost"):
        torch.exp(xn, out=torch.empty(3, dtype=torch.float64))
    assert target.abs().sum() == 0  # nothing was written
    with nx.no_grad():
        assert target.add_(xn) is target
        out = torch.empty(3, dtype=torch.float64)
        assert torch.exp(xn, out=out) is out
    torch.testing.assert_close(out, xn.data.exp())


# ----- more of torch's surface ---------------------------------------------------------------------------------
def test_torch_operators_and_methods_with_an_nx_argument_record():
    xt, xn = _pair(3)
    base = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    yt = (base * xt + base.sub(xt)) @ xt
    yn = (base * xn + base.sub(xn)) @ xn
    assert isinstance(yn, nx.Tensor)
    yt.backward()
    yn.backward()
    torch.testing.assert_close(xn.grad.data, xt.grad)


def test_results_keep_torchs_structure():
    x = nx.Tensor(torch.tensor([[1.0, 5.0], [7.0, 2.0]]))
    values, indices = torch.max(x, dim=1)
    assert isinstance(values, nx.Tensor)
    assert indices.tolist() == [1, 0]
    parts = torch.split(x, 1)
    assert isinstance(parts, tuple) and all(isinstance(p, nx.Tensor) for p in parts)
    assert torch.is_nonzero(nx.Tensor(torch.tensor([1.0]))) is True  # non-tensor results as torch's


def test_torch_autograd_and_init_on_nx_tensors():
    xt, xn = _pair(3)
    (gt,) = torch.autograd.grad((xt**3).sum(), [xt])
    (gn,) = torch.autograd.grad((xn**3).sum(), [xn])
    torch.testing.assert_close(gn.data, gt)
    with pytest.raises(TypeError, match=r"torch\.autograd\.grad: .*is_grads_batched=True"):
        torch.autograd.grad((xn**3).sum(), [xn], is_grads_batched=True)
    w = nx.zeros(4, 5)
    with nx.no_grad():
        torch.nn.init.ones_(w)
    assert bool((w.data == 1).all())


# ----- the class: no torch entry point silently detaches -------------------------------------------------------
_SKIP = {"set_default_tensor_type", "set_default_device", "compile", "load", "save", "manual_seed", "seed",
         "use_deterministic_algorithms", "set_num_threads", "set_printoptions", "set_default_dtype"}


def _differentiable_torch_calls():
    for namespace in (torch, TF, torch.special, torch.linalg, torch.fft):
        for name in sorted(dir(namespace)):
            fn = getattr(namespace, name)
            if name.startswith("_") or name in _SKIP or not callable(fn) or isinstance(fn, type):
                continue
            yield f"{namespace.__name__}.{name}", fn, lambda fn, x: fn(x)
    for name in sorted(dir(torch.Tensor)):
        fn = getattr(torch.Tensor, name)
        if callable(fn) and not isinstance(fn, (type, property)) and name not in ("__init__", "__new__"):
            # a torch tensor as self and the neuronix tensor as the other operand (t.mul(x), t + x, t.add_(x))
            yield f"torch.Tensor.{name}", fn, lambda fn, x: fn(torch.rand(3, 3, dtype=torch.float64) + 0.5, x)


def _sweep():
    """For every torch call that is differentiable on a torch tensor: what it does with a neuronix tensor."""
    outcome = {"recorded": [], "refused": [], "silently detached": [], "other errors": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, fn, call in _differentiable_torch_calls():
            xt = (torch.rand(3, 3, dtype=torch.float64) + 0.5).requires_grad_()
            try:
                yt = call(fn, xt)
            except Exception:  # noqa: BLE001 - not applicable to one (3, 3) tensor: nothing to check
                continue
            if not (isinstance(yt, torch.Tensor) and yt.grad_fn is not None):
                continue
            try:
                yn = call(fn, nx.Tensor(xt.detach(), requires_grad=True))
            except RuntimeError as err:
                outcome["refused" if "gradient would be lost" in str(err) else "other errors"].append(label)
                continue
            except Exception:  # noqa: BLE001 - e.g. torch's own argument checks; not a detach
                outcome["other errors"].append(label)
                continue
            recorded = isinstance(yn, nx.Tensor) and yn.requires_grad
            outcome["recorded" if recorded else "silently detached"].append(label)
    return outcome


def test_no_torch_function_or_method_silently_detaches():
    outcome = _sweep()
    assert not outcome["silently detached"], outcome["silently detached"]
    # the sweep must have exercised both branches broadly (a sweep that tries nothing proves nothing)
    assert len(outcome["recorded"]) > 60 and len(outcome["refused"]) > 60, {k: len(v) for k, v in outcome.items()}
    assert "torch.exp" in outcome["recorded"] and "torch.nn.functional.relu" in outcome["recorded"]
    assert "torch.Tensor.add_" in outcome["refused"] and "torch.special.expit" in outcome["refused"]
