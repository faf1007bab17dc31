"""Every op mirror in the registry, forward and gradients against torch (float32 and float64, cpu).

The quick per-op gate for op authors (``pytest tests/test_conformance_ops.py -k exp``);
the full run with reports is ``python -m conformance run``. Each case runs a few
examples of the CI profile; a failure prints the case's records and its repro command.
"""

from __future__ import annotations

import pytest

import conformance.mirrors  # noqa: F401  (fills the registry)
from conformance.mirror import REGISTRY, OpMirror
from conformance.runner import case_id, run_case

EXAMPLES = 3
CASES = [case_id(name, str(dtype).removeprefix("torch."), "cpu")
         for name, m in REGISTRY.items() if isinstance(m, OpMirror) and "cpu" in m.devices for dtype in m.dtypes]


@pytest.mark.parametrize("cid", CASES)
def test_op_matches_torch(cid: str) -> None:
    name, dtype, device = cid.rsplit("|", 2)
    case = run_case(REGISTRY[name], dtype, device, examples=EXAMPLES)
    if case.failed:
        pytest.fail(case.failure_message(), pytrace=False)
