"""How much of torch's op surface Neuronix reaches, and the README's generated API table.

``python -m conformance reach [--missing] [--json]`` counts the torch names a user calls directly
(``torch.<name>``, ``torch.linalg.*``, ``torch.special.*``, ``torch.fft.*``, ``torch.nn.functional.*``)
that resolve in Neuronix *and* have a conformance mirror, overall and against issue 13's list of the
names that were missing (``ISSUE_13`` below, by family, as the issue spells them).

``python -m conformance api-table [--write README.md | --check README.md]`` prints the table of those
names (differentiable, dtypes, devices: each read from the name's mirrors, the claims the conformance
run verifies), or rewrites / checks the block between the README's ``api-table`` markers. The table is
generated, never edited by hand: ``tests/test_reach.py`` fails when the README's copy is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The torch namespaces whose functions users call directly, as the public registry names them.
NAMESPACES = ("", "linalg", "special", "fft", "nn.functional")

# Issue 13's list ("missing today, by family"), spelled as coverage spells names.
ISSUE_13: dict[str, list[str]] = {
    "elementwise": (
        "acos acosh asin asinh atan atan2 atanh copysign deg2rad rad2deg digamma lgamma polygamma mvlgamma erfc "
        "erfinv exp2 logaddexp logaddexp2 logit xlogy hypot i0 sinc sgn heaviside fmax fmin fmod float_power ldexp "
        "frexp nextafter nan_to_num signbit isposinf isneginf isreal positive rsub special.entr special.erfcx "
        "special.log_ndtr special.ndtr special.ndtri special.xlog1py special.zeta special.i0e special.i1 special.i1e"
    ).split(),
    "reductions and scans": (
        "sort topk kthvalue median nanmedian mode quantile nanquantile nansum nanmean std_mean var_mean aminmax "
        "cummax cummin logcumsumexp msort unique unique_consecutive histc bucketize searchsorted isin count_nonzero "
        "diff gradient trapezoid cumulative_trapezoid"
    ).split(),
    "shape and indexing": (
        "atleast_1d atleast_2d atleast_3d hstack vstack dstack column_stack hsplit vsplit dsplit tensor_split "
        "split_with_sizes unsafe_split unsafe_chunk ravel rot90 diag diag_embed diagflat diagonal_scatter "
        "select_scatter slice_scatter block_diag broadcast_tensors cartesian_prod combinations meshgrid kron "
        "tensordot inner take take_along_dim put index_copy index_fill index_put index_reduce masked_scatter "
        "scatter_reduce repeat_interleave argwhere nonzero_static narrow_copy diagonal_copy expand_copy "
        "permute_copy select_copy slice_copy split_copy squeeze_copy t_copy transpose_copy unbind_copy "
        "unsqueeze_copy view_copy Tensor.new_zeros Tensor.new_ones Tensor.new_full Tensor.new_empty "
        "Tensor.new_tensor Tensor.nelement"
    ).split(),
    "linear algebra": (
        "addmm addmv addr addbmm baddbmm trace vdot cross cdist dist cov corrcoef matrix_exp logdet linalg.inv "
        "linalg.inv_ex linalg.det linalg.slogdet linalg.solve linalg.solve_ex linalg.solve_triangular linalg.lstsq "
        "linalg.cholesky linalg.cholesky_ex linalg.qr linalg.svd linalg.svdvals linalg.eigh linalg.eigvalsh "
        "linalg.eig linalg.eigvals linalg.pinv linalg.matrix_rank linalg.matrix_power linalg.matrix_norm "
        "linalg.vector_norm linalg.norm linalg.cond linalg.multi_dot linalg.cross linalg.vecdot "
        "linalg.householder_product linalg.lu linalg.lu_factor linalg.lu_solve linalg.ldl_factor linalg.ldl_solve "
        "linalg.tensorinv linalg.tensorsolve linalg.vander"
    ).split(),
    "fft": [f"fft.{n}" for n in (
        "fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn hfft ihfft fftshift ifftshift").split()],
    "nn.functional": [f"nn.functional.{n}" for n in (
        "conv3d conv_transpose1d conv_transpose3d avg_pool1d avg_pool3d max_pool1d max_pool3d adaptive_avg_pool1d "
        "adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool3d max_unpool1d max_unpool2d max_unpool3d "
        "lp_pool1d lp_pool2d lp_pool3d interpolate upsample grid_sample affine_grid unfold fold pixel_shuffle "
        "pixel_unshuffle channel_shuffle instance_norm local_response_norm rms_norm normalize one_hot bilinear "
        "cosine_similarity pairwise_distance pdist glu celu selu rrelu prelu hardsigmoid hardswish softsign "
        "softshrink hardshrink tanhshrink threshold logsigmoid softmin gumbel_softmax scaled_dot_product_attention "
        "kl_div binary_cross_entropy poisson_nll_loss gaussian_nll_loss ctc_loss margin_ranking_loss "
        "hinge_embedding_loss multilabel_margin_loss soft_margin_loss multilabel_soft_margin_loss "
        "cosine_embedding_loss multi_margin_loss triplet_margin_loss triplet_margin_with_distance_loss").split()],
    "randomness": "multinomial bernoulli normal poisson rand_like randn_like randint_like".split(),
}

# Floors the test holds the project to (issue 13's "done when").
MIN_TORCH_NAMES = 400
MIN_FROM_ISSUE = 215


def torch_object(name: str):
    """The torch object a qualified name denotes (``linalg.svd`` -> ``torch.linalg.svd``), or None."""
    import torch

    obj = torch
    if name.startswith("Tensor."):
        obj, name = torch.Tensor, name.removeprefix("Tensor.")
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def torch_spelling(name: str) -> str:
    return f"torch.{name}"


@dataclass
class Reach:
    torch_names: list[str]  # public in a torch namespace, torch has it too, and mirrored
    unmirrored: list[str]  # public in a torch namespace but without a mirror (coverage fails on these)
    issue: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)  # family -> (reached, missing)

    @property
    def issue_reached(self) -> int:
        return sum(len(reached) for reached, _ in self.issue.values())

    @property
    def issue_total(self) -> int:
        return sum(len(reached) + len(missing) for reached, missing in self.issue.values())

    def as_dict(self) -> dict:
        return {"torch_names": len(self.torch_names), "min_torch_names": MIN_TORCH_NAMES,
                "issue_13": {"reached": self.issue_reached, "total": self.issue_total, "min": MIN_FROM_ISSUE,
                             "families": {f: {"reached": len(r), "missing": m} for f, (r, m) in self.issue.items()}},
                "unmirrored": self.unmirrored}


def _mirrored_bases() -> dict[str, list]:
    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.coverage import base_name
    from conformance.mirror import REGISTRY

    by_name: dict[str, list] = {}
    for mirror_name, mirror in REGISTRY.items():
        by_name.setdefault(base_name(mirror_name), []).append(mirror)
    return by_name


def _public_functions() -> list[str]:
    """Every public neuronix function in a torch namespace (``exp``, ``linalg.svd``, ``nn.functional.gelu``)."""
    import neuronix  # noqa: F401  (fills the public registry)
    from neuronix.ops.public import NAMESPACES as REGISTERED

    return sorted(f"{ns}.{n}" if ns else n for ns in NAMESPACES for n in REGISTERED.get(ns, {}))


def _resolves(name: str) -> bool:
    """``name`` is public in neuronix (function, or Tensor attribute for ``Tensor.*`` names)."""
    import neuronix as nx

    obj = nx
    if name.startswith("Tensor."):
        obj, name = nx.Tensor, name.removeprefix("Tensor.")
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return True


def reach() -> Reach:
    mirrored = _mirrored_bases()
    public = _public_functions()
    names = [n for n in public if torch_object(n) is not None and n in mirrored]
    unmirrored = [n for n in public if n not in mirrored]
    issue = {}
    for family, listed in ISSUE_13.items():
        ok = [n for n in listed if _resolves(n) and n in mirrored]
        issue[family] = (ok, [n for n in listed if n not in ok])
    return Reach(names, unmirrored, issue)


# ----- the API table ---------------------------------------------------------------------------------
_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16", "complex64": "c64",
          "complex128": "c128"}
BEGIN = "<!-- api-table:begin (generated by: python -m conformance api-table --write README.md) -->"
END = "<!-- api-table:end -->"


def _differentiable(mirrors: list) -> str:
    if not any(getattr(m, "grad", False) for m in mirrors):
        return "no"
    return "1st, 2nd" if any(getattr(m, "grad", False) and getattr(m, "gradgrad", False) for m in mirrors) else "1st"


def _claims(mirrors: list, attr: str, order: list[str]) -> str:
    seen = {str(v).removeprefix("torch.") for m in mirrors for v in getattr(m, attr)}
    return " ".join(_SHORT.get(v, v) for v in order if v in seen)


def api_table() -> str:
    """The Markdown table: one row per mirrored torch name, claims read from its mirrors."""
    mirrored = _mirrored_bases()
    found = reach().torch_names
    order = list(_SHORT)
    lines = [f"{len(found)} torch names, each verified by its conformance mirror(s) (differentiable: first and "
             "second derivatives checked against torch; dtypes and devices: what the mirrors claim and the "
             "conformance run checks).", "",
             "| name | differentiable | dtypes | devices |", "| --- | --- | --- | --- |"]
    for name in found:
        ms = mirrored[name]
        lines.append(f"| `{torch_spelling(name)}` | {_differentiable(ms)} | {_claims(ms, 'dtypes', order)} | "
                     f"{_claims(ms, 'devices', ['cpu', 'cuda'])} |")
    return "\n".join(lines)


def _block(text: str) -> str:
    return f"{BEGIN}\n<details><summary>The API table</summary>\n\n{text}\n\n</details>\n{END}"


def readme_block(readme: str) -> str | None:
    """The generated block in a README's text, or None when the markers are absent."""
    start, end = readme.find(BEGIN), readme.find(END)
    return None if start < 0 or end < 0 else readme[start:end + len(END)]


