"""Mirrors of the optimizers added for issue 14 and of ``optim.swa_utils``.

Each optimizer runs against torch's single-tensor implementation (``foreach=False``) in the
optimizer driver (conformance/kinds/optim.py): two param groups with their own drawn
hyper-parameters, the parameter and state trajectory, and a state_dict checkpoint half-way.
Special drivers: ``SparseAdam`` gets sparse gradients (the driver's dense ones with their small
entries dropped, the same in both libraries), ``LBFGS`` runs closures on a deterministic loss
(``ClosureOptimizerMirror``, one param group, as LBFGS allows).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import ModuleMirror, OptimizerMirror, Sample, SchedulerMirror, register
from conformance.mirrors.optim import _torch_optim, _two_groups, _zero_or
from conformance.strategies import tensor


def _betas(draw, beta2_low: float = 0.0) -> tuple[float, float]:
    return draw(st.floats(0.0, 0.99)), draw(st.floats(beta2_low, 0.999))


def _eps(draw, default: float = 1e-8) -> float:
    return draw(st.one_of(st.just(default), st.floats(1e-10, 1e-2)))


def _adadelta(draw) -> dict:
    return {"lr": draw(st.floats(0.05, 2.0)), "rho": draw(st.floats(0.0, 1.0)), "eps": _eps(draw, 1e-6),
            "weight_decay": _zero_or(draw, 1e-4, 0.1), "maximize": draw(st.booleans())}


def _adamax(draw) -> dict:
    return {"lr": draw(st.floats(1e-4, 0.1)), "betas": _betas(draw), "eps": _eps(draw),
            "weight_decay": _zero_or(draw, 1e-4, 0.1), "maximize": draw(st.booleans())}


def _nadam(draw) -> dict:
    return {"lr": draw(st.floats(1e-4, 0.1)), "betas": _betas(draw), "eps": _eps(draw),
            "weight_decay": _zero_or(draw, 1e-4, 0.1), "momentum_decay": _zero_or(draw, 1e-3, 0.5),
            "decoupled_weight_decay": draw(st.booleans()), "maximize": draw(st.booleans())}


def _radam(draw) -> dict:
    # beta2 from 0.5 up: rho_inf = 2 / (1 - beta2) - 1 then spans both sides of the rectification threshold 5,
    # so drawn runs switch from the momentum-only phase to the rectified one at different steps (or never)
    return {"lr": draw(st.floats(1e-4, 0.1)), "betas": _betas(draw, beta2_low=0.5), "eps": _eps(draw),
            "weight_decay": _zero_or(draw, 1e-4, 0.1), "decoupled_weight_decay": draw(st.booleans()),
            "maximize": draw(st.booleans())}


def _asgd(draw) -> dict:
    # t0 within the 50 steps (or torch's 1e6 default, never averaging) exercises both ax branches (mu == 1 and < 1)
    return {"lr": draw(st.floats(1e-3, 0.2)), "lambd": _zero_or(draw, 1e-5, 0.1), "alpha": draw(st.floats(0.0, 1.0)),
            "t0": draw(st.one_of(st.just(1e6), st.integers(0, 40).map(float))),
            "weight_decay": _zero_or(draw, 1e-4, 0.1), "maximize": draw(st.booleans())}


def _rprop(draw) -> dict:
    smallest = draw(st.floats(1e-7, 1e-3))
    return {"lr": draw(st.floats(1e-3, 0.2)), "etas": (draw(st.floats(0.1, 0.9)), draw(st.floats(1.05, 2.0))),
            "step_sizes": (smallest, draw(st.floats(0.05, 50.0))), "maximize": draw(st.booleans())}


def _adafactor(draw) -> dict:
    return {"lr": draw(st.floats(1e-3, 0.5)), "beta2_decay": draw(st.floats(-1.0, 0.0)),
            "eps": (draw(st.one_of(st.none(), st.floats(1e-30, 1e-3))), draw(st.floats(0.0, 1e-2))),
            "d": draw(st.floats(1.0, 3.0)), "weight_decay": _zero_or(draw, 1e-4, 0.1), "maximize": draw(st.booleans())}


register(
    OptimizerMirror("optim.Adadelta", nx.optim.Adadelta, _torch_optim("Adadelta"), _two_groups(_adadelta)),
    OptimizerMirror("optim.Adamax", nx.optim.Adamax, _torch_optim("Adamax"), _two_groups(_adamax)),
    OptimizerMirror("optim.NAdam", nx.optim.NAdam, _torch_optim("NAdam"), _two_groups(_nadam)),
    OptimizerMirror("optim.RAdam", nx.optim.RAdam, _torch_optim("RAdam"), _two_groups(_radam)),
    OptimizerMirror("optim.ASGD", nx.optim.ASGD, _torch_optim("ASGD"), _two_groups(_asgd)),
    OptimizerMirror("optim.Rprop", nx.optim.Rprop, _torch_optim("Rprop"), _two_groups(_rprop)),
)
if hasattr(torch.optim, "Adafactor"):  # torch >= 2.5
    register(OptimizerMirror("optim.Adafactor", nx.optim.Adafactor, _torch_optim("Adafactor"), _two_groups(_adafactor)))


# ----- SparseAdam: the driver's gradients made sparse ----------------------------------------
SPARSE_BELOW = 0.3  # gradient entries smaller than this are dropped (so rows go missing, as with sparse embeddings)


def _sparsify(grad: torch.Tensor) -> torch.Tensor:
    """``grad`` as a sparse COO tensor: a row-sparse one (sparse_dim=1, rows whose entries are all small dropped)."""
    kept = grad.masked_fill(grad.abs() < SPARSE_BELOW, 0)
    return kept.to_sparse(1) if kept.dim() else kept.to_sparse()


class SparseGrads:
    """Wraps an optimizer (either library's): ``step()`` first replaces every dense gradient by ``_sparsify(grad)``."""

    def __init__(self, optimizer) -> None:
        self._optimizer = optimizer

    def __getattr__(self, name):
        return getattr(self._optimizer, name)

    def step(self, closure=None):
        for group in self._optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if isinstance(p, nx.Tensor):
                    p.grad = nx.Tensor(_sparsify(p.grad.data))
                else:
                    p.grad = _sparsify(p.grad)
        return self._optimizer.step(closure)


def _sparse_adam(draw) -> dict:
    return {"lr": draw(st.floats(1e-4, 0.1)), "betas": _betas(draw), "eps": _eps(draw),
            "maximize": draw(st.booleans())}


def _sparse_factory(cls):
    return lambda params, **kw: SparseGrads(cls(params, **kw))


register(
    OptimizerMirror("optim.SparseAdam", _sparse_factory(nx.optim.SparseAdam), _sparse_factory(torch.optim.SparseAdam),
                    _two_groups(_sparse_adam),
                    note="gradients made row-sparse (entries below 0.3 dropped) in both libraries before each step"),
)


# ----- LBFGS: closures on the driver's deterministic loss ------------------------------------
@dataclass
class ClosureOptimizerMirror(OptimizerMirror):
    """An optimizer whose ``step`` needs a closure: the driver runs one param group on its own loss."""

    closure: bool = True


def _lbfgs(draw, line_search: bool) -> dict:
    h = {"lr": draw(st.floats(0.05, 1.0)), "max_iter": draw(st.integers(1, 12)),
         "max_eval": draw(st.one_of(st.none(), st.integers(1, 20))),
         "tolerance_grad": draw(st.one_of(st.just(1e-7), st.floats(1e-6, 1e-2))),
         "tolerance_change": draw(st.one_of(st.just(1e-9), st.floats(1e-8, 1e-3))),
         "history_size": draw(st.integers(1, 8)), "line_search_fn": "strong_wolfe" if line_search else None}
    if nx.optim.lbfgs.TORCH_LBFGS_HAS_MAXIMIZE and draw(st.booleans()):
        h["maximize"] = True
    return h


register(
    ClosureOptimizerMirror("optim.LBFGS", nx.optim.LBFGS, torch.optim.LBFGS, functools.partial(_lbfgs, line_search=False),
                           steps=50, note="one param group; closure on a quadratic + quartic loss"),
    ClosureOptimizerMirror("optim.LBFGS[strong_wolfe]", nx.optim.LBFGS, torch.optim.LBFGS,
                           functools.partial(_lbfgs, line_search=True), steps=50,
                           note="strong-Wolfe line search; closure on a quadratic + quartic loss"),
)


# ----- swa_utils: SWALR (a scheduler), AveragedModel (a module whose weights the averaging set) ----
def _swalr(draw) -> dict:
    swa_lr = draw(st.one_of(st.floats(1e-4, 0.5), st.lists(st.floats(1e-4, 0.5), min_size=2, max_size=2)))
    return {"swa_lr": swa_lr, "anneal_epochs": draw(st.integers(0, 60)),
            "anneal_strategy": draw(st.sampled_from(["cos", "linear"]))}


AVERAGING = ("default", "swa_multi", "ema_multi", "swa", "ema")


def _averaged_build(draw):
    return (), {"features": draw(st.integers(1, 4)), "updates": draw(st.integers(0, 5)),
                "averaging": draw(st.sampled_from(AVERAGING)), "decay": draw(st.floats(0.0, 1.0)),
                "use_buffers": draw(st.booleans())}


def _averaged_model(lib: str):
    """Builds AveragedModel(Linear -> BatchNorm1d) and folds in ``updates`` perturbed, batch-normed versions of it.

    Both libraries draw the same perturbations and batches from torch's RNG (the driver seeds it
    before building), so the driver's initial state_dict comparison checks the averaged weights,
    running statistics (averaged with ``use_buffers``, else copied) and ``n_averaged``.
    """
    nn, swa = (nx.nn, nx.optim.swa_utils) if lib == "nx" else (torch.nn, torch.optim.swa_utils)

    def build(features, updates, averaging, decay, use_buffers):
        model = nn.Sequential(nn.Linear(features, features), nn.BatchNorm1d(features))
        how = {"default": {}, "swa_multi": {"multi_avg_fn": swa.get_swa_multi_avg_fn()},
               "ema_multi": {"multi_avg_fn": swa.get_ema_multi_avg_fn(decay)},
               "swa": {"avg_fn": swa.get_swa_avg_fn()}, "ema": {"avg_fn": swa.get_ema_avg_fn(decay)}}[averaging]
        averaged = swa.AveragedModel(model, use_buffers=use_buffers, **how)
        for _ in range(updates):
            with torch.no_grad():
                for p in model.parameters():
                    (p.data if lib == "nx" else p).add_(torch.randn(p.shape))
            batch = torch.randn(3, features)
            model(nx.Tensor(batch) if lib == "nx" else batch)
            averaged.update_parameters(model)
        return averaged

    return build


def _averaged_sample(draw, args, kwargs, dtype, device):
    return Sample((tensor(draw, (draw(st.integers(2, 4)), kwargs["features"]), dtype, device),))


register(
    SchedulerMirror("optim.swa_utils.SWALR", nx.optim.swa_utils.SWALR, torch.optim.swa_utils.SWALR, _swalr, steps=200),
    ModuleMirror("optim.swa_utils.AveragedModel", _averaged_model("nx"), _averaged_model("torch"), _averaged_build,
                 _averaged_sample, dtypes=(torch.float32, torch.float64),
                 note="AveragedModel(Linear -> BatchNorm1d) after 0-5 update_parameters of a perturbed model; every "
                      "averaging function (default SWA, swa/ema, multi and per-tensor, use_buffers)"),
)


# ----- Muon: matrices only ---------------------------------------------------------------------
@dataclass
class MatrixOptimizerMirror(OptimizerMirror):
    """An optimizer of 2-D parameters only: the driver draws matrices."""

    param_dims: tuple[int, int] = (2, 2)


def _muon(draw) -> dict:
    return {"lr": draw(st.floats(1e-4, 0.1)), "weight_decay": _zero_or(draw, 1e-3, 0.2),
            "momentum": draw(st.floats(0.0, 0.99)), "nesterov": draw(st.booleans()),
            "ns_steps": draw(st.integers(0, 6)), "eps": draw(st.one_of(st.just(1e-7), st.floats(1e-9, 1e-3))),
            "adjust_lr_fn": draw(st.sampled_from((None, *nx.optim.muon.ADJUST_LR_FNS)))}


if hasattr(torch.optim, "Muon"):  # torch >= 2.9
    register(MatrixOptimizerMirror("optim.Muon", nx.optim.Muon, torch.optim.Muon, _two_groups(_muon),
                                   note="2-D parameters; the Newton-Schulz iterations run in bfloat16, as torch's"))
