"""Reverse mode through ``scan`` by partial evaluation: one step's vjp split into a forward body that stacks
its residuals and a backward body (the rule ``grad`` takes when it differentiates the loop directly)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._core.tensor import Tensor, wrap
from .._program import Program, Var, eval_program
from .._staging import _example_of
from ._common import _CACHE, _compiled, _example, _key, _remember, _spec, _vjp_eval, _zeros_like, close
from ._scan import _loop_params, _scan_bind, _split_scan

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