def main(argv: list[str] | None = None, command: str = "reach") -> int:
    parser = argparse.ArgumentParser(prog=f"python -m conformance {command}")
    if command == "reach":
        parser.add_argument("--missing", action="store_true", help="list the issue-13 names not reached, by family")
        parser.add_argument("--json", action="store_true")
        args = parser.parse_args(argv)
        r = reach()
        if args.json:
            print(json.dumps(r.as_dict(), indent=2))
            return 0
        print(f"torch names resolved and mirrored: {len(r.torch_names)} (floor {MIN_TORCH_NAMES})")
        print(f"issue 13's list: {r.issue_reached}/{r.issue_total} (floor {MIN_FROM_ISSUE})")
        for family, (ok, missing) in r.issue.items():
            print(f"  {family:22s} {len(ok):3d}/{len(ok) + len(missing)}"
                  + (f"  missing: {' '.join(missing)}" if args.missing and missing else ""))
        if r.unmirrored:
            print(f"public without a mirror: {' '.join(r.unmirrored)}")
        return 0
    parser.add_argument("--write", metavar="README", help="replace the table block in this file")
    parser.add_argument("--check", metavar="README", help="exit 1 when this file's table block is stale")
    args = parser.parse_args(argv)
    block = _block(api_table())
    target = args.write or args.check
    if not target:
        print(block)
        return 0
    path = Path(target)
    text = path.read_text()
    current = readme_block(text)
    if current is None:
        print(f"{path}: no api-table markers ({BEGIN!r} ... {END!r})", file=sys.stderr)
        return 1
    if args.check:
        if current != block:
            print(f"{path}: the API table is stale; regenerate: python -m conformance api-table --write {path}",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(text.replace(current, block))
    return 0
