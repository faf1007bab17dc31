"""Issue 14's optimizers, implementation flags, LBFGS, SparseAdam and swa_utils, against the installed torch."""

from __future__ import annotations

import copy
import inspect
import warnings

import pytest
import torch

import neuronix as nx

# (constructor kwargs) per optimizer: two settings each, the second exercising the less common options
NEW = {
    "Adadelta": [dict(), dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.05, maximize=True)],
    "Adamax": [dict(), dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.05, maximize=True)],
    "NAdam": [dict(), dict(lr=0.01, momentum_decay=0.1, weight_decay=0.05, decoupled_weight_decay=True, maximize=True)],
    "RAdam": [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.05, decoupled_weight_decay=True)],
    "ASGD": [dict(lr=0.05, t0=3.0), dict(lr=0.05, lambd=0.01, alpha=0.5, t0=0.0, weight_decay=0.05, maximize=True)],
    "Rprop": [dict(), dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True)],
    "Adafactor": [dict(), dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=1.5, weight_decay=0.05, maximize=True)],
}
SHAPES = ((), (3,), (4, 3), (2, 3, 2))


def _pair(name: str, kwargs: dict, dtype=torch.float64, shapes=SHAPES, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    nx_params = [nx.nn.Parameter(t.clone()) for t in init]
    torch_params = [t.clone().requires_grad_() for t in init]
    torch_cls = getattr(torch.optim, name)
    # torch's single-tensor path (the reference arithmetic) where it has a choice
    single = {"foreach": False} if "foreach" in inspect.signature(torch_cls.__init__).parameters else {}
    return (nx_params, getattr(nx.optim, name)(nx_params, **kwargs), torch_params, torch_cls(torch_params, **kwargs, **single))


def _grads(nx_params, torch_params, step: int, transform=lambda g: g) -> None:
    gen = torch.Generator().manual_seed(1000 + step)
    for i, (p, tp) in enumerate(zip(nx_params, torch_params)):
        if (step + i) % 5 == 4:  # now and then no gradient: the parameter must stay put
            p.grad, tp.grad = None, None
            continue
        g = transform(torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.5 * tp.detach())
        p.grad, tp.grad = nx.Tensor(g.clone()), g.clone()


def _same_state(nx_opt, torch_opt, nx_params, torch_params, exact: bool) -> None:
    for p, tp in zip(nx_params, torch_params):
        ours, theirs = nx_opt.state.get(p, {}), torch_opt.state.get(tp, {})
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            a, b = ours[key], theirs[key]
            if isinstance(b, torch.Tensor):
                assert a.dtype == b.dtype and a.device == b.device, key
                if exact:
                    assert torch.equal(a, b), key
                else:
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            else:
                assert a == b, key


@pytest.mark.parametrize("name", sorted(NEW))
@pytest.mark.parametrize("setting", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trajectory_and_state_match_torch(name, setting, dtype):
    nx_params, nx_opt, torch_params, torch_opt = _pair(name, NEW[name][setting], dtype)
    for step in range(30):
        _grads(nx_params, torch_params, step)
        nx_opt.step()
        torch_opt.step()
        for p, tp in zip(nx_params, torch_params):
            # the same kernels in the same order: bit for bit
            assert torch.equal(p.data, tp.detach()), f"{name} step {step}"
        _same_state(nx_opt, torch_opt, nx_params, torch_params, exact=True)


@pytest.mark.parametrize("name", sorted(NEW) + ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_state_dict_moves_between_torch_and_neuronix(name):
    kwargs = NEW.get(name, [dict(lr=0.01)])[-1] if name in NEW else dict(lr=0.01)
    nx_params, nx_opt, torch_params, torch_opt = _pair(name, kwargs)
    for step in range(5):
        _grads(nx_params, torch_params, step)
        nx_opt.step()
        torch_opt.step()
    saved_nx, saved_torch = copy.deepcopy(nx_opt.state_dict()), copy.deepcopy(torch_opt.state_dict())
    assert [sorted(g) for g in saved_nx["param_groups"]] == [sorted(g) for g in saved_torch["param_groups"]]
    _, nx_fresh, _, torch_fresh = _pair(name, kwargs)
    nx_fresh.param_groups[0]["params"][:] = nx_params  # continue on the same parameters
    torch_fresh.param_groups[0]["params"][:] = torch_params
    nx_fresh.load_state_dict(saved_torch)
    torch_fresh.load_state_dict(saved_nx)
    for step in range(5, 10):
        _grads(nx_params, torch_params, step)
        nx_fresh.step()
        torch_fresh.step()
    for p, tp in zip(nx_params, torch_params):
        torch.testing.assert_close(p.data, tp.detach(), rtol=0, atol=0)


# ----- signatures and implementation flags --------------------------------------------------
TORCH_NAMED = ["ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Muon", "NAdam", "RAdam",
               "RMSprop", "Rprop", "SGD", "SparseAdam"]


@pytest.mark.parametrize("name", TORCH_NAMED)
def test_signature_and_defaults_are_torchs(name):
    ours = dict(inspect.signature(getattr(nx.optim, name).__init__).parameters)
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    if name == "LBFGS" and "maximize" not in theirs:  # torch 2.13: ours refuses it (test_lbfgs_maximize_follows_...)
        del ours["maximize"]
    assert list(ours) == list(theirs)
    for key, param in theirs.items():
        assert ours[key].kind == param.kind, key
        if key != "maximize" or name != "LBFGS":  # LBFGS: None means "as the installed torch allows"
            assert ours[key].default == param.default, key


@pytest.mark.parametrize("name", TORCH_NAMED)
def test_param_group_keys_are_torchs(name):
    nx_opt = getattr(nx.optim, name)([nx.nn.Parameter(torch.zeros(2, 2))])  # 2-D: Muon takes only matrices
    torch_opt = getattr(torch.optim, name)([torch.zeros(2, 2, requires_grad=True)])
    assert sorted(nx_opt.param_groups[0]) == sorted(torch_opt.param_groups[0])
    assert {k: v for k, v in nx_opt.defaults.items()} == {k: v for k, v in torch_opt.defaults.items()}


def _outcome(make):
    """("ok", None) or (exception type name, message) of building and stepping once."""
    try:
        make()
    except Exception as e:  # noqa: BLE001  (comparing whatever torch raises)
        return type(e).__name__, str(e)
    return "ok", None


def _build_and_step(lib: str, name: str, flags: dict, dtype=torch.float32):
    if lib == "nx":
        p = nx.nn.Parameter(torch.ones(2, 2, dtype=dtype))
        opt = getattr(nx.optim, name)([p], **flags)
        p.grad = nx.Tensor(torch.ones(2, 2, dtype=dtype))
    else:
        p = torch.ones(2, 2, dtype=dtype, requires_grad=True)
        opt = getattr(torch.optim, name)([p], **flags)
        p.grad = torch.ones(2, 2, dtype=dtype)
    opt.step(lambda: (p * p).sum()) if name == "LBFGS" else opt.step()
    return opt


FLAG_SETS = [dict(foreach=True), dict(foreach=False), dict(fused=True), dict(fused=False), dict(fused=True, foreach=True),
             dict(capturable=True), dict(differentiable=False)]


@pytest.mark.parametrize("name", TORCH_NAMED)
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_flags_accepted_or_refused_as_torch(name, flags):
    # (SparseAdam, and LBFGS, take none of these: a TypeError in both libraries)
    ours = _outcome(lambda: _build_and_step("nx", name, flags))
    theirs = _outcome(lambda: _build_and_step("torch", name, flags))
    assert ours[0] == theirs[0], (ours, theirs)
    if theirs[0] in ("RuntimeError",) and "fused" in str(theirs[1]):
        assert ours[1] == theirs[1]


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "SGD"])
def test_fused_is_accepted_and_places_step_as_torch(name):
    nx_opt, torch_opt = _build_and_step("nx", name, dict(fused=True)), _build_and_step("torch", name, dict(fused=True))
    nx_p, torch_p = nx_opt.param_groups[0]["params"][0], torch_opt.param_groups[0]["params"][0]
    torch.testing.assert_close(nx_p.data, torch_p.detach())  # fused kernels round slightly differently: close, not equal
    if "step" in torch_opt.state[torch_p]:
        step = nx_opt.state[nx_p]["step"]
        assert (step.dtype, step.device) == (torch.float32, torch_opt.state[torch_p]["step"].device)


@pytest.mark.parametrize("name", ["Adam", "NAdam", "Rprop", "ASGD", "SGD", "RMSprop"])
def test_differentiable_true_says_not_supported(name):
    with pytest.raises(NotImplementedError, match="differentiable=True is not supported"):
        getattr(nx.optim, name)([nx.nn.Parameter(torch.zeros(2))], differentiable=True)


def test_fused_with_integer_params_is_refused_as_torch():
    # integer tensors cannot require grad (in either library), but a leaf with a .grad set by hand can be optimized
    for p, wrap in ((nx.Tensor(torch.ones(2, dtype=torch.int64)), nx.Tensor), (torch.ones(2, dtype=torch.int64), lambda t: t)):
        p.grad = wrap(torch.ones(2, dtype=torch.int64))
        opt = (nx.optim if isinstance(p, nx.Tensor) else torch.optim).Adam([p], fused=True)
        with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point"):
            opt.step()


@pytest.mark.parametrize("name", ["Adam", "NAdam", "RAdam", "Adadelta", "Rprop", "Adamax", "ASGD", "Adafactor", "RMSprop"])
def test_sparse_gradients_refused_by_dense_optimizers(name):
    p = nx.nn.Parameter(torch.zeros(3, 2))
    p.grad = nx.Tensor(torch.ones(3, 2).to_sparse())
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        getattr(nx.optim, name)([p]).step()


@pytest.mark.parametrize("name, kwargs, match", [
    ("Adadelta", dict(rho=1.5), "Invalid rho"),
    ("Adadelta", dict(lr=-1.0), "Invalid learning rate"),
    ("Adamax", dict(betas=(1.0, 0.9)), "beta parameter at index 0"),
    ("NAdam", dict(momentum_decay=-1.0), "Invalid momentum_decay"),
    ("RAdam", dict(eps=-1.0), "Invalid epsilon"),
    ("ASGD", dict(weight_decay=-1.0), "Invalid weight_decay"),
    ("Rprop", dict(etas=(1.2, 0.5)), "Invalid eta values"),
    ("SparseAdam", dict(lr=0.0), "Invalid learning rate"),
    ("SparseAdam", dict(eps=0.0), "Invalid epsilon"),
    ("Adafactor", dict(beta2_decay=0.5), "beta2_decay should be <= 0"),
    ("Adafactor", dict(d=0.5), "Clipping threshold d should be >= 1"),
    ("Adafactor", dict(eps=(-1.0, 1e-3)), "epsilon1 should be >= 0"),
])
def test_bad_hyper_parameters_raise_as_torch(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(nx.optim, name)([nx.nn.Parameter(torch.zeros(2))], **kwargs)
    with pytest.raises(ValueError):
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)


# ----- hostile values ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NEW))
@pytest.mark.parametrize("special", ["zero", "nan", "inf", "tiny"])
def test_special_gradients_as_torch(name, special):
    def transform(g):
        g = g.clone()
        if special == "zero":
            g[..., :1] = 0.0
        elif special == "nan":
            g.view(-1)[0] = float("nan")
        elif special == "inf":
            g.view(-1)[-1] = float("inf")
        else:
            g.mul_(1e-30)
        return g

    nx_params, nx_opt, torch_params, torch_opt = _pair(name, NEW[name][1], shapes=((3,), (2, 2)))
    for step in range(6):
        _grads(nx_params, torch_params, step, transform)
        nx_opt.step()
        torch_opt.step()
        for p, tp in zip(nx_params, torch_params):
            torch.testing.assert_close(p.data, tp.detach(), rtol=0, atol=0, equal_nan=True)


def test_radam_switches_to_rectified_steps_as_torch():
    # beta2=0.9: rho_inf = 19, so rho_t > 5 from step 6 on; both phases run
    nx_params, nx_opt, torch_params, torch_opt = _pair("RAdam", dict(lr=0.1, betas=(0.9, 0.9)))
    for step in range(12):
        _grads(nx_params, torch_params, step)
        nx_opt.step()
        torch_opt.step()
        assert all(torch.equal(p.data, tp.detach()) for p, tp in zip(nx_params, torch_params)), step


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=0.02, weight_decay=0.0, momentum=0.5, nesterov=False, ns_steps=3),
                                    dict(adjust_lr_fn="match_rms_adamw", eps=1e-3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_muon_matches_torch_on_matrices(kwargs, dtype):
    nx_params, nx_opt, torch_params, torch_opt = _pair("Muon", kwargs, dtype, shapes=((3, 5), (4, 2), (1, 3)))
    for step in range(10):
        _grads(nx_params, torch_params, step)
        nx_opt.step()
        torch_opt.step()
        for p, tp in zip(nx_params, torch_params):
            assert torch.equal(p.data, tp.detach())
        _same_state(nx_opt, torch_opt, nx_params, torch_params, exact=True)


def test_muon_refusals_as_torch():
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        nx.optim.Muon([nx.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="Adjust learning rate function nope is not supported"):
        nx.optim.Muon([nx.nn.Parameter(torch.zeros(2, 2))], adjust_lr_fn="nope")
    torch_knows = []
    for fn in ("original", "match_rms_adamw", "spectral_unclamped"):  # the installed torch decides (2.14 added the last)
        try:
            torch.optim.Muon([torch.zeros(2, 2, requires_grad=True)], adjust_lr_fn=fn)
            torch_knows.append(fn)
        except ValueError:
            pass
    assert list(nx.optim.muon.ADJUST_LR_FNS) == torch_knows


# ----- SparseAdam ---------------------------------------------------------------------------------
def _row_sparse(g: torch.Tensor) -> torch.Tensor:
    return g.masked_fill(g.abs() < 0.5, 0).to_sparse(1)


def test_sparse_adam_matches_torch_on_row_sparse_gradients():
    nx_params, nx_opt, torch_params, torch_opt = _pair("SparseAdam", dict(lr=0.01), shapes=((6, 3), (5,)))
    for step in range(10):
        _grads(nx_params, torch_params, step, _row_sparse)
        nx_opt.step()
        torch_opt.step()
        for p, tp in zip(nx_params, torch_params):
            assert torch.equal(p.data, tp.detach())
        _same_state(nx_opt, torch_opt, nx_params, torch_params, exact=True)
        assert isinstance(nx_opt.state[nx_params[0]]["step"], int)


@pytest.mark.parametrize("name, kwargs", [("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
                                          ("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1))])
def test_sparse_gradients_in_adagrad_and_sgd_as_torch(name, kwargs):
    nx_params, nx_opt, torch_params, torch_opt = _pair(name, kwargs, shapes=((6, 3),))
    for step in range(6):
        _grads(nx_params, torch_params, step, _row_sparse)
        nx_opt.step()
        torch_opt.step()
        assert torch.equal(nx_params[0].data, torch_params[0].detach())


def test_adagrad_sparse_gradients_refuse_weight_decay_as_torch():
    p = nx.nn.Parameter(torch.zeros(3, 2))
    p.grad = nx.Tensor(torch.ones(3, 2).to_sparse(1))
    with pytest.raises(RuntimeError, match="weight_decay option is not compatible with sparse gradients"):
        nx.optim.Adagrad([p], weight_decay=0.1).step()


def test_sparse_adam_refuses_dense_gradients_as_torch():
    p = nx.nn.Parameter(torch.zeros(3))
    p.grad = nx.Tensor(torch.ones(3))
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients, please consider Adam instead"):
        nx.optim.SparseAdam([p]).step()
    with pytest.raises(ValueError, match="Complex params at indices"):
        nx.optim.SparseAdam([nx.Tensor(torch.zeros(3, dtype=torch.complex64))])


def test_sparse_adam_skips_empty_gradients_but_counts_the_step():
    p, tp = nx.nn.Parameter(torch.ones(3, 2)), torch.ones(3, 2, requires_grad=True)
    nx_opt, torch_opt = nx.optim.SparseAdam([p]), torch.optim.SparseAdam([tp])
    empty = torch.zeros(3, 2).to_sparse(1)
    p.grad, tp.grad = nx.Tensor(empty), empty.clone()
    nx_opt.step()
    torch_opt.step()
    assert torch.equal(p.data, tp.detach()) and nx_opt.state[p]["step"] == torch_opt.state[tp]["step"] == 1


# ----- LBFGS ------------------------------------------------------------------------------------------
def _regression(lib: str, seed: int = 0):
    """A small MLP regression with the same weights and data in both libraries; returns (params, closure maker)."""
    torch.manual_seed(seed)
    t_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    if lib == "torch":
        model, xs, ys, mse = t_model, x, y, torch.nn.functional.mse_loss
    else:
        model = nx.nn.Sequential(nx.nn.Linear(3, 4), nx.nn.Tanh(), nx.nn.Linear(4, 1)).double()
        model.load_state_dict(t_model.state_dict())
        xs, ys, mse = nx.Tensor(x), nx.Tensor(y), nx.nn.functional.mse_loss
    params = list(model.parameters())

    def closure_for(opt):
        def closure():
            opt.zero_grad()
            loss = mse(model(xs), ys)
            loss.backward()
            return loss

        return closure

    return params, closure_for


@pytest.mark.parametrize("kwargs", [dict(), dict(line_search_fn="strong_wolfe"), dict(history_size=3, max_iter=5, lr=0.5),
                                    dict(line_search_fn="strong_wolfe", max_eval=4, tolerance_change=1e-5)],
                         ids=["plain", "strong_wolfe", "short_history", "wolfe_few_evals"])
def test_lbfgs_trains_as_torch(kwargs):
    nx_params, nx_closure = _regression("nx")
    torch_params, torch_closure = _regression("torch")
    nx_opt, torch_opt = nx.optim.LBFGS(nx_params, **kwargs), torch.optim.LBFGS(torch_params, **kwargs)
    for _ in range(4):
        nx_loss = nx_opt.step(nx_closure(nx_opt))
        torch_loss = torch_opt.step(torch_closure(torch_opt))
        torch.testing.assert_close(nx_loss.data, torch_loss.detach(), rtol=1e-10, atol=1e-12)
        for p, tp in zip(nx_params, torch_params):
            torch.testing.assert_close(p.data, tp.detach(), rtol=1e-9, atol=1e-11)
    ours, theirs = nx_opt.state[nx_params[0]], torch_opt.state[torch_params[0]]
    assert sorted(ours) == sorted(theirs)
    assert ours["func_evals"] == theirs["func_evals"] and ours["n_iter"] == theirs["n_iter"]
    assert len(ours["old_dirs"]) == len(theirs["old_dirs"])
    assert sorted(nx_opt.state_dict()["state"]) == sorted(torch_opt.state_dict()["state"]) == [0]


def test_lbfgs_checkpoint_resumes_in_torch():
    nx_params, nx_closure = _regression("nx")
    torch_params, torch_closure = _regression("torch")
    nx_opt = nx.optim.LBFGS(nx_params, line_search_fn="strong_wolfe", max_iter=3)
    torch_opt = torch.optim.LBFGS(torch_params, line_search_fn="strong_wolfe", max_iter=3)
    for _ in range(2):
        nx_opt.step(nx_closure(nx_opt))
        torch_opt.step(torch_closure(torch_opt))
    resumed = torch.optim.LBFGS(torch_params, line_search_fn="strong_wolfe", max_iter=3)
    resumed.load_state_dict(copy.deepcopy(nx_opt.state_dict()))
    nx_opt.step(nx_closure(nx_opt))
    resumed.step(torch_closure(resumed))
    for p, tp in zip(nx_params, torch_params):
        torch.testing.assert_close(p.data, tp.detach(), rtol=1e-9, atol=1e-11)


def test_lbfgs_refusals():
    p = nx.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        nx.optim.LBFGS([{"params": [p]}, {"params": [nx.nn.Parameter(torch.ones(1))]}])
    opt = nx.optim.LBFGS([p], line_search_fn="backtracking")

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)
    with pytest.raises(TypeError):
        opt.step()  # the closure is required, as torch's


def test_lbfgs_stops_at_once_when_the_gradient_is_already_small():
    p = nx.nn.Parameter(torch.zeros(3))
    opt = nx.optim.LBFGS([p])
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert len(calls) == 1 and torch.equal(p.data, torch.zeros(3))
    assert sorted(opt.state[p]) == ["func_evals", "n_iter"]


def test_lbfgs_maximize_follows_the_installed_torch():
    has = "maximize" in inspect.signature(torch.optim.LBFGS.__init__).parameters
    p = nx.nn.Parameter(torch.ones(2))
    if not has:  # torch 2.13: no such option
        with pytest.raises(TypeError, match="maximize"):
            nx.optim.LBFGS([p], maximize=True)
        return
    tp = torch.ones(2, requires_grad=True)
    nx_opt, torch_opt = nx.optim.LBFGS([p], maximize=True, max_iter=3), torch.optim.LBFGS([tp], maximize=True, max_iter=3)

    def closure_of(opt, q):
        def closure():
            opt.zero_grad()
            loss = -((q - 3.0) ** 2).sum()
            loss.backward()
            return loss

        return closure

    nx_opt.step(closure_of(nx_opt, p))
    torch_opt.step(closure_of(torch_opt, tp))
    torch.testing.assert_close(p.data, tp.detach())


# ----- Adafactor specifics ---------------------------------------------------------------------------
def test_adafactor_factored_state_shapes_and_complex_refusal():
    p = nx.nn.Parameter(torch.randn(2, 3, 4))
    p.grad = nx.Tensor(torch.randn(2, 3, 4))
    opt = nx.optim.Adafactor([p])
    opt.step()
    assert opt.state[p]["row_var"].shape == (2, 3, 1) and opt.state[p]["col_var"].shape == (2, 1, 4)
    c = nx.Tensor(torch.zeros(2, dtype=torch.complex64))  # complex leaves cannot require grad in neuronix
    c.grad = nx.Tensor(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(RuntimeError, match="Adafactor does not support complex parameters"):
        nx.optim.Adafactor([c]).step()


# ----- swa_utils ---------------------------------------------------------------------------------------
def _bn_models(seed: int = 0):
    torch.manual_seed(seed)
    t_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    n_model = nx.nn.Sequential(nx.nn.Linear(3, 4), nx.nn.BatchNorm1d(4), nx.nn.ReLU(), nx.nn.Linear(4, 2))
    n_model.load_state_dict(t_model.state_dict())
    return n_model, t_model


def _perturb_and_run(n_model, t_model, step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for p, tp in zip(n_model.parameters(), t_model.parameters()):
            delta = torch.randn(tp.shape, generator=gen)
            p.data.add_(delta)
            tp.add_(delta)
    x = torch.randn(5, 3, generator=gen)
    n_model(nx.Tensor(x))
    t_model(x)


@pytest.mark.parametrize("how", ["default", "ema_multi", "swa_multi", "ema", "swa"])
@pytest.mark.parametrize("use_buffers", [False, True])
def test_averaged_model_matches_torch(how, use_buffers):
    n_model, t_model = _bn_models()

    def fns(swa):
        return {"default": {}, "ema_multi": {"multi_avg_fn": swa.get_ema_multi_avg_fn(0.9)},
                "swa_multi": {"multi_avg_fn": swa.get_swa_multi_avg_fn()}, "ema": {"avg_fn": swa.get_ema_avg_fn(0.8)},
                "swa": {"avg_fn": swa.get_swa_avg_fn()}}[how]

    n_avg = nx.optim.swa_utils.AveragedModel(n_model, use_buffers=use_buffers, **fns(nx.optim.swa_utils))
    t_avg = torch.optim.swa_utils.AveragedModel(t_model, use_buffers=use_buffers, **fns(torch.optim.swa_utils))
    if how == "swa_multi" and use_buffers:
        # the integer num_batches_tracked meets addcdiv's integer-division refusal, in torch as here
        for avg, model in ((n_avg, n_model), (t_avg, t_model)):
            avg.update_parameters(model)
            with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
                avg.update_parameters(model)
        return
    for step in range(4):
        _perturb_and_run(n_model, t_model, step)
        n_avg.update_parameters(n_model)
        t_avg.update_parameters(t_model)
    ours, theirs = n_avg.state_dict(), t_avg.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        torch.testing.assert_close(ours[key].data, theirs[key], rtol=1e-6, atol=1e-6)
    x = torch.randn(4, 3)
    n_avg.eval()
    t_avg.eval()
    torch.testing.assert_close(n_avg(nx.Tensor(x)).data, t_avg(x).detach(), rtol=1e-5, atol=1e-6)


def test_averaged_model_refuses_two_averaging_functions():
    swa = nx.optim.swa_utils
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        swa.AveragedModel(nx.nn.Linear(2, 2), avg_fn=swa.get_swa_avg_fn(), multi_avg_fn=swa.get_swa_multi_avg_fn())
    with pytest.raises(ValueError, match="Invalid decay value"):
        swa.get_ema_multi_avg_fn(1.5)


def test_update_bn_recomputes_statistics_as_torch():
    n_model, t_model = _bn_models()
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(6, 3, generator=gen) for _ in range(4)]
    n_model.eval()
    t_model.eval()
    nx.optim.swa_utils.update_bn([(nx.Tensor(b), 0) for b in batches], n_model)
    torch.optim.swa_utils.update_bn([(b, 0) for b in batches], t_model)
    assert not n_model.training  # the mode is restored
    bn, t_bn = n_model[1], t_model[1]
    assert bn.momentum == t_bn.momentum == 0.1
    torch.testing.assert_close(bn.running_mean.data, t_bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var.data, t_bn.running_var, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked.data) == int(t_bn.num_batches_tracked) == 4


@pytest.mark.parametrize("anneal_epochs, strategy", [(0, "cos"), (1, "linear"), (5, "cos"), (7, "linear")])
def test_swalr_lrs_and_state_dict_as_torch(anneal_epochs, strategy):
    p, tp = nx.nn.Parameter(torch.zeros(1)), torch.zeros(1, requires_grad=True)
    nx_opt = nx.optim.SGD([{"params": [p]}, {"params": [nx.nn.Parameter(torch.zeros(1))], "lr": 0.3}], lr=0.5)
    torch_opt = torch.optim.SGD([{"params": [tp]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3}], lr=0.5)
    nx_s = nx.optim.swa_utils.SWALR(nx_opt, swa_lr=[0.05, 0.01], anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    torch_s = torch.optim.swa_utils.SWALR(torch_opt, swa_lr=[0.05, 0.01], anneal_epochs=anneal_epochs,
                                          anneal_strategy=strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(12):
            assert nx_s.get_last_lr() == pytest.approx(torch_s.get_last_lr(), rel=1e-12), step
            nx_opt.step()
            torch_opt.step()
            nx_s.step()
            torch_s.step()
            if step == 5:  # resume each from the other's state_dict
                nx_state, torch_state = nx_s.state_dict(), torch_s.state_dict()
                nx_s.load_state_dict(copy.deepcopy(torch_state))
                torch_s.load_state_dict(copy.deepcopy(nx_state))
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):
        nx.optim.swa_utils.SWALR(nx_opt, 0.1, anneal_strategy="step")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        nx.optim.swa_utils.SWALR(nx_opt, 0.1, anneal_epochs=-1)


# ----- every scheduler's state_dict moves between torch and neuronix ----------------------------------
def _sched_optimizer(lib: str):
    params = [nx.nn.Parameter(torch.zeros(2)) for _ in range(2)] if lib == "nx" else [
        torch.zeros(2, requires_grad=True) for _ in range(2)]
    optim = nx.optim if lib == "nx" else torch.optim
    return optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.05}], lr=0.1, momentum=0.9)


def _schedulers(lib: str):
    return nx.optim.lr_scheduler if lib == "nx" else torch.optim.lr_scheduler


SCHEDULERS = {
    "LambdaLR": lambda L, o: L.LambdaLR(o, lambda e: 0.9**e),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, lambda e: 0.95),
    "StepLR": lambda L, o: L.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, [2, 5, 7], 0.5),
    "ConstantLR": lambda L, o: L.ConstantLR(o, 0.3, 4),
    "LinearLR": lambda L, o: L.LinearLR(o, 0.2, 1.0, 6),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, 8, 2.0),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, 5, 0.001),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 2, 0.001),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, 0.5, total_steps=30),
    "CyclicLR": lambda L, o: L.CyclicLR(o, 0.01, 0.5, step_size_up=4),
    "SequentialLR": lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.2, 1.0, 3), L.ExponentialLR(o, 0.9)], [3]),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler([L.StepLR(o, 3, 0.5), L.ExponentialLR(o, 0.95)], optimizer=o),
    "ReduceLROnPlateau": lambda L, o: L.ReduceLROnPlateau(o, patience=1),
}
METRICS = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.9, 0.91, 0.95, 0.99]


