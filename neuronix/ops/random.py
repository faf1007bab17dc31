"""Random sampling with torch's generators: a seeded run draws what torch draws.

Every op here is torch's own sampling kernel on the raw values, called with the same arguments (the
``generator=`` keyword takes a ``torch.Generator``, or None for torch's global one), so after
``torch.manual_seed(s)`` a neuronix call and the same torch call draw the same numbers.

Derivatives are torch's: ``bernoulli`` (without ``p``), ``normal`` and ``poisson`` are differentiable with a zero
gradient (torch's derivatives.yaml gives ``zeros_like`` for every input of each: no reparameterisation,
so ``normal(mean, std)`` sends no gradient to ``mean`` or ``std``; write ``mean + std * randn_like(std)``
for the reparameterised draw). The in-place fills (``normal_``, ``uniform_``, ...) give the overwritten
tensor a zero gradient and keep it in the graph, as torch's.
"""

from __future__ import annotations

import torch

from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.helpers import undifferentiable
from neuronix.ops.inplace import _check_allowed, _needs_recording, _recorded
from neuronix.ops.registry import apply, defop, op_error, public
from neuronix.tensor import Tensor


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


# ----- multinomial, binomial: no derivative -----------------------------------------------------------
@public
def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None):
    """``torch.multinomial``: ``num_samples`` indices drawn from the rows of ``input`` (weights)."""
    try:
        out = torch.multinomial(_raw(input), num_samples, replacement, generator=generator)
    except (RuntimeError, ValueError, TypeError) as err:
        raise op_error("multinomial", (input,), {"num_samples": num_samples, "replacement": replacement}, err) from err
    return Tensor._make(out, None)


@public(method=False)
def binomial(count, prob, generator=None):
    """``torch.binomial``: draws of Binomial(count, prob), elementwise (torch defines no derivative: the result
    requires grad when an input does and its backward raises, as torch's)."""
    try:
        out = torch.binomial(_raw(count), _raw(prob), generator)
    except (RuntimeError, ValueError, TypeError) as err:
        raise op_error("binomial", (count, prob), {}, err) from err
    return undifferentiable("binomial", out, count, prob)


# ----- bernoulli / normal / poisson: differentiable, zero gradient -------------------------------------------
_BERNOULLI = defop("bernoulli", lambda x, generator: torch.bernoulli(x, generator=generator), zero_gradient, saves=())
_NORMAL = defop("normal", lambda mean, std, generator: torch.normal(mean, std, generator=generator),
                zero_gradient, zero_gradient, saves=())
_POISSON = defop("poisson", lambda rates, generator: torch.poisson(rates, generator), zero_gradient, saves=())


@public
def bernoulli(input, p=None, *, generator=None):
    """``torch.bernoulli``: 0/1 draws with probability ``input``, differentiable with a zero gradient as torch's;
    or with probability ``p`` for every element (shaped like ``input``), where torch defines no derivative (the
    result requires grad and its backward raises, as torch's)."""
    if p is None:
        return apply(_BERNOULLI, input, generator=generator)
    if isinstance(p, (Tensor, torch.Tensor)):
        raise TypeError(f"bernoulli(): p must be a number (a tensor of probabilities is the input), got {type(p).__name__}")
    try:
        out = torch.bernoulli(_raw(input), p, generator=generator)
    except (RuntimeError, ValueError, TypeError) as err:
        raise op_error("bernoulli", (input, p), {}, err) from err
    return undifferentiable("bernoulli", out, input)


@public(method=False)
def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, layout=None, device=None,
           pin_memory: bool = False, requires_grad: bool = False):
    """``torch.normal``: draws from N(mean, std^2), elementwise over broadcast tensor ``mean``/``std``, or
    ``size`` draws for number ``mean`` and ``std``. Tensor ``mean``/``std`` get a zero gradient, as torch's."""
    if isinstance(mean, (Tensor, torch.Tensor)) or isinstance(std, (Tensor, torch.Tensor)):
        if size is not None:
            raise TypeError(f"normal(): size is only for number mean and std (got size={size!r} with a tensor)")
        return apply(_NORMAL, mean, std, generator=generator)
    try:
        data = torch.normal(mean, std, size, generator=generator, dtype=dtype, layout=layout, device=device,
                            pin_memory=pin_memory)
    except (RuntimeError, ValueError, TypeError) as err:
        raise op_error("normal", (mean, std), {"size": size}, err) from err
    return Tensor(data, requires_grad=requires_grad)


@public(method=False)
def poisson(input, generator=None):
    """``torch.poisson``: Poisson draws with rates ``input``; differentiable with a zero gradient, as torch."""
    return apply(_POISSON, input, generator=generator)


# ----- in-place fills --------------------------------------------------------------------------------------
# The drawn values, as the op's output: the overwritten tensor gets a zero gradient (torch's rule for every fill).
_FILLED = defop("random_fill", lambda old, values: values, zero_gradient, saves=())


def _filled_twin(old, values):
    return apply(_FILLED, old, values)


def _fill(name: str):
    """``Tensor.<name>``: torch's in-place kernel on the tensor itself (so the draws follow its layout as
    torch's do); when the tensor is in the graph, its history becomes a zero-gradient node, as torch's."""

    def method(self, *args, **kwargs):
        raws = [_raw(a) for a in args]
        record = _needs_recording(self, ())
        if record:
            _check_allowed(self, name)  # torch's refusals (a leaf that requires grad, ...) before anything is drawn
        try:
            getattr(self.data, name)(*raws, **{k: _raw(v) for k, v in kwargs.items()})
        except (RuntimeError, ValueError, TypeError) as err:
            raise op_error(name, (self, *args), kwargs, err) from err
        if record:
            _recorded(self, name, _filled_twin, (self.data.clone(),), {})
        return self

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``torch.Tensor.{name}``: fills the tensor in place with torch's draws (same generator)."
    return public(method, function=False, method=True, name=name)


normal_ = _fill("normal_")
uniform_ = _fill("uniform_")
exponential_ = _fill("exponential_")
geometric_ = _fill("geometric_")
log_normal_ = _fill("log_normal_")
cauchy_ = _fill("cauchy_")
random_ = _fill("random_")
bernoulli_ = _fill("bernoulli_")  # not derived from bernoulli: x.bernoulli_() draws with p = 1/2, not p = x
