"""nx.optim: bad input, param groups, zero_grad, closures, checkpoints, and the conformance driver itself."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuronix as nx
from conformance.closeness import measure
from conformance.kinds.optim import compare_optimizer
from conformance.mirror import REGISTRY
from conformance.mirrors import optim as optim_specs  # noqa: F401  (registers the mirrors)
from conformance.tolerances import Tolerance

OPTIMIZERS = {
    "SGD": (nx.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "Momentum": (nx.optim.Momentum, dict(lr=0.1)),
    "Nesterov": (nx.optim.Nesterov, dict(lr=0.1)),
    "Adam": (nx.optim.Adam, dict(lr=0.01, amsgrad=True)),
    "AdamW": (nx.optim.AdamW, dict(lr=0.01)),
    "RMSprop": (nx.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    "Adagrad": (nx.optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    "Lion": (nx.optim.Lion, dict(lr=1e-3, weight_decay=0.1)),
}


def _params(seed: int = 0, shapes=((3, 2), (2,))) -> list[nx.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nx.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]


def _set_grads(params, step: int) -> None:
    gen = torch.Generator().manual_seed(1000 + step)
    for p in params:
        p.grad = nx.Tensor(torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.5 * p.data)


# ----- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs, match", [
    (nx.optim.SGD, dict(lr=-0.1), "Invalid learning rate"),
    (nx.optim.Adam, dict(lr=-1e-3), "Invalid learning rate"),
    (nx.optim.Lion, dict(lr=-1e-4), "Invalid learning rate"),
    (nx.optim.Adam, dict(betas=(1.0, 0.999)), "beta parameter at index 0"),
    (nx.optim.AdamW, dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
    (nx.optim.Lion, dict(betas=(0.9, 1.5)), "beta parameter at index 1"),
    (nx.optim.Adam, dict(eps=-1e-8), "Invalid epsilon"),
    (nx.optim.RMSprop, dict(eps=-1.0), "Invalid epsilon"),
    (nx.optim.Adagrad, dict(eps=-1.0), "Invalid epsilon"),
    (nx.optim.SGD, dict(momentum=-0.5), "Invalid momentum"),
    (nx.optim.SGD, dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (nx.optim.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
    (nx.optim.Nesterov, dict(momentum=0.0), "Nesterov momentum requires"),
    (nx.optim.Nesterov, dict(dampening=0.5), "Nesterov momentum requires"),
    (nx.optim.Adagrad, dict(lr_decay=-1.0), "Invalid lr_decay"),
    (nx.optim.AdamW, dict(weight_decay=-1.0), "Invalid weight_decay"),
])
def test_invalid_hyper_parameters_raise_value_error(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(_params(), **kwargs)


def test_invalid_hyper_parameter_of_a_group_raises():
    with pytest.raises(ValueError, match="Invalid learning rate"):
        nx.optim.SGD([{"params": _params(), "lr": -1.0}], lr=0.1)


def test_empty_parameter_list_raises():
    with pytest.raises(ValueError, match="empty parameter list"):
        nx.optim.Adam([])
    with pytest.raises(ValueError, match="empty parameter list"):
        nx.optim.SGD(p for p in [])


def test_non_leaf_parameter_raises():
    w = nx.nn.Parameter(torch.randn(3))
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        nx.optim.SGD([w * 2], lr=0.1)


def test_duplicate_parameters_raise():
    w, v = _params()
    with pytest.raises(ValueError, match="more than one parameter group"):
        nx.optim.SGD([{"params": [w]}, {"params": [w, v]}], lr=0.1)
    with pytest.raises(ValueError, match="same parameter twice"):
        nx.optim.SGD([w, w], lr=0.1)
    opt = nx.optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": w})


def test_wrong_parameter_types_raise_type_error():
    with pytest.raises(TypeError, match="wrap it in a list"):
        nx.optim.SGD(nx.nn.Parameter(torch.randn(3)), lr=0.1)
    with pytest.raises(TypeError, match="nx.Tensor parameters"):
        nx.optim.SGD([torch.randn(3)], lr=0.1)
    with pytest.raises(TypeError, match="ordered collection"):
        nx.optim.SGD({nx.nn.Parameter(torch.randn(3))}, lr=0.1)


def test_defaults_of_the_original_project_names_are_valid():
    momentum, nesterov = nx.optim.Momentum(_params()), nx.optim.Nesterov(_params())
    assert momentum.param_groups[0]["momentum"] == 0.9 and not momentum.param_groups[0]["nesterov"]
    assert nesterov.param_groups[0]["momentum"] == 0.9 and nesterov.param_groups[0]["nesterov"]
    assert nx.optim.Lion(_params()).param_groups[0]["betas"] == (0.9, 0.99)


# ----- param groups, zero_grad, closure --------------------------------------------------------------
def test_param_groups_fill_defaults_and_keep_their_own_settings():
    a, b = _params()
    opt = nx.optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    a0, b0 = a.data.clone(), b.data.clone()
    a.grad, b.grad = nx.ones_like(a), nx.ones_like(b)
    opt.step()
    torch.testing.assert_close(a.data, a0 - 0.1)
    torch.testing.assert_close(b.data, b0 - 0.5)


def test_add_param_group_later_is_optimized():
    a, b = _params()
    opt = nx.optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.2})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    b0 = b.data.clone()
    b.grad = nx.ones_like(b)
    opt.step()
    assert a.data is not None and not torch.equal(b.data, b0)
    assert opt.state[a] == {}  # a had no gradient: untouched, no state


def test_parameters_from_a_generator():
    params = _params()
    opt = nx.optim.SGD((p for p in params), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2


def test_zero_grad_set_to_none_and_in_place():
    params = _params()
    opt = nx.optim.SGD(params, lr=0.1)
    _set_grads(params, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    _set_grads(params, 0)
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.data.any() and g.grad_fn is None for p, g in zip(params, grads))


def test_step_with_a_closure_records_a_graph_even_under_no_grad():
    w = nx.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = nx.optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with nx.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 5.0
    torch.testing.assert_close(w.data, torch.tensor([0.8, -1.6], dtype=torch.float64))
    assert opt.step() is None


def test_parameters_without_gradient_are_skipped():
    a, b = _params()
    opt = nx.optim.Adam([a, b], lr=0.1)
    b0 = b.data.clone()
    a.grad = nx.ones_like(a)
    opt.step()
    assert torch.equal(b.data, b0) and b not in opt.state


def test_step_works_without_torch_autograd():
    params = _params()
    opt = nx.optim.Adam(params, lr=0.1)
    _set_grads(params, 0)
    with torch.no_grad():
        opt.step()
    assert not any(p.data.requires_grad for p in params)


# ----- checkpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_resume_equals_uninterrupted(name):
    cls, kwargs = OPTIMIZERS[name]
    straight, resumed = _params(), _params()
    groups = lambda ps: [{"params": ps[:1]}, {"params": ps[1:], "lr": kwargs["lr"] / 2}]
    opt_a, opt_b = cls(groups(straight), **kwargs), cls(groups(resumed), **kwargs)
    for step in range(12):
        if step == 6:
            saved = copy.deepcopy(opt_b.state_dict())
            opt_b = cls(groups(resumed), **kwargs)
            opt_b.load_state_dict(saved)
        _set_grads(straight, step)
        _set_grads(resumed, step)
        opt_a.step()
        opt_b.step()
    for a, b in zip(straight, resumed):
        assert torch.equal(a.data, b.data)
    assert opt_b.param_groups[1]["lr"] == kwargs["lr"] / 2


def test_state_dict_layout_matches_torch():
    params = _params()
    tparams = [p.data.clone().requires_grad_() for p in params]
    opt = nx.optim.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
    topt = torch.optim.Adam([{"params": tparams[:1]}, {"params": tparams[1:]}], lr=0.1, foreach=False)
    _set_grads(params, 0)
    for p, t in zip(params, tparams):
        t.grad = p.grad.data.clone()
    opt.step()
    topt.step()
    mine, theirs = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in mine["param_groups"]] == [g["params"] for g in theirs["param_groups"]] == [[0], [1]]
    assert mine["state"].keys() == theirs["state"].keys()
    for i in mine["state"]:
        assert mine["state"][i].keys() == theirs["state"][i].keys()
        for key, value in mine["state"][i].items():
            assert value.dtype == theirs["state"][i][key].dtype and torch.equal(value, theirs["state"][i][key])


def test_a_torch_state_dict_loads_into_neuronix():
    params = _params()
    tparams = [p.data.clone().requires_grad_() for p in params]
    topt = torch.optim.RMSprop(tparams, lr=0.01, momentum=0.9, foreach=False)
    opt = nx.optim.RMSprop(params, lr=0.01, momentum=0.9)
    for step in range(3):
        _set_grads(params, step)
        for p, t in zip(params, tparams):
            t.grad = p.grad.data.clone()
        topt.step()
        if step < 2:
            opt.step()
        else:
            opt.load_state_dict(topt.state_dict())
            for p, t in zip(params, tparams):
                p.data.copy_(t.detach())
    for step in range(3, 6):
        _set_grads(params, step)
        for p, t in zip(params, tparams):
            t.grad = p.grad.data.clone()
        topt.step()
        opt.step()
    for p, t in zip(params, tparams):
        assert torch.equal(p.data, t.detach())


def test_load_state_dict_checks_the_groups():
    opt = nx.optim.SGD(_params(), lr=0.1)
    other = nx.optim.SGD([{"params": _params()[:1]}, {"params": _params()[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(other.state_dict())
    small = nx.optim.SGD(_params()[:1], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(small.state_dict())


def test_loaded_state_is_a_private_copy_on_the_parameter_dtype():
    params = _params()
    opt = nx.optim.Adam(params, lr=0.1)
    _set_grads(params, 0)
    opt.step()
    saved = opt.state_dict()
    fresh_params = [nx.nn.Parameter(p.data.float()) for p in params]
    fresh = nx.optim.Adam(fresh_params, lr=0.1)
    fresh.load_state_dict(saved)
    state = fresh.state[fresh_params[0]]
    assert state["exp_avg"].dtype == torch.float32 and state["step"].dtype == saved["state"][0]["step"].dtype
    state["step"] += 1
    assert float(saved["state"][0]["step"]) == 1.0


# ----- a tiny model trained with neuronix and with torch ------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Nesterov", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_training_loop_matches_torch(name):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 3, generator=gen, dtype=torch.float64), torch.randn(16, 1, generator=gen, dtype=torch.float64)
    w1, w2 = torch.randn(3, 8, generator=gen, dtype=torch.float64), torch.randn(8, 1, generator=gen, dtype=torch.float64)
    cls, kwargs = OPTIMIZERS[name]
    torch_kwargs = dict(kwargs, momentum=0.9) if name == "Nesterov" else dict(kwargs)
    if name == "Nesterov":
        torch_kwargs["nesterov"] = True
    nx_w = [nx.nn.Parameter(w1.clone()), nx.nn.Parameter(w2.clone())]
    t_w = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    opt = cls(nx_w, **kwargs)
    topt = getattr(torch.optim, "SGD" if name == "Nesterov" else name)(t_w, **torch_kwargs, foreach=False)
    for _ in range(20):
        opt.zero_grad()
        loss = (((nx.Tensor(x) @ nx_w[0]).tanh() @ nx_w[1] - nx.Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = (((x @ t_w[0]).tanh() @ t_w[1] - y) ** 2).mean()
        tloss.backward()
        topt.step()
        torch.testing.assert_close(loss.data, tloss.detach(), rtol=1e-7, atol=1e-12)
    for p, t in zip(nx_w, t_w):
        torch.testing.assert_close(p.data, t.detach(), rtol=1e-7, atol=1e-12)


# ----- the conformance driver ----------------------------------------------------------------------
def _run_driver(mirror, data, dtype) -> int:
    tol = Tolerance(1e-6, 1e-6, "test") if dtype == torch.float32 else Tolerance(1e-7, 1e-12, "test")
    n = 0
    for c in compare_optimizer(mirror, data.draw, dtype, torch.device("cpu")):
        m = measure(c.actual, c.expected, tol)
        assert m.ok, f"{mirror.name} {dtype} {c.what}: {m.problem} max abs {m.max_abs:.3g}"
        n += 1
    return n


OPTIMIZER_MIRRORS = sorted(n for n, m in REGISTRY.items() if m.kind == "optimizer")


@pytest.mark.parametrize("name", OPTIMIZER_MIRRORS)
@settings(max_examples=3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_driver_trajectories_match(name, data):
    mirror = REGISTRY[name]
    if name == "optim.Lion":
        pytest.importorskip("lion_pytorch")
    for dtype in mirror.dtypes:
        assert _run_driver(mirror, data, dtype) >= 2 * mirror.steps


def test_optimizer_mirrors_cover_every_optimizer():
    names = {n.removeprefix("optim.") for n in OPTIMIZER_MIRRORS}
    assert set(nx.optim.__all__) - {"Optimizer", "lr_scheduler", "swa_utils"} <= names
    assert all(REGISTRY[f"optim.{n}"].steps >= 50 for n in names if "[" not in n)


class _AdamIgnoringEps(nx.optim.Adam):
    """A planted mistake: the group's eps is ignored."""

    def _update(self, param, grad, state, group):
        super()._update(param, grad, state, dict(group, eps=0.0))


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_driver_catches_a_wrong_update(data):
    mirror = copy.copy(REGISTRY["optim.Adam"])
    mirror.nx = _AdamIgnoringEps
    mirror.hyper = lambda draw: [dict(lr=0.01, eps=0.1), dict(lr=0.02, eps=0.1)]
    with pytest.raises(AssertionError, match="optim.Adam"):
        _run_driver(mirror, data, torch.float64)


@settings(max_examples=3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_driver_catches_a_lossy_checkpoint(data):
    class ForgetsSteps(nx.optim.Adam):
        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            for state in self.state.values():
                state["step"].zero_()

    mirror = copy.copy(REGISTRY["optim.Adam"])
    mirror.nx = ForgetsSteps
    with pytest.raises(AssertionError, match="optim.Adam"):
        _run_driver(mirror, data, torch.float64)
