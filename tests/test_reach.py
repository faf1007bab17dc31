"""The reach of the torch surface (issue 13's floors) and the README's generated API table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conformance import reach as reach_mod
from conformance.mirror import REGISTRY, OpMirror
from neuronix.ops.public import NAMESPACES

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def reached():
    return reach_mod.reach()


def test_floors_of_issue_13(reached):
    assert len(reached.torch_names) >= reach_mod.MIN_TORCH_NAMES, len(reached.torch_names)
    assert reached.issue_reached >= reach_mod.MIN_FROM_ISSUE, reached.as_dict()["issue_13"]


def test_every_public_function_in_a_torch_namespace_is_mirrored(reached):
    assert reached.unmirrored == []


def test_the_issue_list_names_torch_objects():
    # a typo in the list would count as "missing" forever; every listed name exists in the installed torch
    # (lp_pool3d and nonzero_static are recent: skip those the installed torch lacks)
    listed = [n for names in reach_mod.ISSUE_13.values() for n in names]
    unknown = [n for n in listed if reach_mod.torch_object(n) is None]
    assert set(unknown) <= {"nn.functional.lp_pool3d", "nonzero_static"}, unknown


def test_readme_api_table_is_current():
    assert reach_mod.main(["--check", str(README)], "api-table") == 0, (
        "README's API table is stale: python -m conformance api-table --write README.md")


def test_a_public_name_without_a_mirror_is_reported_and_its_row_claims_come_from_mirrors(monkeypatch):
    """Planted: ``nx.special.planted`` public without a mirror, then mirrored without gradients."""

    def planted(x):
        return x

    real_torch_object = reach_mod.torch_object
    monkeypatch.setattr(reach_mod, "torch_object",
                        lambda name: torch.special.expit if name == "special.planted" else real_torch_object(name))
    monkeypatch.setitem(NAMESPACES.setdefault("special", {}), "planted", planted)
    assert "special.planted" in reach_mod.reach().unmirrored

    mirror = OpMirror("special.planted", planted, torch.special.expit, lambda draw, dtype, device: None, grad=False,
                      dtypes=(torch.float64,), devices=("cpu",))
    monkeypatch.setitem(REGISTRY, "special.planted", mirror)
    r = reach_mod.reach()
    assert "special.planted" in r.torch_names and "special.planted" not in r.unmirrored
    row = next(line for line in reach_mod.api_table().splitlines() if "`torch.special.planted`" in line)
    assert row == "| `torch.special.planted` | no | f64 | cpu |"
