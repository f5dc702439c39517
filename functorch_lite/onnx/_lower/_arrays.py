"""ONNX rules of reductions, scans along an axis, linear algebra and shape manipulation."""

from __future__ import annotations

from typing import Any

from .._graph import INT64_MIN
from .._symbolic import Dim
from . import Ctx, Rule, rule


# ---------------------------------------------------------------------------------------
# Reductions and scans along an axis
# ---------------------------------------------------------------------------------------
def _axes(c: Ctx, i: int = 0) -> list[int] | None:
    ax = c.params.get("axis")
    if ax is None:
        return None
    r = c.rank(i)
    ax = (ax,) if isinstance(ax, int) else ax
    return [a % r if r else a for a in ax]


def _reduce(onnx_op: str, cast_in: str | None = None) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.odt()
        work = cast_in or (dt if dt != "bool" else "int32")
        x = c.x(0, work)
        axes = _axes(c)
        keep = 1 if c.params.get("keepdims") else 0
        if axes is not None and len(axes) == 0:
            out = c.op("Identity", [x])
        elif axes is None:
            out = c.op(onnx_op, [x], keepdims=keep)
        else:
            out = c.op(onnx_op, [x, c.b.i64(axes)], keepdims=keep)
        return [out if work == dt else c.op("Cast", [out], to=c.b.elem(dt))]

    return r


rule("sum", "ReduceSum")(_reduce("ReduceSum"))
rule("prod", "ReduceProd")(_reduce("ReduceProd"))
rule("max", "ReduceMax")(_reduce("ReduceMax"))
rule("min", "ReduceMin")(_reduce("ReduceMin"))
rule("all", "Cast, ReduceMin")(_reduce("ReduceMin", "int32"))
rule("any", "Cast, ReduceMax")(_reduce("ReduceMax", "int32"))


