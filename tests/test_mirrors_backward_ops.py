"""The ``aten.*`` mirrors of internal backward ops (conformance/mirrors/backward_ops.py) catch the faults
``python -m conformance mutate`` found surviving: a rule of an op applied only inside backward passes that
is wrong only under create_graph, or only in its dependence on the upstream gradient. Each fault is
planted by swapping one rule of the registry spec (as mutate does) and must fail the mirror's case; the
unmutated ops pass.
"""

from __future__ import annotations

import pytest

import neuronix as nx
from conformance.mirror import REGISTRY
from conformance.mirrors import backward_ops  # noqa: F401  (registers the aten.* mirrors)
from conformance.runner import run_case
from neuronix.ops import conv, dropout_embedding, indexing, loss, padding, pool

# (mirror, spec, rule index): one rule per family of internal op
CASES = [
    ("aten.avg_pool2d_backward", pool.AVG_POOL2D_BACKWARD, 0),
    ("aten.max_pool2d_with_indices_backward", pool.MAX_POOL2D_BACKWARD, 0),
    ("aten.max_pool_double_backward[scatter]", pool.MAX_POOL_SCATTER, 0),
    ("aten.convolution_backward[input]", conv.BACKWARD_INPUT, 1),
    ("aten.convolution_backward[weight]", conv.BACKWARD_WEIGHT, 0),
    ("aten.embedding_dense_backward", dropout_embedding.EMBEDDING_BACKWARD, 0),
    ("aten.nll_loss_backward", loss.NLL_LOSS_BACKWARD, 0),
    ("aten.pad_backward", padding.PAD_BACKWARD, 0),
    ("aten.diagonal_backward", indexing._DIAGONAL_BACKWARD, 0),
    ("aten.logit_backward", loss.LOGIT_BACKWARD, 1),
]


def _faulty(rule, kind: str):
    """``rule``, wrong only under create_graph (the upstream gradient is then an ``nx.Tensor``)."""

    def planted(g, *args, **kwargs):
        if not isinstance(g, nx.Tensor):  # a plain backward: right
            return rule(g, *args, **kwargs)
        if kind == "recorded_only":
            return rule(g, *args, **kwargs) * (1 + 1e-3)
        return rule(nx.Tensor(g.data), *args, **kwargs)  # upstream_raw: the upstream gradient read detached

    return planted


def _run(name: str, examples: int = 3):
    return run_case(REGISTRY[name], "float64", "cpu", examples=examples)


@pytest.mark.parametrize("kind", ["recorded_only", "upstream_raw"])
@pytest.mark.parametrize(("name", "spec", "rule"), CASES, ids=[c[0] for c in CASES])
def test_a_rule_wrong_only_under_create_graph_is_caught(monkeypatch, name, spec, rule, kind):
    vjps = list(spec.vjps)
    vjps[rule] = _faulty(vjps[rule], kind)
    monkeypatch.setattr(spec, "vjps", tuple(vjps))
    case = _run(name, examples=2)
    assert case.failed, f"{kind} fault of {spec.name} rule {rule} survived {name}"


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n.startswith("aten.")))
def test_the_unmutated_internal_ops_pass(name):
    case = _run(name)
    assert not case.failed, [r.message for r in case.records if r.status != "pass"]
