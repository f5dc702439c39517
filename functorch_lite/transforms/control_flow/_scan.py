"""``scan_p``: the primitive, its jvp, its vjp (recomputing each step from stored carries) and its batch rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._core.engine import bind
from ..._core.tensor import backend_for
from .._program import Program, eval_program
from ._common import (
    ControlPrimitive,
    _compiled,
    _example,
    _is_float,
    _jvp_eval,
    _key,
    _ops,
    _to_front,
    _vjp_eval,
    _vmap_eval,
    _zeros_like,
    close,
)


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
        from ._scan_split import _scan_vjp_stored  # (that module builds on this one)

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
