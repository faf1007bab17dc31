"""In-place ops and augmented assignment, recorded as torch records them (torch is the oracle).

Each case runs the same program with ``torch`` and with ``neuronix`` and compares values,
gradients, or the error torch raises.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx


def _both(program):
    """``program(lib)`` under torch and neuronix: the two results, or the two errors' messages."""
    results = []
    for lib in (torch, nx):
        try:
            results.append(("ok", program(lib)))
        except RuntimeError as err:
            results.append(("error", str(err)))
    return results


def _same(program):
    (kt, t), (kn, n) = _both(program)
    assert kt == kn == "ok", (t, n)
    assert t == pytest.approx(n, rel=1e-6, abs=1e-7) if isinstance(t, (float, list)) and _flat(t) else t == n


def _flat(values) -> bool:
    return all(isinstance(v, (int, float)) for v in (values if isinstance(values, list) else [values]))


def _raises_like_torch(program, pattern: str):
    (kt, t), (kn, n) = _both(program)
    assert kt == kn == "error", (t, n)
    assert pattern in t and pattern in n, (t, n)


def _grad(x) -> list:
    return x.grad.tolist()


# ----- augmented assignment updates in place ------------------------------------------------
def test_augmented_assignment_updates_the_tensor_itself():
    def program(lib):
        a = lib.tensor([1.0, 2.0])
        b = a
        a += 1
        a *= 3
        a -= 1
        a /= 2
        return b.tolist() + [a is b]

    _same(program)


def test_textbook_sgd_loop_trains():
    def program(lib):
        torch.manual_seed(0)
        w = lib.tensor([1.0, -2.0], requires_grad=True)
        for _ in range(3):
            loss = (w * w).sum()
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
        return w.tolist()

    _same(program)


def test_augmented_assignment_on_a_leaf_that_requires_grad_raises():
    def program(lib):
        x = lib.ones(3, requires_grad=True)
        x += 1

    _raises_like_torch(program, "a leaf Variable that requires grad is being used in an in-place operation")


def test_integer_augmented_assignment_keeps_torch_casting_rules():
    def program(lib):
        i = lib.tensor([1, 2])
        i += 1
        return i.tolist()

    _same(program)
    _raises_like_torch(lambda lib: lib.tensor([1, 2]).__iadd__(0.5), "can't be cast to the desired output type")


# ----- in-place ops on tensors in a graph ------------------------------------------------------
@pytest.mark.parametrize("update", [
    lambda y, lib: y.div_(255.0),
    lambda y, lib: y.mul_(y.detach() + 1),
    lambda y, lib: y.add_(lib.ones(3), alpha=2),
    lambda y, lib: y.exp_(),
    lambda y, lib: y.clamp_(max=4.0),
    lambda y, lib: y.relu_(),
    lambda y, lib: y.sigmoid_(),
    lambda y, lib: y.sub_(1).abs_(),
    lambda y, lib: y.zero_(),
    lambda y, lib: y.fill_(2.0),
    lambda y, lib: y.pow_(2),
])
def test_in_place_on_a_non_leaf_moves_its_history(update):
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 3
        update(y, lib)
        (y * lib.tensor([1.0, -2.0, 0.5])).sum().backward()
        return _grad(x)

    _same(program)


def test_in_place_with_a_value_that_requires_grad():
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w = lib.tensor([0.5, 4.0, -1.0], requires_grad=True)
        y = x * 1
        y.mul_(w)
        y.add_(w * w)
        y.copy_(x * w)
        y.sum().backward()
        return _grad(x) + _grad(w)

    _same(program)


