"""Softmax cross-entropy of (N, C) logits against class indices, as one primitive.

``cross_entropy`` in its most common form (2-d logits, integer targets, no class weights,
no label smoothing) is a single recorded operation instead of the ~20 of
``log_softmax`` + ``nll_loss``: its forward runs on backend arrays and its first-order
backward is one array-level rule (``avjp``). The Tensor-level rules (vjp, jvp, batch) are
written with public ops, so higher-order derivatives and vmap work as for any primitive.
The values equal those of the composite: ``lse_i - x[i, t_i]``, with the same max shift.
"""

from __future__ import annotations

from typing import Any

import functorch_lite as fl

from ... import _backend
from ..._core.engine import Primitive, bind
from ..._core.tensor import Tensor, backend_for, wrap
from ..._ops._rules import move_bdim_to_front

__all__ = ["softmax_cross_entropy_rows", "fast_cross_entropy"]


class _Fast:
    """A namespace's functions for the array-level rules, with numpy's ufunc reducers where
    available (numpy's Python-level reduction wrappers cost microseconds per call)."""

    __slots__ = ("xp", "sum", "max", "classes", "bool_math")

    def __init__(self, xp: Any) -> None:
        if isinstance(xp, _backend._NumpyFast):  # backward's stand-in namespace: its namespace's reducers
            xp = xp._xp
        fx = _backend.FAST_NAMESPACES.get(xp, xp)
        red = _backend.fast_reducers(xp) or {}
        self.xp = fx
        self.sum = red.get("sum", fx.sum)
        self.max = red.get("max", fx.max)
        self.classes: dict[tuple[int, Any, Any], Any] = {}  # (C, dtype, device) -> arange(C), never written to
        self.bool_math = bool(getattr(fx, "native_bool_math", False))  # float - bool without a cast

    def arange(self, c: int, like: Any) -> Any:
        """``arange(c)`` in the dtype and on the device of the array ``like``."""
        dev = getattr(like, "device", None)
        key = (c, like.dtype, dev)
        a = self.classes.get(key)
        if a is None:
            if len(self.classes) > 64:
                self.classes.clear()
            kw = {} if dev is None else {"device": dev}
            a = self.classes[key] = self.xp.arange(c, dtype=like.dtype, **kw)
        return a


_FAST: dict[Any, _Fast] = {}


def _fast(xp: Any) -> _Fast:
    f = _FAST.get(xp)
    if f is None:
        f = _FAST[xp] = _Fast(xp)
    return f


