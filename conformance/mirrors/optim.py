"""Mirrors of ``nx.optim`` (optimizers) and ``nx.optim.lr_scheduler`` (schedulers).

Optimizer ``hyper`` strategies return one dict per param group (two groups, each with its
own draw of every option); the first group's dict is also the constructor's defaults.
The torch optimizers run their single-tensor implementation (``foreach=False``): the
reference arithmetic, the same on every device. Lion has no torch twin: it is checked
against the ``lion-pytorch`` package and, separately, against the paper's update rule
written out below in plain torch.

Scheduler ``build`` strategies return constructor keyword arguments as plain data (plus
``optimizer``: ``"SGD"`` with momentum or ``"Adam"``, for momentum / beta1 cycling);
schedulers that take callables or other schedulers get small builders that make the same
objects for neuronix and for torch from that data.
"""

from __future__ import annotations

import functools
import importlib
import random

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OptimizerMirror, SchedulerMirror, register


def _zero_or(draw, low: float, high: float) -> float:
    return draw(st.one_of(st.just(0.0), st.floats(low, high)))


def _two_groups(per_group):
    """A hyper strategy: ``per_group(draw)`` drawn independently for each of the two param groups."""
    return lambda draw: [per_group(draw), per_group(draw)]


def _torch_optim(name: str, **fixed):
    cls = getattr(torch.optim, name)
    return lambda params, **kw: cls(params, **{**fixed, **kw}, foreach=False)


# ----- SGD and the original project's Momentum / Nesterov ------------------------------------
def _sgd(draw, momentum: str = "any") -> dict:
    """``momentum``: "any" (SGD, may be 0), "positive" (Momentum: > 0 or the 0.9 default), "nesterov"."""
    h = {"lr": draw(st.floats(1e-3, 0.3)), "weight_decay": _zero_or(draw, 1e-4, 0.1), "maximize": draw(st.booleans())}
    if momentum == "any":
        h["momentum"] = _zero_or(draw, 0.1, 0.99)
    elif draw(st.booleans()):
        h["momentum"] = draw(st.floats(0.1, 0.99))
    nesterov = momentum == "nesterov" or (h.get("momentum", 0.9) > 0 and draw(st.booleans()))
    if momentum != "nesterov":
        h["nesterov"] = nesterov
    h["dampening"] = 0.0 if nesterov else _zero_or(draw, 0.05, 0.9)
    return h


register(
    OptimizerMirror("optim.SGD", nx.optim.SGD, _torch_optim("SGD"), _two_groups(_sgd)),
    OptimizerMirror("optim.Momentum", nx.optim.Momentum, _torch_optim("SGD", momentum=0.9),
                    _two_groups(functools.partial(_sgd, momentum="positive")),
                    note="torch.optim.SGD with momentum=0.9 by default"),
    OptimizerMirror("optim.Nesterov", nx.optim.Nesterov, _torch_optim("SGD", momentum=0.9, nesterov=True),
                    _two_groups(functools.partial(_sgd, momentum="nesterov")),
                    note="torch.optim.SGD with nesterov=True and momentum=0.9 by default"),
)


# ----- Adam, AdamW ---------------------------------------------------------------------------
def _adam(draw, decoupled: bool = False) -> dict:
    h = {
        "lr": draw(st.floats(1e-4, 0.1)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))),
        "eps": draw(st.one_of(st.just(1e-8), st.floats(0.0, 1e-2))),
        "amsgrad": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }
    if not decoupled or draw(st.booleans()):  # AdamW's default weight_decay=1e-2 is exercised when left out
        h["weight_decay"] = _zero_or(draw, 1e-4, 0.1)
    return h


register(
    OptimizerMirror("optim.Adam", nx.optim.Adam, _torch_optim("Adam"), _two_groups(_adam)),
    OptimizerMirror("optim.AdamW", nx.optim.AdamW, _torch_optim("AdamW"), _two_groups(functools.partial(_adam, decoupled=True))),
)


