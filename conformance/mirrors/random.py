"""Mirrors of the random ops (neuronix/ops/random.py): the same seed must give the same draws.

Each call of either side reseeds torch's global generator first (``factories._seeded``), or builds a fresh
``torch.Generator`` with a fixed seed for the ``generator=`` forms, so the two calls of a comparison draw
the same numbers and their values are compared exactly as any op's. Derivatives are torch's: zero for
every input of bernoulli, normal and poisson and for the tensor an in-place fill overwrites. Finite
differences are off: torch's zero is not the pathwise derivative of the seeded draw (normal(mean + h) moves
by h), so a difference quotient measures something torch does not define as the gradient.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors.factories import _seeded
from conformance.strategies import PROB, Domain, broadcast_shapes, method, nonempty_shape, shape, tensor

NOT_PATHWISE = "torch's derivative of a draw is zero, not the pathwise one finite differences would measure"
SEED = 20240601


def _with_generator(fn):
    """``fn`` called with ``generator=`` a fresh ``torch.Generator`` seeded alike on each call."""

    def call(*args, **kwargs):
        return fn(*args, generator=torch.Generator().manual_seed(SEED), **kwargs)

    return call


def _random(name: str, nx_fn, torch_fn, sample, generator: bool = False, **kw) -> OpMirror:
    wrap = _with_generator if generator else _seeded
    kw.setdefault("fd", False)
    kw.setdefault("note", NOT_PATHWISE)
    return OpMirror(name, wrap(nx_fn), wrap(torch_fn), sample, **kw)


# ----- multinomial, bernoulli, normal, poisson --------------------------------------------------------------
def _multinomial(draw, dtype, device):
    sizes = nonempty_shape(draw, min_dims=1, max_dims=2)
    weights = tensor(draw, sizes, dtype, device, Domain(0.1, 2.0))
    replacement = draw(st.booleans())
    n = draw(st.integers(1, 6 if replacement else sizes[-1]))
    return Sample((weights, n, replacement))


def _bernoulli(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device, PROB),))


def _bernoulli_p(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device, PROB), draw(st.sampled_from([0.3, 0.5, 0.9]))))


def _normal(draw, dtype, device):
    form = draw(st.sampled_from(["tensor tensor", "tensor number", "tensor", "number tensor"]))
    (s_mean, s_std), _ = broadcast_shapes(draw, 2)
    if form == "number tensor":
        return Sample((draw(st.sampled_from([0.0, -1.5, 2.0])), tensor(draw, s_std, dtype, device, Domain(0.2, 2.0))))
    mean = tensor(draw, s_mean, dtype, device)
    if form == "tensor":
        return Sample((mean,))
    if form == "tensor number":
        return Sample((mean, draw(st.sampled_from([0.5, 1.0, 3.0]))))
    return Sample((mean, tensor(draw, s_std, dtype, device, Domain(0.2, 2.0))))


def _normal_size(draw, dtype, device):
    return Sample((draw(st.sampled_from([0.0, 1.5])), draw(st.sampled_from([1.0, 0.25])), shape(draw)),
                  {"dtype": dtype, "device": device, "requires_grad": draw(st.booleans())})


def _poisson(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device, Domain(0.2, 6.0)),))


def _binomial(draw, dtype, device):
    (s_count, s_prob), _ = broadcast_shapes(draw, 2)
    count = tensor(draw, s_count, dtype, device, Domain(0.0, 12.0)).round()
    return Sample((count, tensor(draw, s_prob, dtype, device, PROB)))


def _requires_grad(result):
    return result, result.requires_grad


register(
    _random("multinomial", nx.multinomial, torch.multinomial, _multinomial, grad=False),
    _random("Tensor.multinomial", method("multinomial"), method("multinomial"), _multinomial, grad=False),
    _random("multinomial[generator]", nx.multinomial, torch.multinomial, _multinomial, generator=True, grad=False),
    _random("bernoulli", nx.bernoulli, torch.bernoulli, _bernoulli),
    _random("Tensor.bernoulli", method("bernoulli"), method("bernoulli"), _bernoulli),
    _random("bernoulli[generator]", nx.bernoulli, torch.bernoulli, _bernoulli, generator=True),
    _random("bernoulli[p]", nx.bernoulli, torch.bernoulli, _bernoulli_p, grad=False,
            note="torch defines no derivative for bernoulli(input, p): its backward raises"),
    _random("normal", nx.normal, torch.normal, _normal),
    _random("normal[generator]", nx.normal, torch.normal, _normal, generator=True),
    _random("normal[size]", nx.normal, torch.normal, _normal_size, grad=False, output=_requires_grad),
    _random("poisson", nx.poisson, torch.poisson, _poisson),
    _random("poisson[generator]", nx.poisson, torch.poisson, _poisson, generator=True),
    _random("binomial", nx.binomial, torch.binomial, _binomial, grad=False, dtypes=FLOATS,
            note="torch defines no derivative; its CPU binomial has no half kernel"),
    _random("binomial[generator]", nx.binomial, torch.binomial, _binomial, generator=True, grad=False, dtypes=FLOATS,
            note="torch's CPU binomial has no half kernel"),
)


# ----- in-place fills ---------------------------------------------------------------------------------------
def _fill(name: str):
    """``x.clone().<name>(*args)``: the clone is in the graph, so the overwritten value's zero gradient is compared."""

    def call(x, *args, **kwargs):
        return getattr(x.clone(), name)(*args, **kwargs)

    call.__name__ = name
    return call


