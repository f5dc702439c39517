"""Control flow primitives: ``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``.

Each is one primitive (``cond_p``, ``while_p``, ``scan_p``) whose bodies are closed
[`Program`][functorch_lite.transforms.Program]s: the user's function is traced once, on the operands'
shapes and dtypes, and every value it captures from outside (a parameter, a tracer of an
outer transform) becomes an explicit operand, so every transform sees it. The impl replays
the compiled bodies (one backend call per equation, no Tensors); the rules build new bodies
by transforming the old ones (``jvp``, ``vjp``, ``vmap`` of a program), so the primitives
compose with every transform to any order, eagerly and under ``jit``.

Reverse mode through ``scan``: when ``grad`` differentiates the loop directly, one step's vjp
is split by partial evaluation into a forward body (the step, also returning the values its
backward needs: its residuals, stacked per step) and a backward body, so ``grad`` costs one
forward and one backward scan. Otherwise (``checkpoint=``, a transform between) the rule
stores one carry per step and recomputes each step in the backward pass (what
``fl.checkpoint`` on the body would do). ``while_loop`` is differentiable in reverse mode
too: its forward pass counts its iterations (an extra hidden output), and the backward pass
is a scan of that length storing a carry per step, masked per element under ``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.engine import Primitive, active_traces, bind, find_top_trace, new_trace
from .._core.tensor import Tensor, backend_for, wrap
from .._errors import ControlFlowError
from ._staging import Program, Var, _example_of, eval_program, trace_program

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map"]


# ---------------------------------------------------------------------------------------
# Helpers on Tensors (the ops are imported late: the ops modules import the transforms)
# ---------------------------------------------------------------------------------------
def _ops() -> Any:
    import functorch_lite as fl

    return fl


def _leaf(x: Any, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return _ops().asarray(x)
    except Exception:
        raise ControlFlowError(
            f"{what}: every leaf must be a Tensor, an array or a Python number; got {type(x).__name__}. "
            "Pass other values through a closure instead."
        ) from None


def _is_float(t: Any) -> bool:
    return isinstance(t, Tensor) and t.dtype.kind in "fc"


def _avals(ts: Sequence[Any]) -> list[tuple[tuple[int, ...], str]]:
    return [(tuple(t.shape), t.dtype.name) for t in ts]


def _fmt_avals(av: Sequence[tuple[tuple[int, ...], str]]) -> str:
    return "[" + ", ".join(f"{d}{list(s)}" for s, d in av) + "]"


def _var_aval(v: Any) -> tuple[tuple[int, ...], str]:
    return (tuple(v.shape), v.dtype.name)


def _zeros_like(t: Tensor) -> Tensor:
    return _ops().zeros_like(t)


def _example(t: Tensor, index0: bool = False) -> Tensor:
    """A concrete Tensor with ``t``'s shape and dtype (its own data, or an example's), to trace
    a body on; ``index0``: one slice along the leading axis."""
    ex = _example_of(t)
    xp = t._xp
    if index0:
        if ex.shape[0] == 0:
            ex = backend_for(xp).xp.zeros(tuple(ex.shape[1:]), dtype=ex.dtype)
        else:
            ex = ex[0, ...]
    return wrap(ex, xp)


def _xp_of(leaves: Sequence[Any]) -> Any:
    """The backend namespace of the first Tensor among ``leaves`` (the default backend's if none)."""
    for x in leaves:
        if isinstance(x, Tensor):
            return x._xp
    from .._backend import current_default

    return current_default().xp


def _spec(shape: tuple[int, ...], dtype: Any, xp: Any) -> Tensor:
    b = backend_for(xp)
    return wrap(b.xp.zeros(shape, dtype=b.native(dtype)), xp)


# ---------------------------------------------------------------------------------------
# Bodies: a function traced into a closed program
# ---------------------------------------------------------------------------------------
def _global_key() -> Any:
    from .. import random as _random

    return _random._GLOBAL


_CACHE: dict[Any, Any] = {}
_CACHE_MAX = 1024


def signature(p: Program) -> Any:
    """A hashable key of ``p``'s structure (equations, params, avals; not its Var objects), or
    None: two traces of one body give one signature, so they share one optimized, compiled
    program and the programs the rules derive from it."""
    s = p.__dict__.get("_cf_sig", False)
    if s is not False:
        return s
    ids: dict[int, int] = {}

    def ref(v: Any) -> Any:
        if isinstance(v, Var):
            r = ids.get(v.id)
            if r is None:
                r = ids[v.id] = len(ids)
            return r
        if v is None or isinstance(v, (bool, int, float, complex, str)):
            return ("lit", type(v), v)
        raise TypeError

    try:
        ins = tuple((ref(v), v.shape, v.dtype, v.xp, v.weak) for v in p.in_vars)
        eqs = tuple(
            (
                e.prim.name,
                _param_sig(e.params),
                tuple(ref(i) for i in e.inputs),
                tuple((ref(o), o.shape, o.dtype, o.weak) for o in e.outputs),
            )
            for e in p.eqns
        )
        s = (ins, eqs, tuple(ref(o) for o in p.outs))
        hash(s)
    except TypeError:
        s = None
    p._cf_sig = s  # type: ignore[attr-defined]
    return s


def _param_sig(params: dict[str, Any]) -> Any:
    items = []
    for k, v in params.items():
        if isinstance(v, Program):
            v = ("program", signature(v))
            if v[1] is None:
                raise TypeError
        elif isinstance(v, tuple) and v and all(isinstance(b, Program) for b in v):
            v = ("programs", tuple(signature(b) for b in v))
            if None in v[1]:
                raise TypeError
        items.append((k, v))
    return tuple(items)


def _remember(key: Any, value: Any) -> Any:
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = value
    return value


def close(
    fn: Callable[..., Sequence[Any]], examples: Sequence[Any], kind: str, key: Any = None
) -> tuple[Program, list[Tensor]]:
    """Trace ``fn`` (flat Tensors in, a flat list of Tensors out) on ``examples`` into a program
    with no captured constants: the values it captured become its leading inputs, returned
    beside it, to be passed as operands.

    ``key`` (the rules pass one: what they derive and from which body's signature) looks the
    result up instead of tracing again; every program is optimized and compiled once per
    signature."""
    if key is not None:
        key = (key, tuple((tuple(e.shape), e.dtype, e._xp) for e in examples))
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
    g = _global_key()
    key_before = g.key
    try:
        p = trace_program(lambda *a: list(fn(*a)), list(examples), kind=kind)
    finally:
        key_after = g.key
        g.key = key_before
    if key_after is not key_before:
        raise ControlFlowError(
            f"{kind}: the body draws from the global random generator (a random op without a key, "
            "nn.Dropout, ...), whose state cannot advance inside a traced body. Pass a key "
            "(fl.random.key) through the carry or operands and split it in the body."
        )
    cvars = [v for v, _ in p.consts]
    consts = [c for _, c in p.consts]
    prog = Program(cvars + list(p.in_vars), None, p.eqns, list(p.outs), p.out_tree, [], kind)
    sig = signature(prog)
    if sig is None:
        prog = prog.optimized()
    else:
        canon = _CACHE.get(("canonical", sig))
        prog = canon if canon is not None else _remember(("canonical", sig), prog.optimized())
    res = (prog, consts)
    if key is not None and all(c._t is None for c in consts):
        _remember(key, res)
    return res


def _key(tag: str, *parts: Any) -> Any:
    """A cache key for a derived program, or None when a body has no signature."""
    sigs = []
    for x in parts:
        if isinstance(x, Program):
            x = signature(x)
            if x is None:
                return None
        elif isinstance(x, tuple) and x and all(isinstance(b, Program) for b in x):
            x = tuple(signature(b) for b in x)
            if None in x:
                return None
        sigs.append(x)
    return (tag, *sigs)


def _jvp_eval(prog: Program, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``prog`` under forward mode: outputs and their tangents (None where zero)."""
    from ._ad import JVPTrace

    with new_trace(JVPTrace) as tr:
        args = [p if t is None else tr.tracer(p, t) for p, t in zip(primals, tangents, strict=True)]
        outs = eval_program(prog, args)
    res = []
    tans = []
    for o in outs:
        p = o._t if isinstance(o, Tensor) else None
        if p is not None and p.trace is tr:
            res.append(p.primal)
            tans.append(p.tangent)
        else:
            res.append(o)
            tans.append(None)
    return res, tans


def _vjp_eval(
    prog: Program, primals: Sequence[Any], wrt: Sequence[int], out_idx: Sequence[int], cts: Sequence[Any]
) -> list[Any]:
    """Cotangents of ``prog``'s inputs ``wrt`` for cotangents ``cts`` on its outputs ``out_idx``
    (zeros where an input is unused)."""
    from .api import vjp

    def f(*w: Any) -> list[Any]:
        args = list(primals)
        for i, x in zip(wrt, w, strict=True):
            args[i] = x
        outs = eval_program(prog, args)
        return [outs[j] for j in out_idx]

    if not wrt:
        return []
    _, f_vjp = vjp(f, *[primals[i] for i in wrt])
    return list(f_vjp(list(cts)))


def _vmap_eval(prog: Program, args: Sequence[Any], dims: Sequence[Any], axis_size: int) -> list[Any]:
    """``prog`` vectorised over the inputs batched at ``dims``; every output batched at axis 0."""
    from .api import vmap

    def f(*a: Any) -> list[Any]:
        return eval_program(prog, list(a))

    return list(vmap(f, in_axes=tuple(dims), out_axes=0, axis_size=axis_size)(*args))


def _to_front(x: Tensor, d: Any, n: int) -> Tensor:
    """``x`` with its batch axis ``d`` moved to the front (broadcast when ``d`` is None)."""
    fl = _ops()
    if d is None:
        return fl.broadcast_to(fl.expand_dims(x, axis=0), (n, *x.shape))
    return x if d == 0 else fl.moveaxis(x, d, 0)


def _select(pred: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """``where(pred, new, old)`` with a batch-leading ``pred`` broadcast over the other axes."""
    fl = _ops()
    p = fl.reshape(pred, tuple(pred.shape) + (1,) * (new.ndim - pred.ndim))
    return fl.where(p, new, old)


# ---------------------------------------------------------------------------------------
# Primitives whose staged outputs may have a run-time length (scan with a traced length)
# ---------------------------------------------------------------------------------------
class ControlPrimitive(Primitive):
    """A control-flow primitive: its params hold programs (printed nested by ``str(program)``)."""

    __slots__ = ()

    def staged_shapes(self, outs: Sequence[Var], params: dict[str, Any]) -> None:
        """Mark output variables whose shapes are known only at run time (StagingTrace calls this)."""
        if params.get("dyn"):
            nk = params["n_carry"]
            for v in outs[nk:]:
                v.shape = (None, *v.shape[1:])  # type: ignore[arg-type]


def _compiled(p: Program) -> Callable[..., list[Any]]:
    """The straight-line replay of body ``p`` (compiled on first use): arrays in, arrays out."""
    fn = p._compiled
    if fn is None:
        from ._compile import compile_program

        fn = p._compiled = compile_program(p)
    return fn


# =======================================================================================
# scan
# =======================================================================================
def _split_scan(args: Sequence[Any], params: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    k = 1 if params["dyn"] else 0
    nc = params["n_consts"]
    nk = params["n_carry"]
    return list(args[:k]), list(args[k : k + nc]), list(args[k + nc : k + nc + nk]), list(args[k + nc + nk :])


def _scan_impl(
    xp: Any,
    *arrays: Any,
    body: Program,
    n_consts: int,
    n_carry: int,
    length: int,
    reverse: bool,
    dyn: bool,
    split: Any = None,
) -> tuple[Any, ...]:
    k = 1 if dyn else 0
    if dyn:
        length = int(arrays[0])
    consts = arrays[k : k + n_consts]
    carry = list(arrays[k + n_consts : k + n_consts + n_carry])
    xs = arrays[k + n_consts + n_carry :]
    if xs and not dyn:
        length = int(xs[0].shape[0])
    fn = _compiled(body)
    ny = len(body.outs) - n_carry
    ys: list[list[Any]] = [[None] * length for _ in range(ny)]
    for i in range(length - 1, -1, -1) if reverse else range(length):
        outs = fn(*consts, *carry, *[x[i, ...] for x in xs])
        carry = outs[:n_carry]
        for j in range(ny):
            ys[j][i] = outs[n_carry + j]
    if length == 0:
        b = backend_for(xp)
        stacked = [b.xp.zeros((0, *v.shape), dtype=b.native(v.dtype)) for v in body.outs[n_carry:]]
    else:
        stack = backend_for(xp).xp.stack
        stacked = [stack(y) for y in ys]
    return (*carry, *stacked)


scan_p = ControlPrimitive("scan", _scan_impl, multiple_results=True)


def _scan_bind(
    lead: list[Any], consts: list[Any], carry: list[Any], xs: list[Any], body: Program, extra: list[Any], **params: Any
) -> list[Any]:
    """Bind scan_p on a new body whose captured values ``extra`` lead its constants."""
    p = dict(params, body=body, n_consts=len(extra) + len(consts), n_carry=len(carry))
    return list(bind(scan_p, (*lead, *extra, *consts, *carry, *xs), p))


def _loop_params(params: dict[str, Any]) -> dict[str, Any]:
    return {"length": params["length"], "reverse": params["reverse"], "dyn": params["dyn"]}


@scan_p.def_jvp
def _scan_jvp(tangents: Sequence[Any], out: Sequence[Any], *primals: Any, **params: Any) -> list[Any]:
    body = params["body"]
    lead, consts, carry, xs = _split_scan(primals, params)
    _, t_consts, t_carry, t_xs = _split_scan(tangents, params)
    nc, nk, nx = len(consts), len(carry), len(xs)
    ci = [i for i in range(nc) if t_consts[i] is not None and _is_float(consts[i])]
    ki = [i for i in range(nk) if _is_float(carry[i])]
    xi = [i for i in range(nx) if t_xs[i] is not None and _is_float(xs[i])]
    ny = len(body.outs) - nk
    yi = [j for j in range(ny) if body.outs[nk + j].dtype.kind in "fc"]

    def fn(*args: Any) -> list[Any]:
        a = list(args)
        pc, a = a[:nc], a[nc:]
        tc, a = a[: len(ci)], a[len(ci) :]
        pk, a = a[:nk], a[nk:]
        tk, a = a[: len(ki)], a[len(ki) :]
        px, tx = a[:nx], a[nx:]
        tans: list[Any] = [None] * (nc + nk + nx)
        for i, t in zip(ci, tc, strict=True):
            tans[i] = t
        for i, t in zip(ki, tk, strict=True):
            tans[nc + i] = t
        for i, t in zip(xi, tx, strict=True):
            tans[nc + nk + i] = t
        outs, touts = _jvp_eval(body, [*pc, *pk, *px], tans)
        tout = [_zeros_like(o) if t is None else t for o, t in zip(outs, touts, strict=True)]
        return [*outs[:nk], *[tout[i] for i in ki], *outs[nk:], *[tout[nk + j] for j in yi]]

    tk0 = [t_carry[i] if t_carry[i] is not None else _zeros_like(carry[i]) for i in ki]
    ex = [
        *[_example(c) for c in consts],
        *[_example(t_consts[i]) for i in ci],
        *[_example(c) for c in carry],
        *[_example(t) for t in tk0],
        *[_example(x, True) for x in xs],
        *[_example(t_xs[i], True) for i in xi],
    ]
    jbody, extra = close(fn, ex, "scan", _key("scan_jvp", body, nc, nk, tuple(ci), tuple(ki), tuple(xi)))
    res = _scan_bind(
        lead,
        [*consts, *[t_consts[i] for i in ci]],
        [*carry, *tk0],
        [*xs, *[t_xs[i] for i in xi]],
        jbody,
        extra,
        **_loop_params(params),
    )
    nkt = len(ki)
    out_t: list[Any] = [None] * (nk + ny)
    for n, i in enumerate(ki):
        out_t[i] = res[nk + n]
    ys_t = res[nk + nkt + ny :]
    for n, j in enumerate(yi):
        out_t[nk + j] = ys_t[n]
    return out_t


@scan_p.def_vjp
def _scan_vjp(g: Sequence[Any], out: Sequence[Any], *primals: Any, **params: Any) -> list[Any]:
    body = params["body"]
    split = params.get("split")
    if split is not None and all(c is None for c in list(g)[len(out) - split.n_res :]):
        return _scan_vjp_stored(split, g, out, primals, params)
    lead, consts, carry, xs = _split_scan(primals, params)
    nc, nk, nx = len(consts), len(carry), len(xs)
    ny = len(body.outs) - nk
    g = list(g)
    gk, gy = g[:nk], g[nk:]
    ci = [i for i in range(nc) if _is_float(consts[i])]
    ki = [i for i in range(nk) if _is_float(carry[i])]
    xi = [i for i in range(nx) if _is_float(xs[i])]
    yi = [j for j in range(ny) if gy[j] is not None]
    lp = _loop_params(params)

    # 1. forward again, keeping the carry that enters each step
    stacked: list[Any] = []
    if nk:

        def res_fn(*a: Any) -> list[Any]:
            outs = eval_program(body, list(a))
            return [*outs[:nk], *a[nc : nc + nk]]

        ex = [*[_example(c) for c in consts], *[_example(c) for c in carry], *[_example(x, True) for x in xs]]
        rbody, extra = close(res_fn, ex, "scan", _key("scan_res", body, nc, nk))
        stacked = _scan_bind(lead, consts, carry, xs, rbody, extra, **lp)[nk:]

    # 2. backward, in the other direction: carry (d consts so far, d carry), xs (carries, xs, d ys)
    def bwd_fn(*args: Any) -> list[Any]:
        a = list(args)
        pc, a = a[:nc], a[nc:]
        acc, a = a[: len(ci)], a[len(ci) :]
        ct, a = a[: len(ki)], a[len(ki) :]
        pk, a = a[:nk], a[nk:]
        px, a = a[:nx], a[nx:]
        gyi = a
        prims = [*pc, *pk, *px]
        wrt = [*ci, *[nc + i for i in ki], *[nc + nk + i for i in xi]]
        d = _vjp_eval(body, prims, wrt, [*ki, *[nk + j for j in yi]], [*ct, *gyi])
        dc, dk, dx = d[: len(ci)], d[len(ci) : len(ci) + len(ki)], d[len(ci) + len(ki) :]
        return [*[s + t for s, t in zip(acc, dc, strict=True)], *dk, *dx]

    acc0 = [_zeros_like(consts[i]) for i in ci]
    ct0 = [gk[i] if gk[i] is not None else _zeros_like(carry[i]) for i in ki]
    gys = [gy[j] for j in yi]
    ex = [
        *[_example(c) for c in consts],
        *[_example(t) for t in acc0],
        *[_example(t) for t in ct0],
        *[_example(s, True) for s in stacked],
        *[_example(x, True) for x in xs],
        *[_example(t, True) for t in gys],
    ]
    bbody, extra = close(bwd_fn, ex, "scan", _key("scan_bwd", body, nc, nk, tuple(ci), tuple(ki), tuple(xi), tuple(yi)))
    lp["reverse"] = not lp["reverse"]
    res = _scan_bind(lead, consts, [*acc0, *ct0], [*stacked, *xs, *gys], bbody, extra, **lp)
    acc, ctk, dxs = res[: len(ci)], res[len(ci) : len(ci) + len(ki)], res[len(ci) + len(ki) :]
    cts: list[Any] = [None] * len(primals)
    k = len(lead)
    for n, i in enumerate(ci):
        cts[k + i] = acc[n]
    for n, i in enumerate(ki):
        cts[k + nc + i] = ctk[n]
    for n, i in enumerate(xi):
        cts[k + nc + nk + i] = dxs[n]
    return cts


@scan_p.def_batch
def _scan_batch(axis_size: int, vals: Sequence[Any], dims: Sequence[Any], **params: Any) -> tuple[list[Any], list[Any]]:
    fl = _ops()
    body = params["body"]
    vals = list(vals)
    dims = list(dims)
    if params["dyn"] and dims[0] is not None:
        # a per-element trip count comes only from while_loop's reverse rule, whose steps
        # leave finished elements unchanged: run the longest
        vals[0] = fl.max(vals[0], axis=dims[0])
        dims[0] = None
    lead, consts, carry, xs = _split_scan(vals, params)
    _, dc, dk, dx = _split_scan(dims, params)
    nk = len(carry)
    carry_b = [_to_front(c, d, axis_size) for c, d in zip(carry, dk, strict=True)]
    xs_b = []
    x_dims: list[Any] = []
    for x, d in zip(xs, dx, strict=True):
        if d is None:
            xs_b.append(x)
            x_dims.append(None)
        elif d == 0:
            xs_b.append(fl.moveaxis(x, 0, 1))
            x_dims.append(0)
        else:
            xs_b.append(x)
            x_dims.append(d - 1)
    in_dims = [*dc, *[0] * nk, *x_dims]

    def fn(*a: Any) -> list[Any]:
        return _vmap_eval(body, list(a), in_dims, axis_size)

    ex = [
        *[_example(c) for c in consts],
        *[_example(c) for c in carry_b],
        *[_example(x, True) for x in xs_b],
    ]
    bbody, extra = close(fn, ex, "scan", _key("scan_batch", body, len(consts), nk, tuple(in_dims), axis_size))
    res = _scan_bind(lead, consts, carry_b, xs_b, bbody, extra, **_loop_params(params))
    ny = len(body.outs) - nk
    return res, [0] * nk + [1] * ny


_LAYOUT = frozenset({"permute_dims", "reshape", "expand_dims", "squeeze", "broadcast_to", "matrix_transpose"})


class _Split:
    """A scan body split for reverse mode by partial evaluation of one step's vjp: the scan runs
    ``fwd`` (the body, also returning the ``n_res`` values the backward step needs), and its
    reverse mode is one backward scan of ``bwd`` over them. ``ne`` captured values lead the
    consts; ``ci``/``ki``/``xi``: the consts, carries and xs that get cotangents; ``yf``: the
    float ys. Cached per body signature, so one body gives one split object."""

    __slots__ = ("bwd", "bwd_extra", "n_res", "ne", "ci", "ki", "xi", "yf")

    def __init__(self, bwd: Program, bwd_extra: list[Tensor], n_res: int, ne: int, masks: tuple[Any, ...]) -> None:
        self.bwd = bwd
        self.bwd_extra = bwd_extra
        self.n_res = n_res
        self.ne = ne
        self.ci, self.ki, self.xi, self.yf = masks

    def __repr__(self) -> str:
        return f"<{self.n_res} residuals>"


def _split_body(
    body: Program, ex: list[Tensor], nc: int, nk: int, ci: tuple[int, ...], xi: tuple[int, ...]
) -> tuple[Program, list[Tensor], _Split] | None:
    """Split ``body`` (inputs: nc consts, nk carries, the xs) for reverse mode, or None."""
    sk = _key("split", body, nc, nk, ci, xi)
    key = None if sk is None else (sk, tuple((tuple(e.shape), e.dtype, e._xp) for e in ex))
    if key is not None and key in _CACHE:
        return _CACHE[key]  # type: ignore[no-any-return]
    r = _make_split(body, ex, nc, nk, ci, xi)
    if key is not None:
        _remember(key, r)
    return r


def _make_split(
    body: Program, ex: list[Tensor], nc: int, nk: int, ci: tuple[int, ...], xi: tuple[int, ...]
) -> tuple[Program, list[Tensor], _Split] | None:
    n_ins = len(body.in_vars)
    nx = n_ins - nc - nk
    ny = len(body.outs) - nk
    ki = tuple(i for i in range(nk) if body.outs[i].dtype.kind in "fc")
    yf = tuple(j for j in range(ny) if body.outs[nk + j].dtype.kind in "fc")
    xp = ex[0]._xp

    def joint(*args: Any) -> list[Any]:
        prims = list(args[:n_ins])
        outs = eval_program(body, prims)
        wrt = [*ci, *[nc + i for i in ki], *[nc + nk + i for i in xi]]
        d = _vjp_eval(body, prims, wrt, [*ki, *[nk + j for j in yf]], list(args[n_ins:]))
        return [*outs, *d]

    y_ex = [_spec(tuple(body.outs[nk + j].shape), body.outs[nk + j].dtype, xp) for j in yf]
    jex = [*ex, *[_example(ex[nc + i]) for i in ki], *y_ex]
    J, jextra = close(joint, jex, "scan")
    if any(c._t is not None for c in jextra) or any(not isinstance(o, Var) for o in J.outs):
        return None
    ne = len(jextra)
    ins = J.in_vars
    c_ids = {v.id for v in ins[: ne + nc]}
    x_ids = {v.id for v in ins[ne + nc + nk : ne + n_ins]}
    unknown = {v.id for v in ins[ne + n_ins :]}
    bwd_ids = set()
    for e in J.eqns:
        if any(isinstance(i, Var) and i.id in unknown for i in e.inputs):
            bwd_ids.add(id(e))
            unknown.update(o.id for o in e.outputs)
    # loop-invariant values (of the consts alone) and layout ops (transposes, reshapes) are
    # recomputed in the backward step rather than stacked per step
    inv = set(c_ids)
    for e in J.eqns:
        if id(e) not in bwd_ids and all(not isinstance(i, Var) or i.id in inv for i in e.inputs):
            inv.update(o.id for o in e.outputs)
    n_out = nk + ny
    d_outs = J.outs[n_out:]
    needed = {v.id for e in J.eqns if id(e) in bwd_ids for v in e.inputs if isinstance(v, Var)}
    needed.update(v.id for v in d_outs)
    for e in reversed(J.eqns):
        if id(e) in bwd_ids or not any(o.id in needed for o in e.outputs):
            continue
        if e.prim.name in _LAYOUT or all(o.id in inv for o in e.outputs):
            bwd_ids.add(id(e))
            needed.update(v.id for v in e.inputs if isinstance(v, Var))
    made_in_bwd = {o.id for e in J.eqns if id(e) in bwd_ids for o in e.outputs}
    fwd_eqns = [e for e in J.eqns if id(e) not in bwd_ids or any(o.id not in unknown for o in e.outputs)]
    bwd_eqns = [e for e in J.eqns if id(e) in bwd_ids]
    res: list[Var] = []
    seen: set[int] = set()
    for v in [*[i for e in bwd_eqns for i in e.inputs], *d_outs]:
        if isinstance(v, Var) and v.id not in made_in_bwd | unknown | c_ids | x_ids | seen:
            seen.add(v.id)
            res.append(v)
    if any(None in v.shape for v in res):
        return None  # a residual of run-time length (a while_loop's steps) cannot be stacked per step
    fwd = Program(list(ins[: ne + n_ins]), None, fwd_eqns, [*J.outs[:n_out], *res], None, [], "scan").optimized()
    # one backward step: (consts, residuals, xs, carry cotangents, y cotangents) -> cotangents
    b_ins = [*ins[: ne + nc], *res, *ins[ne + nc + nk : ne + n_ins], *ins[ne + n_ins :]]
    bprog = Program(b_ins, None, bwd_eqns, list(d_outs), None, [], "scan").optimized()
    n_res = len(res)
    r_ex = [wrap(a, xp) for a in _compiled(fwd)(*[_example_of(t) for t in [*jextra, *ex]])[n_out:]]
    nci, nki = len(ci), len(ki)
    nb = ne + nc

    def bwd_fn(*args: Any) -> list[Any]:
        a = list(args)
        cs, acc, a = a[:nb], a[nb : nb + nci], a[nb + nci :]
        ct, rs, a = a[:nki], a[nki : nki + n_res], a[nki + n_res :]
        xs_i, gy = a[:nx], a[nx:]
        d = eval_program(bprog, [*cs, *rs, *xs_i, *ct, *gy])
        dc, dk, dx = d[:nci], d[nci : nci + nki], d[nci + nki :]
        return [*[s + t for s, t in zip(acc, dc, strict=True)], *dk, *dx]

    bex = [
        *[_example(c) for c in jextra],
        *ex[:nc],
        *[_example(ex[i]) for i in ci],
        *[_example(ex[nc + i]) for i in ki],
        *r_ex,
        *ex[nc + nk :],
        *y_ex,
    ]
    bbody, bextra = close(bwd_fn, bex, "scan")
    if any(c._t is not None for c in bextra):
        return None
    return fwd, jextra, _Split(bbody, bextra, n_res, ne, (ci, ki, xi, yf))


def _scan_vjp_stored(
    split: _Split, g: Sequence[Any], out: Sequence[Any], primals: Sequence[Any], params: dict[str, Any]
) -> list[Any]:
    """Reverse mode of a scan whose forward pass stored its residuals: one backward scan."""
    lead, consts, carry, xs = _split_scan(primals, params)
    nk = len(carry)
    ne = split.ne
    ny = len(out) - nk - split.n_res
    g = list(g)
    acc0 = [_zeros_like(consts[ne + i]) for i in split.ci]
    ct0 = [g[i] if g[i] is not None else _zeros_like(carry[i]) for i in split.ki]
    gys = [g[nk + j] if g[nk + j] is not None else _zeros_like(out[nk + j]) for j in split.yf]
    lp = _loop_params(params)
    lp["reverse"] = not lp["reverse"]
    stacked = list(out[nk + ny :])
    back = _scan_bind(lead, consts, [*acc0, *ct0], [*stacked, *xs, *gys], split.bwd, list(split.bwd_extra), **lp)
    nci, nki = len(split.ci), len(split.ki)
    cts: list[Any] = [None] * len(primals)
    k = len(lead)
    nb = len(consts)
    for m, i in enumerate(split.ci):
        cts[k + ne + i] = back[m]
    for m, i in enumerate(split.ki):
        cts[k + nb + i] = back[nci + m]
    for m, i in enumerate(split.xi):
        cts[k + nb + nk + i] = back[nci + nki + m]
    return cts


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    *,
    checkpoint: int | bool = False,
    _store: bool = True,
) -> tuple[Any, Any]:
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; return ``(carry, ys)``.

    The semantics of ``jax.lax.scan``, in one primitive: ``f`` is traced once (on the shapes
    and dtypes of ``init`` and of one slice of ``xs``) and replayed per step, so a long loop
    makes one equation in a program and one node on a tape. ``ys`` stacks the per-step ``y``
    along a new leading axis (at position ``i`` also when ``reverse``).

    Args:
        f: the step, a pure function of the carry and one slice of ``xs`` (pytrees).
        init: the initial carry (a pytree); ``f`` must return a carry of the same structure,
            shapes and dtypes.
        xs: the pytree scanned over its leading axis, or None (then ``length`` is needed).
        length: the number of steps (checked against ``xs``'s leading axis when both are given).
        reverse: scan from the last slice to the first.
        unroll: accepted for compatibility with ``jax.lax.scan``; the replay calls the body once
            per step whatever its value (results do not depend on it).
        checkpoint: bound the memory of reverse mode (an extension of ``jax.lax.scan``): store
            the carry only every ``checkpoint`` steps (``True``: about ``sqrt(length)``) and
            recompute the steps between in the backward pass, one extra forward pass in all.

    Reverse mode stores, per step, the values the step's backward pass needs (its residuals:
    ``length`` times what one step keeps, as a Python loop under ``grad`` would); with
    ``checkpoint=k`` it stores a carry per ``k`` steps instead and recomputes the rest.

    Example:
        >>> import functorch_lite as fl
        >>> carry, ys = fl.scan(lambda c, x: (c + x, c * x), fl.asarray(0.0), fl.arange(1.0, 5.0))
        >>> float(carry), ys.tolist()
        (10.0, [0.0, 2.0, 9.0, 24.0])
        >>> float(fl.grad(lambda x: fl.scan(lambda c, x: (c * x, None), fl.asarray(1.0), x)[0])(fl.arange(1.0, 4.0))[0])
        6.0
    """
    if not (unroll is True or unroll is False or (isinstance(unroll, int) and unroll >= 1)):
        raise ControlFlowError(f"scan: unroll must be a positive int or a bool; got {unroll!r}.")
    init_leaves, init_tree = tu.tree_flatten(init)
    init_leaves = [_leaf(x, "scan: init") for x in init_leaves]
    x_leaves, x_tree = tu.tree_flatten(xs)
    x_leaves = [_leaf(x, "scan: xs") for x in x_leaves]
    for x in x_leaves:
        if x.ndim == 0:
            raise ControlFlowError(
                "scan: every leaf of xs is scanned over its leading axis, so it needs one; got a 0-d leaf. "
                "Pass it through the carry or a closure instead."
            )
    lens = sorted({int(x.shape[0]) for x in x_leaves})
    if len(lens) > 1:
        raise ControlFlowError(
            f"scan: the leaves of xs have leading axes of different lengths {lens}; they must agree "
            "(each step takes one slice of every leaf)."
        )
    if length is not None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise ControlFlowError(f"scan: length must be a non-negative int; got {length!r}.")
        if lens and lens[0] != length:
            raise ControlFlowError(
                f"scan: length={length} but xs has leading axis {lens[0]}; drop length or make them agree."
            )
    elif not lens:
        raise ControlFlowError("scan: with xs=None, pass length= (the number of steps).")
    n = length if length is not None else lens[0]
    if checkpoint is not False:
        k = _segment(checkpoint, n)
        if k < n:
            return _segmented(f, init, xs, x_leaves, x_tree, n, k, bool(reverse))
    nk = len(init_leaves)
    seen: list[Any] = []

    def step(*leaves: Any) -> list[Any]:
        c = tu.tree_unflatten(init_tree, list(leaves[:nk]))
        x = tu.tree_unflatten(x_tree, list(leaves[nk:]))
        out = f(c, x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise ControlFlowError(
                f"scan: the body must return a pair (carry, y); got {type(out).__name__}. Return (carry, None) "
                "when there is no per-step output."
            )
        c2, y = out
        c_leaves, c_tree = tu.tree_flatten(c2)
        if c_tree != init_tree:
            raise ControlFlowError(
                f"scan: the body returned a carry of structure {c_tree}, but init has structure {init_tree}; "
                "the carry must keep its structure from step to step."
            )
        c_leaves = [_fit_carry(o, like, "scan") for o, like in zip(c_leaves, init_leaves, strict=True)]
        y_leaves, y_tree = tu.tree_flatten(y)
        seen.append(y_tree)
        return [*c_leaves, *[_leaf(o, "scan: y") for o in y_leaves]]

    ex = [*[_example(c) for c in init_leaves], *[_example(x, True) for x in x_leaves]]
    body, consts = close(step, ex, "scan")
    _check_carry(body, init_leaves, "scan", "init")
    lp = {"length": n, "reverse": bool(reverse), "dyn": False}
    ny = len(body.outs) - nk
    top = find_top_trace([*consts, *init_leaves, *x_leaves])
    if _store and top is not None and top.kind_name == "grad" and n > 0:
        # differentiated in reverse mode right here: the forward pass keeps the residuals
        nc = len(consts)
        ci = tuple(i for i, c in enumerate(consts) if _traced_by(c, top))
        xi = tuple(i for i, x in enumerate(x_leaves) if _traced_by(x, top))
        r = _split_body(body, [*[_example(c) for c in consts], *ex], nc, nk, ci, xi)
        if r is not None:
            fwd, jextra, split = r
            res = _scan_bind([], [*jextra, *consts], init_leaves, x_leaves, fwd, [], split=split, **lp)
            res = res[: nk + ny]
            return tu.tree_unflatten(init_tree, res[:nk]), tu.tree_unflatten(seen[-1], res[nk:])
    res = _scan_bind([], [], init_leaves, x_leaves, body, consts, **lp)
    return tu.tree_unflatten(init_tree, res[:nk]), tu.tree_unflatten(seen[-1], res[nk:])


def _traced_by(t: Tensor, trace: Any) -> bool:
    p = t._t
    return p is not None and p.trace is trace and t.dtype.kind in "fc"


def _segment(checkpoint: int | bool, n: int) -> int:
    if checkpoint is True:
        return max(1, math.isqrt(max(n - 1, 0)) + 1)
    if not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or checkpoint < 1:
        raise ControlFlowError(
            f"scan: checkpoint must be a bool or a positive int (steps between stored carries); got {checkpoint!r}."
        )
    return checkpoint


def _segmented(
    f: Callable[..., Any], init: Any, xs: Any, x_leaves: list[Tensor], x_tree: Any, n: int, k: int, reverse: bool
) -> tuple[Any, Any]:
    """A scan of ``n`` steps as an outer scan over segments of ``k`` steps (an inner scan each)
    and a plain scan of the ``n % k`` steps left: reverse mode stores a carry per segment."""
    fl = _ops()
    m, r = divmod(n, k)
    head = [fl.reshape(x[: m * k], (m, k, *x.shape[1:])) for x in x_leaves]
    tail = [x[m * k :] for x in x_leaves]
    xh = tu.tree_unflatten(x_tree, head) if x_leaves else None
    xt = tu.tree_unflatten(x_tree, tail) if x_leaves else None

    def seg(c: Any, xseg: Any) -> Any:
        return scan(f, c, xseg, length=k, reverse=reverse)

    # the loop over segments stores only a carry per segment (_store=False: no residuals)
    if reverse:
        c, ys_t = scan(f, init, xt, length=r, reverse=True)
        c, ys_h = scan(seg, c, xh, length=m, reverse=True, _store=False)
    else:
        c, ys_h = scan(seg, init, xh, length=m, _store=False)
        c, ys_t = scan(f, c, xt, length=r)

    def join(h: Any, t: Any) -> Any:
        h = fl.reshape(h, (m * k, *h.shape[2:]))
        return h if r == 0 else fl.concat([h, t], axis=0)

    return c, tu.tree_map(join, ys_h, ys_t)


def _fit_carry(o: Any, like: Tensor, what: str) -> Tensor:
    """A body's carry output as a Tensor; a Python number takes the carry's dtype (as JAX's weak types)."""
    if isinstance(o, (bool, int, float, complex)) and not isinstance(o, Tensor):
        return _ops().asarray(o, dtype=like.dtype)
    return _leaf(o, what)


def _check_carry(body: Program, init: Sequence[Tensor], what: str, name: str, start: int = 0) -> None:
    got = [_var_aval(v) for v in body.outs[start : start + len(init)]]
    want = _avals(init)
    if got != want:
        raise ControlFlowError(
            f"{what}: the body returned a carry with shapes/dtypes {_fmt_avals(got)}, but {name} has "
            f"{_fmt_avals(want)}; each step must return a carry of the same shapes and dtypes (cast with "
            ".astype, or give the initial value the dtype the body computes)."
        )


def map(f: Callable[[Any], Any], xs: Any) -> Any:  # noqa: A001  (jax.lax.map's name)
    """``f`` applied to each slice of ``xs`` along its leading axis, stacked: ``jax.lax.map``.

    One traced body replayed per slice (a scan with no carry); use ``fl.vmap`` to run the
    slices at once instead.

    Example:
        >>> import functorch_lite as fl
        >>> fl.map(lambda r: fl.sum(r * r), fl.reshape(fl.arange(6.0), (3, 2))).tolist()
        [1.0, 13.0, 41.0]
    """
    return scan(lambda c, x: ((), f(x)), (), xs)[1]


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
    from .._ops._base import default_int

    return default_int()


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

        from .api import vjp

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