# ----- RMSprop, Adagrad ----------------------------------------------------------------------
def _rmsprop(draw) -> dict:
    return {
        "lr": draw(st.floats(1e-4, 0.05)),
        # alpha well below 1 keeps centered's v - mean^2 clear of rounding below zero (sqrt of a negative)
        "alpha": draw(st.floats(0.5, 0.999)),
        "eps": draw(st.one_of(st.just(1e-8), st.floats(1e-10, 1e-2))),
        "weight_decay": _zero_or(draw, 1e-4, 0.1),
        "momentum": _zero_or(draw, 0.1, 0.95),
        "centered": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }


def _adagrad(draw) -> dict:
    return {
        "lr": draw(st.floats(1e-3, 0.5)),
        "lr_decay": _zero_or(draw, 1e-4, 0.1),
        "weight_decay": _zero_or(draw, 1e-4, 0.1),
        "initial_accumulator_value": _zero_or(draw, 0.01, 1.0),
        "eps": draw(st.one_of(st.just(1e-10), st.floats(1e-10, 1e-3))),
        "maximize": draw(st.booleans()),
    }


register(
    OptimizerMirror("optim.RMSprop", nx.optim.RMSprop, _torch_optim("RMSprop"), _two_groups(_rmsprop)),
    OptimizerMirror("optim.Adagrad", nx.optim.Adagrad, _torch_optim("Adagrad"), _two_groups(_adagrad)),
)


# ----- Lion ----------------------------------------------------------------------------------
def _lion(draw, maximize: bool = False) -> dict:
    h = {
        "lr": draw(st.floats(1e-5, 1e-2)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))),
        "weight_decay": _zero_or(draw, 1e-3, 1.0),
    }
    if maximize:
        h["maximize"] = draw(st.booleans())
    return h


def _lion_pytorch(params, **kw):
    """``lion_pytorch.Lion`` (PyPI ``lion-pytorch``, a test extra), imported when a case runs."""
    return importlib.import_module("lion_pytorch").Lion(params, **kw)