def test_every_torch_scheduler_is_here():
    torch_classes = {n for n, c in vars(torch.optim.lr_scheduler).items()
                     if inspect.isclass(c) and issubclass(c, torch.optim.lr_scheduler.LRScheduler) and not n.startswith("_")}
    torch_classes |= {"ReduceLROnPlateau"}  # not an LRScheduler subclass in every torch version
    assert torch_classes - {"LRScheduler"} <= set(SCHEDULERS) | {"SWALR"}
    assert all(hasattr(nx.optim.lr_scheduler, n) for n in torch_classes if n != "SWALR")


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("source, target", [("torch", "nx"), ("nx", "torch")])
def test_scheduler_state_dict_moves_between_libraries(name, source, target):
    make = SCHEDULERS[name]
    src_opt, dst_opt = _sched_optimizer(source), _sched_optimizer(target)
    src = make(_schedulers(source), src_opt)

    def advance(opt, sched, i):
        opt.step()
        sched.step(METRICS[i]) if name == "ReduceLROnPlateau" else sched.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(6):
            advance(src_opt, src, i)
        dst = make(_schedulers(target), dst_opt)
        dst_opt.load_state_dict(copy.deepcopy(src_opt.state_dict()))
        dst.load_state_dict(copy.deepcopy(src.state_dict()))
        for i in range(6, 12):
            advance(src_opt, src, i)
            advance(dst_opt, dst, i)
            assert [g["lr"] for g in dst_opt.param_groups] == pytest.approx([g["lr"] for g in src_opt.param_groups], rel=1e-12)


