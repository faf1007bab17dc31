"""``nx.func``: torch.func's transforms (``jvp``, ``vjp``, ``grad``, ``grad_and_value``, ``jacrev``,
``jacfwd``, ``hessian``) on Neuronix's own reverse-mode engine, with torch.func's signatures and
return structures.

Forward mode comes from the same one rule per op as reverse mode (the double-VJP trick): for a
dummy upstream gradient ``u`` the reverse pass gives ``g(u) = J^T u``, which is linear in ``u``, so
the gradient of ``<g(u), v>`` with respect to ``u`` is ``J v``. A JVP therefore costs two reverse
passes (the second one over the recorded rules) and needs no second rule table.

Levels and nesting. Each transform call differentiates with respect to inputs of its own: a
fresh leaf, or, when the primal is already in a graph (an outer transform, or the user's own
``requires_grad``), a recorded ``clone`` of it, so an inner ``grad`` never follows the path of a
closed-over copy of the same tensor (no perturbation confusion) while an outer one still reaches
it. Whenever recording is on at the call (``nx.is_grad_enabled()``) the passes use
``create_graph``, so the results can be differentiated again: ``hessian`` is
``jacfwd(jacrev(f))`` and ``grad(grad(f))`` works. Under ``nx.no_grad`` the transforms still
compute (as torch.func's ignore an outer ``no_grad``) and return detached results.

Limits: no ``vmap``; Jacobians take one pass per output element (``jacrev``) or per input element
(``jacfwd``), so they suit small problems; ``chunk_size`` and ``randomness`` are accepted and
validated but change nothing (``jacfwd`` runs ``func`` once, so random ops see one draw, as
``randomness="same"``).
"""

from __future__ import annotations

import torch

from neuronix.autograd import engine
from neuronix.autograd.mode import enable_grad, is_grad_enabled
from neuronix.ops.public import public
from neuronix.tensor import Tensor

_RANDOMNESS = ("error", "different", "same")


# ----- pytrees: nested tuples, lists and dicts of tensors ----------------------------------------
def _flatten(tree) -> tuple[list, object]:
    """``(leaves, spec)``: the leaves of nested tuples / lists / dicts, in order, and how to rebuild them."""
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        parts = [_flatten(t) for t in tree]
        return [leaf for leaves, _ in parts for leaf in leaves], (type(tree), [spec for _, spec in parts])
    if isinstance(tree, dict):
        parts = {k: _flatten(v) for k, v in tree.items()}
        return [leaf for leaves, _ in parts.values() for leaf in leaves], (dict, {k: s for k, (_, s) in parts.items()})
    return [tree], None


def _unflatten(spec, leaves: list):
    """The tree ``spec`` describes, with ``leaves`` in place of its leaves."""
    return _build(spec, iter(leaves))


def _build(spec, leaves):
    # module level, not a closure: a recursive closure is a reference cycle, which would keep the
    # leaves (and their graphs) alive until the cyclic collector runs
    if spec is None:
        return next(leaves)
    kind, children = spec
    if kind is dict:
        return {k: _build(c, leaves) for k, c in children.items()}
    return kind(_build(c, leaves) for c in children)


def _same_structure(a, b) -> bool:
    return _flatten(a)[1] == _flatten(b)[1]


# ----- levels --------------------------------------------------------------------------------------
def _check_primal(x, api: str) -> Tensor:
    if isinstance(x, torch.Tensor):
        x = Tensor(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"{api}: thing passed to transform API must be Tensor, got {type(x)}")
    if not x.data.is_floating_point():
        raise ValueError(f"{api}: expected primal to be floating point, but got: {x.dtype}; only floating point "
                         "tensors can be differentiated")
    return x


def _level_input(x: Tensor, outer: bool) -> Tensor:
    """The tensor this transform differentiates with respect to, standing for ``x``.

    A recorded clone when ``x`` is in an outer graph (an outer transform or backward reaches ``x``
    through it), else a fresh leaf on the same data. Call under ``enable_grad``.
    """
    if outer and x.requires_grad:
        from neuronix.ops.movement import clone  # the ops package imports the autograd package

        return clone(x)
    return Tensor(x.data, requires_grad=True)


