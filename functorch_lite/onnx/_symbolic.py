"""Symbolic dimensions for ``dynamic_axes``: one program, traced at several sizes, merged.

A program has fixed shapes, so a dynamic axis cannot be traced as such. Instead the export
traces the function again with each dynamic axis resized to a few sample sizes (from 11
to 70, so that no size coincides with a fixed dimension and no trace takes a size-1 special
case), checks that every trace has the same equations, and replaces each integer that
differs between the traces (a ``reshape`` target, a ``mean``'s divisor, a scan's length, a
captured buffer's shape) by a [`Dim`][functorch_lite.onnx._symbolic.Dim]: a polynomial of
degree at most two with integer coefficients in the dynamic sizes, fitted exactly on the samples and checked on one
more. The lowering computes a ``Dim`` at run time from the inputs' shapes. An integer that
is no such polynomial (``n // 2``, a branch on a shape, a pooling output ``(n - k) // s + 1``) stays unfitted
and raises [`ExportError`][functorch_lite.ExportError] only where a lowering needs it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .._errors import ExportError
from ..transforms._program import Program, Var

__all__ = ["Dim", "Merged", "sample_points", "merge_programs"]


def _monomials(k: int) -> list[tuple[int, ...]]:
    """Exponent tuples of every monomial of degree <= 2 in k symbols (constant first)."""
    out: list[tuple[int, ...]] = [(0,) * k]
    for i in range(k):
        out.append(tuple(1 if j == i else 0 for j in range(k)))
    for i, j in itertools.combinations_with_replacement(range(k), 2):
        e = [0] * k
        e[i] += 1
        e[j] += 1
        out.append(tuple(e))
    return out


def _eval_mono(e: tuple[int, ...], pt: Sequence[int]) -> int:
    return math.prod(v**p for v, p in zip(pt, e, strict=True))


def _solve(a: list[list[Fraction]], b: list[Fraction]) -> list[Fraction] | None:
    """Exact Gaussian elimination; None when singular."""
    n = len(a)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        piv = next((r for r in range(c, n) if m[r][c] != 0), None)
        if piv is None:
            return None
        m[c], m[piv] = m[piv], m[c]
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def sample_points(symbols: Sequence[str], avoid: set[int]) -> list[tuple[int, ...]]:
    """Sizes for each symbol, one tuple per trace: enough to fit degree-2 polynomials, plus two checks.

    Sizes come from 11..70 (never 1, never a fixed dimension of the inputs), and each symbol's
    sizes cover both parities and every residue mod 3, so that no floor division (``n // 2``)
    happens to agree with a polynomial on the samples.
    """
    k = len(symbols)
    if k == 0:
        return [()]
    pool = [p for p in range(11, 71) if p not in avoid]
    monos = _monomials(k)
    rng = random.Random(1234)
    for _ in range(1000):
        pts = [tuple(rng.choice(pool) for _ in range(k)) for _ in range(len(monos) + 2)]
        if len(set(pts)) < len(pts):
            continue
        if any(len({p[s] % 2 for p in pts}) < 2 or len({p[s] % 3 for p in pts}) < 3 for s in range(k)):
            continue
        a = [[Fraction(_eval_mono(e, p)) for e in monos] for p in pts[: len(monos)]]
        if _solve(a, [Fraction(0)] * len(monos)) is not None:
            return pts
    raise ExportError(f"onnx.export: could not choose sample sizes for the dynamic axes {list(symbols)}.")


class Dim:
    """An integer that depends on the dynamic sizes: ``value`` in the first trace, ``poly`` its formula.

    ``poly`` maps exponent tuples to exact coefficients; it is None when no polynomial of
    degree <= 2 fits the samples (then only ``value`` is known, and a lowering that needs the
    formula raises).
    """

    __slots__ = ("value", "poly", "symbols", "samples", "is_float")

    def __init__(self, values: Sequence[Any], points: Sequence[tuple[int, ...]], symbols: Sequence[str]) -> None:
        self.value = values[0]
        self.symbols = tuple(symbols)
        self.samples = list(values)
        self.is_float = isinstance(values[0], float)
        self.poly = _fit(values, points)

    def single(self) -> str | None:
        """The symbol's name when this is exactly one dynamic size, else None."""
        if self.poly is None:
            return None
        items = [(e, c) for e, c in self.poly.items() if c != 0]
        if len(items) == 1 and items[0][1] == 1 and sum(items[0][0]) == 1:
            return self.symbols[items[0][0].index(1)]
        return None

    def __repr__(self) -> str:
        if self.poly is None:
            return f"Dim(?={self.value})"
        terms = []
        for e, c in self.poly.items():
            if c == 0:
                continue
            mono = "*".join(f"{s}^{p}" if p > 1 else s for s, p in zip(self.symbols, e, strict=True) if p)
            terms.append(f"{c}*{mono}" if mono else str(c))
        return "Dim(" + " + ".join(terms) + ")"


def _fit(values: Sequence[Any], points: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], Fraction] | None:
    k = len(points[0])
    monos = _monomials(k)
    try:
        ys = [Fraction(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        return None
    if any(y.denominator != 1 for y in ys):  # sizes and counts are integers; 0.2 = 1/n is not one
        return None
    n = len(monos)
    if len(points) < n:
        return None
    a = [[Fraction(_eval_mono(e, p)) for e in monos] for p in points[:n]]
    coef = _solve(a, ys[:n])
    if coef is None or any(c.denominator != 1 for c in coef):  # sizes are integer polynomials of sizes
        return None
    for p, y in zip(points[n:], ys[n:], strict=True):
        if sum(c * _eval_mono(e, p) for e, c in zip(monos, coef, strict=True)) != y:
            return None
    return {e: c for e, c in zip(monos, coef, strict=True) if c != 0}


# ---------------------------------------------------------------------------------------
# Merging the traces
# ---------------------------------------------------------------------------------------
class Merged:
    """What differs between the traces, keyed by the first trace's objects.

    ``params[id(eqn)]`` and ``inputs[id(eqn)]`` are the eqn's params and inputs with varying
    integers replaced by ``Dim``s; ``shape[var.id]`` a variable's shape the same way;
    ``const[var.id]`` is the captured value's fill value when its shape varies (it must then
    be uniform).
    """

    def __init__(self, points: Sequence[tuple[int, ...]], symbols: Sequence[str]) -> None:
        self.points = list(points)
        self.symbols = list(symbols)
        self.params: dict[int, dict[str, Any]] = {}
        self.inputs: dict[int, list[Any]] = {}
        self.shape: dict[int, tuple[Any, ...]] = {}
        self.const_fill: dict[int, Any] = {}

    def shape_of(self, v: Var) -> tuple[Any, ...]:
        return self.shape.get(v.id, v.shape)


def _mismatch(where: str, a: Any, b: Any) -> ExportError:
    return ExportError(
        f"onnx.export: the traces at different sizes of the dynamic axes differ at {where} ({a!r} vs "
        f"{b!r}): the function's structure depends on a dynamic size (Python branching on a shape, or a "
        "size-specific path). Export with fixed sizes (leave that axis out of dynamic_axes), or remove "
        "the dependence."
    )


def merge_values(vals: Sequence[Any], m: Merged, where: str) -> Any:
    """One value for the list of values the traces gave (Dims where integers differ)."""
    v0 = vals[0]
    if isinstance(v0, Program):
        merge_programs(list(vals), m)
        return v0
    if all(_same(v, v0) for v in vals[1:]):
        return v0
    if isinstance(v0, bool) or not all(type(v) is type(v0) for v in vals):
        raise _mismatch(where, v0, vals[1])
    if isinstance(v0, (int, float)):
        return Dim(vals, m.points, m.symbols)
    if isinstance(v0, (tuple, list)):
        if any(len(v) != len(v0) for v in vals):
            raise _mismatch(where, v0, vals[1])
        out = [merge_values([v[i] for v in vals], m, where) for i in range(len(v0))]
        return tuple(out) if isinstance(v0, tuple) else out
    if isinstance(v0, slice):
        return slice(
            merge_values([v.start for v in vals], m, where),
            merge_values([v.stop for v in vals], m, where),
            merge_values([v.step for v in vals], m, where),
        )
    raise _mismatch(where, v0, vals[1])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Program) or isinstance(b, Program):
        return a is b
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other objects without a plain equality
        return a is b


def merge_programs(progs: list[Program], m: Merged) -> None:
    """Check that the traces ``progs`` have one structure; record what differs in ``m``."""
    p0 = progs[0]
    maps: list[dict[int, int]] = [{} for _ in progs]  # var id in trace k -> var id in trace 0

    def link(vs0: Sequence[Any], vsk: list[Sequence[Any]], where: str) -> None:
        for i, v0 in enumerate(vs0):
            others = [vs[i] for vs in vsk]
            if isinstance(v0, Var):
                if not all(isinstance(o, Var) for o in others):
                    raise _mismatch(where, v0, others[0])
                for k, o in enumerate(others, start=1):
                    maps[k][o.id] = v0.id
                shapes = [v0.shape] + [o.shape for o in others]
                if any(len(s) != len(v0.shape) for s in shapes) or any(o.dtype != v0.dtype for o in others):
                    raise _mismatch(where, v0.aval(), others[0].aval())
                sh = merge_values(shapes, m, where) if len(progs) > 1 else v0.shape
                if sh != v0.shape or any(isinstance(d, Dim) for d in sh):
                    m.shape[v0.id] = tuple(sh)

    for p in progs[1:]:
        if len(p.eqns) != len(p0.eqns) or len(p.consts) != len(p0.consts) or len(p.outs) != len(p0.outs):
            raise _mismatch("the program's length", len(p0.eqns), len(p.eqns))
    link(
        [v for v in p0.in_vars if isinstance(v, Var)],
        [[v for v in p.in_vars if isinstance(v, Var)] for p in progs[1:]],
        "the inputs",
    )
    link([v for v, _ in p0.consts], [[v for v, _ in p.consts] for p in progs[1:]], "the captured constants")
    for ci, (v0, c0) in enumerate(p0.consts):
        if v0.id in m.shape:  # its shape varies: a fill value then
            m.const_fill[v0.id] = _uniform(c0, f"captured constant {ci} of shape {v0.shape}")
            for p in progs[1:]:
                if _uniform(p.consts[ci][1], "") != m.const_fill[v0.id]:
                    raise _mismatch(f"captured constant {ci}", m.const_fill[v0.id], "another fill value")
        elif len(progs) > 1:
            from .._backend import tensor_to_host

            h0 = tensor_to_host(c0)
            for p in progs[1:]:
                hk = tensor_to_host(p.consts[ci][1])
                if hk.shape != h0.shape or not (hk == h0).all():
                    raise ExportError(
                        f"onnx.export: captured constant {ci} ({v0.aval()}) has values that depend on a dynamic "
                        "size (an arange or a mask over a dynamic axis, built outside any traced op). Export "
                        "that axis with a fixed size, or compute the value from the input with traced ops."
                    )
    for j, e0 in enumerate(p0.eqns):
        es = [p.eqns[j] for p in progs]
        where = f"equation {j} ({e0.prim.name})"
        for e in es[1:]:
            if e.prim is not e0.prim or len(e.inputs) != len(e0.inputs) or set(e.params) != set(e0.params):
                raise _mismatch(where, e0.prim.name, e.prim.name)
        ins: list[Any] = []
        for i, x0 in enumerate(e0.inputs):
            xs = [e.inputs[i] for e in es]
            if isinstance(x0, Var):
                for k, x in enumerate(xs[1:], start=1):
                    if not isinstance(x, Var) or maps[k].get(x.id) != x0.id:
                        raise _mismatch(where + f" input {i}", x0, x)
                ins.append(x0)
            else:
                if any(isinstance(x, Var) for x in xs):
                    raise _mismatch(where + f" input {i}", x0, xs[1])
                ins.append(merge_values(xs, m, where))
        m.inputs[id(e0)] = ins
        m.params[id(e0)] = {k: merge_values([e.params[k] for e in es], m, where + f" param {k}") for k in e0.params}
        link(e0.outputs, [e.outputs for e in es[1:]], where)
    for i, o0 in enumerate(p0.outs):
        os_ = [p.outs[i] for p in progs[1:]]
        if isinstance(o0, Var):
            for k, o in enumerate(os_, start=1):
                if not isinstance(o, Var) or maps[k].get(o.id) != o0.id:
                    raise _mismatch(f"output {i}", o0, o)
        elif not all(_same(o, o0) for o in os_):
            raise _mismatch(f"output {i}", o0, os_[0])


def _uniform(t: Any, what: str) -> Any:
    from .._backend import tensor_to_host

    h = tensor_to_host(t)
    flat = h.reshape(-1)
    if flat.size == 0:
        return 0
    v = flat[0]
    if not (flat == v).all():
        raise ExportError(
            f"onnx.export: {what} has a shape that depends on a dynamic size and values that are not all "
            "equal, so it cannot be rebuilt at run time. Export that axis with a fixed size, or build the "
            "value from the input with traced ops."
        )
    return v.item()
