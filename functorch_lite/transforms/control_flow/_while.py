"""``while_loop`` and ``fori_loop``: the primitive (with a hidden trip count), its rules, reverse mode by a stored scan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._core import tree_util as tu
from ..._core.engine import bind
from ..._core.tensor import Tensor, backend_for
from ..._errors import ControlFlowError
from .._program import Program, eval_program
from ._common import (
    ControlPrimitive,
    _compiled,
    _example,
    _is_float,
    _jvp_eval,
    _key,
    _leaf,
    _ops,
    _select,
    _spec,
    _to_front,
    _vmap_eval,
    _xp_of,
    _zeros_like,
    close,
)
from ._cond import _check_pred, _int_dtype, _int_scalar
from ._scan import _scan_bind
from ._scan_api import _check_carry, _fit_carry, scan


# =======================================================================================
# while_loop
# =======================================================================================
def _while_impl(xp: Any, *arrays: Any, cond: Program, body: Program, n_cc: int, n_bc: int) -> tuple[Any, ...]:
    cc = arrays[:n_cc]
    bc = arrays[n_cc : n_cc + n_bc]
    carry = list(arrays[n_cc + n_bc :])
    cf = _compiled(cond)
    bf = _compiled(body)
    n = 0
    while bool(cf(*cc, *carry)[0]):
        carry = bf(*bc, *carry)
        n += 1
    b = backend_for(xp)
    return (*carry, b.xp.asarray(n, dtype=b.native(_int_dtype())))


while_p = ControlPrimitive("while_loop", _while_impl, multiple_results=True)


def _split_while(args: Sequence[Any], params: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    a, b = params["n_cc"], params["n_bc"]
    return list(args[:a]), list(args[a : a + b]), list(args[a + b :])


def _while_bind(
    cc: list[Any],
    bc: list[Any],
    carry: list[Any],
    cfn: Any,
    bfn: Any,
    ex_c: list[Any],
    ex_b: list[Any],
    key: Any,
) -> list[Any]:
    """Trace ``cfn`` (cond consts + carry) and ``bfn`` (body consts + carry) and bind while_p."""
    cprog, cex = close(cfn, ex_c, "while_loop", None if key is None else (*key, "cond"))
    bprog, bex = close(bfn, ex_b, "while_loop", None if key is None else (*key, "body"))
    params = {"cond": cprog, "body": bprog, "n_cc": len(cex) + len(cc), "n_bc": len(bex) + len(bc)}
    return list(bind(while_p, (*cex, *cc, *bex, *bc, *carry), params))


@while_p.def_jvp
def _while_jvp(tangents: Sequence[Any], out: Sequence[Any], *primals: Any, **params: Any) -> list[Any]:
    cond, body = params["cond"], params["body"]
    cc, bc, carry = _split_while(primals, params)
    _, tbc, tk = _split_while(tangents, params)
    nbc, nk = len(bc), len(carry)
    bi = [i for i in range(nbc) if tbc[i] is not None and _is_float(bc[i])]
    ki = [i for i in range(nk) if _is_float(carry[i])]

    def cfn(*a: Any) -> list[Any]:
        return eval_program(cond, list(a[: len(cc) + nk]))

    def bfn(*args: Any) -> list[Any]:
        a = list(args)
        pb, a = a[:nbc], a[nbc:]
        tb, a = a[: len(bi)], a[len(bi) :]
        pk, tks = a[:nk], a[nk:]
        tans: list[Any] = [None] * (nbc + nk)
        for i, t in zip(bi, tb, strict=True):
            tans[i] = t
        for i, t in zip(ki, tks, strict=True):
            tans[nbc + i] = t
        outs, touts = _jvp_eval(body, [*pb, *pk], tans)
        return [*outs, *[_zeros_like(outs[i]) if touts[i] is None else touts[i] for i in ki]]

    tk0 = [tk[i] if tk[i] is not None else _zeros_like(carry[i]) for i in ki]
    tbs = [tbc[i] for i in bi]
    ex_k = [*[_example(c) for c in carry], *[_example(t) for t in tk0]]
    res = _while_bind(
        cc,
        [*bc, *tbs],
        [*carry, *tk0],
        cfn,
        bfn,
        [*[_example(c) for c in cc], *ex_k],
        [*[_example(c) for c in bc], *[_example(t) for t in tbs], *ex_k],
        _key("while_jvp", cond, body, len(cc), nbc, nk, tuple(bi), tuple(ki)),
    )
    out_t: list[Any] = [None] * (nk + 1)
    for n, i in enumerate(ki):
        out_t[i] = res[nk + n]
    return out_t


@while_p.def_batch
def _while_batch(
    axis_size: int, vals: Sequence[Any], dims: Sequence[Any], **params: Any
) -> tuple[list[Any], list[Any]]:
    fl = _ops()
    cond, body = params["cond"], params["body"]
    cc, bc, carry = _split_while(vals, params)
    dcc, dbc, dk = _split_while(dims, params)
    ncc, nbc, nk = len(cc), len(bc), len(carry)
    carry_b = [_to_front(c, d, axis_size) for c, d in zip(carry, dk, strict=True)]
    count0 = _spec((axis_size,), _int_dtype(), _xp_of([*carry_b, *cc, *bc]))
    c_dims = [*dcc, *[0] * nk]

    def cfn(*a: Any) -> list[Any]:
        pred = _vmap_eval(cond, list(a[: ncc + nk]), c_dims, axis_size)[0]
        return [fl.any(pred)]

    def bfn(*args: Any) -> list[Any]:
        a = list(args)
        pc, pb, k, cnt = a[:ncc], a[ncc : ncc + nbc], a[ncc + nbc : ncc + nbc + nk], a[-1]
        pred = _vmap_eval(cond, [*pc, *k], c_dims, axis_size)[0]
        new = _vmap_eval(body, [*pb, *k], [*dbc, *[0] * nk], axis_size)
        return [*[_select(pred, n, o) for n, o in zip(new, k, strict=True)], cnt + pred.astype(cnt.dtype)]

    ex_k = [_example(c) for c in carry_b]
    res = _while_bind(
        cc,
        [*cc, *bc],
        [*carry_b, count0],
        cfn,
        bfn,
        [*[_example(c) for c in cc], *ex_k, _example(count0)],
        [*[_example(c) for c in cc], *[_example(c) for c in bc], *ex_k, _example(count0)],
        _key("while_batch", cond, body, ncc, nbc, nk, tuple(dcc), tuple(dbc), axis_size),
    )
    # outputs: the carries, then the per-element trip counts (the loop's own count is dropped)
    return res[: nk + 1], [0] * (nk + 1)


@while_p.def_vjp
def _while_vjp(g: Sequence[Any], out: Sequence[Any], *primals: Any, **params: Any) -> list[Any]:
    fl = _ops()
    body = params["body"]
    cc, bc, carry = _split_while(primals, params)
    ncc, nbc, nk = len(cc), len(bc), len(carry)
    n = out[-1]  # the trip count the forward pass ran
    bi = [i for i in range(nbc) if _is_float(bc[i])]
    ki = [i for i in range(nk) if _is_float(carry[i])]
    g = list(g)[:nk]

    def step(pb: list[Any], nn: Any, i: Any, k: list[Any]) -> list[Any]:
        """One masked step: the body where ``i < n`` (every step but under vmap), else the carry."""
        new = eval_program(body, [*pb, *k])
        live = i < nn
        return [fl.where(live, a, b) for a, b in zip(new, k, strict=True)]

    zero = _spec((), n.dtype, n._xp)

    # 1. forward again as a scan of n steps, keeping (i, carry) before each step
    def res_fn(*args: Any) -> list[Any]:
        a = list(args)
        pb, nn, i, k = a[:nbc], a[nbc], a[nbc + 1], a[nbc + 2 :]
        return [i + 1, *step(pb, nn, i, k), i, *k]

    ex = [*[_example(c) for c in bc], _example(n), _example(zero), *[_example(c) for c in carry]]
    rbody, extra = close(res_fn, ex, "while_loop", _key("while_res", body, nbc, nk))
    lp = {"length": 0, "reverse": False, "dyn": True}
    res = _scan_bind([n], [*bc, n], [zero, *carry], [], rbody, extra, **lp)
    stacked = res[1 + nk :]  # i per step, then the carries

    # 2. backward: a reverse scan over the stored steps
    def bwd_fn(*args: Any) -> list[Any]:
        a = list(args)
        pb, nn, a = a[:nbc], a[nbc], a[nbc + 1 :]
        acc, a = a[: len(bi)], a[len(bi) :]
        ct, a = a[: len(ki)], a[len(ki) :]
        i, k = a[0], a[1 : 1 + nk]

        def f(*w: Any) -> list[Any]:
            pbw = list(pb)
            kw = list(k)
            for j, x in zip(bi, w[: len(bi)], strict=True):
                pbw[j] = x
            for j, x in zip(ki, w[len(bi) :], strict=True):
                kw[j] = x
            outs = step(pbw, nn, i, kw)
            return [outs[j] for j in ki]

        from ..api import vjp

        d: list[Any] = []
        if bi or ki:
            _, f_vjp = vjp(f, *[pb[j] for j in bi], *[k[j] for j in ki])
            d = list(f_vjp(list(ct)))
        db, dk = d[: len(bi)], d[len(bi) :]
        return [*[s + t for s, t in zip(acc, db, strict=True)], *dk]

    acc0 = [_zeros_like(bc[i]) for i in bi]
    ct0 = [g[i] if g[i] is not None else _zeros_like(carry[i]) for i in ki]
    ex = [
        *[_example(c) for c in bc],
        _example(n),
        *[_example(t) for t in acc0],
        *[_example(t) for t in ct0],
        *[_example(s, True) for s in stacked],
    ]
    bbody, extra = close(bwd_fn, ex, "while_loop", _key("while_bwd", body, nbc, nk, tuple(bi), tuple(ki)))
    lp["reverse"] = True
    back = _scan_bind([n], [*bc, n], [*acc0, *ct0], stacked, bbody, extra, **lp)
    cts: list[Any] = [None] * len(primals)
    for m, i in enumerate(bi):
        cts[ncc + i] = back[m]
    for m, i in enumerate(ki):
        cts[ncc + nbc + i] = back[len(bi) + m]
    return cts


def while_loop(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any) -> Any:
    """``while cond_fun(val): val = body_fun(val)``; return ``val``: ``jax.lax.while_loop``.

    Both functions are traced once. ``cond_fun`` returns a boolean scalar; ``body_fun`` returns
    a value of ``init_val``'s structure, shapes and dtypes. Under ``vmap`` with a per-element
    predicate the loop runs until every element is done, the finished ones frozen.

    Unlike JAX, reverse mode works: the forward pass counts its iterations, the backward pass
    replays them as a scan that stores the carry entering each step (memory: trip count times
    the carry's size; each step's intermediates are recomputed, as ``fl.checkpoint`` does).

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.while_loop(lambda v: v < 100.0, lambda v: v * 3.0, fl.asarray(1.0)))
        243.0
        >>> # d/dx of x * 3**k, where k (5 here) depends on x: 3**5
        >>> float(fl.grad(lambda x: fl.while_loop(lambda v: v < 100.0, lambda v: v * 3.0, x))(fl.asarray(1.0)))
        243.0
    """
    leaves, tree = tu.tree_flatten(init_val)
    init = [_leaf(x, "while_loop: init_val") for x in leaves]
    nk = len(init)
    trees: list[Any] = []

    def cfn(*a: Any) -> list[Any]:
        p = cond_fun(tu.tree_unflatten(tree, list(a)))
        p = _check_pred(p, "while_loop: cond_fun's result", "bool")
        return [_leaf(p, "while_loop")]

    def bfn(*a: Any) -> list[Any]:
        out = body_fun(tu.tree_unflatten(tree, list(a)))
        o_leaves, o_tree = tu.tree_flatten(out)
        trees.append(o_tree)
        if o_tree != tree:
            raise ControlFlowError(
                f"while_loop: body_fun returned structure {o_tree}, but init_val has structure {tree}; "
                "the carry must keep its structure from step to step."
            )
        return [_fit_carry(o, like, "while_loop") for o, like in zip(o_leaves, init, strict=True)]

    ex = [_example(c) for c in init]
    cprog, cex = close(cfn, ex, "while_loop")
    bprog, bex = close(bfn, ex, "while_loop")
    _check_carry(bprog, init, "while_loop", "init_val")
    params = {"cond": cprog, "body": bprog, "n_cc": len(cex), "n_bc": len(bex)}
    res = bind(while_p, (*cex, *bex, *init), params)
    return tu.tree_unflatten(tree, list(res[:nk]))


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any) -> Any:
    """``for i in range(lower, upper): val = body_fun(i, val)``; return ``val``: ``jax.lax.fori_loop``.

    With Python-int bounds it is a ``scan`` of ``upper - lower`` steps (reverse mode stores a
    carry per step); with traced bounds it is a ``while_loop``. ``i`` is an integer Tensor.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.fori_loop(0, 5, lambda i, v: v + i, fl.asarray(0.0)))
        10.0
    """
    static = all(isinstance(b, int) and not isinstance(b, bool) for b in (lower, upper))
    if static:
        n = max(upper - lower, 0)

        def step(c: Any, _: Any) -> Any:
            i, v = c
            return (i + 1, body_fun(i, v)), None

        i0 = _int_scalar(lower, _xp_of(tu.tree_leaves(init_val)))
        (_, val), _ = scan(step, (i0, init_val), None, length=n)
        return val
    lo = _check_pred(lower, "fori_loop: lower", "int")
    hi = _check_pred(upper, "fori_loop: upper", "int")
    xp = _xp_of([lo, hi, *tu.tree_leaves(init_val)])
    lo = _int_scalar(lo, xp) if not isinstance(lo, Tensor) else lo
    hi = _int_scalar(hi, xp) if not isinstance(hi, Tensor) else hi
    if hi.dtype is not lo.dtype:
        hi = hi.astype(lo.dtype)

    def body(c: Any) -> Any:
        i, h, v = c
        return (i + 1, h, body_fun(i, v))

    return while_loop(lambda c: c[0] < c[1], body, (lo, hi, init_val))[2]