def _zeros(x) -> Tensor:
    return Tensor._make(torch.zeros_like(x.data if isinstance(x, Tensor) else x), None)


def _reaches_outside(t: Tensor, own: set) -> bool:
    """Whether ``t``'s graph reaches a leaf that requires grad other than this transform's own leaves
    (ids in ``own``): a primal or tangent in the caller's graph, a closed-over tensor that requires grad."""
    if t.grad_fn is None:
        return t.requires_grad and id(t) not in own
    from neuronix.autograd.graph import Node  # a leaf is any vertex that is not a Node

    return any(v.__class__ is not Node and id(v) not in own for v in engine._dependencies([t.grad_fn]))


def _detached(tree, outer: bool, own: set):
    """Results stay in the caller's graph only when the caller records one and they reach into it,
    as torch.func's (``requires_grad`` only where a tensor outside the transform requires grad)."""
    leaves, spec = _flatten(tree)
    return _unflatten(spec, [Tensor._make(t.data, None) if isinstance(t, Tensor) and not (outer and _reaches_outside(t, own))
                             else t for t in leaves])


def _pullback(outs: list, xs: list, cotangents: list, create_graph: bool) -> list:
    """``J^T cotangents`` for every ``xs`` (zeros where no path leads), keeping the graph for more passes."""
    pairs = [(o, c) for o, c in zip(outs, cotangents) if isinstance(o, Tensor) and o.requires_grad]
    if not pairs:
        return [_zeros(x) for x in xs]
    got = engine.grad([o for o, _ in pairs], xs, grad_outputs=[c for _, c in pairs], retain_graph=True,
                      create_graph=create_graph, allow_unused=True)
    return [g if g is not None else _zeros(x) for g, x in zip(got, xs)]


def _transposed(gs: list, tangents: list, us: list, create_graph: bool, retain: bool) -> list:
    """``J v`` from ``gs = J^T u`` (recorded as a function of the dummies ``us``): the double-VJP trick.

    ``sum_j <gs_j, v_j> = <u, J v>``, so its gradient with respect to ``u`` is ``J v``.
    """
    terms = [(g * v).sum() for g, v in zip(gs, tangents) if isinstance(g, Tensor) and g.requires_grad]
    if not terms:
        return [_zeros(u) for u in us]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    got = engine.grad([total], us, retain_graph=retain, create_graph=create_graph, allow_unused=True)
    return [g if g is not None else _zeros(u) for g, u in zip(got, us)]


def _differentiable(out) -> bool:
    return isinstance(out, Tensor) and out.requires_grad and out.data.is_floating_point()


def _dummies(outs: list, own: set) -> list:
    """The dummy upstream gradients ``u`` of the double-VJP trick (any value: ``J^T u`` is linear in ``u``);
    their ids join ``own``, the transform's own leaves."""
    us = [Tensor(torch.zeros_like(o.data), requires_grad=True) for o in outs]
    own.update(id(u) for u in us)
    return us


def _jvp_of(outs: list, xs: list, tangents: list, create_graph: bool, own: set) -> list:
    """The tangent of every output (zeros for outputs outside the graph or not floating)."""
    diff = [k for k, o in enumerate(outs) if _differentiable(o)]
    result = [_zeros(o) for o in outs]
    if not diff:
        return result
    us = _dummies([outs[k] for k in diff], own)
    gs = engine.grad([outs[k] for k in diff], xs, grad_outputs=us, retain_graph=True, create_graph=True,
                     allow_unused=True)
    for k, jv in zip(diff, _transposed(list(gs), tangents, us, create_graph, retain=create_graph)):
        result[k] = jv
    return result


