"""``cond`` and ``switch``: the primitive and its rules; one branch runs eagerly when nothing traces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._core import tree_util as tu
from ..._core.engine import active_traces, bind
from ..._core.tensor import Tensor, backend_for, wrap
from ..._errors import ControlFlowError
from .._program import Program, Var
from ._common import (
    ControlPrimitive,
    _compiled,
    _example,
    _fmt_avals,
    _is_float,
    _jvp_eval,
    _key,
    _leaf,
    _ops,
    _select,
    _to_front,
    _var_aval,
    _vjp_eval,
    _vmap_eval,
    _zeros_like,
    close,
)


# =======================================================================================
# cond / switch
# =======================================================================================
def _cond_impl(xp: Any, index: Any, *arrays: Any, branches: tuple[Program, ...]) -> Any:
    i = min(max(int(index), 0), len(branches) - 1)
    return tuple(_compiled(branches[i])(*arrays))


cond_p = ControlPrimitive("cond", _cond_impl, multiple_results=True)


def _cond_bind(
    index: Any, ops: Sequence[Any], fns: Sequence[Callable[..., list[Any]]], ex: Sequence[Any], keys: Sequence[Any]
) -> list[Any]:
    """Trace each of ``fns`` (flat operands in, flat outputs out) and bind one cond_p on them."""
    progs, extras = zip(*[close(fn, ex, "cond", k) for fn, k in zip(fns, keys, strict=True)], strict=True)
    branches = _unify(list(progs), list(extras))
    flat_extra = [c for e in extras for c in e]
    return list(bind(cond_p, (index, *flat_extra, *ops), {"branches": branches}))


def _unify(progs: list[Program], extras: list[list[Tensor]]) -> tuple[Program, ...]:
    """Branch programs that all take every branch's captured values (each ignores the others')."""
    out = []
    for k, p in enumerate(progs):
        n_own = len(extras[k])
        lead: list[Any] = []
        for j, e in enumerate(extras):
            if j == k:
                lead.extend(p.in_vars[:n_own])
            else:
                lead.extend(Var(tuple(c.shape), c.dtype, c._xp) for c in e)
        out.append(Program(lead + list(p.in_vars[n_own:]), None, p.eqns, p.outs, p.out_tree, [], p.kind))
    return tuple(out)


@cond_p.def_jvp
def _cond_jvp(tangents: Sequence[Any], out: Sequence[Any], index: Any, *ops: Any, branches: Any) -> list[Any]:
    n = len(ops)
    ti = [i for i in range(n) if tangents[1 + i] is not None and _is_float(ops[i])]
    oi = [j for j, v in enumerate(branches[0].outs) if v.dtype.kind in "fc"]

    def make(b: Program) -> Callable[..., list[Any]]:
        def fn(*a: Any) -> list[Any]:
            prims, ts = list(a[:n]), a[n:]
            tans: list[Any] = [None] * n
            for i, t in zip(ti, ts, strict=True):
                tans[i] = t
            outs, touts = _jvp_eval(b, prims, tans)
            return [*outs, *[_zeros_like(outs[j]) if touts[j] is None else touts[j] for j in oi]]

        return fn

    tans = [tangents[1 + i] for i in ti]
    ex = [*[_example(o) for o in ops], *[_example(t) for t in tans]]
    keys = [_key("cond_jvp", b, tuple(ti)) for b in branches]
    res = _cond_bind(index, [*ops, *tans], [make(b) for b in branches], ex, keys)
    no = len(branches[0].outs)
    out_t: list[Any] = [None] * no
    for k, j in enumerate(oi):
        out_t[j] = res[no + k]
    return out_t


@cond_p.def_vjp
def _cond_vjp(g: Sequence[Any], out: Sequence[Any], index: Any, *ops: Any, branches: Any) -> list[Any]:
    n = len(ops)
    wi = [i for i in range(n) if _is_float(ops[i])]
    gi = [j for j in range(len(g)) if g[j] is not None]

    def make(b: Program) -> Callable[..., list[Any]]:
        def fn(*a: Any) -> list[Any]:
            return _vjp_eval(b, list(a[:n]), wi, gi, list(a[n:]))

        return fn

    gs = [g[j] for j in gi]
    ex = [*[_example(o) for o in ops], *[_example(t) for t in gs]]
    keys = [_key("cond_vjp", b, tuple(wi), tuple(gi)) for b in branches]
    res = _cond_bind(index, [*ops, *gs], [make(b) for b in branches], ex, keys)
    cts: list[Any] = [None] * (1 + n)
    for k, i in enumerate(wi):
        cts[1 + i] = res[k]
    return cts


@cond_p.def_batch
def _cond_batch(axis_size: int, vals: Sequence[Any], dims: Sequence[Any], branches: Any) -> tuple[list[Any], list[Any]]:
    fl = _ops()
    index, ops = vals[0], list(vals[1:])
    di, dops = dims[0], list(dims[1:])
    no = len(branches[0].outs)
    if di is None:

        def make(b: Program) -> Callable[..., list[Any]]:
            return lambda *a: _vmap_eval(b, list(a), dops, axis_size)

        ex = [_example(o) for o in ops]
        keys = [_key("cond_batch", b, tuple(dops), axis_size) for b in branches]
        res = _cond_bind(index, ops, [make(b) for b in branches], ex, keys)
        return res, [0] * no
    # a batched predicate: every branch runs, and each element takes its branch's result
    idx = fl.clip(_to_front(index, di, axis_size), 0, len(branches) - 1)
    outs = [_vmap_eval(b, ops, dops, axis_size) for b in branches]
    res = outs[0]
    for k in range(1, len(branches)):
        res = [_select(idx == k, a, r) for a, r in zip(outs[k], res, strict=True)]
    return res, [0] * no


def _check_pred(pred: Any, what: str, want: str) -> Any:
    """A boolean (cond, while_loop) or integer (switch) scalar, as a Tensor or Python value."""
    ok_py = isinstance(pred, bool) if want == "bool" else isinstance(pred, int) and not isinstance(pred, bool)
    if ok_py:
        return pred
    if not isinstance(pred, Tensor):
        try:
            pred = _ops().asarray(pred)
        except Exception:
            pred = None
    if pred is None or pred.ndim != 0 or (pred.dtype.kind != "b" if want == "bool" else pred.dtype.kind not in "iu"):
        got = "a non-array" if pred is None else f"shape {tuple(pred.shape)}, dtype {pred.dtype.name}"
        kind = "a boolean scalar (shape (), dtype bool)" if want == "bool" else "an integer scalar"
        raise ControlFlowError(
            f"{what}: needs {kind}; got {got}. "
            + (
                "Reduce it first (fl.all / fl.any), compare it (x > 0), or for elementwise choices use "
                "fl.where(cond, x, y)."
                if want == "bool"
                else "Pass a 0-d integer Tensor or a Python int (cast with .astype(fl.int32))."
            )
        )
    return pred


def _concrete(x: Any) -> bool:
    return not isinstance(x, Tensor) or x._t is None


def _branch_fns(
    fns: Sequence[Callable[..., Any]], in_tree: Any, what: str
) -> tuple[list[Callable[..., list[Any]]], list[Any]]:
    trees: list[Any] = [None] * len(fns)

    def make(k: int, f: Callable[..., Any]) -> Callable[..., list[Any]]:
        def fn(*leaves: Any) -> list[Any]:
            out = f(*tu.tree_unflatten(in_tree, list(leaves)))
            o_leaves, o_tree = tu.tree_flatten(out)
            trees[k] = o_tree
            return [_leaf(o, what) for o in o_leaves]

        return fn

    return [make(k, f) for k, f in enumerate(fns)], trees


def _switch(index: Any, branches: Sequence[Callable[..., Any]], operands: tuple[Any, ...], what: str) -> Any:
    leaves, in_tree = tu.tree_flatten(operands)
    ops = [_leaf(x, f"{what}: operands") for x in leaves]
    if _concrete(index) and not active_traces():
        # eager, with a concrete predicate: exactly Python's if (only that branch runs)
        i = min(max(int(index), 0), len(branches) - 1)
        return branches[i](*operands)
    fns, trees = _branch_fns(branches, in_tree, what)
    ex = [_example(o) for o in ops]
    progs_extras = [close(fn, ex, what) for fn in fns]
    sigs = [(trees[k], [_var_aval(v) for v in p.outs]) for k, (p, _) in enumerate(progs_extras)]
    for k in range(1, len(sigs)):
        if sigs[k] != sigs[0]:
            names = ("false_fun", "true_fun") if what == "cond" else ("branches[0]", f"branches[{k}]")
            raise ControlFlowError(
                f"{what}: the branches return different structures, shapes or dtypes: {names[0]} returns "
                f"{sigs[0][0]} with {_fmt_avals(sigs[0][1])}, {names[1]} returns {sigs[k][0]} with "
                f"{_fmt_avals(sigs[k][1])}. Every branch must return the same structure, shapes and dtypes."
            )
    if not isinstance(index, Tensor):
        index = _ops().asarray(index)
    progs = [p for p, _ in progs_extras]
    extras = [e for _, e in progs_extras]
    flat_extra = [c for e in extras for c in e]
    res = bind(cond_p, (index, *flat_extra, *ops), {"branches": _unify(progs, extras)})
    return tu.tree_unflatten(trees[0], list(res))


def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``: ``jax.lax.cond``.

    ``pred`` is a boolean scalar. Eagerly (no transform running) with a concrete ``pred`` only
    the chosen branch runs, as Python's ``if``; under a transform both branches are traced
    once and the choice is one primitive: under ``jit`` the choice happens at run time, and
    under ``vmap`` with a batched ``pred`` both branches run and each element takes its own
    result. Both branches must return the same structure, shapes and dtypes.

    Example:
        >>> import functorch_lite as fl
        >>> f = fl.jit(lambda x: fl.cond(fl.sum(x) > 0, lambda v: v * 2, lambda v: -v, x))
        >>> f(fl.ones((2,))).tolist(), f(-fl.ones((2,))).tolist()
        ([2.0, 2.0], [1.0, 1.0])
        >>> fl.vmap(lambda x: fl.cond(x > 0, fl.sin, fl.cos, x))(fl.asarray([0.0, 1.0])).tolist()[0]
        1.0
    """
    pred = _check_pred(pred, "cond: pred", "bool")
    if isinstance(pred, bool):
        index: Any = int(pred)
    elif pred._t is None and not active_traces():
        index = int(bool(pred))
    else:
        index = pred.astype(_int_dtype())
    return _switch(index, (false_fun, true_fun), operands, "cond")


def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """``branches[index](*operands)`` with ``index`` clamped to ``[0, len(branches) - 1]``: ``jax.lax.switch``.

    Example:
        >>> import functorch_lite as fl
        >>> fs = [lambda x: x + 1, lambda x: x * 10, lambda x: -x]
        >>> [float(fl.switch(i, fs, fl.asarray(2.0))) for i in (-5, 1, 9)]
        [3.0, 20.0, -2.0]
    """
    if not isinstance(branches, (list, tuple)) or not branches or not all(callable(b) for b in branches):
        raise ControlFlowError(
            f"switch: branches must be a non-empty list or tuple of functions; got {branches!r:.80}."
        )
    index = _check_pred(index, "switch: index", "int")
    if isinstance(index, Tensor) and (index._t is not None or active_traces()):
        index = _ops().clip(index, 0, len(branches) - 1)
    return _switch(index, tuple(branches), operands, "switch")


def _int_scalar(v: int, xp: Any) -> Tensor:
    b = backend_for(xp)
    return wrap(b.xp.asarray(v, dtype=b.native(_int_dtype())), xp)


def _int_dtype() -> Any:
    from ..._ops._base import default_int

    return default_int()
