"""The optimizer and scheduler drivers.

``compare_optimizer``: the same initial parameters (several tensors of drawn shapes, split
into two param groups with their own drawn hyper-parameters) and the same gradient
sequence go to the neuronix optimizer and its oracle. The gradient of each step is a
fixed noise plus ``0.5 * p`` (a quadratic bowl), so a wrong parameter feeds back into the
next gradient instead of staying a one-step error; now and then a parameter gets no
gradient (it must then be left alone). After every step each parameter and each state
buffer is compared (check ``trajectory``). Half-way, both optimizers are saved with
``state_dict()`` (compared) and each library's fresh optimizer loads the *other's* state_dict:
a checkpoint moves between neuronix and torch and resumes exactly. (Loading is part of what
is compared: torch's load casts floating state to the parameter's dtype, so e.g. NAdam's
float32 ``mu_product`` of float64 parameters becomes float64 after a resume, in both.)

Mirrors with ``closure = True`` (LBFGS) take a closure in ``step``: one param group, and both
libraries evaluate the same deterministic loss, ``sum_i sum(c_i (p_i - m_i)^2) + 0.25 sum(p_i^4)``
(negated under ``maximize``), with drawn weights ``c_i > 0`` and targets ``m_i``; each step's
returned loss, the parameters and the whole state (``d``, ``t``, ``old_dirs``, ... , counters)
are compared after every step, with the same cross-loaded checkpoint half-way.

``compare_scheduler``: the learning rates (and cycled momenta) of two param groups after
construction and after each of ``steps`` ``optimizer.step(); scheduler.step()`` pairs
(check ``lr``); ``ReduceLROnPlateau`` is fed the mirror's drawn metric sequence. The
neuronix optimizer and scheduler are checkpointed and rebuilt half-way, as in training.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import Comparison, OptimizerMirror, SchedulerMirror
from conformance.strategies import shape
from conformance.trace import Mismatch, note

MISSING_GRAD = 0.1  # chance that a parameter has no gradient at a step


# ----- optimizers -----------------------------------------------------------------------
def _group_hypers(mirror: OptimizerMirror, draw) -> list[dict]:
    hyper = mirror.hyper(draw)
    return [dict(h) for h in hyper] if isinstance(hyper, list) else [dict(hyper), dict(hyper)]


def _build(factory, params: list, split: int, hypers: list[dict]):
    """``factory([{group 0}, {group 1}], **hypers[0])``: group 0's settings are also the defaults."""
    groups = [{"params": params[:split], **hypers[0]}, {"params": params[split:], **hypers[1]}]
    return factory(groups, **hypers[0])


def _state_of(optimizer, param) -> dict:
    return optimizer.state.get(param, {})  # .get: never create an entry the optimizer did not


def _compare_state(nx_state: dict, torch_state: dict, label: str) -> Iterator[Comparison]:
    if set(nx_state) != set(torch_state):
        raise Mismatch("trajectory", f"{label}: state keys {sorted(nx_state)} != torch's {sorted(torch_state)}")
    for key in sorted(torch_state):
        yield Comparison("trajectory", f"{label} state[{key!r}]", nx_state[key], torch_state[key])