class PaperLion(torch.optim.Optimizer):
    """Lion as written in Chen et al. (2023), Algorithm 2, in plain torch.

    ``c = beta1 * m + (1 - beta1) * g``; ``p = p - lr * (sign(c) + weight_decay * p)``;
    ``m = beta2 * m + (1 - beta2) * g``.
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                c = beta1 * m + (1 - beta1) * g
                p.copy_(p - lr * (torch.sign(c) + wd * p))
                m.copy_(beta2 * m + (1 - beta2) * g)


register(
    OptimizerMirror("optim.Lion", nx.optim.Lion, _lion_pytorch, _two_groups(_lion),
                    note="oracle: lion-pytorch (PyPI); optim.Lion[paper] checks the paper's rule"),
    OptimizerMirror("optim.Lion[paper]", nx.optim.Lion, PaperLion, _two_groups(functools.partial(_lion, maximize=True)),
                    dtypes=(torch.float64,),
                    note="oracle: the update rule of Chen et al. (2023) in plain torch, in float64 only: its float32 "
                         "rounding order differs from lion-pytorch's, which optim.Lion checks bitwise in float32"),
)


# ----- schedulers ----------------------------------------------------------------------------
def _schedulers(lib):
    return nx.optim.lr_scheduler if lib == "nx" else torch.optim.lr_scheduler


def _scheduler(name: str, build, steps: int = 200, metrics=None, make=None, note: str = "") -> SchedulerMirror:
    """``optim.lr_scheduler.<name>``; ``make(lib, optimizer, **kwargs)`` builds it when kwargs are not plain data."""
    if make is None:
        nx_make, torch_make = getattr(nx.optim.lr_scheduler, name), getattr(torch.optim.lr_scheduler, name)
    else:
        nx_make, torch_make = functools.partial(make, "nx"), functools.partial(make, "torch")
    return SchedulerMirror(f"optim.lr_scheduler.{name}", nx_make, torch_make, build, steps, metrics, note)


def _gamma(draw) -> float:
    return draw(st.floats(0.05, 1.0))


def _step(draw):
    return {"step_size": draw(st.integers(1, 50)), "gamma": _gamma(draw)}


def _multistep(draw):
    return {"milestones": draw(st.lists(st.integers(1, 200), max_size=6)), "gamma": _gamma(draw)}


def _constant(draw):
    return {"factor": draw(st.floats(0.01, 1.0)), "total_iters": draw(st.integers(0, 100))}


def _linear(draw):
    return {"start_factor": draw(st.floats(0.01, 1.0)), "end_factor": draw(st.floats(0.0, 1.0)),
            "total_iters": draw(st.integers(0, 100))}


def _exponential(draw):
    return {"gamma": draw(st.floats(0.9, 1.0))}


def _polynomial(draw):
    return {"total_iters": draw(st.integers(1, 150)), "power": draw(st.floats(0.1, 3.0))}


def _eta_min(draw) -> float:
    return draw(st.one_of(st.just(0.0), st.floats(0.0, 1e-3)))


def _cosine(draw):
    return {"T_max": draw(st.integers(1, 100)), "eta_min": _eta_min(draw)}


def _warm_restarts(draw):
    return {"T_0": draw(st.integers(1, 50)), "T_mult": draw(st.integers(1, 3)), "eta_min": _eta_min(draw)}


# LambdaLR / MultiplicativeLR: the lambda is described by data, so both libraries get the same function.
def _lambda_fn(recipe):
    kind, a = recipe
    if kind == "exp":
        return lambda epoch: a**epoch
    if kind == "inverse":
        return lambda epoch: 1.0 / (1.0 + a * epoch)
    if kind == "warmup":
        return lambda epoch: min(1.0, (epoch + 1) / a)
    return lambda epoch: a if epoch % 3 else 1.0  # "every3"


def _lambda_recipe(draw):
    kind = draw(st.sampled_from(["exp", "inverse", "warmup", "every3"]))
    a = {"exp": st.floats(0.9, 1.0), "inverse": st.floats(0.0, 0.5), "warmup": st.integers(1, 50),
         "every3": st.floats(0.5, 1.0)}[kind]
    return kind, draw(a)


def _lambdas(draw):
    return {"lr_lambda": _lambda_recipe(draw),
            "per_group": [_lambda_recipe(draw), _lambda_recipe(draw)] if draw(st.booleans()) else None}


def _make_lambda(name: str):
    def make(lib, optimizer, lr_lambda, per_group):
        fn = [_lambda_fn(s) for s in per_group] if per_group else _lambda_fn(lr_lambda)
        return getattr(_schedulers(lib), name)(optimizer, fn)

    return make


def _momenta(draw, low: tuple[float, float], high: tuple[float, float]) -> dict:
    return {"cycle_momentum": draw(st.booleans()), "base_momentum": draw(st.floats(*low)),
            "max_momentum": draw(st.floats(*high)), "optimizer": draw(st.sampled_from(["SGD", "Adam"]))}


def _one_cycle(draw):
    h = {"max_lr": draw(st.one_of(st.floats(0.01, 1.0), st.lists(st.floats(0.01, 1.0), min_size=2, max_size=2))),
         "pct_start": draw(st.floats(0.05, 0.5)), "anneal_strategy": draw(st.sampled_from(["cos", "linear"])),
         "div_factor": draw(st.floats(2.0, 50.0)), "final_div_factor": draw(st.floats(10.0, 1e4)),
         "three_phase": draw(st.booleans()), **_momenta(draw, (0.7, 0.9), (0.9, 0.99))}
    if draw(st.booleans()):
        h["total_steps"] = draw(st.integers(200, 400))
    else:  # the other way to give the length; >= 200 steps so the schedule is not over-stepped
        h["epochs"], h["steps_per_epoch"] = draw(st.integers(4, 8)), draw(st.integers(50, 60))
    return h


def _cyclic(draw):
    up = draw(st.integers(1, 60))
    return {"base_lr": draw(st.floats(1e-4, 1e-2)), "max_lr": draw(st.floats(1e-2, 1.0)), "step_size_up": up,
            "step_size_down": draw(st.one_of(st.none(), st.integers(1, 60))),
            "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
            "gamma": draw(st.floats(0.95, 1.0)), **_momenta(draw, (0.7, 0.85), (0.85, 0.99))}


# SequentialLR / ChainedScheduler: members described as (name, kwargs) with plain-data kwargs.
MEMBERS = {"StepLR": _step, "MultiStepLR": _multistep, "ConstantLR": _constant, "LinearLR": _linear,
           "ExponentialLR": _exponential, "PolynomialLR": _polynomial, "CosineAnnealingLR": _cosine}


def _members(draw, n_min: int = 1, n_max: int = 3):
    names = draw(st.lists(st.sampled_from(sorted(MEMBERS)), min_size=n_min, max_size=n_max))
    return [(name, MEMBERS[name](draw)) for name in names]


def _sequential(draw):
    members = _members(draw, 2, 3)
    milestones = sorted(draw(st.lists(st.integers(1, 150), min_size=len(members) - 1, max_size=len(members) - 1)))
    return {"members": members, "milestones": milestones}


def _make_sequential(lib, optimizer, members, milestones):
    schedulers = [getattr(_schedulers(lib), name)(optimizer, **kw) for name, kw in members]
    return _schedulers(lib).SequentialLR(optimizer, schedulers, milestones)


def _chained(draw):
    return {"members": _members(draw, 1, 3)}


def _make_chained(lib, optimizer, members):
    schedulers = [getattr(_schedulers(lib), name)(optimizer, **kw) for name, kw in members]
    return _schedulers(lib).ChainedScheduler(schedulers, optimizer=optimizer)


def _plateau(draw):
    return {"mode": draw(st.sampled_from(["min", "max"])), "factor": draw(st.floats(0.1, 0.9)),
            "patience": draw(st.integers(0, 10)), "threshold": draw(st.floats(0.0, 0.1)),
            "threshold_mode": draw(st.sampled_from(["rel", "abs"])), "cooldown": draw(st.integers(0, 5)),
            "min_lr": draw(st.one_of(st.floats(0.0, 1e-2), st.lists(st.floats(0.0, 1e-2), min_size=2, max_size=2))),
            "eps": draw(st.one_of(st.just(1e-8), st.floats(0.0, 1e-3)))}


def _plateau_metrics(draw, steps: int) -> list[float]:
    """A noisy loss curve with a drawn drift and flat stretches (repeated values)."""
    rng = random.Random(draw(st.integers(0, 2**31 - 1)))
    drift, noise, flat = draw(st.floats(-0.02, 0.02)), draw(st.floats(0.0, 0.05)), draw(st.floats(0.0, 0.6))
    value, out = 1.0, []
    for _ in range(steps):
        if rng.random() >= flat:
            value += drift + rng.gauss(0.0, noise)
        out.append(value)
    return out


register(
    _scheduler("LambdaLR", _lambdas, make=_make_lambda("LambdaLR")),
    _scheduler("MultiplicativeLR", _lambdas, make=_make_lambda("MultiplicativeLR")),
    _scheduler("StepLR", _step),
    _scheduler("MultiStepLR", _multistep),
    _scheduler("ConstantLR", _constant),
    _scheduler("LinearLR", _linear),
    _scheduler("ExponentialLR", _exponential),
    _scheduler("PolynomialLR", _polynomial),
    _scheduler("CosineAnnealingLR", _cosine),
    _scheduler("CosineAnnealingWarmRestarts", _warm_restarts),
    _scheduler("OneCycleLR", _one_cycle),
    _scheduler("CyclicLR", _cyclic),
    _scheduler("SequentialLR", _sequential, make=_make_sequential),
    _scheduler("ChainedScheduler", _chained, make=_make_chained),
    _scheduler("ReduceLROnPlateau", _plateau, metrics=_plateau_metrics),
)
