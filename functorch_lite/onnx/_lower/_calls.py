"""ONNX rules of the nn / optim primitives, custom calls and control flow (If, Loop)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...transforms._program import Program, Var
from .._graph import INT64_MIN
from . import Ctx, rule


# ---------------------------------------------------------------------------------------
# nn and optim primitives
# ---------------------------------------------------------------------------------------
@rule("nn.cross_entropy", "ReduceMax, Exp, ReduceSum, Log, Equal, Where")
def _cross_entropy(c: Ctx) -> list[str]:
    dt = c.odt()
    x, t = c.x(0, dt), c.x(1, "int64")
    m = c.op("ReduceMax", [x, c.b.i64([1])], keepdims=1)
    fin = c.op("Not", [c.op("Or", [c.op("IsNaN", [m]), c.op("IsInf", [m])])])
    m = c.op("Where", [fin, m, c.b.const(0.0, dt)])
    lse = c.op(
        "Add",
        [
            c.op("Log", [c.op("ReduceSum", [c.op("Exp", [c.op("Sub", [x, m])]), c.b.i64([1])], keepdims=0)]),
            c.op("Squeeze", [m, c.b.i64([1])]),
        ],
    )
    ignore = c.params.get("ignore_index")
    valid = None
    if ignore is not None:
        valid = c.op("Not", [c.op("Equal", [t, c.b.const(int(ignore), "int64")])])
    ncls = c.op("Gather", [c.op("Shape", [x]), c.b.const(1, "int64")])
    if c.params.get("wrap", True):
        t = c.op("Where", [c.op("Less", [t, c.b.const(0, "int64")]), c.op("Add", [t, ncls]), t])
    classes = c.op("Range", [c.b.const(0, "int64"), ncls, c.b.const(1, "int64")])
    hit = c.op("Equal", [c.op("Unsqueeze", [t, c.b.i64([1])]), classes])
    if valid is not None:
        hit = c.op("And", [hit, c.op("Unsqueeze", [valid, c.b.i64([1])])])
    xt = c.op("ReduceSum", [c.op("Where", [hit, x, c.b.const(0.0, dt)]), c.b.i64([1])], keepdims=0)
    out = c.op("Sub", [lse, xt])
    if valid is not None:
        out = c.op("Mul", [out, c.op("Cast", [valid], to=c.b.elem(dt))])
    return [out]


@rule("optim.adam_moments", "Sub, Mul, Add, Sqrt, Div")
def _adam(c: Ctx) -> list[str]:
    dt = c.odt()
    g, m, v = c.x(0, dt), c.x(1, dt), c.x(2, dt)
    p = c.params

    def k(name: str) -> str:
        return c.b.const(float(p[name]), dt)

    mk = c.op("Add", [m, c.op("Mul", [c.op("Sub", [g, m]), k("c1")])])
    vk = c.op("Add", [c.op("Mul", [v, k("b2")]), c.op("Mul", [c.op("Mul", [g, g]), k("c2")])])
    den = c.op("Add", [c.op("Div", [c.op("Sqrt", [vk]), k("bc2_sqrt")]), k("eps")])
    d = c.op("Div", [mk, den])
    return [mk, vk, c.op("Mul", [d, k("mul")]) if p.get("mul") is not None else c.op("Div", [d, k("bc1")])]


# ---------------------------------------------------------------------------------------
# Calls and control flow
# ---------------------------------------------------------------------------------------
@rule("custom_call", "(the function's own program, inlined)")
def _custom_call(c: Ctx) -> list[str]:
    prog = c.params["program"]
    outs = c.low.lower(prog, [c.x(i) for i in range(len(c.raw))])
    return [c.low.as_name(o, v.dtype.name) for o, v in zip(outs, c.outs, strict=True)]


def _body_outputs(c: Ctx, names: Sequence[Any], vars_: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """Identity each output of a body (a subgraph output must be its own value), with its type."""
    outs, infos = [], []
    for n, v in zip(names, vars_, strict=True):
        dt = v.dtype.name if isinstance(v, Var) else c.odt()
        src = c.low.as_name(n, dt)
        o = c.b.op("Identity", [src])
        outs.append(o)
        infos.append(c.b.value_info(o, dt, None))
    return outs, infos


def _branch_graph(c: Ctx, prog: Program, ops: Sequence[str], tag: str) -> Any:
    with c.b.frame() as f:
        res = c.low.lower(prog, ops)
        _, infos = _body_outputs(c, res, prog.outs)
    return c.b.graph(f, c.b.fresh(tag), [], infos)


@rule("cond", "If")
def _cond(c: Ctx) -> list[str]:
    branches: tuple[Program, ...] = c.params["branches"]
    ops = [c.x(i) for i in range(1, len(c.raw))]
    idx_dt = c.dt(0) or "int64"
    index = c.x(0)
    index = c.op("Reshape", [index, c.b.i64([])]) if c.rank(0) else index

    def build(lo: int) -> list[str]:
        # branches[lo] when index <= lo, else the rest (index clamped, as the impl clamps it)
        if lo == len(branches) - 1:
            raise AssertionError
        if idx_dt == "bool":
            pred = index
        else:
            pred = c.op("LessOrEqual", [index, c.b.const(lo, idx_dt)])
        then_g = _branch_graph(c, branches[lo], ops, "then")
        if lo + 1 == len(branches) - 1:
            else_g = _branch_graph(c, branches[lo + 1], ops, "else")
        else:
            with c.b.frame() as f:
                inner = build(lo + 1)
                outs, infos = [], []
                for n, v in zip(inner, c.outs, strict=True):
                    o = c.b.op("Identity", [n])
                    outs.append(o)
                    infos.append(c.b.value_info(o, v.dtype.name, None))
            else_g = c.b.graph(f, c.b.fresh("else"), [], infos)
        if idx_dt == "bool":  # branches are (false, true)
            then_g, else_g = else_g, then_g
        return c.b.opn("If", [pred], len(c.outs), then_branch=then_g, else_branch=else_g)

    if len(branches) == 1:
        return [c.low.as_name(o, v.dtype.name) for o, v in zip(c.low.lower(branches[0], ops), c.outs, strict=True)]
    return build(0)


@rule("scan", "Loop (+ Gather per step, Slice to reverse)")
def _scan(c: Ctx) -> list[str]:
    p = c.params
    body: Program = p["body"]
    k = 1 if p["dyn"] else 0
    nc, nk = int(p["n_consts"]), int(p["n_carry"])
    n_in = len(c.raw)
    consts = [c.x(i) for i in range(k, k + nc)]
    carry = [c.x(i) for i in range(k + nc, k + nc + nk)]
    xs = [c.x(i) for i in range(k + nc + nk, n_in)]
    if p["dyn"]:
        m = c.op("Reshape", [c.x(0, "int64"), c.b.i64([])])
    elif xs:
        m = c.op("Gather", [c.op("Shape", [xs[0]]), c.b.const(0, "int64")])
    else:
        m = c.b.dim(p["length"], "the scan length")
    carry_vars = body.outs[:nk]
    with c.b.frame() as f:
        it = c.b.fresh("iter")
        cin = c.b.fresh("cond_in")
        ks = [c.b.fresh("carry_in") for _ in range(nk)]
        idx = it
        if p["reverse"]:
            idx = c.b.op("Sub", [c.b.op("Sub", [m, c.b.const(1, "int64")]), it])
        x_t = [c.b.op("Gather", [x, idx], axis=0) for x in xs]
        res = c.low.lower(body, [*consts, *ks, *x_t])
        cout = c.b.op("Identity", [cin])
        outs, infos = _body_outputs(c, res, body.outs)
    in_vars = [v for v in body.in_vars if isinstance(v, Var)]
    inputs = [c.b.value_info(it, "int64", []), c.b.value_info(cin, "bool", [])] + [
        c.b.value_info(n, v.dtype.name, None) for n, v in zip(ks, in_vars[nc : nc + nk], strict=True)
    ]
    g = c.b.graph(f, c.b.fresh("scan_body"), inputs, [c.b.value_info(cout, "bool", []), *infos])
    del carry_vars
    res_names = c.b.opn("Loop", [m, "", *carry], len(c.outs), body=g)
    if p["reverse"]:
        res_names = res_names[:nk] + [
            c.op("Slice", [y, c.b.i64([-1]), c.b.i64([INT64_MIN]), c.b.i64([0]), c.b.i64([-1])]) for y in res_names[nk:]
        ]
    return res_names


@rule("while_loop", "Loop (condition carried)")
def _while(c: Ctx) -> list[str]:
    p = c.params
    cprog: Program = p["cond"]
    bprog: Program = p["body"]
    ncc, nbc = int(p["n_cc"]), int(p["n_bc"])
    cc = [c.x(i) for i in range(ncc)]
    bc = [c.x(i) for i in range(ncc, ncc + nbc)]
    carry = [c.x(i) for i in range(ncc + nbc, len(c.raw))]
    cnt_dt = c.outs[-1].dtype.name

    def pred_of(vals: Sequence[str]) -> str:
        r = c.low.lower(cprog, [*cc, *vals])[0]
        r = c.low.as_name(r, "bool")
        r = c.b.op("Cast", [r], to=c.b.elem("bool"))
        return str(c.b.op("Reshape", [r, c.b.i64([])]))

    pred0 = pred_of(carry)
    carry_vars = [v for v in bprog.in_vars if isinstance(v, Var)][nbc:]
    with c.b.frame() as f:
        it = c.b.fresh("iter")
        cin = c.b.fresh("cond_in")
        ks = [c.b.fresh("carry_in") for _ in carry]
        n_in = c.b.fresh("count_in")
        new = c.low.lower(bprog, [*bc, *ks])
        new_names = [c.low.as_name(o, v.dtype.name) for o, v in zip(new, bprog.outs, strict=True)]
        pred = c.b.op("Identity", [pred_of(new_names)])
        outs, infos = _body_outputs(c, new_names, bprog.outs)
        n_out = c.b.op("Add", [n_in, c.b.const(1, cnt_dt)])
        infos.append(c.b.value_info(n_out, cnt_dt, []))
    inputs = [c.b.value_info(it, "int64", []), c.b.value_info(cin, "bool", [])]
    inputs += [c.b.value_info(n, v.dtype.name, None) for n, v in zip(ks, carry_vars, strict=True)]
    inputs.append(c.b.value_info(n_in, cnt_dt, []))
    g = c.b.graph(f, c.b.fresh("while_body"), inputs, [c.b.value_info(pred, "bool", []), *infos])
    zero = c.b.const(0, cnt_dt)
    return c.b.opn("Loop", ["", pred0, *carry, zero], len(c.outs), body=g)
