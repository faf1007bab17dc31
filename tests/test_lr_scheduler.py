"""nx.optim.lr_scheduler against torch.optim.lr_scheduler: sequences, resumes, warnings, errors, a training loop."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuronix as nx
from conformance.closeness import measure
from conformance.kinds.optim import compare_scheduler
from conformance.mirror import REGISTRY
from conformance.mirrors import optim as optim_specs  # noqa: F401  (registers the mirrors)
from conformance.tolerances import Tolerance

S, TS = nx.optim.lr_scheduler, torch.optim.lr_scheduler


def _pair(kind: str = "SGD", lrs=(0.1, 0.03)):
    """The same two-group optimizer in neuronix and in torch."""
    nx_groups = [{"params": [nx.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    t_groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "Adam":
        return nx.optim.Adam(nx_groups), torch.optim.Adam(t_groups)
    return nx.optim.SGD(nx_groups, momentum=0.9), torch.optim.SGD(t_groups, momentum=0.9)


def _lrs(opt) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


# ----- every mirror, driven directly ------------------------------------------------------------
SCHEDULER_MIRRORS = sorted(n for n, m in REGISTRY.items() if m.kind == "scheduler")


@pytest.mark.parametrize("name", SCHEDULER_MIRRORS)
@settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_driver_lr_sequences_match(name, data):
    mirror = REGISTRY[name]
    n = 0
    for c in compare_scheduler(mirror, data.draw, torch.float64, torch.device("cpu")):
        m = measure(c.actual, c.expected, Tolerance(1e-7, 1e-12, "test"))
        assert m.ok, f"{name} {c.what}: {c.actual} vs {c.expected}"
        n += 1
    assert n >= mirror.steps >= 200


def test_scheduler_mirrors_cover_every_scheduler():
    names = {n.removeprefix("optim.lr_scheduler.") for n in SCHEDULER_MIRRORS if n.startswith("optim.lr_scheduler.")}
    assert set(S.__all__) - {"LRScheduler"} == names


@settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_driver_catches_a_wrong_schedule(data):
    class OffByOne(S.StepLR):
        def get_lr(self):
            return [lr * self.gamma for lr in self._group_lrs()] if self.last_epoch % self.step_size == 1 else self._group_lrs()

    mirror = copy.copy(REGISTRY["optim.lr_scheduler.StepLR"])
    mirror.nx = OffByOne
    mirror.build = lambda draw: {"step_size": 7, "gamma": 0.5}
    tol = Tolerance(1e-7, 1e-12, "test")
    comparisons = list(compare_scheduler(mirror, data.draw, torch.float64, torch.device("cpu")))
    assert any(not measure(c.actual, c.expected, tol).ok for c in comparisons)


# ----- call order, warnings ---------------------------------------------------------------------
def test_optimizer_then_scheduler_is_warning_free():
    opt, _ = _pair()
    sched = S.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            opt.step()
            sched.step()
    assert sched.get_last_lr() == pytest.approx([0.1 * 0.01, 0.03 * 0.01])


def test_scheduler_before_optimizer_warns():
    opt, _ = _pair()
    sched = S.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_step_with_epoch_uses_the_closed_form_and_warns():
    opt, topt = _pair()
    sched, tsched = S.MultiStepLR(opt, [3, 5, 5], gamma=0.5), TS.MultiStepLR(topt, [3, 5, 5], gamma=0.5)
    for epoch in (4, 6, 2):
        opt.step(), topt.step()
        with pytest.warns(UserWarning, match="deprecated"):
            sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tsched.step(epoch)
        assert sched.get_last_lr() == tsched.get_last_lr()


# ----- resuming -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda s, o, last=-1: s.CosineAnnealingLR(o, T_max=10, eta_min=0.001, last_epoch=last),
    lambda s, o, last=-1: s.StepLR(o, step_size=3, gamma=0.5, last_epoch=last),
    lambda s, o, last=-1: s.LinearLR(o, start_factor=0.2, total_iters=8, last_epoch=last),
    lambda s, o, last=-1: s.PolynomialLR(o, total_iters=12, power=2.0, last_epoch=last),
], ids=["cosine", "step", "linear", "polynomial"])
def test_resume_with_last_epoch_matches_torch(make):
    opt, topt = _pair()
    sched, tsched = make(S, opt), make(TS, topt)
    for _ in range(5):
        opt.step(), topt.step(), sched.step(), tsched.step()
    opt2, topt2 = _pair()
    opt2.load_state_dict(opt.state_dict())
    topt2.load_state_dict(topt.state_dict())
    sched2, tsched2 = make(S, opt2, sched.last_epoch), make(TS, topt2, tsched.last_epoch)
    assert sched2.get_last_lr() == tsched2.get_last_lr()
    for _ in range(15):
        opt2.step(), topt2.step(), sched2.step(), tsched2.step()
        assert sched2.get_last_lr() == tsched2.get_last_lr()


def test_resume_with_last_epoch_needs_initial_lr():
    opt, _ = _pair()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(opt, step_size=2, last_epoch=3)


def test_state_dict_round_trip_of_composites():
    def build(lib, opt):
        warm = lib.LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = lib.CosineAnnealingLR(opt, T_max=20)
        return lib.SequentialLR(opt, [warm, decay], milestones=[5])

    opt, topt = _pair()
    sched, tsched = build(S, opt), build(TS, topt)
    for step in range(30):
        opt.step(), topt.step(), sched.step(), tsched.step()
        if step == 10:
            saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
            opt, _ = _pair()
            sched = build(S, opt)
            opt.load_state_dict(saved_opt)
            sched.load_state_dict(saved_sched)
        assert sched.get_last_lr() == tsched.get_last_lr()


# ----- special cases ------------------------------------------------------------------------------
def test_warm_restarts_with_fractional_epochs():
    opt, topt = _pair()
    sched, tsched = S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=1e-4), TS.CosineAnnealingWarmRestarts(
        topt, T_0=3, T_mult=2, eta_min=1e-4)
    for epoch in range(25):
        for batch in range(4):
            opt.step(), topt.step()
            sched.step(epoch + batch / 4)
            tsched.step(epoch + batch / 4)
            assert sched.get_last_lr() == tsched.get_last_lr()
            assert (sched.T_i, sched.T_cur) == (tsched.T_i, tsched.T_cur)


def test_cyclic_lr_custom_scale_fn_and_state_dict():
    class Halving:
        def __init__(self):
            self.base = 0.5

        def __call__(self, x):
            return self.base**x

    for kind in ("SGD", "Adam"):
        opt, topt = _pair(kind)
        fn, tfn = Halving(), Halving()
        kw = dict(base_lr=0.01, max_lr=0.1, step_size_up=4, scale_fn=None, scale_mode="iterations")
        sched, tsched = S.CyclicLR(opt, **dict(kw, scale_fn=fn)), TS.CyclicLR(topt, **dict(kw, scale_fn=tfn))
        for _ in range(30):
            opt.step(), topt.step(), sched.step(), tsched.step()
            assert sched.get_last_lr() == tsched.get_last_lr()
        fn.base = 0.9
        saved = sched.state_dict()
        assert saved["_scale_fn_custom"] == {"base": 0.9}
        fn.base = 0.1
        sched.load_state_dict(saved)
        assert fn.base == 0.9


def test_cycle_momentum_requires_momentum_or_betas():
    opt = nx.optim.Adagrad([nx.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.CyclicLR(opt, base_lr=0.01, max_lr=0.1)
    S.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)


def test_one_cycle_over_its_total_steps_raises():
    opt, _ = _pair()
    sched = S.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="total steps is 3"):
        sched.step()


@pytest.mark.parametrize("call, match", [
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), "Factor should be < 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="up"), "mode up is unknown"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), "threshold mode pct is unknown"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), "expected 2 min_lrs"),
    (lambda o: S.ConstantLR(o, factor=2.0), "between 0 and 1"),
    (lambda o: S.LinearLR(o, start_factor=0.0), "greater than 0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), "positive integer T_0"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1), "total_steps OR"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1), "pct_start"),
    (lambda o: S.OneCycleLR(o, max_lr=[0.1], total_steps=10), "same length as optimizer.param_groups"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], milestones=[3]), "one more scheduler than milestones"),
    (lambda o: S.SequentialLR(o, [S.ReduceLROnPlateau(o)], milestones=[]), "does not support `ReduceLROnPlateau`"),
    (lambda o: S.ChainedScheduler([]), "at least one scheduler"),
])
def test_bad_scheduler_arguments_raise_value_error(call, match):
    opt, _ = _pair()
    with pytest.raises(ValueError, match=match):
        call(opt)


def test_schedulers_need_an_nx_optimizer():
    _, topt = _pair()
    with pytest.raises(TypeError, match="not an nx.optim.Optimizer"):
        S.StepLR(topt, step_size=2)


def test_plateau_min_lr_per_group_and_cooldown():
    opt, topt = _pair()
    kw = dict(patience=1, cooldown=2, factor=0.5, min_lr=[0.02, 0.001], threshold_mode="abs", threshold=0.01)
    sched, tsched = S.ReduceLROnPlateau(opt, **kw), TS.ReduceLROnPlateau(topt, **kw)
    for loss in [1.0, 0.9, 0.9, 0.9, 0.895, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9]:
        opt.step(), topt.step()
        sched.step(torch.tensor(loss, dtype=torch.float64))  # a 0-d tensor metric, as torch accepts
        tsched.step(loss)
        assert _lrs(opt) == _lrs(topt)
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == (
            tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter)
    assert _lrs(opt)[0] == 0.02


# ----- a training loop: optimizer + scheduler on a tiny model, neuronix vs torch ----------------------------
def test_training_loop_with_scheduler_matches_torch():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=gen, dtype=torch.float64), torch.randn(32, 1, generator=gen, dtype=torch.float64)
    w1, w2 = torch.randn(4, 8, generator=gen, dtype=torch.float64), torch.randn(8, 1, generator=gen, dtype=torch.float64)
    nx_w = [nx.nn.Parameter(w1.clone()), nx.nn.Parameter(w2.clone())]
    t_w = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    opt = nx.optim.AdamW(nx_w, lr=0.05, weight_decay=0.01)
    topt = torch.optim.AdamW(t_w, lr=0.05, weight_decay=0.01, foreach=False)
    sched = S.OneCycleLR(opt, max_lr=0.05, total_steps=40)
    tsched = TS.OneCycleLR(topt, max_lr=0.05, total_steps=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(40):
            opt.zero_grad()
            loss = (((nx.Tensor(x) @ nx_w[0]).tanh() @ nx_w[1] - nx.Tensor(y)) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
            topt.zero_grad()
            tloss = (((x @ t_w[0]).tanh() @ t_w[1] - y) ** 2).mean()
            tloss.backward()
            topt.step()
            tsched.step()
            assert sched.get_last_lr() == tsched.get_last_lr()
            assert opt.param_groups[0]["betas"] == topt.param_groups[0]["betas"]
    for p, t in zip(nx_w, t_w):
        torch.testing.assert_close(p.data, t.detach(), rtol=1e-7, atol=1e-12)
    assert float(loss) < 0.5 * float((((x @ w1).tanh() @ w2 - y) ** 2).mean())


def test_a_user_optimizer_with_its_own_step_works_with_schedulers():
    class SignSGD(nx.optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.data.add_(p.grad.data.sign(), alpha=-group["lr"])

    w = nx.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = SignSGD([w], lr=0.5)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            w.grad = nx.Tensor(torch.tensor([1.0, -1.0]))
            opt.step()
            sched.step()
    assert w.data.tolist() == [0.25, -0.25] and sched.get_last_lr() == [0.125]