def _filled(options):
    def sample(draw, dtype, device):
        return Sample((tensor(draw, shape(draw), dtype, device), *draw(st.sampled_from(options))))

    return sample


FILLS = {
    "normal_": [(), (1.0, 0.5), (-2.0,)],
    "uniform_": [(), (-1.0, 3.0), (2.0,)],
    "exponential_": [(), (0.5,), (3.0,)],
    "geometric_": [(0.3,), (0.9,)],
    "log_normal_": [(), (0.0, 0.5), (1.0,)],
    "cauchy_": [(), (1.0, 0.5), (-2.0,)],
    "random_": [(), (10,), (-3, 4)],
}
for _name, _options in FILLS.items():
    register(
        _random(f"Tensor.{_name}", _fill(_name), _fill(_name), _filled(_options)),
        _random(f"Tensor.{_name}[generator]", _fill(_name), _fill(_name), _filled(_options), generator=True),
    )
register(
    _random("Tensor.bernoulli_", _fill("bernoulli_"), _fill("bernoulli_"), _filled([(), (0.3,), (0.8,)])),
    _random("Tensor.bernoulli_[tensor p]", _fill("bernoulli_"), _fill("bernoulli_"),
            lambda d, t, v: Sample((tensor(d, (2, 3), t, v), tensor(d, (2, 3), t, v, PROB)), grad_args=(0,))),
)


# ----- generator= on the factories (their plain forms: conformance/mirrors/factories.py) --------------------
def _like(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device),), grad_args=())


def _sized(draw, dtype, device):
    return Sample(tuple(shape(draw)), {"dtype": dtype})


register(
    _random("rand_like[generator]", nx.rand_like, torch.rand_like, _like, generator=True, grad=False),
    _random("randn_like[generator]", nx.randn_like, torch.randn_like, _like, generator=True, grad=False),
    _random("randint_like[generator]", nx.randint_like, torch.randint_like,
            lambda d, t, v: Sample((tensor(d, shape(d), t, v), 7), grad_args=()), generator=True, grad=False),
    _random("rand[generator]", nx.rand, torch.rand, _sized, generator=True, grad=False),
    _random("randn[generator]", nx.randn, torch.randn, _sized, generator=True, grad=False),
    _random("randint[generator]", nx.randint, torch.randint,
            lambda d, t, v: Sample((-2, 9, tuple(shape(d)))), generator=True, grad=False),
    _random("randperm[generator]", nx.randperm, torch.randperm,
            lambda d, t, v: Sample((d(st.integers(0, 12)),)), generator=True, grad=False),
)