def compare_optimizer(mirror: OptimizerMirror, draw, dtype: torch.dtype, device: torch.device) -> Iterator[Comparison]:
    if getattr(mirror, "closure", False):
        yield from _compare_closure_optimizer(mirror, draw, dtype, device)
        return
    hypers = _group_hypers(mirror, draw)
    low, high = getattr(mirror, "param_dims", (0, 3))  # Muon: matrices only
    shapes = [shape(draw, min_dims=low, max_dims=high, min_side=1, max_side=4) for _ in range(draw(st.integers(2, 4)))]
    split = draw(st.integers(1, len(shapes) - 1))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    steps = mirror.steps
    init = [torch.randn(s, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype) for s in shapes]
    noise = [[torch.randn(s, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype) for s in shapes]
             for _ in range(steps)]
    has_grad = torch.rand(steps, len(shapes), generator=gen) >= MISSING_GRAD
    resume_at = steps // 2
    note(inputs=[list(s) for s in shapes], kwargs={"groups": hypers, "split": split})

    nx_params = [nx.nn.Parameter(t.clone()) for t in init]
    torch_params = [t.clone().requires_grad_() for t in init]
    nx_opt = _build(mirror.nx, nx_params, split, hypers)
    torch_opt = _build(mirror.torch, torch_params, split, hypers)

    for step in range(steps):
        for i, (p, tp) in enumerate(zip(nx_params, torch_params)):
            present = bool(has_grad[step, i])
            p.grad = nx.Tensor(noise[step][i] + 0.5 * p.data) if present else None
            tp.grad = noise[step][i] + 0.5 * tp.detach() if present else None
        nx_opt.step()
        torch_opt.step()
        for i, (p, tp) in enumerate(zip(nx_params, torch_params)):
            yield Comparison("trajectory", f"param {i} @ step {step}", p.data, tp.detach())
            yield from _compare_state(_state_of(nx_opt, p), _state_of(torch_opt, tp), f"param {i} @ step {step}")
        if step == resume_at:
            nx_opt, torch_opt = yield from _resume(
                nx_opt, torch_opt, lambda: _build(mirror.nx, nx_params, split, hypers),
                lambda: _build(mirror.torch, torch_params, split, hypers))


def _resume(nx_opt, torch_opt, nx_fresh, torch_fresh):
    """Checkpoint both optimizers (the state_dicts compared); fresh ones, each loaded from the other library's."""
    saved = copy.deepcopy(nx_opt.state_dict())
    expected = torch_opt.state_dict()
    if [g["params"] for g in saved["param_groups"]] != [g["params"] for g in expected["param_groups"]]:
        raise Mismatch("trajectory", f"state_dict param indices {[g['params'] for g in saved['param_groups']]} != torch's "
                                     f"{[g['params'] for g in expected['param_groups']]}")
    nonempty = {i for i, s in expected["state"].items() if s}
    if set(saved["state"]) != nonempty:
        raise Mismatch("trajectory", f"state_dict state indices {sorted(saved['state'])} != torch's {sorted(nonempty)}")
    for i in sorted(nonempty):
        yield from _compare_state(saved["state"][i], expected["state"][i], f"state_dict param {i}")
    nx_resumed, torch_resumed = nx_fresh(), torch_fresh()
    nx_resumed.load_state_dict(copy.deepcopy(expected))
    torch_resumed.load_state_dict(saved)
    return nx_resumed, torch_resumed


# ----- optimizers whose step takes a closure (LBFGS) --------------------------------------
def _closure(params: list, weights: list, targets: list, sign: float, zero_grad):
    """The driver's loss on ``params`` (nx or torch tensors alike), as a closure that also back-propagates."""

    def closure():
        zero_grad()
        loss = sum(((c * (p - m) ** 2).sum() + 0.25 * (p**4).sum() for p, c, m in zip(params, weights, targets)))
        loss = loss * sign
        loss.backward()
        return loss

    return closure