def _split_aux(out, has_aux: bool, api: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True")
    return out


def _check_outputs(leaves: list, api: str) -> None:
    for o in leaves:
        if not isinstance(o, Tensor):
            raise RuntimeError(f"{api}: expected f(*primals) to return only tensors, got unsupported type {type(o)}")


def _outputs(result, has_aux: bool, api: str):
    """``(out, aux, output leaves, output spec)`` of what ``func`` returned, its outputs checked to be tensors."""
    out, aux = _split_aux(result, has_aux, api)
    o_leaves, o_spec = _flatten(out)
    _check_outputs(o_leaves, api)
    return out, aux, o_leaves, o_spec


# ----- jvp and vjp -----------------------------------------------------------------------------------
@public(namespace="func")
def jvp(func, primals, tangents, *, strict: bool = False, has_aux: bool = False):
    """``(func(*primals), J tangents)`` (plus ``aux`` with ``has_aux``), as ``torch.func.jvp``.

    ``primals`` and ``tangents`` are tuples (of pytrees) of tensors with the same structure and shapes.
    """
    api = "jvp(f, primals, tangents)"
    if strict:
        raise RuntimeError(f"{api}: strict=True is not implemented (as in torch.func)")
    for what, value in (("primals", primals), ("tangents", tangents)):
        if not isinstance(value, tuple):
            raise RuntimeError(f"{api}: Expected {what} to be a tuple. E.g. it should be valid to call f(*primals).")
    p_leaves, p_spec = _flatten(primals)
    t_leaves, t_spec = _flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(f"{api}: Expected primals and tangents to have the same python structure: for example, "
                           f"if primals is a tuple of 3 tensors, tangents also must be; got {len(p_leaves)} primal "
                           f"and {len(t_leaves)} tangent leaves")
    if not p_leaves:
        raise RuntimeError(f"{api}: Expected primals to contain at least one Tensor.")
    for what, leaves in (("primals", p_leaves), ("tangents", t_leaves)):
        for leaf in leaves:
            if not isinstance(leaf, (Tensor, torch.Tensor)):
                raise RuntimeError(f"{api}: Expected {what} to only contain Tensors, got {type(leaf)}")
    p_leaves = [_check_primal(p, api) for p in p_leaves]
    vs = []
    for p, t in zip(p_leaves, t_leaves):
        t = t if isinstance(t, Tensor) else Tensor(t)
        if t.shape != p.shape:
            raise RuntimeError(f"{api}: a tangent has shape {list(t.shape)} but its primal has shape {list(p.shape)}; "
                               "each tangent must have its primal's shape")
        vs.append(t if t.dtype == p.dtype else t.to(p.dtype))
    outer = is_grad_enabled()
    with enable_grad():
        xs = [_level_input(p, outer) for p in p_leaves]
        out, aux, o_leaves, o_spec = _outputs(func(*_unflatten(p_spec, xs)), has_aux, api)
        own = {id(x) for x in xs}
        tangent_out = _jvp_of(o_leaves, xs, vs, create_graph=outer, own=own)
    result = (_detached(out, outer, own), _detached(_unflatten(o_spec, tangent_out), outer, own))
    return (*result, _detached(aux, outer, own)) if has_aux else result


@public(namespace="func")
def vjp(func, *primals, has_aux: bool = False):
    """``(func(*primals), vjp_fn)`` (plus ``aux``), as ``torch.func.vjp``: ``vjp_fn(cotangents)`` returns
    one gradient per primal (each shaped like its primal's pytree); it may be called many times."""
    outer = is_grad_enabled()
    p_leaves, p_spec = _flatten(primals)
    p_leaves = [_check_primal(p, "vjp(f, *primals)") for p in p_leaves]
    with enable_grad():
        xs = [_level_input(p, outer) for p in p_leaves]
        out, aux, o_leaves, o_spec = _outputs(func(*_unflatten(p_spec, xs)), has_aux, "vjp(f, *primals)")

    def vjp_fn(cotangents):
        c_leaves, c_spec = _flatten(cotangents)
        if c_spec != o_spec:
            raise RuntimeError("vjp_fn: Expected pytree structure of cotangents to be the same as pytree structure "
                               f"of outputs to the function ({len(c_leaves)} cotangent and {len(o_leaves)} output "
                               "leaves)")
        c_leaves = [c if isinstance(c, Tensor) else Tensor(c) for c in c_leaves]
        for i, (c, o) in enumerate(zip(c_leaves, o_leaves)):
            if c.shape != o.shape:
                raise RuntimeError(f"vjp_fn: Mismatch in shape: grad_output[{i}] has a shape of {c.shape} and "
                                   f"output[{i}] has a shape of {o.shape}.")
        create = is_grad_enabled()
        with enable_grad():
            gs = _pullback(o_leaves, xs, c_leaves, create_graph=create)
        return _detached(_unflatten(p_spec, gs), create, own)

    own = {id(x) for x in xs}
    result = (_detached(out, outer, own), vjp_fn)
    return (*result, _detached(aux, outer, own)) if has_aux else result


# ----- grad ---------------------------------------------------------------------------------------------
def _argnums(argnums, n: int):
    """``argnums`` checked and made non-negative (an int or a tuple of ints), as torch.func checks it."""
    def one(a):
        if not isinstance(a, int) or isinstance(a, bool):
            raise RuntimeError(f"argnum must be int, got: {type(a)}")
        if not -n <= a < n:
            raise RuntimeError(f"Got argnum={a}, but only {n} positional inputs")
        return a % n

    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return one(argnums)
    if not isinstance(argnums, tuple):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    if not argnums:
        raise RuntimeError("argnums must be non-empty")
    picked = tuple(one(a) for a in argnums)
    if len(set(picked)) != len(picked):
        raise RuntimeError(f"argnums elements must be unique, got {argnums}")
    return picked


def _at_level(func, args: tuple, kwargs: dict, argnums, outer: bool, api: str):
    """Call ``func`` with the arguments at ``argnums`` replaced by level inputs.

    Returns ``(result, level inputs, rebuild)`` where ``rebuild(values)`` puts one value per level
    input back into the structure of the selected arguments (a tuple when ``argnums`` is).
    """
    picked = _argnums(argnums, len(args))
    positions = (picked,) if isinstance(picked, int) else picked
    trees = [_flatten(args[i]) for i in positions]
    primals = [[_check_primal(x, api) for x in leaves] for leaves, _ in trees]
    with enable_grad():
        xs = [[_level_input(x, outer) for x in leaves] for leaves in primals]
        new_args = list(args)
        for i, (_, spec), level in zip(positions, trees, xs):
            new_args[i] = _unflatten(spec, level)
        result = func(*new_args, **kwargs)
    sizes = [len(level) for level in xs]

    def rebuild(values: list):
        parts, start = [], 0
        for (_, spec), size in zip(trees, sizes):
            parts.append(_unflatten(spec, values[start:start + size]))
            start += size
        return parts[0] if isinstance(picked, int) else tuple(parts)

    return result, [x for level in xs for x in level], rebuild


@public(namespace="func")
def grad_and_value(func, argnums=0, has_aux: bool = False):
    """A function returning ``(gradient, value)`` of the scalar ``func`` (``(gradient, (value, aux))`` with
    ``has_aux``), as ``torch.func.grad_and_value``."""
    api = "grad_and_value(f)(*args)"

    def wrapper(*args, **kwargs):
        outer = is_grad_enabled()
        result, xs, rebuild = _at_level(func, args, kwargs, argnums, outer, api)
        out, aux = _split_aux(result, has_aux, api)
        if not isinstance(out, Tensor):
            raise RuntimeError(f"{api}: Expected f(*args) to return a Tensor, got {type(out)}")
        if out.dim() != 0:
            raise RuntimeError(f"{api}: Expected f(*args) to return a scalar Tensor, got tensor with {out.dim()} dims. "
                               "Maybe you wanted to use the vjp or jacrev APIs instead?")
        with enable_grad():
            gs = _pullback([out], xs, [Tensor._make(torch.ones_like(out.data), None)], create_graph=outer)
        own = {id(x) for x in xs}
        gradient, value = _detached(rebuild(gs), outer, own), _detached(out, outer, own)
        return (gradient, (value, _detached(aux, outer, own))) if has_aux else (gradient, value)

    return wrapper


@public(namespace="func")
def grad(func, argnums=0, has_aux: bool = False):
    """A function returning the gradient of the scalar ``func`` w.r.t. the arguments at ``argnums``
    (``(gradient, aux)`` with ``has_aux``), as ``torch.func.grad``."""
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        gradient, value = both(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return wrapper


# ----- Jacobians ------------------------------------------------------------------------------------------
def _jacobian_tree(o_spec, rebuild, blocks: list, argnums):
    """``blocks[i][j]`` (output leaf i, input leaf j) arranged as torch.func arranges a Jacobian: the
    outputs' structure outside, the selected arguments' structure inside."""
    return _unflatten(o_spec, [rebuild(row) for row in blocks])


def _stack_block(pieces: list, o: Tensor, x: Tensor, by_output: bool) -> Tensor:
    """One Jacobian block of shape ``o.shape + x.shape`` from rows (one per output element, ``by_output``)
    or columns (one per input element)."""
    from neuronix.ops.movement import reshape, stack  # the ops package imports the autograd package

    shape = tuple(o.shape) + tuple(x.shape)
    if not pieces:
        return Tensor._make(torch.zeros(shape, dtype=o.dtype, device=o.device), None)
    flat = stack([reshape(p, (-1,)) for p in pieces], 0 if by_output else 1)
    return reshape(flat, shape)


@public(namespace="func")
def jacrev(func, argnums=0, *, has_aux: bool = False, chunk_size: int | None = None):
    """The Jacobian of ``func`` by reverse mode (one pass per output element), as ``torch.func.jacrev``."""
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size > 0):
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")
    api = "jacrev(f)(*args)"

    def wrapper(*args, **kwargs):
        outer = is_grad_enabled()
        result, xs, rebuild = _at_level(func, args, kwargs, argnums, outer, api)
        out, aux, o_leaves, o_spec = _outputs(result, has_aux, api)
        blocks = []
        with enable_grad():
            for o in o_leaves:
                rows = []
                for k in range(o.numel()):
                    onehot = torch.zeros(o.numel(), dtype=o.dtype, device=o.device)
                    onehot[k] = 1
                    rows.append(_pullback([o], xs, [Tensor._make(onehot.reshape(o.shape), None)], create_graph=outer))
                blocks.append([_stack_block([r[j] for r in rows], o, x, by_output=True) for j, x in enumerate(xs)])
        own = {id(x) for x in xs}
        jac = _detached(_jacobian_tree(o_spec, rebuild, blocks, argnums), outer, own)
        return (jac, _detached(aux, outer, own)) if has_aux else jac

    return wrapper


@public(namespace="func")
def jacfwd(func, argnums=0, has_aux: bool = False, *, randomness: str = "error"):
    """The Jacobian of ``func`` by forward mode (one JVP per input element), as ``torch.func.jacfwd``.

    ``func`` runs once; each column is a second reverse pass of the double-VJP trick over the same
    recorded rules.
    """
    if randomness not in _RANDOMNESS:
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")
    api = "jacfwd(f)(*args)"

    def wrapper(*args, **kwargs):
        outer = is_grad_enabled()
        result, xs, rebuild = _at_level(func, args, kwargs, argnums, outer, api)
        out, aux, o_leaves, o_spec = _outputs(result, has_aux, api)
        diff = [k for k, o in enumerate(o_leaves) if _differentiable(o)]
        columns = [[[] for _ in xs] for _ in o_leaves]  # columns[i][j]: J_ij applied to each basis vector of x_j
        own = {id(x) for x in xs}
        with enable_grad():
            us = _dummies([o_leaves[k] for k in diff], own)
            gs = engine.grad([o_leaves[k] for k in diff], xs, grad_outputs=us, retain_graph=True, create_graph=True,
                             allow_unused=True) if diff else [None] * len(xs)
            for j, x in enumerate(xs):
                for e in range(x.numel()):
                    basis = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
                    basis[e] = 1
                    jv = _transposed([gs[j]], [Tensor._make(basis.reshape(x.shape), None)], us, create_graph=outer,
                                     retain=True)
                    for i, o in enumerate(o_leaves):
                        columns[i][j].append(jv[diff.index(i)] if i in diff else _zeros(o))
        blocks = [[_stack_block(columns[i][j], o, x, by_output=False) for j, x in enumerate(xs)]
                  for i, o in enumerate(o_leaves)]
        jac = _detached(_jacobian_tree(o_spec, rebuild, blocks, argnums), outer, own)
        return (jac, _detached(aux, outer, own)) if has_aux else jac

    return wrapper


@public(namespace="func")
def hessian(func, argnums=0):
    """The Hessian of the scalar ``func``: ``jacfwd(jacrev(func, argnums), argnums)``, as ``torch.func.hessian``."""
    return jacfwd(jacrev(func, argnums), argnums)