def _parts(f: _Fast, x: Any, t: Any, ignore_index: int | None, wrap: bool) -> tuple[Any, Any, Any]:
    """(max shift (N, 1), one-hot rows of the targets (N, C) as bool, valid rows (N,) or None)."""
    xp = f.xp
    m = f.max(x, axis=1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    n, c = x.shape
    valid = None
    if ignore_index is not None:
        valid = t != ignore_index
    if wrap:  # negative indices count from the end, as in take_along_axis
        t = xp.where(t < 0, t + c, t)
    hit = xp.reshape(t, (n, 1)) == f.arange(c, t)
    if valid is not None:
        hit = xp.logical_and(hit, xp.reshape(valid, (n, 1)))
    return m, hit, valid


# The forward's intermediates for the backward: (x, t, ignore_index, wrap, hit, valid, e, s) of
# the last call on logits of at most _KEEP_MAX elements, or None. The array-level rule takes
# them when its residuals are those very arrays (identity), which saves it the max, the
# one-hot rows and the exponentials (half the rule's work on small batches); otherwise it
# recomputes them. One entry, so at most one small batch's worth of arrays is held.
_LAST: list[Any] = [None]
_KEEP_MAX = 1 << 16


def _impl(xp: Any, x: Any, t: Any, *, ignore_index: int | None, wrap: bool = True) -> Any:
    f = _fast(xp)
    fx = f.xp
    m, hit, valid = _parts(f, x, t, ignore_index, wrap)
    e = fx.exp(x - m)
    s = f.sum(e, axis=1)
    lse = fx.log(s) + m[:, 0]
    # x[i, t_i] exactly: a row sum of one value and zeros
    xt = f.sum(fx.where(hit, x, 0.0), axis=1)
    out = lse - xt
    n, c = x.shape
    if n * c <= _KEEP_MAX:  # (False for unknown sizes: nan)
        _LAST[0] = (x, t, ignore_index, wrap, hit, valid, e, s)
    # ignored rows: times 0, as the composite's mask (so an infinite logit there still gives nan)
    return out if valid is None else out * fx.astype(valid, out.dtype)


ce_p = Primitive("nn.cross_entropy", _impl)
ce_p.residuals = (True, False)  # the rules read the logits and targets, never the losses


def _softmax(x: Tensor) -> Tensor:
    m = fl.stop_gradient(fl.max(x, axis=1, keepdims=True))
    m = fl.where(fl.isfinite(m), m, 0.0)
    e = fl.exp(x - m)
    return e / fl.sum(e, axis=1, keepdims=True)


def _onehot(t: Tensor, c: int, ignore_index: int | None, dtype: Any) -> tuple[Tensor | None, Tensor]:
    """(valid rows (N,) or None, one-hot rows (N, C) of the targets in ``dtype``; zero where ignored)."""
    valid = None if ignore_index is None else t != ignore_index
    classes = wrap(t._xp.arange(c, dtype=backend_for(t._xp).native(t.dtype)), t._xp)
    hit = fl.expand_dims(fl.where(t < 0, t + c, t), axis=1) == classes  # (on t's backend)
    if valid is not None:
        hit = fl.logical_and(hit, fl.expand_dims(valid, axis=1))
    return valid, fl.astype(hit, dtype)


def _vjp(g: Tensor, out: Any, x: Tensor, t: Tensor, *, ignore_index: int | None, wrap: bool = True) -> tuple[Any, None]:
    def dx() -> Tensor:
        valid, oh = _onehot(t, x.shape[1], ignore_index, x.dtype)
        gv = g if valid is None else g * fl.astype(valid, g.dtype)
        return (_softmax(x) - oh) * fl.expand_dims(gv, axis=1)

    return dx, None


def _avjp(xp: Any, g: Any, out: Any, ps: Any, par: Any, params: Any) -> Any:
    if par[0] is None:
        return (None, None)
    x, t = ps[0]._a, ps[1]._a
    f = _fast(xp)
    fx = f.xp
    ii, wr = params["ignore_index"], params.get("wrap", True)
    kept = _LAST[0]
    if kept is not None and kept[0] is x and kept[1] is t and kept[2] == ii and kept[3] == wr:
        _LAST[0] = None
        _, _, _, _, hit, valid, e, s = kept
        sm = e / fx.reshape(s, (x.shape[0], 1))  # (the same row sums as a keepdims sum)
    else:
        m, hit, valid = _parts(f, x, t, ii, wr)
        e = fx.exp(x - m)
        sm = e / f.sum(e, axis=1, keepdims=True)
    if valid is not None:
        g = g * fx.astype(valid, g.dtype)
    d = sm - hit if f.bool_math else sm - fx.astype(hit, x.dtype)
    return (d * fx.reshape(g, (x.shape[0], 1)), None)


def _jvp(tangents: Any, out: Any, x: Tensor, t: Tensor, *, ignore_index: int | None, wrap: bool = True) -> Any:
    tx = tangents[0]
    if tx is None:
        return None
    valid, oh = _onehot(t, x.shape[1], ignore_index, x.dtype)
    d = fl.sum((_softmax(x) - oh) * tx, axis=1)
    return d if valid is None else d * fl.astype(valid, d.dtype)


def _batch(n: int, vals: Any, dims: Any, *, ignore_index: int | None, wrap: bool = True) -> tuple[Any, int]:
    x = move_bdim_to_front(vals[0], dims[0], n)
    t = move_bdim_to_front(vals[1], dims[1], n)
    rows, c = x.shape[1], x.shape[2]
    params = {"ignore_index": ignore_index, "wrap": wrap}
    out = bind(ce_p, (fl.reshape(x, (n * rows, c)), fl.reshape(t, (n * rows,))), params)
    return fl.reshape(out, (n, rows)), 0


ce_p.vjp = _vjp
ce_p.avjp = _avjp
ce_p.jvp = _jvp
ce_p.batch = _batch


def softmax_cross_entropy_rows(x: Tensor, t: Tensor, ignore_index: int | None = None) -> Tensor:
    """Per-row ``logsumexp(x[i]) - x[i, t[i]]`` for (N, C) logits and (N,) class indices; 0 where ignored.

    The targets must lie in ``[-C, C)`` (negative ones count from the end) or equal
    ``ignore_index`` (None: no row is ignored); `fast_cross_entropy` checks that.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._cross_entropy import softmax_cross_entropy_rows
        >>> softmax_cross_entropy_rows(fl.asarray([[0.0, 0.0], [1e4, -1e4]]), fl.asarray([1, 0])).tolist()
        [0.6931471824645996, 0.0]
    """
    return bind(ce_p, (x, t), {"ignore_index": ignore_index})


def fast_cross_entropy(x: Tensor, t: Tensor, ignore_index: int, reduction: str) -> Tensor | None:
    """``cross_entropy(x, t, ignore_index=..., reduction=...)`` through the fused primitive,
    or None when the case is not the common one (the caller then runs the composite).

    The common case: (N, C) floating logits with C >= 1, concrete (N,) signed integer
    targets within ``[-C, C)`` or equal to ``ignore_index`` (an out-of-range target takes the
    general path, which reports it).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._cross_entropy import fast_cross_entropy
        >>> fast_cross_entropy(fl.asarray([[1e4, -1e4]]), fl.asarray([0]), -100, "mean").item()
        0.0
    """
    if x.ndim != 2 or t.ndim != 1 or t._t is not None or type(ignore_index) is not int:
        return None
    n, c = x.shape
    if c == 0 or t.shape[0] != n or x.dtype.kind != "f" or t.dtype.kind != "i":
        return None
    ii: int | None = None
    if n:
        xp, ta = t._xp, t._a
        lo, hi = _backend.index_range(xp, ta)
        if lo <= ignore_index <= hi:
            ii = ignore_index
            if lo < -c or hi >= c:  # out of range, unless those are the ignored rows
                lo, hi = _backend.index_range(xp, xp.where(ta == ii, xp.zeros_like(ta), ta))
        if lo < -c or hi >= c:
            return None  # an index out of range: the general path reports it
    rows = bind(ce_p, (x, t), {"ignore_index": ii, "wrap": n > 0 and lo < 0})
    if reduction == "none":
        return rows
    total = fl.sum(rows)
    if reduction == "sum":
        return total
    if ii is None and 0 < n <= 2048:
        return total / float(n)  # the count of valid rows (exact in every floating dtype up to 2048)
    return total / fl.sum(fl.astype(t != ignore_index, x.dtype))
