"""Every op mirror at special values, against torch: the thorough sweep over ``conformance.kinds.special``.

The conformance run does one special-value rotation per example (check ``special_values``); this
sweep runs every rotation, so the largest input of each drawn sample holds every special point,
under each upstream kind in turn, in float64 and float32, plus the second derivatives at every
finite rotation in float64. What is compared, and which mirrors meet the finite points only, is
said once, in ``conformance/kinds/special.py``; the tolerances are those of the check
(``tolerances.toml``, ``special_values``), so a failure here fails the gate too.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import conformance.mirrors  # noqa: F401  (fills the registry)
from conformance.closeness import measure
from conformance.kinds import special
from conformance.mirror import REGISTRY, OpMirror
from conformance.tolerances import load

EXAMPLES = 3

CASES = [name for name, mirror in REGISTRY.items() if isinstance(mirror, OpMirror) and "cpu" in mirror.devices]


def _judge(comparisons, name: str, dtype: torch.dtype) -> None:
    tol = load().lookup(name, special.CHECK, str(dtype).removeprefix("torch."), "cpu")
    for c in comparisons:
        m = measure(c.actual, c.expected, tol)
        if not m.ok:
            detail = m.problem or f"max abs error {m.max_abs:.3g}"
            raise AssertionError(f"{name} ({dtype}): {c.what} differs from torch: {detail}\n"
                                 f"neuronix: {c.actual}\ntorch:    {c.expected}\n{c.explain() if c.explain else ''}")


def _sweep(mirror: OpMirror, data, dtype: torch.dtype, kinds: tuple[str, ...], second: bool) -> None:
    """Every rotation of one drawn sample, the upstream kind cycling over ``kinds`` from a drawn start."""
    sample, points = special.draw_sample(mirror, data.draw, dtype, "cpu", special.points_for(mirror.name, kinds[0]))
    rotations = special.Rotations(sample, points, data.draw)
    first = data.draw(st.integers(0, len(kinds) - 1), label="upstream")
    start = data.draw(st.integers(0, 4), label="upstream start")
    for r in range(rotations.count):
        rotations.apply(r)
        kind = kinds[(first + r) % len(kinds)]
        _judge(special.first_order(mirror, sample, kind, start, second=second), mirror.name, dtype)


@pytest.mark.parametrize("name", CASES)
def test_special_values_match_torch(name: str) -> None:
    mirror = REGISTRY[name]
    if not getattr(mirror, "tie_gradients", True):
        pytest.skip(f"{name}: the installed torch picks the tied input that gets the gradient by an unspecified "
                    f"selection (OpMirror.tie_gradients; {mirror.note})")
    dtypes = [d for d in special.SWEEP_DTYPES if d in mirror.dtypes]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        for dtype in dtypes:  # every point, under 0 / inf / NaN upstream gradients
            _sweep(mirror, data, dtype, ("inf", "nan"), second=False)
        if torch.float64 in dtypes:  # finite points: kinks, and second derivatives where torch has them
            _sweep(mirror, data, torch.float64, ("finite",), second=mirror.gradgrad)

    run()
