"""The code every standalone repro script carries (``conformance.snippet`` writes the rest).

Plain text, pasted into each script: a script must run with torch and neuronix alone. ``HELPERS``
flattens results, prints max differences and takes gradients in either library; ``COMPARE`` is
the harness's forward, backward and second-derivative checks (also w.r.t. the upstream gradient);
``FINITE_DIFFERENCES`` checks torch's autograd against float64 central differences (torch-only
scripts).
"""

HELPERS = '''
def flat(value):
    """The leaves of a result in order (tuples, lists and dicts flattened), as the harness compares them."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in flat(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in flat(v)]
    return [value]


def plain(x):
    """torch values of a neuronix or torch tensor (numbers become tensors)."""
    x = x.data if isinstance(x, nx.Tensor) else x
    return x.detach() if isinstance(x, torch.Tensor) else torch.tensor(x)


WORST = [0.0]


def show(what, mine, oracle, names=("neuronix", "torch")):
    """Print max |mine - oracle| (equal NaN and infinities count as 0; NaN on one side only as inf)."""
    if not all(isinstance(x, (torch.Tensor, nx.Tensor, bool, int, float, complex)) for x in (mine, oracle)):
        d = 0.0 if mine == oracle else inf  # dtypes, devices, shapes: equal or not
        print(f"{what:48s} {names[0]} {mine!r} vs {names[1]} {oracle!r}: max |{names[0]} - {names[1]}| = {d:.3e}")
        WORST[0] = max(WORST[0], d)
        return
    a, b = plain(mine), plain(oracle)
    if a.shape != b.shape or a.dtype != b.dtype:
        print(f"{what:48s} {names[0]} {tuple(a.shape)} {a.dtype} != {names[1]} {tuple(b.shape)} {b.dtype}")
        WORST[0] = inf
        return
    a, b = a.cpu(), b.cpu()
    if a.is_floating_point() or a.is_complex():
        same = (a == b) | (a.isnan() & b.isnan())
        diff = torch.where(same, 0.0, (a.to(torch.complex128 if a.is_complex() else torch.float64) - b).abs())
        diff = torch.where(diff.isnan(), inf, diff)
    else:
        diff = (a != b).double()
    d = float(diff.max()) if diff.numel() else 0.0
    print(f"{what:48s} max |{names[0]} - {names[1]}| = {d:.3e}")
    WORST[0] = max(WORST[0], d)


def attempt(lib, fn, counts=True):
    """fn(), or None after printing what it raised (a difference, unless ``counts`` is False)."""
    try:
        return fn()
    except Exception as err:  # the failure may be an exception in one library
        print(f"{lib} raised {type(err).__name__}: {err}")
        WORST[0] = inf if counts else WORST[0]
        return None


def both(t_call, n_call):
    """Both libraries' flattened results; when exactly one raises, that is the difference. Both raising
    is no difference: the harness rejects such an example as invalid input."""
    t_out, n_out = attempt("torch", t_call, counts=False), attempt("neuronix", n_call, counts=False)
    if (t_out is None) != (n_out is None):
        WORST[0] = inf
    return (t_out, n_out) if t_out is not None and n_out is not None else (None, None)


def grad(lib, outs, wrt, ups, create_graph=False):
    """The gradient of sum <ups, outs> w.r.t. wrt in lib (torch or nx); zeros where an input is unused."""
    pairs = [(o, u) for o, u in zip(outs, ups) if o.requires_grad]
    got = [None] * len(wrt)
    if pairs:
        fn = torch.autograd.grad if lib is torch else nx.autograd.grad
        got = fn([o for o, _ in pairs], wrt, grad_outputs=[u for _, u in pairs], allow_unused=True,
                 create_graph=create_graph)
    zero = (lambda x: torch.zeros_like(x.detach())) if lib is torch else (lambda x: nx.Tensor(torch.zeros_like(x.data)))
    return [g if g is not None else zero(x) for g, x in zip(got, wrt)]


def dot(gs, vs):
    """sum_i <gs_i, vs_i> over the gradients that are in a graph (None when none is)."""
    terms = [(g * v).sum() for g, v in zip(gs, vs) if g.requires_grad]
    return None if not terms else sum(terms[1:], terms[0])
'''

