"""Shapes and inputs that used to crash at backward (issue 10, item 16), checked against torch.

* ``F.linear`` over every shape torch's kernel accepts: 1-D weight and/or input, zero in- or
  out-features, size-0 batches, a bias of any broadcastable shape — values, first and second
  derivatives, and the same acceptance/rejection as torch.
* An op input with no gradient rule (its VJP is ``None``) that requires grad is rejected at
  forward, as torch rejects it, with the op, the input and what to do; never a ``TypeError``
  from deep inside backward, never a silently missing gradient.
* ``cross_entropy`` / ``nll_loss`` with zero classes.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as TF

import neuronix as nx
import neuronix.nn.functional as F
from neuronix.ops.registry import OpSpec, apply

# ----- linear over every shape torch accepts ------------------------------------------------------------
X_SHAPES = [(), (4,), (3, 4), (2, 3, 4), (0, 4), (3, 0), (0,)]
W_SHAPES = [(), (4,), (0,), (3, 4), (0, 4), (1, 4), (3, 0), (2, 3, 4)]
B_SHAPES = [None, (), (1,), (3,), (0,), (2, 3), (3, 3), (1, 3), (1, 1, 3)]


def _leaf(t):
    return nx.Tensor(t.detach(), requires_grad=True)


@pytest.mark.parametrize(("x_shape", "w_shape", "b_shape"), list(itertools.product(X_SHAPES, W_SHAPES, B_SHAPES)))
def test_linear_accepts_rejects_and_differentiates_as_torch(x_shape, w_shape, b_shape):
    gen = torch.Generator().manual_seed(hash((x_shape, w_shape, b_shape)) % 2**31)
    xt = torch.randn(x_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    wt = torch.randn(w_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    bt = None if b_shape is None else torch.randn(b_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    xn, wn, bn = _leaf(xt), _leaf(wt), None if bt is None else _leaf(bt)
    try:
        yt = TF.linear(xt, wt, bt)
    except RuntimeError:
        with pytest.raises(RuntimeError, match=r"linear"):
            F.linear(xn, wn, bn)
        return
    yn = F.linear(xn, wn, bn)
    assert yn.shape == yt.shape
    torch.testing.assert_close(yn.data, yt.detach())

    # first derivatives under a random upstream gradient, built so they can be differentiated again
    gt = torch.randn(yt.shape, dtype=torch.float64, generator=gen, requires_grad=True)
    inputs_t = [t for t in (xt, wt, bt) if t is not None]
    inputs_n = [t for t in (xn, wn, bn) if t is not None]
    grads_t = torch.autograd.grad(yt, inputs_t, gt, create_graph=True)
    gn = _leaf(gt)
    grads_n = nx.autograd.grad(yn, inputs_n, gn, create_graph=True)
    for a, b in zip(grads_n, grads_t):
        assert a.shape == b.shape
        torch.testing.assert_close(a.data, b.detach())

    # second derivatives, w.r.t. the inputs and the upstream gradient
    probes = [torch.randn(g.shape, dtype=torch.float64, generator=gen) for g in grads_t]
    second_t = torch.autograd.grad(sum((g * p).sum() for g, p in zip(grads_t, probes)), [*inputs_t, gt],
                                   allow_unused=True, materialize_grads=True)
    second_n = nx.autograd.grad(sum((g * nx.Tensor(p)).sum() for g, p in zip(grads_n, probes)), [*inputs_n, gn],
                                allow_unused=True)
    for a, b in zip(second_n, second_t):
        torch.testing.assert_close(torch.zeros_like(b) if a is None else a.data, b)

    # and the plain (non-recording) backward, which takes the raw-kernel paths
    leaves = [_leaf(t) for t in inputs_t]
    yn2 = F.linear(leaves[0], leaves[1], leaves[2] if bt is not None else None)
    yn2.backward(nx.Tensor(gt.detach()))
    for leaf, b in zip(leaves, grads_t):
        torch.testing.assert_close(leaf.grad.data, b.detach())


# ----- inputs without a gradient rule ---------------------------------------------------------------------
X, TARGET, PROB = torch.randn(3, 4), torch.tensor([0, 1, 3]), torch.rand(3, 4)
# (op named in the error, input named in the error, call of F given a maker of weights that require grad)
REJECTED = [
    ("nll_loss", "weight", lambda T, W: T.nll_loss(X.log_softmax(1), TARGET, W(4))),
    ("nll_loss", "weight", lambda T, W: T.nll_loss(X.log_softmax(1), TARGET, W(4), reduction="none")),
    ("nll_loss", "weight", lambda T, W: T.cross_entropy(X, TARGET, W(4))),
    ("nll_loss", "weight", lambda T, W: T.cross_entropy(X, TARGET, W(4), label_smoothing=0.1)),
    ("binary_cross_entropy", "weight", lambda T, W: T.binary_cross_entropy(PROB, PROB, W((3, 4)))),
    ("batch_norm", "running_mean", lambda T, W: T.batch_norm(X, W(4), torch.ones(4), training=True)),
    ("batch_norm", "running_var", lambda T, W: T.batch_norm(X, torch.zeros(4), W(4) + 0.5, training=False)),
]


@pytest.mark.parametrize(("op", "what", "call"), REJECTED)
def test_input_without_gradient_rule_is_rejected_at_forward_as_torch(op, what, call):
    with pytest.raises(RuntimeError, match=what):  # the oracle: torch rejects these at forward
        call(TF, lambda shape: torch.rand(shape).requires_grad_())
    with pytest.raises(RuntimeError) as err:
        call(F, lambda shape: nx.rand(shape, requires_grad=True))
    message = str(err.value)
    assert f"neuronix.{op}" in message and f"'{what}'" in message
    assert "requires grad" in message and "not differentiable" in message and "detach" in message
    assert "dtype=torch.float32" in message


def test_any_op_input_without_a_vjp_is_rejected_when_it_requires_grad():
    # the mechanism, on an op declared here: input 1 has no rule
    spec = OpSpec("scaled_by_constant", lambda x, scale: x * scale, (lambda g, out, x, scale: g * scale, None),
                  (1,), False, False, None)
    x, scale = nx.ones(2, requires_grad=True), nx.full((2,), 3.0)
    assert apply(spec, x, scale).requires_grad
    with pytest.raises(RuntimeError, match=r"neuronix\.scaled_by_constant: input 1 'scale' \(Tensor\(shape=\(2,\)"):
        apply(spec, x, scale.requires_grad_())
    with nx.no_grad():  # nothing is recorded, so nothing is lost
        apply(spec, x, scale)
    assert apply(spec, x, scale.detach()).requires_grad


def test_cross_entropy_probability_targets_give_the_weight_its_gradient_as_torch():
    x = torch.randn(3, 4, dtype=torch.float64)
    target = torch.rand(3, 4, dtype=torch.float64).softmax(1)
    wt = torch.rand(4, dtype=torch.float64, requires_grad=True)
    TF.cross_entropy(x, target, wt).backward()
    wn = nx.Tensor(wt.detach(), requires_grad=True)
    F.cross_entropy(nx.Tensor(x), nx.Tensor(target), wn).backward()
    torch.testing.assert_close(wn.grad.data, wt.grad)


def test_nll_loss_with_a_plain_weight_still_matches_torch():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target, weight = torch.tensor([0, 2, 1, 2, -100]), torch.rand(3, dtype=torch.float64)
    TF.nll_loss(x, target, weight).backward()
    xn = _leaf(x)
    F.nll_loss(xn, nx.Tensor(target), nx.Tensor(weight)).backward()
    torch.testing.assert_close(xn.grad.data, x.grad)


# ----- zero classes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 0), (0,), (2, 0, 5), (0, 4), (0, 0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("probabilities", [True, False])
def test_cross_entropy_with_empty_dims_matches_torch(shape, reduction, label_smoothing, weighted, probabilities):
    classes = shape[1] if len(shape) > 1 else shape[0]
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    if probabilities:
        target = torch.rand(shape, dtype=torch.float64)
    else:  # with zero classes every target must be ignored
        target = torch.full(((shape[0],) + shape[2:]) if len(shape) > 1 else (), -100)
        if classes:
            target = target.random_(0, classes)
    weight = torch.rand(classes, dtype=torch.float64) if weighted else None
    nx_call = lambda: F.cross_entropy(xn, nx.Tensor(target), None if weight is None else nx.Tensor(weight),  # noqa: E731
                                      reduction=reduction, label_smoothing=label_smoothing)
    xn = _leaf(x)
    try:
        expected = TF.cross_entropy(x, target, weight, reduction=reduction, label_smoothing=label_smoothing)
    except RuntimeError:  # torch rejects class targets of (N, 0, d) inputs: so must we
        with pytest.raises(RuntimeError, match="cross_entropy|nll_loss"):
            nx_call()
        return
    upstream = torch.randn(expected.shape, dtype=torch.float64)
    expected.backward(upstream)

    got = nx_call()
    assert got.shape == expected.shape
    torch.testing.assert_close(got.data, expected.detach(), equal_nan=True)
    got.backward(nx.Tensor(upstream))
    torch.testing.assert_close(xn.grad.data, x.grad, equal_nan=True)


def test_cross_entropy_of_a_0d_input_is_rejected_with_the_op():
    for target in (torch.randn(()), torch.tensor(1.0)):
        with pytest.raises(IndexError):
            TF.cross_entropy(torch.randn(()), target)
        with pytest.raises(IndexError, match=r"cross_entropy: input must have at least 1 dim"):
            F.cross_entropy(nx.randn(()), nx.Tensor(target))
