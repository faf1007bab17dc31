"""Choices at non-differentiable points that depend on the torch version: one table, read by the rules.

At a kink, a bound or a tie any subgradient is a correct answer, and torch has changed its choice
between releases. Neuronix's promise is torch's numbers, so it follows the *installed* torch: each
such choice is one row of ``TABLE`` (what it decides, why, and its value for each torch version),
and a rule reads it once, at import, through ``convention(name)``. No rule tests the torch version
itself, so moving to a new torch means editing this table and nothing else; the special-value sweep
(``tests/test_special_values.py``) compares every op with the installed torch at its kinks and
``tests/test_conventions.py`` checks each row's value against the installed torch directly.

The rows:

``clamp_scalar_bounds_closed``
    Gradient of ``clamp``/``clamp_min``/``clamp_max`` (and ``clip``) with *number* bounds at an
    input exactly on a bound. torch up to 2.13 passes the gradient there (1: the closed interval
    ``[min, max]``, chosen in 2018 so that values resting on a bound keep learning); torch 2.14
    gives 0, the minimum-norm subgradient that ``relu`` and ``hardtanh`` already use at their kinks.
    Tensor bounds keep the closed interval in both versions.

``clamp_tensor_bounds_split_ties``
    Gradient of ``clamp`` with *tensor* bounds at ties and NaN. Up to torch 2.13 the input gets the
    gradient on the closed interval and a bound only strictly outside it; a NaN anywhere gives no
    gradient at all. From torch 2.14 a tie between the input and the bound that is the result splits
    the gradient (1/2 each, as ``maximum``/``minimum`` do), the bound that is the result gets it when
    ``min == max`` or ``min > max``, and a NaN routes it to the input (with one bound, to both).

Where torch's devices, not its versions, disagree, Neuronix gives the CPU answer on every device:
the full reduction ``max()``/``min()`` with an infinite upstream gradient gives the non-maximal
elements exactly 0 on CPU (a scatter) but NaN on CUDA (``inf * 0``, a product with the mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Convention:
    """One version-dependent choice: ``values`` pairs the first torch version with the value it uses."""

    why: str
    values: tuple[tuple[tuple[int, int], object], ...]  # ascending by version

    def at(self, version: tuple[int, int]) -> object:
        chosen = self.values[0][1]
        for first, value in self.values:
            if version >= first:
                chosen = value
        return chosen


TABLE: dict[str, Convention] = {
    "clamp_scalar_bounds_closed": Convention(
        why="clamp with number bounds at x == bound: gradient 1 (closed interval) up to torch 2.13, 0 from 2.14",
        values=(((0, 0), True), ((2, 14), False)),
    ),
    "clamp_tensor_bounds_split_ties": Convention(
        why="clamp with tensor bounds: closed interval, no gradient at NaN up to torch 2.13; ties split 1/2 and NaN "
            "routed to the input (and a single bound) from 2.14",
        values=(((0, 0), False), ((2, 14), True)),
    ),
}


def torch_version(version: str = torch.__version__) -> tuple[int, int]:
    """``(major, minor)`` of a torch version string such as ``'2.13.0+cpu'``."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


TORCH_VERSION = torch_version()


def convention(name: str, version: tuple[int, int] = TORCH_VERSION) -> object:
    """The value of the convention ``name`` for ``version`` (by default the installed torch)."""
    return TABLE[name].at(version)
