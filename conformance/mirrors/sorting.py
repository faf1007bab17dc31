"""Mirrors of sorting, selection, order statistics, scans, NaN-aware reductions, finite differences and
searching (neuronix/ops/sorting*.py).

Values are drawn continuous (no ties) where finite differences run; the ``[ties]`` variants draw from a
coarse grid so the kernels must choose among equal values (torch's indices, hence torch's gradient), with
finite differences off there (a tie is a kink). NaN variants put NaNs in the inputs of the NaN-aware ops.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors.reduce import _dim, _spread, _unbiased, reduction
from conformance.strategies import Domain, index_tensor, method, nonempty_shape, shape, tensor

TIES = "ties are kinks: finite differences see one side; torch's kernel picks the index, whose gradient is compared"
GRID = Domain(-2.0, 2.0)


def _pair(name: str, sample, **kw) -> list[OpMirror]:
    """``nx.<name>`` vs ``torch.<name>`` and, where torch has it, ``Tensor.<name>``, on the same samples."""
    mirrors = [OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw)]
    if hasattr(torch.Tensor, name):
        mirrors.append(OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw))
    return mirrors


def _variant(name: str, variant: str, sample, **kw) -> OpMirror:
    return OpMirror(f"{name}[{variant}]", getattr(nx, name), getattr(torch, name), sample, **kw)


def _grid(draw, sizes, dtype, device):
    """Values on a grid of halves: many ties."""
    return torch.round(tensor(draw, sizes, torch.float64, device, GRID) * 2).div(2).to(dtype)


def _with_nans(draw, x):
    """``x`` with a few elements set to NaN."""
    x = x.clone()
    if x.numel():
        flat = x.view(-1) if x.is_contiguous() else None
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, x.numel() - 1))
            if flat is not None:
                flat[i] = float("nan")
            else:
                x[tuple(torch.unravel_index(torch.tensor(i), x.shape))] = float("nan")
    return x


def _one_dim(draw, sizes) -> int:
    return _dim(draw, len(sizes), tuple_ok=False, none_ok=False)


def _along(draw, dtype, device, ties=False, nonempty=True):
    """``(x, dim)`` with the dim non-empty (when ``nonempty``)."""
    sizes = list(shape(draw))
    dim = _one_dim(draw, sizes)
    if sizes and nonempty:
        sizes[dim] = max(sizes[dim], 1)
    x = _grid(draw, sizes, dtype, device) if ties else tensor(draw, sizes, dtype, device)
    return x, dim


def _size(x, dim) -> int:
    return x.shape[dim] if x.dim() else 1


# ----- sort, argsort, msort, topk, kthvalue ---------------------------------------------------------------
def _sort(ties: bool):
    def sample(draw, dtype, device):
        x, dim = _along(draw, dtype, device, ties, nonempty=False)
        kwargs = {"dim": dim, "descending": draw(st.booleans())}
        if draw(st.booleans()):
            kwargs["stable"] = draw(st.booleans())
        return Sample((x,), kwargs)

    return sample


def _argsort_stable(draw, dtype, device):
    x, dim = _along(draw, dtype, device, ties=True, nonempty=False)
    return Sample((x,), {"dim": dim, "descending": draw(st.booleans()), "stable": True})


def _topk(ties: bool):
    def sample(draw, dtype, device):
        x, dim = _along(draw, dtype, device, ties, nonempty=False)
        k = draw(st.integers(0, _size(x, dim)))
        return Sample((x, k, dim, draw(st.booleans()), draw(st.booleans())))

    return sample


def _kthvalue(ties: bool):
    def sample(draw, dtype, device):
        x, dim = _along(draw, dtype, device, ties)
        k = draw(st.integers(1, _size(x, dim)))
        return Sample((x, k, dim, draw(st.booleans())))

    return sample


register(
    *_pair("sort", _sort(False)),
    _variant("sort", "ties", _sort(True), fd=False, note=TIES),
    OpMirror("argsort[stable]", nx.argsort, torch.argsort, _argsort_stable, grad=False,
             note="stable=True on ties: the order among equal values is specified"),
    *_pair("msort", lambda d, t, v: Sample((tensor(d, shape(d), t, v),))),
    *_pair("topk", _topk(False)),
    _variant("topk", "ties", _topk(True), fd=False, note=TIES),
    *_pair("kthvalue", _kthvalue(False)),
    _variant("kthvalue", "ties", _kthvalue(True), fd=False, note=TIES),
)


# ----- median, nanmedian, mode ----------------------------------------------------------------------------
def _full(nans: bool = False, ties: bool = False):
    def sample(draw, dtype, device):
        sizes = shape(draw, min_side=1)
        x = _grid(draw, sizes, dtype, device) if ties else tensor(draw, sizes, dtype, device)
        return Sample((_with_nans(draw, x) if nans else x,))

    return sample


def _median_dim(nans: bool = False, ties: bool = False):
    def sample(draw, dtype, device):
        x, dim = _along(draw, dtype, device, ties)
        return Sample((_with_nans(draw, x) if nans else x, dim, draw(st.booleans())))

    return sample


NANS_FD = "NaN inputs: the finite-difference harness cannot perturb a NaN input (it stays NaN)"
NANS = "NaN inputs: the output is NaN where a slice is all NaN (finite differences need finite outputs)"
for _name in ("median", "nanmedian"):
    register(
        *_pair(_name, _full()),
        _variant(_name, "dim", _median_dim()),
        OpMirror(f"Tensor.{_name}[dim]", method(_name), method(_name), _median_dim()),
        _variant(_name, "ties", _full(ties=True), fd=False, note=TIES),
        _variant(_name, "dim ties", _median_dim(ties=True), fd=False, note=TIES),
        _variant(_name, "nan", _full(nans=True), fd=False, note=NANS),
        _variant(_name, "dim nan", _median_dim(nans=True), fd=False, note=NANS),
    )
register(
    *_pair("mode", _median_dim(ties=True), fd=False, note="the mode of tied values: " + TIES),
    _variant("mode", "distinct", _median_dim()),
)


# ----- cummax, cummin, logcumsumexp -----------------------------------------------------------------------
def _scan(ties: bool = False, domain: Domain | None = None, min_side: int = 0):
    def sample(draw, dtype, device):
        sizes = list(shape(draw, min_side=min_side))
        dim = _one_dim(draw, sizes)
        if ties:
            x = _grid(draw, sizes, dtype, device)
        else:
            x = tensor(draw, sizes, dtype, device, *((domain,) if domain else ()))
        return Sample((x, dim))

    return sample


for _name in ("cummax", "cummin"):
    register(*_pair(_name, _scan()), _variant(_name, "ties", _scan(ties=True), fd=False, note=TIES))
# non-empty: torch's own forward AD of logcumsumexp raises on an empty input (its jvp takes a max over the dim)
register(*_pair("logcumsumexp", _scan(domain=Domain(-4.0, 4.0), min_side=1)))


# ----- quantile, nanquantile ------------------------------------------------------------------------------
def _quantile(nans: bool, ties: bool = False):
    def sample(draw, dtype, device):
        sizes = list(shape(draw, min_side=1))
        dim = draw(st.one_of(st.none(), st.just(_one_dim(draw, sizes))))
        x = _grid(draw, sizes, dtype, device) if ties else tensor(draw, sizes, dtype, device)
        if nans:
            x = _with_nans(draw, x)
        mode = draw(st.sampled_from(["linear", "lower", "higher", "midpoint", "nearest"]))
        form = draw(st.sampled_from(["number", "0-d", "1-d"]))
        grid = [0.0, 0.25, 0.5, 1.0] if ties else []
        if form == "number":
            q = draw(st.sampled_from(grid) if grid else st.floats(0.0, 1.0))
        else:
            q_shape = () if form == "0-d" else (draw(st.integers(1, 3)),)
            q = tensor(draw, q_shape, dtype, device, Domain(0.03, 0.97))
        kwargs = {"keepdim": draw(st.booleans()), "interpolation": mode}
        if dim is not None:
            kwargs["dim"] = dim
        # torch's gradient reaches a tensor q through the linear weight only (lower/higher/nearest round the
        # rank, midpoint's weight is 1/2)
        grad_args = (0, 1) if form != "number" and mode == "linear" else (0,)
        return Sample((x, q), kwargs, grad_args=grad_args)

    return sample


def _quantile_ties_as_sorted() -> bool:
    """Whether the installed torch sends quantile's gradient at tied values where a stable sort puts them (torch
    2.13: a sort, a gather and a lerp, as neuronix), probed once on tie-heavy draws. torch 2.14 selects the order
    statistics with an unexposed selection kernel (no sort in its graph), which picks another of the tied inputs;
    values agree, the gradient lands on a different tied element."""
    gen = torch.Generator().manual_seed(0)
    for n in (5, 12, 38):
        for mode in ("linear", "lower", "higher"):
            x = torch.randint(0, 4, (n,), generator=gen).double().requires_grad_()
            q = torch.rand((), generator=gen).item()
            (torch_grad,) = torch.autograd.grad(torch.quantile(x, q, interpolation=mode), x)
            xn = nx.Tensor(x.detach().clone(), requires_grad=True)
            nx.quantile(xn, q, interpolation=mode).backward()
            if not torch.equal(xn.grad.data, torch_grad):
                return False
    return True


QUANTILE_DTYPES = "torch's quantile takes float32/float64 only (half inputs raise)"
QUANTILE_TIES = _quantile_ties_as_sorted()
UNORDERED_TIES = ("the installed torch (2.14) selects which tied input gets quantile's gradient by an unspecified "
                  "selection, not a stable sort: gradients are compared on the drawn (tie-free) samples only; ")
for _name in ("quantile", "nanquantile"):
    _claims = {} if QUANTILE_TIES else {"tie_gradients": False}
    _why = "" if QUANTILE_TIES else UNORDERED_TIES
    # the [ties] and [nan] samples tie on purpose (several NaNs tie too): values only where the selection differs
    _tied = {} if QUANTILE_TIES else {"tie_gradients": False, "grad": False}
    register(
        *_pair(_name, _quantile(nans=False), dtypes=FLOATS, note=_why + QUANTILE_DTYPES, **_claims),
        _variant(_name, "ties", _quantile(nans=False, ties=True), fd=False, dtypes=FLOATS, note=_why + TIES, **_tied),
        _variant(_name, "nan", _quantile(nans=True), fd=False, dtypes=FLOATS, note=_why + NANS, **_tied),
    )


# ----- nansum, nanmean ------------------------------------------------------------------------------------
def _nan_reduction(nans: bool, **kwargs):
    base = reduction(**kwargs)

    def sample(draw, dtype, device):
        s = base(draw, dtype, device)
        x = s.args[0]
        return Sample((_with_nans(draw, x) if nans else x,), s.kwargs)

    return sample


register(
    *_pair("nansum", _nan_reduction(nans=False)),
    _variant("nansum", "nan", _nan_reduction(nans=True), fd=False, note=NANS_FD),
    _variant("nansum", "dtype", lambda d, t, v: Sample(_nan_reduction(True)(d, t, v).args, {"dtype": torch.float64}),
             fd=False, note=NANS_FD),
    *_pair("nanmean", _nan_reduction(nans=False, nonempty=True)),
    _variant("nanmean", "nan", _nan_reduction(nans=True, nonempty=True), fd=False, note=NANS),
)


# ----- var_mean, std_mean, aminmax ------------------------------------------------------------------------
for _name, _count in (("var_mean", 1), ("std_mean", 2)):  # std: a zero deviation has no derivative
    register(*_pair(_name, _spread(_count)), _variant(_name, "unbiased", _unbiased(max(_count, 2))))


def _aminmax(ties: bool):
    def sample(draw, dtype, device):
        sizes = list(shape(draw, min_side=1))
        x = _grid(draw, sizes, dtype, device) if ties else tensor(draw, sizes, dtype, device)
        kwargs = {"keepdim": draw(st.booleans())} if draw(st.booleans()) else {}
        if draw(st.booleans()):
            kwargs["dim"] = _one_dim(draw, sizes)
        return Sample((x,), kwargs)

    return sample


register(*_pair("aminmax", _aminmax(False)), _variant("aminmax", "ties", _aminmax(True), fd=False, note=TIES))


# ----- diff, gradient, trapezoid, cumulative_trapezoid ----------------------------------------------------
def _diff(draw, dtype, device):
    sizes = list(nonempty_shape(draw, max_side=5)) if draw(st.booleans()) else list(shape(draw, min_dims=1))
    dim = _one_dim(draw, sizes)
    args = [tensor(draw, sizes, dtype, device), draw(st.integers(0, 3)), dim]
    for _ in range(2):  # prepend, append: the input's shape but along dim
        if draw(st.booleans()):
            other = list(sizes)
            other[dim] = draw(st.integers(0, 3))
            args.append(tensor(draw, other, dtype, device))
        else:
            args.append(None)
    return Sample(tuple(args))


def _diff_bool(draw, dtype, device):
    sizes = list(nonempty_shape(draw))
    return Sample((tensor(draw, sizes, dtype, device) > 0, draw(st.integers(0, 3)), _one_dim(draw, sizes)))


def _gradient(draw, dtype, device):
    edge_order = draw(st.sampled_from([1, 2]))
    sizes = [draw(st.integers(edge_order + 1, 5)) for _ in range(draw(st.integers(1, 3)))]
    x = tensor(draw, sizes, dtype, device)
    form = draw(st.sampled_from(["none", "int", "list"]))
    dims = list(range(len(sizes))) if form == "none" else [_one_dim(draw, sizes)] if form == "int" else \
        sorted(set(draw(st.lists(st.integers(0, len(sizes) - 1), min_size=1, max_size=len(sizes)))))
    kwargs = {"edge_order": edge_order}
    if form != "none":
        kwargs["dim"] = dims[0] if form == "int" else dims
    spacing = draw(st.sampled_from(["default", "number", "numbers", "coordinates"]))
    if spacing == "number":
        kwargs["spacing"] = draw(st.sampled_from([0.5, 2.0, 3]))
    elif spacing == "numbers":
        kwargs["spacing"] = [draw(st.sampled_from([0.5, 1.5, 2.0])) for _ in dims]
    elif spacing == "coordinates":  # increasing sample points along each dim
        kwargs["spacing"] = [tensor(draw, (sizes[d],), dtype, device, Domain(0.3, 1.0)).cumsum(0) for d in dims]
    return Sample((x,), kwargs, grad_args=(0,))


def _integral(cumulative: bool):
    def sample(draw, dtype, device):
        sizes = list(nonempty_shape(draw))
        dim = _one_dim(draw, sizes)
        y = tensor(draw, sizes, dtype, device)
        form = draw(st.sampled_from(["default", "dx", "x 1-d", "x same"]))
        kwargs = {"dim": dim}
        if form == "dx":
            return Sample((y,), {**kwargs, "dx": draw(st.sampled_from([0.5, 2.0, 3]))})
        if form == "default":
            return Sample((y,), kwargs)
        x_shape = (sizes[dim],) if form == "x 1-d" else tuple(sizes)
        return Sample((y, tensor(draw, x_shape, dtype, device)), kwargs)

    return sample


register(
    *_pair("diff", _diff),
    OpMirror("diff[bool]", nx.diff, torch.diff, _diff_bool, grad=False),
    OpMirror("gradient", nx.gradient, torch.gradient, _gradient),
    *_pair("trapezoid", _integral(False)),
    *_pair("trapz", _integral(False)),
    *_pair("cumulative_trapezoid", _integral(True)),
)


# ----- unique, unique_consecutive, histc, bucketize, searchsorted, isin, count_nonzero ----------------------
def _unique(consecutive: bool):
    def sample(draw, dtype, device):
        sizes = list(shape(draw))
        x = _grid(draw, sizes, dtype, device)
        kwargs = {"return_inverse": draw(st.booleans()), "return_counts": draw(st.booleans())}
        if not consecutive:
            kwargs["sorted"] = draw(st.booleans())
        if sizes and draw(st.booleans()):
            kwargs["dim"] = _one_dim(draw, sizes)
        return Sample((x,), kwargs)

    return sample


def _histc(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    bounds = draw(st.sampled_from([(0, 0), (-1.0, 1.0), (-2.5, 0.5)]))
    return Sample((x, draw(st.integers(1, 12)), *bounds))


def _bucketize(draw, dtype, device):
    boundaries = tensor(draw, (draw(st.integers(0, 6)),), dtype, device).sort().values
    x = _grid(draw, shape(draw), dtype, device)
    return Sample((x, boundaries), {"right": draw(st.booleans()), "out_int32": draw(st.booleans())})


def _searchsorted(draw, dtype, device):
    lead = tuple(shape(draw, max_dims=2, min_side=1))
    seq = _grid(draw, lead + (draw(st.integers(0, 6)),), dtype, device).sort(-1).values
    if draw(st.booleans()):
        seq = seq.reshape(-1).sort().values  # a 1-d sequence serves any input shape
        values = _grid(draw, shape(draw), dtype, device)
    else:
        values = _grid(draw, lead + (draw(st.integers(0, 4)),), dtype, device)
    side = draw(st.sampled_from([None, "left", "right"]))
    kwargs = {"side": side} if side else {"right": draw(st.booleans())}
    return Sample((seq, values), {**kwargs, "out_int32": draw(st.booleans())})


def _isin(draw, dtype, device):
    elements = _grid(draw, shape(draw), dtype, device)
    test = _grid(draw, shape(draw), dtype, device)
    return Sample((elements, test), {"invert": draw(st.booleans())})


def _histogram(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device)
    bins = draw(st.integers(1, 6)) if draw(st.booleans()) else torch.tensor([-1.5, -0.2, 0.0, 1.0], dtype=dtype)
    kwargs = {"density": draw(st.booleans())}
    if draw(st.booleans()) and isinstance(bins, int):
        kwargs["range"] = (-1.0, 1.5)
    if draw(st.booleans()):
        kwargs["weight"] = tensor(draw, x.shape, dtype, device, Domain(0.0, 2.0))
    return Sample((x, bins), kwargs)


def _histogramdd(draw, dtype, device):
    points = tensor(draw, (draw(st.integers(0, 6)), draw(st.integers(1, 3))), dtype, device)
    bins = [draw(st.integers(1, 4)) for _ in range(points.shape[1])]
    return Sample((points, bins), {"density": draw(st.booleans())})


def _bincount(draw, dtype, device):
    counts = index_tensor(draw, (draw(st.integers(0, 8)),), 6, device)
    args = (counts, tensor(draw, counts.shape, dtype, device)) if draw(st.booleans()) else (counts,)
    return Sample(args, {"minlength": draw(st.integers(0, 8))})


def _count_dims(draw, dtype, device):
    sizes = list(shape(draw, min_dims=1))
    x = _grid(draw, sizes, dtype, device)
    return Sample((x,), {"dim": tuple(sorted(set(draw(st.lists(st.integers(0, len(sizes) - 1), min_size=1)))))})


register(
    *_pair("unique", _unique(False), grad=False),
    *_pair("unique_consecutive", _unique(True), grad=False),
    *_pair("histc", _histc, grad=False),
    OpMirror("bucketize", nx.bucketize, torch.bucketize, _bucketize, grad=False),
    OpMirror("searchsorted", nx.searchsorted, torch.searchsorted, _searchsorted, grad=False),
    OpMirror("isin", nx.isin, torch.isin, _isin, grad=False),
    *_pair("histogram", _histogram, grad=False, dtypes=FLOATS, note="torch's CPU histogram has no half kernel"),
    OpMirror("histogramdd", nx.histogramdd, torch.histogramdd, _histogramdd, grad=False, dtypes=FLOATS,
             note="torch's CPU histogramdd has no half kernel"),
    *_pair("bincount", _bincount, grad=False, note="torch defines no derivative for the weights"),
    OpMirror("count_nonzero[dims]", nx.count_nonzero, torch.count_nonzero, _count_dims, grad=False),
)
