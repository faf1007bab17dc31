"""The strong-Wolfe line search of ``LBFGS`` (as torch's, after minFunc's ``WolfeLineSearch``).

Values are kept in the types torch's search uses (Python floats for losses and step lengths
where torch has them, 0-d tensors for directional derivatives ``g . d``), and every formula
rounds in torch's order, so the same closure gives the same step length bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through ``(x1, f1)`` and ``(x2, f2)`` with slopes ``g1``, ``g2``, clamped to ``bounds``.

    Without a real minimiser (negative discriminant) the middle of the bounds.
    """
    low, high = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    discriminant = d1**2 - g1 * g2
    if not discriminant >= 0:  # negative or NaN
        return (low + high) / 2.0
    d2 = discriminant.sqrt()
    if x1 <= x2:
        minimum = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        minimum = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(minimum, low), high)


class _Point:
    """One trial of the search: step length ``t``, loss ``f``, flat gradient ``g``, slope ``gtd = g . d``."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd) -> None:
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def strong_wolfe(evaluate: Callable, x, t, d: torch.Tensor, f: float, g: torch.Tensor, gtd, c1: float = 1e-4,
                 c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25):
    """Search along ``d`` from the parameters ``x`` for a step length meeting the strong Wolfe conditions.

    ``evaluate(x, t, d) -> (loss, flat_grad)`` evaluates the closure at ``x + t d`` (and puts
    ``x`` back). Returns ``(loss, flat_grad, t, evaluations)`` of the accepted step: first a
    bracketing phase (growing ``t`` by cubic extrapolation until the loss rises or the slope
    turns), then a zoom phase (cubic interpolation inside the bracket).
    """
    d_norm = d.abs().max()
    g = g.clone(memory_format=torch.contiguous_format)
    f_new, g_new = evaluate(x, t, d)
    evaluations = 1
    gtd_new = g_new.dot(d)
    prev = _Point(0, f, g, gtd)
    bracket: list[_Point] = []
    found = False
    iteration = 0
    while iteration < max_ls:
        # sufficient decrease violated, or no longer decreasing: the minimum lies between prev and now
        if f_new > (f + c1 * t * gtd) or (iteration > 1 and f_new >= prev.f):
            bracket = [prev, _Point(t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new)]
            break
        if abs(gtd_new) <= -c2 * gtd:  # curvature condition met: accept t
            bracket = [_Point(t, f_new, g_new, gtd_new)]
            found = True
            break
        if gtd_new >= 0:  # the slope turned: the minimum is behind
            bracket = [prev, _Point(t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new)]
            break
        # still going down: extrapolate, between 1.01 t and 10 t
        low, high = t + 0.01 * (t - prev.t), t * 10
        t_before = t
        t = cubic_minimum(prev.t, prev.f, prev.gtd, t, f_new, gtd_new, bounds=(low, high))
        prev = _Point(t_before, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new)
        f_new, g_new = evaluate(x, t, d)
        evaluations += 1
        gtd_new = g_new.dot(d)
        iteration += 1
    if iteration == max_ls:  # out of evaluations while extrapolating: bracket [0, t] (torch leaves its slopes unset)
        bracket = [_Point(0, f, g, None), _Point(t, f_new, g_new, None)]

    # zoom: shrink the bracket around the minimum; ``low`` indexes the end with the lower loss
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    stalled = False
    while not found and iteration < max_ls:
        lo_t, hi_t = min(bracket[0].t, bracket[1].t), max(bracket[0].t, bracket[1].t)
        if abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change:
            break
        t = cubic_minimum(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f, bracket[1].gtd)
        # keep the trial off the ends: within 10% of an end it either counts as stalled or is pushed inside
        margin = 0.1 * (hi_t - lo_t)
        if min(hi_t - t, t - lo_t) < margin:
            if stalled or t >= hi_t or t <= lo_t:
                t = hi_t - margin if abs(t - hi_t) < abs(t - lo_t) else lo_t + margin
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        f_new, g_new = evaluate(x, t, d)
        evaluations += 1
        gtd_new = g_new.dot(d)
        iteration += 1
        trial = _Point(t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new)
        if f_new > (f + c1 * t * gtd) or f_new >= bracket[low].f:
            bracket[high] = trial
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                found = True
            elif gtd_new * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = trial
    best = bracket[low]
    return best.f, best.g, best.t, evaluations