def test_a_saved_value_changed_in_place_raises_at_backward():
    def program(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()  # saves its output
        y.mul_(2)
        y.sum().backward()

    _raises_like_torch(program, "modified by an inplace operation")

    def twice(lib):  # exp_ saves the tensor itself: changing it again is caught too
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        y.exp_()
        y.add_(1)
        y.sum().backward()

    _raises_like_torch(twice, "modified by an inplace operation")


def test_in_place_on_a_view_rewrites_its_base_history():
    def program(lib):
        x = lib.ones(2, 3, requires_grad=True)
        y = x * lib.tensor([1.0, 2.0, 3.0])
        y[:, 0].mul_(3)
        y.t()[1].add_(x[:, 1] * 5)
        y[1:].sin_()
        (y * y).sum().backward()
        return _grad(x)

    _same(program)


def test_sibling_views_see_an_in_place_change():
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        first, last = y[:2], y[1:]
        first.mul_(10)
        (last * lib.tensor([1.0, 100.0])).sum().backward()
        return _grad(x)

    _same(program)

    def base_changed(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        view = y[:2]
        y.mul_(5)
        view.sum().backward()
        return _grad(x)

    _same(base_changed)


def test_setitem_records_like_torch():
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        buffer = lib.zeros(4)
        buffer[1:] = x * 2
        buffer[0] = x[2] ** 2
        y = x * 1
        y[lib.tensor([0, 2])] = 7.0
        y[1] = buffer[3]
        ((buffer * buffer).sum() + (y * y).sum()).backward()
        return _grad(x) + [buffer.is_leaf]

    _same(program)


def test_torch_refusals_are_kept():
    def view_of_leaf(lib):
        x = lib.ones(3, requires_grad=True)
        x[0].mul_(2)

    _raises_like_torch(view_of_leaf, "a view of a leaf Variable that requires grad is being used in an in-place operation")

    def no_grad_view(lib):
        x = lib.ones(3, requires_grad=True)
        with lib.no_grad():
            v = x[:2]
        v.mul_(2)

    _raises_like_torch(no_grad_view, "A view was created in no_grad mode and is being modified inplace")

    def no_grad_view_of_buffer(lib):
        x = lib.ones(3, requires_grad=True)
        b = lib.zeros(3)
        with lib.no_grad():
            v = b[:2]
        v.copy_(x[:2])

    _raises_like_torch(no_grad_view_of_buffer, "A view was created in no_grad mode and is being modified inplace")

    def broadcast(lib):
        y = lib.ones(3, requires_grad=True) * 2
        y += lib.ones(2, 3)

    _raises_like_torch(broadcast, "doesn't match the broadcast shape")


def test_in_place_under_create_graph_gives_second_derivatives():
    def program(lib):
        x = lib.tensor([0.5, 1.5], requires_grad=True)
        y = x * x
        y.mul_(x)  # x**3
        g, = lib.autograd.grad(y.sum(), [x], create_graph=True)
        h, = lib.autograd.grad(g.sum(), [x])
        return g.tolist() + h.tolist()

    _same(program)


def test_in_place_through_an_alias_reaches_the_original():
    """``contiguous()`` of a contiguous tensor returns that tensor itself: a write through either is seen by both."""

    def through_alias(lib):
        x = lib.ones(3, requires_grad=True)
        y = x * 2
        z = y.contiguous()
        z.mul_(3)
        y.sum().backward()
        return _grad(x)

    def through_original(lib):
        x = lib.ones(3, requires_grad=True)
        y = x * 2
        z = y.contiguous()
        y.mul_(3)
        z.sum().backward()
        return _grad(x)

    _same(through_alias)
    _same(through_original)


@pytest.mark.parametrize("name, kwargs", [
    ("relu", {}), ("relu6", {}), ("silu", {}), ("elu", {}), ("selu", {}), ("leaky_relu", {"negative_slope": 0.2}),
    ("hardtanh", {}), ("hardswish", {}), ("mish", {}), ("dropout", {"p": 0.3}),
])
def test_functional_inplace_writes_into_its_input(name, kwargs):
    def program(lib):
        functional = torch.nn.functional if lib is torch else nx.nn.functional
        torch.manual_seed(0)
        x = lib.tensor([-4.0, -1.0, 0.5, 2.0, 5.0], requires_grad=True)
        y = x * 1.5
        z = getattr(functional, name)(y, inplace=True, **kwargs)
        (z * lib.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
        with lib.no_grad():
            w = lib.tensor([-1.0, 2.0])
            getattr(functional, name)(w, inplace=True, **kwargs)
        return [float(z is y)] + y.tolist() + _grad(x) + w.tolist()

    _same(program)