def _compare_closure_optimizer(mirror, draw, dtype, device) -> Iterator[Comparison]:
    hypers = dict(mirror.hyper(draw))
    shapes = [shape(draw, min_dims=0, max_dims=3, min_side=1, max_side=4) for _ in range(draw(st.integers(1, 3)))]
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    init, weights, targets = ([torch.randn(s, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
                               for s in shapes] for _ in range(3))
    weights = [w.abs() + 0.1 for w in weights]
    sign = -1.0 if hypers.get("maximize") else 1.0
    note(inputs=[list(s) for s in shapes], kwargs=hypers)

    nx_params = [nx.nn.Parameter(t.clone()) for t in init]
    torch_params = [t.clone().requires_grad_() for t in init]
    nx_opt, torch_opt = mirror.nx(nx_params, **hypers), mirror.torch(torch_params, **hypers)
    nx_consts = [[nx.Tensor(t) for t in ts] for ts in (weights, targets)]
    for step in range(mirror.steps):
        # detached at once: a frame that outlives the example (torch's optimizer __init__ can pin this one
        # until gc) must not keep the closure's graph alive, or the leak check reports it
        nx_loss = nx_opt.step(_closure(nx_params, *nx_consts, sign, nx_opt.zero_grad)).detach()
        torch_loss = torch_opt.step(_closure(torch_params, weights, targets, sign, torch_opt.zero_grad)).detach()
        yield Comparison("trajectory", f"loss returned @ step {step}", nx_loss, torch_loss)
        for i, (p, tp) in enumerate(zip(nx_params, torch_params)):
            yield Comparison("trajectory", f"param {i} @ step {step}", p.data, tp.detach())
            yield from _compare_state(_state_of(nx_opt, p), _state_of(torch_opt, tp), f"param {i} @ step {step}")
        if step == mirror.steps // 2:
            nx_opt, torch_opt = yield from _resume(nx_opt, torch_opt, lambda: mirror.nx(nx_params, **hypers),
                                                   lambda: mirror.torch(torch_params, **hypers))


# ----- schedulers -----------------------------------------------------------------------
def _scheduler_optimizer(lib: str, kind: str, lrs: list[float]):
    """A two-group optimizer of ``lib`` (``"nx"`` or ``"torch"``): SGD with momentum, or Adam (for beta1 cycling)."""
    if lib == "nx":
        params = [nx.nn.Parameter(torch.zeros(2)) for _ in lrs]
        optim = nx.optim
    else:
        params = [torch.zeros(2, requires_grad=True) for _ in lrs]
        optim = torch.optim
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    if kind == "Adam":
        return optim.Adam(groups, lr=lrs[0])
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _observed(scheduler, optimizer) -> torch.Tensor:
    """What a scheduler controls: get_last_lr(), each group's lr, and its momentum or beta1."""
    values = [float(v) for v in scheduler.get_last_lr()]
    for group in optimizer.param_groups:
        values.append(float(group["lr"]))
        values.append(float(group["betas"][0] if "betas" in group else group["momentum"]))
    return torch.tensor(values, dtype=torch.float64)


def compare_scheduler(mirror: SchedulerMirror, draw, dtype: torch.dtype, device: torch.device) -> Iterator[Comparison]:
    kwargs = dict(mirror.build(draw))
    kind = kwargs.pop("optimizer", "SGD")
    lrs = [draw(st.floats(1e-3, 1.0)), draw(st.floats(1e-3, 1.0))]
    steps = mirror.steps
    metrics = mirror.metrics(draw, steps) if mirror.metrics is not None else None
    note(kwargs={**kwargs, "optimizer": kind, "lrs": lrs})

    nx_opt = _scheduler_optimizer("nx", kind, lrs)
    torch_opt = _scheduler_optimizer("torch", kind, lrs)
    nx_sched = mirror.nx(nx_opt, **kwargs)
    torch_sched = mirror.torch(torch_opt, **kwargs)
    yield Comparison("lr", "lr after construction", _observed(nx_sched, nx_opt), _observed(torch_sched, torch_opt))
    for step in range(steps):
        nx_opt.step()
        torch_opt.step()
        if metrics is None:
            nx_sched.step()
            torch_sched.step()
        else:
            nx_sched.step(metrics[step])
            torch_sched.step(metrics[step])
        yield Comparison("lr", f"lr @ step {step + 1}", _observed(nx_sched, nx_opt), _observed(torch_sched, torch_opt))
        if step == steps // 2:
            # resume as a training script does: build afresh, then load the optimizer's and the scheduler's state
            opt_state, sched_state = copy.deepcopy(nx_opt.state_dict()), copy.deepcopy(nx_sched.state_dict())
            nx_opt = _scheduler_optimizer("nx", kind, lrs)
            nx_sched = mirror.nx(nx_opt, **kwargs)
            nx_opt.load_state_dict(opt_state)
            nx_sched.load_state_dict(sched_state)
            yield Comparison("lr", f"lr after resuming @ step {step + 1}", _observed(nx_sched, nx_opt),
                             _observed(torch_sched, torch_opt))
