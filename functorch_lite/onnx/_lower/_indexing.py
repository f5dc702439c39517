"""ONNX rules of indexing: getitem, setitem, index_add and the window (unfold / fold) primitives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._errors import ExportError
from .._graph import INT64_MAX, INT64_MIN
from .._symbolic import Dim
from . import Ctx, rule


# ---------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------
def _expand_key(spec: Sequence[Any], ndim: int) -> list[Any]:
    from ..._ops.indexing import _Arr

    used = sum(
        (s.ndim if isinstance(s, _Arr) and s.is_bool else 1) for s in spec if s is not None and s is not Ellipsis
    )
    out: list[Any] = []
    seen = False
    for s in spec:
        if s is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
            seen = True
        else:
            out.append(s)
    if not seen:
        out.extend([slice(None)] * (ndim - used))
    return out


def _select(c: Ctx, x: str, ndim: int, spec: Sequence[Any], arrays: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """``x[key]`` for the key ``spec`` (arrays[i] = (name of array i, its rank)); returns (name, rank)."""
    from ..._ops.indexing import _Arr

    key = _expand_key(spec, ndim)
    # new axes first: each None becomes a full slice over an inserted size-1 axis
    new_axes = [i for i, k in enumerate(key) if k is None]
    if new_axes:
        x = c.op("Unsqueeze", [x, c.b.i64(new_axes)])
        key = [slice(None) if k is None else k for k in key]
    rank = len(key)
    has_arr = any(isinstance(k, _Arr) for k in key)
    # basic slices
    st, en, ax, sp = [], [], [], []
    for i, k in enumerate(key):
        if isinstance(k, slice) and k != slice(None):
            step = 1 if k.step is None else k.step
            if isinstance(step, Dim):
                step = c.b.static(step, "a slice step")
            start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
            stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
            st.append(start)
            en.append(stop)
            ax.append(i)
            sp.append(step)
    ints = [i for i, k in enumerate(key) if isinstance(k, int) and not isinstance(k, bool)]
    if not has_arr:
        for i in ints:
            k = key[i]
            st.append(k)
            en.append(k + 1 if k != -1 else INT64_MAX)
            ax.append(i)
            sp.append(1)
    if ax:
        x = c.op(
            "Slice",
            [
                x,
                c.b.shape_vec(st, "a slice start"),
                c.b.shape_vec(en, "a slice stop"),
                c.b.i64(ax),
                c.b.shape_vec(sp, "a slice step"),
            ],
        )
    if not has_arr:
        if ints:
            x = c.op("Squeeze", [x, c.b.i64(ints)])
        return x, rank - len(ints)
    # advanced indexing: the integer arrays and ints broadcast together (NumPy's rule)
    adv = [i for i, k in enumerate(key) if isinstance(k, _Arr) or i in ints]
    for i in adv:
        if isinstance(key[i], _Arr) and key[i].is_bool:
            raise ExportError(
                f"onnx.export: {c.name}: a boolean-mask index has a data-dependent shape; index with integer "
                "arrays (fl.nonzero of a fixed mask outside the function) or select with fl.where."
            )
    rest = [i for i in range(rank) if i not in adv]
    xt = c.op("Transpose", [x], perm=adv + rest) if adv + rest != list(range(rank)) else x
    idx_names = []
    nb = 0
    for i in adv:
        k = key[i]
        if isinstance(k, _Arr):
            name, r = arrays[k.i]
            idx_names.append(c.op("Cast", [name], to=c.b.elem("int64")))
            nb = max(nb, r)
        else:
            idx_names.append(c.b.const(int(k), "int64"))
    zero = None
    for n in idx_names:  # a zero of the broadcast shape
        z = c.op("Mul", [n, c.b.const(0, "int64")])
        zero = z if zero is None else c.op("Add", [zero, z])
    assert zero is not None
    stacked = c.op("Concat", [c.op("Unsqueeze", [c.op("Add", [n, zero]), c.b.i64([-1])]) for n in idx_names], axis=-1)
    out = c.op("GatherND", [xt, stacked])
    out_rank = nb + len(rest)
    contiguous = adv == list(range(adv[0], adv[-1] + 1))
    p = adv[0]
    if contiguous and p > 0:  # the broadcast dimensions stay where the indexed axes were
        perm = list(range(nb, nb + p)) + list(range(nb)) + list(range(nb + p, out_rank))
        out = c.op("Transpose", [out], perm=perm)
    return out, out_rank


def _arrays(c: Ctx, first: int) -> list[tuple[str, int]]:
    return [(c.x(i), c.rank(i)) for i in range(first, len(c.raw))]


@rule("getitem", "Slice, Squeeze, Unsqueeze, Transpose, GatherND")
def _getitem(c: Ctx) -> list[str]:
    out, _ = _select(c, c.x(0), c.rank(0), c.params["spec"], _arrays(c, 1))
    return [out]


def _scatter(c: Ctx, x: str, v: str, v_rank: int, spec: Sequence[Any], arrays: Any, add: bool) -> str:
    """``x[key] = v`` (or ``+= v``): the key selects flat positions from an arange, then ScatterND."""
    shape = c.op("Shape", [x])
    n = c.op("ReduceProd", [shape], keepdims=0)
    pos = c.op("Reshape", [c.op("Range", [c.b.const(0, "int64"), n, c.b.const(1, "int64")]), shape])
    p, prank = _select(c, pos, len(c.outs[0].shape), spec, arrays)
    if v_rank > prank:  # leading size-1 axes of the value, as NumPy drops them
        v = c.op("Reshape", [v, c.op("Shape", [p])])
    upd = c.op("Expand", [v, c.op("Shape", [p])])
    flat = c.op("Reshape", [x, c.b.i64([-1])])
    out = c.op("ScatterND", [flat, c.op("Unsqueeze", [p, c.b.i64([-1])]), upd], reduction="add" if add else None)
    return c.op("Reshape", [out, shape])


def _basic_pads(c: Ctx, spec: Sequence[Any]) -> tuple[list[int], list[int], list[Any]] | None:
    """For a key of ints and unit-step slices: (pads, int axes, region shape), else None."""
    from ..._ops.indexing import _Arr

    shape = c.shape(0)
    if any(isinstance(k, _Arr) or k is None for k in spec):
        return None
    key = _expand_key(spec, len(shape))
    r = len(shape)
    before, after, region, ints = [0] * r, [0] * r, [], []
    for i, (k, n) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, slice) and k == slice(None):
            region.append(n)
            continue
        if isinstance(n, Dim) or any(isinstance(v, Dim) for v in (getattr(k, "start", k), getattr(k, "stop", k))):
            return None
        if isinstance(k, int):
            j = k % n
            before[i], after[i] = j, n - j - 1
            region.append(1)
            ints.append(i)
        elif isinstance(k, slice) and k.step in (None, 1):
            lo, hi, _ = k.indices(n)
            hi = max(hi, lo)
            before[i], after[i] = lo, n - hi
            region.append(hi - lo)
        else:
            return None
    return before + after, ints, region


@rule("setitem", "Pad, Where (unit-step keys); Range, Slice/GatherND, Expand, ScatterND (others)")
def _setitem(c: Ctx) -> list[str]:
    dt = c.odt()
    x, v = c.x(0, dt), c.x(1, dt)
    basic = _basic_pads(c, c.params["spec"])
    if basic is None:
        return [_scatter(c, x, v, c.rank(1), c.params["spec"], _arrays(c, 2), False)]
    pads, ints, region = basic
    keep = [d for i, d in enumerate(region) if i not in ints]
    val = c.op("Expand", [v, c.b.shape_vec(keep, "the updated region")])
    if ints:
        val = c.op("Unsqueeze", [val, c.b.i64(ints)])
    fill = c.low.uniform_fill(c.raw[0])
    if fill is not None:  # into a constant of one value (a padding buffer): just a Pad
        return [c.op("Pad", [val, c.b.i64(pads), c.b.const(fill, dt)])]
    padded = c.op("Pad", [val, c.b.i64(pads), c.b.const(0, dt)])
    ones = c.op("Expand", [c.b.const(True, "bool"), c.b.shape_vec(region, "the updated region")])
    mask = c.op("Pad", [ones, c.b.i64(pads), c.b.const(False, "bool")])
    return [c.op("Where", [mask, padded, x])]


@rule("index_add", "Range, Slice/GatherND (positions), Expand, ScatterND(add)")
def _index_add(c: Ctx) -> list[str]:
    dt = c.odt()
    return [_scatter(c, c.x(0, dt), c.x(1, dt), c.rank(1), c.params["spec"], _arrays(c, 2), True)]


def _window_keys(c: Ctx) -> list[tuple[Any, ...]]:
    from ...nn.functional._conv import _window_keys as wk

    p = {k: c.b.static(c.params[k], f"the window parameter {k}") for k in ("ks", "ss", "ds", "outs")}
    return wk(p["ks"], p["ss"], p["ds"], p["outs"], int(c.params["trail"]))


@rule("nn_unfold", "Slice, Unsqueeze, Concat")
def _unfold(c: Ctx) -> list[str]:
    x, r = c.x(0), c.rank(0)
    axis = int(c.params["axis"])
    parts = [c.op("Unsqueeze", [_select(c, x, r, k, [])[0], c.b.i64([axis])]) for k in _window_keys(c)]
    return [c.op("Concat", parts, axis=axis) if len(parts) > 1 else parts[0]]


@rule("nn_fold", "ConstantOfShape, Slice, ScatterND(add)")
def _fold(c: Ctx) -> list[str]:
    dt = c.odt()
    x, r = c.x(0, dt), c.rank(0)
    axis, trail = int(c.params["axis"]), int(c.params["trail"])
    sp = c.b.static(tuple(c.params["sp"]), "the folded spatial size")
    nd = len(sp)
    end = r - trail
    shape = c.op("Shape", [x])
    pieces = []
    if axis > 0:
        pieces.append(c.op("Slice", [shape, c.b.i64([0]), c.b.i64([axis])]))
    if end - nd > axis + 1:
        pieces.append(c.op("Slice", [shape, c.b.i64([axis + 1]), c.b.i64([end - nd])]))
    pieces.append(c.b.i64(list(sp)))
    if trail:
        pieces.append(c.op("Slice", [shape, c.b.i64([end]), c.b.i64([r])]))
    oshape = c.op("Concat", pieces, axis=0) if len(pieces) > 1 else pieces[0]
    out = c.op("ConstantOfShape", [oshape], value=c.b.h.make_tensor("value", c.b.elem(dt), [1], [0]))
    for k, key in enumerate(_window_keys(c)):
        piece, prank = _select(c, x, r, (slice(None),) * axis + (k, Ellipsis), [])
        out = _scatter(c, out, piece, prank, key, [], True)
    return [out]
