"""``LBFGS`` (mirrors ``torch.optim.LBFGS``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from neuronix.autograd.mode import enable_grad
from neuronix.optim.line_search import strong_wolfe
from neuronix.optim.optimizer import Optimizer
from neuronix.tensor import Tensor

# torch 2.14 added ``maximize`` to LBFGS; 2.13 has none (TypeError). Follow the installed torch,
# probed once: the same signature, and the same param-group keys in a state_dict.
TORCH_LBFGS_HAS_MAXIMIZE = "maximize" in inspect.signature(torch.optim.LBFGS.__init__).parameters


class LBFGS(Optimizer):
    """Limited-memory BFGS (as ``torch.optim.LBFGS``); ``step(closure)`` runs up to ``max_iter`` iterations.

    The closure clears the gradients, computes the loss, calls ``backward()`` and returns the
    loss; it is evaluated up to ``max_eval`` times per ``step``. The search direction comes from
    the last ``history_size`` curvature pairs ``(s, y)`` by the two-loop recursion; the step
    length is ``lr`` (the first iteration ever: ``min(1, 1 / |g|_1) * lr``), or what the
    strong-Wolfe line search finds with ``line_search_fn="strong_wolfe"``. It stops early when
    ``max|g| <= tolerance_grad`` or the step or the loss change falls below ``tolerance_change``.

    One param group only (all parameters form one flat vector). The state, kept under the first
    parameter as torch's: ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``,
    ``H_diag``, ``prev_flat_grad``, ``prev_loss``, and ``al`` (the recursion's scratch) once there is history.
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None, *, maximize: bool | None = None) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        if TORCH_LBFGS_HAS_MAXIMIZE:
            defaults["maximize"] = bool(maximize)
        elif maximize is not None:
            raise TypeError(f"LBFGS.__init__() got an unexpected keyword argument 'maximize' (torch {torch.__version__}'s "
                            "LBFGS has none; it came with torch 2.14)")
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"LBFGS doesn't support per-parameter options (parameter groups): got "
                             f"{len(self.param_groups)} groups; pass one list of parameters")
        self._params = self.param_groups[0]["params"]

    # ----- the parameters as one flat vector ------------------------------------------------
    def _flat_grad(self) -> torch.Tensor:
        pieces = []
        for p in self._params:
            grad = p.grad.data if isinstance(p.grad, Tensor) else p.grad
            if grad is None:
                pieces.append(p.data.new_zeros(p.numel()))
            elif grad.is_sparse:
                pieces.append(grad.to_dense().view(-1))
            else:
                pieces.append(grad.reshape(-1))
        flat = torch.cat(pieces, 0)
        if self.param_groups[0].get("maximize", False):
            flat.neg_()
        return flat

    def _move(self, step_length, direction: torch.Tensor) -> None:
        """``params += step_length * direction``, ``direction`` flat."""
        offset = 0
        for p in self._params:
            n = p.numel()
            p.data.add_(direction[offset:offset + n].view_as(p.data), alpha=step_length)
            offset += n

    def _loss(self, closure: Callable) -> tuple[Any, float]:
        """The closure's loss as returned, and as a float to minimise (negated when maximizing)."""
        with enable_grad():
            loss = closure()
        value = float(loss)
        return loss, (-value if self.param_groups[0].get("maximize", False) else value)

    def _evaluate_along(self, closure: Callable, x: list, t, d: torch.Tensor):
        """Loss and flat gradient at ``x + t d``; the parameters are put back to ``x`` after."""
        self._move(t, d)
        _, loss = self._loss(closure)
        flat_grad = self._flat_grad()
        for p, saved in zip(self._params, x):
            p.data.copy_(saved)
        return loss, flat_grad

    # ----- the iteration --------------------------------------------------------------------
    @staticmethod
    def _two_loop(state: dict, flat_grad: torch.Tensor, history: tuple[list, list, list], H_diag,
                  history_size: int) -> torch.Tensor:
        """The quasi-Newton direction ``-H g`` from the curvature history (Nocedal & Wright, Algorithm 7.4).

        The first loop's coefficients live in ``state['al']`` (as torch keeps them, so the state keys match).
        """
        old_dirs, old_stps, ro = history
        if "al" not in state:
            state["al"] = [None] * history_size
        al = state["al"]
        q = flat_grad.neg()
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = old_stps[i].dot(q) * ro[i]
            q.add_(old_dirs[i], alpha=-al[i])
        r = torch.mul(q, H_diag)
        for i in range(len(old_dirs)):
            be_i = old_dirs[i].dot(r) * ro[i]
            r.add_(old_stps[i], alpha=al[i] - be_i)
        return r

    def step(self, closure: Callable):  # type: ignore[override]
        """One L-BFGS step (up to ``max_iter`` iterations); returns the closure's first loss."""
        group = self.param_groups[0]
        if not self._params:  # nothing to optimize: still evaluate, so the caller gets its loss (torch 2.14)
            with enable_grad():
                return closure()
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size, line_search_fn = group["history_size"], group["line_search_fn"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss, loss = self._loss(closure)
        evaluations = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        converged = flat_grad.abs().max() <= tolerance_grad
        if converged:
            return first_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        iteration = 0
        while iteration < max_iter:
            iteration += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:  # the very first iteration: steepest descent, empty history
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only with positive curvature (H stays positive definite)
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                d = self._two_loop(state, flat_grad, (old_dirs, old_stps, ro), H_diag, history_size)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:  # not a descent direction (any more)
                break

            spent = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError(f"only 'strong_wolfe' is supported (LBFGS line_search_fn={line_search_fn!r})")
                x = [p.data.clone(memory_format=torch.contiguous_format) for p in self._params]
                loss, flat_grad, t, spent = strong_wolfe(
                    lambda x_, t_, d_: self._evaluate_along(closure, x_, t_, d_),
                    x, t, d, loss, flat_grad, gtd, max_ls=max_eval - evaluations)
                self._move(t, d)
                converged = flat_grad.abs().max() <= tolerance_grad
            else:
                self._move(t, d)
                if iteration != max_iter:  # the last iteration's loss would be unused: not evaluated
                    _, loss = self._loss(closure)
                    flat_grad = self._flat_grad()
                    converged = flat_grad.abs().max() <= tolerance_grad
                    spent = 1
            evaluations += spent
            state["func_evals"] += spent

            if iteration == max_iter or evaluations >= max_eval or converged:
                break
            if d.mul(t).abs().max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return first_loss