COMPARE = '''
def compare(t_out, n_out, t_wrt, n_wrt, labels, floats, upstream, v, second, by_upstream, prefix=""):
    """Outputs; gradients under the upstream gradient; second derivatives of <grad, v> (as the harness)."""
    for k, (n, t) in enumerate(zip(n_out, t_out)):
        show(f"{prefix}output {k}", n, t)
    if not t_wrt or not floats or len(n_out) != len(t_out):
        return
    t_up = [u.clone().requires_grad_(by_upstream) for u in upstream]
    n_up = [nx.Tensor(u.clone(), requires_grad=by_upstream) for u in upstream]
    t_g = grad(torch, [t_out[k] for k in floats], t_wrt, t_up, second)
    n_g = attempt("neuronix", lambda: grad(nx, [n_out[k] for k in floats], n_wrt, n_up, second))
    if n_g is None:
        return
    for label, n, t in zip(labels, n_g, t_g):
        show(f"{prefix}grad {label}", n, t)
    if not second:
        return
    t_s, n_s = dot(t_g, v), dot(n_g, [nx.Tensor(x) for x in v])
    ups = [f"upstream gradient {k}" for k in floats] if by_upstream else []
    wrt2 = (t_wrt + (t_up if by_upstream else []), n_wrt + (n_up if by_upstream else []))
    t_gg = grad(torch, [t_s], wrt2[0], [torch.ones_like(t_s)]) if t_s is not None else [0 * x for x in wrt2[0]]
    n_gg = attempt("neuronix", lambda: grad(nx, [n_s], wrt2[1], [torch.ones_like(n_s.data)]) if n_s is not None
                   else [0 * plain(x) for x in wrt2[1]])
    for label, n, t in zip(labels + ups, n_gg or [], t_gg):
        show(f"{prefix}grad of <grad, v> wrt {label}", n, t)
'''

FINITE_DIFFERENCES = '''
STEP = 1e-6  # float64 central differences: truncation ~ STEP**2, rounding ~ 1e-16 / STEP
FULL_LIMIT = 500  # elements: above this, 4 random directions instead of every element


def central(objective, xs, full=True):
    """d objective / d xs by float64 central differences: per element (when ``full`` and small enough),
    else along 4 random directions."""
    xs = [x.detach().double() for x in xs]
    if not full or sum(x.numel() for x in xs) > FULL_LIMIT:
        gen = torch.Generator().manual_seed(0)
        dirs = [[torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device) for x in xs] for _ in range(4)]
        return "directions", dirs, [(objective([x + STEP * d for x, d in zip(xs, ds)])
                                     - objective([x - STEP * d for x, d in zip(xs, ds)])) / (2 * STEP) for ds in dirs]
    est = []
    for i, x in enumerate(xs):
        e = torch.zeros(x.numel(), dtype=torch.float64)
        for j in range(x.numel()):
            step = torch.zeros(x.numel(), dtype=torch.float64)
            step[j] = STEP
            step = step.reshape(x.shape).to(x.device)
            plus = [b + step if k == i else b for k, b in enumerate(xs)]
            minus = [b - step if k == i else b for k, b in enumerate(xs)]
            e[j] = (objective(plus) - objective(minus)) / (2 * STEP)
        est.append(e.reshape(x.shape))
    return "elements", None, est


def show_fd(what, autograd, objective, xs, labels, full=True):
    """torch's autograd derivative against the central-difference estimate."""
    how, dirs, est = central(objective, xs, full)
    if how == "elements":
        for label, g, e in zip(labels, autograd, est):
            show(f"{what} {label}", plain(g).double(), e, ("torch autograd", "finite difference"))
    else:
        for d, (ds, e) in enumerate(zip(dirs, est)):
            a = sum(float((plain(g).double() * x).sum()) for g, x in zip(autograd, ds))
            show(f"{what} direction {d}", torch.tensor(a), torch.tensor(e), ("torch autograd", "finite difference"))


def torch_vs_fd(f, xs, labels, floats, upstream, v, second, prefix=""):
    """torch's gradient (and second derivative) of <upstream, f(xs)> against float64 finite differences."""
    leaves = [x.detach().requires_grad_() for x in xs]
    outs = flat(f(*leaves))
    g = grad(torch, [outs[k] for k in floats], leaves, upstream, second)
    up64 = [u.double() for u in upstream]

    def objective(values):  # <upstream, f(values)> in float64
        with torch.no_grad():
            outs = flat(f(*values))
        return sum(float((outs[k].double() * u).sum()) for k, u in zip(floats, up64))

    show_fd(f"{prefix}grad", g, objective, xs, labels)
    if not second:
        return
    s = dot(g, v)
    gg = grad(torch, [s], leaves, [torch.ones_like(s)]) if s is not None else [0 * x for x in leaves]

    def grad_dot_v(values):  # <d<upstream, f>/dx, v> in float64, by torch's autograd
        inner = [x.detach().requires_grad_() for x in values]
        outs = flat(f(*inner))
        gs = grad(torch, [outs[k] for k in floats], inner, up64)
        return sum(float((gi.double() * vi.double()).sum()) for gi, vi in zip(gs, v))

    show_fd(f"{prefix}grad of <grad, v> wrt", gg, grad_dot_v, xs, labels, full=False)  # each estimate a backward
'''