# ----- LBFGS on hostile losses: the same path through every branch as torch's -------------------------
HOSTILE_LOSSES = {
    "nan_grad": (dict(), lambda p: (p * p).sum() * float("nan")),
    "sqrt_kink_wolfe": (dict(line_search_fn="strong_wolfe"), lambda p: (p.abs() + 1e-12).sqrt().sum()),
    "max_iter_0": (dict(max_iter=0), lambda p: (p * p).sum()),
    "max_eval_1_wolfe": (dict(max_eval=1, line_search_fn="strong_wolfe"), lambda p: (p**4).sum()),
    "unbounded_wolfe": (dict(line_search_fn="strong_wolfe"), lambda p: p.sum()),
    "inf_loss": (dict(), lambda p: (p * p).sum() + float("inf")),
    "history_1_wolfe": (dict(line_search_fn="strong_wolfe", history_size=1), lambda p: (p**4).sum() + (p[0] - p[1]) ** 2),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LOSSES))
def test_lbfgs_hostile_losses_as_torch(case):
    kwargs, loss_of = HOSTILE_LOSSES[case]
    init = torch.tensor([1.0, -2.0, 0.5])
    runs = []
    for lib in ("nx", "torch"):
        p = nx.nn.Parameter(init.clone()) if lib == "nx" else init.clone().requires_grad_()
        opt = (nx.optim if lib == "nx" else torch.optim).LBFGS([p], **kwargs)

        def closure(p=p, opt=opt):
            opt.zero_grad()
            loss = loss_of(p)
            loss.backward()
            return loss

        losses = [float(opt.step(closure).detach()) for _ in range(3)]
        state = opt.state[p]
        runs.append((torch.tensor(losses), (p.data if lib == "nx" else p.detach()).clone(), state["n_iter"], state["func_evals"]))
    (nx_losses, nx_p, nx_iters, nx_evals), (t_losses, t_p, t_iters, t_evals) = runs
    torch.testing.assert_close(nx_losses, t_losses, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(nx_p, t_p, rtol=0, atol=0, equal_nan=True)
    assert (nx_iters, nx_evals) == (t_iters, t_evals)


# ----- named parameters ----------------------------------------------------------------------------------
def test_named_parameters_as_torch():
    torch.manual_seed(0)
    t_model = torch.nn.Linear(3, 2)
    n_model = nx.nn.Linear(3, 2)
    n_model.load_state_dict(t_model.state_dict())
    nx_opt = nx.optim.AdamW(n_model.named_parameters(), lr=0.1)
    torch_opt = torch.optim.AdamW(t_model.named_parameters(), lr=0.1)
    assert nx_opt.param_groups[0]["param_names"] == torch_opt.param_groups[0]["param_names"] == ["weight", "bias"]
    x = torch.randn(4, 3)
    n_model(nx.Tensor(x)).sum().backward()
    t_model(x).sum().backward()
    nx_opt.step()
    torch_opt.step()
    assert torch.equal(n_model.weight.data, t_model.weight.detach())
    saved = nx_opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == ["weight", "bias"]
    torch_opt.load_state_dict(copy.deepcopy(saved))  # names travel into torch's optimizer
    with pytest.raises(ValueError, match="all optimizer params should be with/without names"):
        nx.optim.SGD([("weight", n_model.weight), n_model.bias], lr=0.1)
    with pytest.raises(ValueError, match="cannot add param group without names to the optimizer"):
        nx_opt.add_param_group({"params": [nx.nn.Parameter(torch.zeros(1))]})
