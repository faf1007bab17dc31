"""One pytest test per conformance case (entry x dtype x device); run by ``python -m conformance run``.

Parametrised from the mirror registry at collection, so pytest-xdist shards the cases
and ``-k`` selects them by id (``-k "exp and float64"``). A failing case prints its
records and the command that replays it.
"""

from __future__ import annotations

import pytest

from conformance import plugin


def _cases(config) -> list[str]:
    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.mirror import REGISTRY
    from conformance.runner import case_id

    opts = plugin.options(config)
    out = []
    for name, mirror in REGISTRY.items():
        for dtype in opts["dtypes"]:
            if dtype not in {str(d).removeprefix("torch.") for d in mirror.dtypes}:
                continue
            for device in opts["devices"]:
                if device in getattr(mirror, "devices", ("cpu", "cuda")):
                    out.append(case_id(name, dtype, device))
    if opts["shard"]:
        from conformance.shard import select

        plugin.note_case_list(config, out)
        out = select(out, opts["shard"], opts["history"])
    return out


def pytest_generate_tests(metafunc) -> None:
    if "conformance_case" in metafunc.fixturenames:
        cases = _cases(metafunc.config)
        metafunc.parametrize("conformance_case", cases, ids=cases)


def test_case(conformance_case: str, request) -> None:
    from conformance.mirror import REGISTRY
    from conformance.runner import parse_case_id, run_case
    from conformance.tolerances import load

    opts = plugin.options(request.config)
    name, dtype, device = parse_case_id(conformance_case)
    case = run_case(REGISTRY[name], dtype, device, opts["profile"], load(opts["tolerances"]), opts["examples"])
    plugin.record_case(request.config, case)
    if case.failed:
        pytest.fail(case.failure_message(), pytrace=False)