def _arg(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        x = c.x(0)
        ax = c.params.get("axis")
        keep = 1 if c.params.get("keepdims") else 0
        if ax is None:
            flat = c.op("Reshape", [x, c.b.i64([-1])])
            out = c.op(onnx_op, [flat], axis=0, keepdims=0)
            if keep:
                out = c.op("Reshape", [out, c.b.i64([1] * c.rank(0))])
        else:
            out = c.op(onnx_op, [x], axis=int(ax), keepdims=keep)
        return [out if c.odt() == "int64" else c.op("Cast", [out], to=c.b.elem(c.odt()))]

    return r


rule("argmax", "ArgMax")(_arg("ArgMax"))
rule("argmin", "ArgMin")(_arg("ArgMin"))


@rule("cumulative_sum", "CumSum (+ Pad for include_initial)")
def _cumsum(c: Ctx) -> list[str]:
    dt = c.odt()
    ax = int(c.params["axis"]) % max(c.rank(0), 1)
    out = c.op("CumSum", [c.x(0, dt), c.b.const(ax, "int64")])
    if c.params.get("include_initial"):
        r = c.rank(0)
        pads = [0] * (2 * r)
        pads[ax] = 1
        out = c.op("Pad", [out, c.b.i64(pads), c.b.const(0, dt)])
    return [out]


def _sort(want: int) -> Rule:
    def r(c: Ctx) -> list[str]:
        ax = int(c.params["axis"])
        x = c.x(0)
        k = c.op("Unsqueeze", [c.op("Gather", [c.op("Shape", [x]), c.b.const(ax % c.rank(0), "int64")]), c.b.i64([0])])
        vals, idx = c.b.opn("TopK", [x, k], 2, axis=ax, largest=1 if c.params.get("descending") else 0, sorted=1)
        out = [vals, idx][want]
        if want == 1 and c.odt() != "int64":
            out = c.op("Cast", [out], to=c.b.elem(c.odt()))
        return [out]

    return r


rule("sort", "TopK")(_sort(0))
rule("argsort", "TopK")(_sort(1))


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
@rule("matmul", "MatMul")
def _matmul(c: Ctx) -> list[str]:
    dt = c.odt()
    return [c.op("MatMul", [c.x(0, dt), c.x(1, dt)])]


@rule("matmul_nt", "Transpose, MatMul")
def _matmul_nt(c: Ctx) -> list[str]:
    dt = c.odt()
    r = c.rank(1)
    w = c.x(1, dt)
    if r >= 2:
        perm = list(range(r - 2)) + [r - 1, r - 2]
        w = c.op("Transpose", [w], perm=perm)
    return [c.op("MatMul", [c.x(0, dt), w])]


@rule("linalg.det", "Det")
def _det(c: Ctx) -> list[str]:
    return [c.op("Det", [c.x(0, c.odt())])]


def _diag(c: Ctx, x: str, shape: tuple[Any, ...], offset: int) -> str:
    n, m = (c.b.static(d, "the matrix size") for d in shape[-2:])
    rows = range(max(0, -offset), min(n, m - offset)) if m - offset > 0 else range(0)
    idx = [i * m + i + offset for i in rows]
    lead = len(shape) - 2
    flat = c.op("Reshape", [x, c.b.i64([0] * lead + [n * m])])
    return c.op("Gather", [flat, c.b.i64(idx)], axis=lead)


@rule("linalg.diagonal", "Reshape, Gather")
def _diagonal(c: Ctx) -> list[str]:
    return [_diag(c, c.x(0), c.shape(0), int(c.params.get("offset", 0)))]


@rule("linalg.trace", "Reshape, Gather, ReduceSum")
def _trace(c: Ctx) -> list[str]:
    dt = c.odt()
    d = _diag(c, c.x(0, dt), c.shape(0), int(c.params.get("offset", 0)))
    return [c.op("ReduceSum", [d, c.b.i64([-1])], keepdims=0)]


# ---------------------------------------------------------------------------------------
# Manipulation
# ---------------------------------------------------------------------------------------
@rule("reshape", "Reshape")
def _reshape(c: Ctx) -> list[str]:
    shape = tuple(c.params["shape"])
    zero = any(not isinstance(d, Dim) and d == 0 for d in shape)
    return [c.op("Reshape", [c.x(0), c.b.shape_vec(shape, "a reshape target")], allowzero=1 if zero else None)]


@rule("broadcast_to", "Expand")
def _broadcast_to(c: Ctx) -> list[str]:
    return [c.op("Expand", [c.x(0), c.b.shape_vec(tuple(c.params["shape"]), "a broadcast target")])]


@rule("permute_dims", "Transpose")
def _permute(c: Ctx) -> list[str]:
    return [c.op("Transpose", [c.x(0)], perm=[int(a) for a in c.params["axes"]])]


@rule("flip", "Slice")
def _flip(c: Ctx) -> list[str]:
    r = c.rank(0)
    ax = c.params.get("axis")
    axes = list(range(r)) if ax is None else [a % r for a in ((ax,) if isinstance(ax, int) else ax)]
    if not axes:
        return [c.op("Identity", [c.x(0)])]
    n = len(axes)
    return [
        c.op(
            "Slice",
            [c.x(0), c.b.i64([-1] * n), c.b.i64([INT64_MIN] * n), c.b.i64(axes), c.b.i64([-1] * n)],
        )
    ]


@rule("roll", "Slice, Concat")
def _roll(c: Ctx) -> list[str]:
    x = c.x(0)
    shape = c.shape(0)
    ax = c.params.get("axis")
    shift = c.params["shift"]
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    if ax is None:
        flat = c.op("Reshape", [x, c.b.i64([-1])])
        size = 1
        for d in c.b.static(tuple(shape), "the rolled array's size"):
            size *= d
        out = _roll1(c, flat, int(c.b.static(sum(shifts), "the shift")), size, 0)
        return [c.op("Reshape", [out, c.op("Shape", [x])])]
    axes = (ax,) if isinstance(ax, int) else tuple(ax)
    for s, a in zip(shifts, axes, strict=True):
        a = a % len(shape)
        x = _roll1(c, x, int(c.b.static(s, "the shift")), int(c.b.static(shape[a], "the rolled axis")), a)
    return [x]


def _roll1(c: Ctx, x: str, s: int, n: int, axis: int) -> str:
    if n == 0:
        return x
    s %= n
    if s == 0:
        return x
    tail = c.op("Slice", [x, c.b.i64([n - s]), c.b.i64([n]), c.b.i64([axis])])
    head = c.op("Slice", [x, c.b.i64([0]), c.b.i64([n - s]), c.b.i64([axis])])
    return c.op("Concat", [tail, head], axis=axis)


@rule("concat", "Concat")
def _concat(c: Ctx) -> list[str]:
    dt = c.odt()
    ax = c.params.get("axis", 0)
    ins = [c.x(i, dt) for i in range(len(c.raw))]
    if ax is None:
        ins = [c.op("Reshape", [x, c.b.i64([-1])]) for x in ins]
        ax = 0
    return [c.op("Concat", ins, axis=int(ax))]


@rule(("tril", "triu"), "Trilu")
def _trilu(c: Ctx) -> list[str]:
    k = int(c.params.get("k", 0))
    return [c.op("Trilu", [c.x(0), c.b.const(k, "int64")], upper=1 if c.name == "triu" else 0)]
