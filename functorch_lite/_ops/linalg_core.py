"""Linear algebra of the main namespace: matmul, tensordot, vecdot (and Tensor ``@``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.tensor import Tensor
from .._errors import ShapeError
from ._base import Primitive, as_tensor, bind

__all__ = ["matmul", "tensordot", "vecdot"]

_new = object.__new__


def _mm_impl(xp: Any, x: Any, y: Any) -> Any:
    # Outer products (k = 1, e.g. per-example weight gradients): a broadcast multiply is
    # exact (one product per entry) and about 2x faster than a stacked matmul in numpy.
    if x.shape[-1] == 1 and x.ndim >= 2 and y.ndim >= 2:
        return x * y
    return x @ y


matmul_p = Primitive("matmul", _mm_impl)


def _mT(x: Any) -> Any:
    matrix_transpose = _manipulation.matrix_transpose

    return matrix_transpose(x)


def _matmul_jvp(ts: Any, out: Any, x: Any, y: Any) -> Any:
    tx, ty = ts
    r = None
    if tx is not None:
        r = bind(matmul_p, (tx, y), {})
    if ty is not None:
        u = bind(matmul_p, (x, ty), {})
        r = u if r is None else r + u
    return r


matmul_p.jvp = _matmul_jvp


def _matmul_vjp(g: Any, out: Any, x: Any, y: Any) -> Any:
    expand_dims = _manipulation.expand_dims
    squeeze = _manipulation.squeeze
    xn, yn = x.ndim, y.ndim
    if yn == 1:  # x (..., m, k) @ y (k,) -> (..., m)
        return (
            lambda: expand_dims(g, axis=-1) * y,
            lambda: (
                bind(matmul_p, (g, x), {})
                if xn == 2
                else squeeze(bind(matmul_p, (expand_dims(g, axis=-2), x), {}), axis=-2)
            ),
        )
    if xn == 1:  # x (k,) @ y (..., k, n) -> (..., n)
        return (
            lambda: (
                bind(matmul_p, (y, g), {})
                if yn == 2
                else squeeze(bind(matmul_p, (y, expand_dims(g, axis=-1)), {}), axis=-1)
            ),
            lambda: expand_dims(x, axis=-1) * expand_dims(g, axis=-2),
        )
    return (
        lambda: bind(matmul_p, (g, _mT(y)), {}),
        lambda: bind(matmul_p, (_mT(x), g), {}),
    )


matmul_p.vjp = _matmul_vjp


def _amT(a: Any) -> Any:
    """``a.mT``, or a swap of the last two axes where the array lacks ``mT`` (dask)."""
    t = getattr(a, "mT", None)
    if t is None:
        axes = list(range(a.ndim))
        axes[-2], axes[-1] = axes[-1], axes[-2]
        return a.transpose(axes)
    return t


def _matmul_avjp(xp: Any, g: Any, o: Any, ps: Any, par: Any, p: Any) -> Any:
    xa, ya = ps[0]._a, ps[1]._a
    if xa.ndim < 2 or ya.ndim < 2:
        return None  # 1-d operands: the Tensor-level rule
    return (
        None if par[0] is None else _mm_impl(xp, g, _amT(ya)),
        None if par[1] is None else _mm_impl(xp, _amT(xa), g),
    )


matmul_p.avjp = _matmul_avjp


def _move(v: Any, d: int) -> Any:
    return v if d == 0 else _manipulation.moveaxis(v, d, 0)


def _matmul_batch(n: int, vals: Any, dims: Any) -> Any:
    elementwise_batch = _elementwise.elementwise_batch
    reshape = _manipulation.reshape
    squeeze = _manipulation.squeeze
    expand_dims = _manipulation.expand_dims

    (x, y), (dx, dy) = vals, dims
    sq: Any = None
    if dx is not None and x.ndim == 2:  # a batch of vectors on the left
        x = expand_dims(_move(x, dx), axis=1)
        dx, sq = 0, -2
    if dy is not None and y.ndim == 2:  # a batch of vectors on the right
        y = expand_dims(_move(y, dy), axis=-1)
        dy, sq = 0, (-1 if sq is None else (-2, -1))
    x, y = elementwise_batch(n, (x, y), (dx, dy))[0]
    if dy is None and y.ndim == 2 and x.ndim >= 3:
        # Batched x times one matrix: fold the batch into the rows (one gemm, not n gemv).
        s = x.shape
        out = bind(matmul_p, (reshape(x, (-1, s[-1])), y), {})
        out = reshape(out, s[:-1] + (y.shape[-1],))
    else:
        out = bind(matmul_p, (x, y), {})
    if sq is not None:
        out = squeeze(out, axis=sq)
    return out, 0


matmul_p.batch = _matmul_batch


def _check_mm(x: Tensor, y: Tensor) -> None:
    xs, ys = x.shape, y.shape
    if not xs or not ys:
        raise ShapeError(
            f"matmul: operands must have at least one dimension; got shapes {xs} and {ys}. Use multiply for scalars."
        )
    k1 = xs[-1]
    k2 = ys[-2] if len(ys) > 1 else ys[0]
    if k1 != k2:
        raise ShapeError(
            f"matmul: shapes {xs} and {ys} are not aligned: the last axis of x ({k1}) must equal "
            f"the {'second-to-last' if len(ys) > 1 else 'only'} axis of y ({k2}). Transpose one operand (x.mT)."
        )


def matmul(x1: Any, x2: Any, /) -> Tensor:
    """Matrix product with the standard's rules for 1-d operands and batch broadcasting.

    Example:
        >>> import functorch_lite as fl
        >>> fl.matmul(fl.ones((2, 3)), fl.ones((3,))).tolist()
        [3.0, 3.0]
    """
    if x1.__class__ is Tensor and x2.__class__ is Tensor and x1._t is None and x2._t is None:
        a, b = x1._a, x2._a
        xp = x1._xp
        if xp is x2._xp and a.dtype is b.dtype and a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == b.shape[-2]:
            t = _new(Tensor)
            t._a = a @ b
            t._xp = xp
            t._t = None
            return t
    if x1.__class__ is Tensor and x2.__class__ is Tensor:
        p = x1._t if x1._t is not None else x2._t
        if p is not None:
            tr = p.trace
            if tr.record1 is not None and tr.alive:  # reverse mode: record directly
                r = tr.record2(matmul_p, x1, x2, True)
                if r is not None:
                    return r
    prep_binary = _elementwise.prep_binary

    x, y = prep_binary("matmul", as_tensor(x1, "matmul"), as_tensor(x2, "matmul"))
    _check_mm(x, y)
    if x.ndim == 1 and y.ndim == 1:
        _sum = _reduction.sum

        p = x * y
        return _sum(p, dtype=p.dtype)
    if x.ndim == 1 or y.ndim == 1:
        return bind(matmul_p, (x, y), {})
    broadcast_shapes = _manipulation.broadcast_shapes

    broadcast_shapes(x.shape[:-2], y.shape[:-2])
    return bind(matmul_p, (x, y), {})


def tensordot(x1: Any, x2: Any, /, *, axes: int | tuple[Sequence[int], Sequence[int]] = 2) -> Tensor:
    """Sum of products over the given axes (composite of permute, reshape and matmul).

    Example:
        >>> import functorch_lite as fl
        >>> fl.tensordot(fl.ones((2, 3)), fl.ones((3, 4)), axes=1).shape
        (2, 4)
    """
    prep_binary = _elementwise.prep_binary
    permute_dims = _manipulation.permute_dims
    reshape = _manipulation.reshape

    x, y = prep_binary("tensordot", as_tensor(x1, "tensordot"), as_tensor(x2, "tensordot"))
    if isinstance(axes, int):
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative; got {axes}.")
        ax = list(range(x.ndim - axes, x.ndim))
        ay = list(range(axes))
    else:
        ax = [a % x.ndim for a in axes[0]]
        ay = [a % y.ndim for a in axes[1]]
    if len(ax) != len(ay):
        raise ShapeError(f"tensordot: axes {axes} name different numbers of axes for x and y.")
    for a, b in zip(ax, ay, strict=True):
        if x.shape[a] != y.shape[b]:
            raise ShapeError(
                f"tensordot: axis {a} of x (size {x.shape[a]}) does not match axis {b} of y (size {y.shape[b]})."
            )
    fx = [i for i in range(x.ndim) if i not in ax]
    fy = [i for i in range(y.ndim) if i not in ay]
    k = 1
    for a in ax:
        k *= x.shape[a]
    m = n = 1  # explicit sizes, not -1: zero-size operands cannot infer a -1
    for i in fx:
        m *= x.shape[i]
    for i in fy:
        n *= y.shape[i]
    xm = reshape(permute_dims(x, tuple(fx + ax)), (m, k))
    ym = reshape(permute_dims(y, tuple(ay + fy)), (k, n))
    out = bind(matmul_p, (xm, ym), {})
    return reshape(out, tuple(x.shape[i] for i in fx) + tuple(y.shape[i] for i in fy))


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Tensor:
    """Dot product of vectors along ``axis`` (conjugating ``x1``), broadcasting elsewhere.

    Example:
        >>> import functorch_lite as fl
        >>> fl.vecdot(fl.ones((2, 3)), fl.ones((3,))).tolist()
        [3.0, 3.0]
    """
    conj = _elementwise.conj
    prep_binary = _elementwise.prep_binary
    _sum = _reduction.sum

    x, y = prep_binary("vecdot", as_tensor(x1, "vecdot"), as_tensor(x2, "vecdot"))
    if axis >= 0:
        raise ValueError(f"vecdot: axis must be negative (counted from the end); got {axis}.")
    nd = max(x.ndim, y.ndim)
    if -axis > min(x.ndim, y.ndim):
        raise ShapeError(f"vecdot: axis {axis} is out of range for shapes {x.shape} and {y.shape}.")
    if x.shape[axis] != y.shape[axis]:
        raise ShapeError(
            f"vecdot: the contracted axis has size {x.shape[axis]} in x and {y.shape[axis]} in y; they must match."
        )
    if x.dtype.kind == "c":
        x = conj(x)
    p = x * y
    return _sum(p, axis=axis % nd if nd else axis, dtype=p.dtype)  # the standard keeps the input dtype


matmul_p.residuals = (True, False)  # the rules read the operands, never the product


# NOTE: ``x @ w.T`` with w of shape (out, in) (nn.Linear's layout) is a primitive for speed:
# through matmul + matrix_transpose, w's cotangent would arrive as a transposed view, and every
# optimizer op on it would walk memory with a stride of a whole row (4x-100x slower on numpy).
# Here the weight's cotangent is computed directly as g.T @ x, in w's own (out, in) layout.
def _nt_impl(xp: Any, x: Any, w: Any) -> Any:
    return x @ _amT(w)


matmul_nt_p = Primitive("matmul_nt", _nt_impl)
matmul_nt_p.residuals = (True, False)


def _nt_jvp(ts: Any, out: Any, x: Any, w: Any) -> Any:
    tx, tw = ts
    r = None if tx is None else bind(matmul_nt_p, (tx, w), {})
    if tw is not None:
        u = bind(matmul_nt_p, (x, tw), {})
        r = u if r is None else r + u
    return r


def _nt_vjp(g: Any, out: Any, x: Any, w: Any) -> Any:
    def gw() -> Any:
        if x.ndim == 1:
            return _manipulation.expand_dims(g, axis=-1) * x
        g2 = _manipulation.reshape(g, (-1, g.shape[-1]))
        x2 = _manipulation.reshape(x, (-1, x.shape[-1]))
        return bind(matmul_p, (_mT(g2), x2), {})

    return (lambda: bind(matmul_p, (g, w), {}), gw)


def _nt_batch(n: int, vals: Any, dims: Any) -> Any:
    (x, w), (dx, dw) = vals, dims
    if dw is None:
        return bind(matmul_nt_p, (_move(x, dx), w), {}), 0
    wt = _mT(_move(w, dw))  # (n, in, out): a batch of matrices; matmul's rule aligns the rest
    return _matmul_batch(n, (x, wt), (dx, 0))


matmul_nt_p.jvp = _nt_jvp
matmul_nt_p.vjp = _nt_vjp


def _nt_avjp(xp: Any, g: Any, o: Any, ps: Any, par: Any, p: Any) -> Any:
    xa, wa = ps[0]._a, ps[1]._a
    if xa.ndim == 1:
        return None
    gw = None
    if par[1] is not None:
        if g.ndim != 2:
            g2 = xp.reshape(g, (-1, g.shape[-1]))
            x2 = xp.reshape(xa, (-1, xa.shape[-1]))
            gw = _amT(g2) @ x2
        else:
            gw = _amT(g) @ xa
    return (None if par[0] is None else g @ wa, gw)


matmul_nt_p.avjp = _nt_avjp
matmul_nt_p.batch = _nt_batch


def matmul_nt(x: Any, w: Any, /) -> Tensor:
    """``x @ matrix_transpose(w)`` for a 2-d ``w`` (out, in), with w's gradient in w's layout.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite._ops.linalg_core import matmul_nt
        >>> matmul_nt(fl.ones((4, 3)), fl.ones((2, 3))).shape
        (4, 2)
    """
    if x.__class__ is Tensor and w.__class__ is Tensor:
        px, pw = x._t, w._t
        if px is None and pw is None:
            a, b = x._a, w._a
            if x._xp is w._xp and a.dtype is b.dtype and b.ndim == 2 and a.ndim >= 1 and a.shape[-1] == b.shape[1]:
                t = _new(Tensor)
                t._a = a @ _amT(b)
                t._xp = x._xp
                t._t = None
                return t
        else:
            tr = (px if px is not None else pw).trace
            if tr.record1 is not None and tr.alive and w.ndim == 2:  # reverse mode: record directly
                r = tr.record2(matmul_nt_p, x, w, True)
                if r is not None:
                    return r
    prep_binary = _elementwise.prep_binary
    x, w = prep_binary("linear", as_tensor(x, "linear"), as_tensor(w, "linear"))
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        raise ShapeError(
            f"linear: input of shape {x.shape} does not fit weight of shape {w.shape}; the last input "
            "dimension must equal weight.shape[1] (in_features)."
        )
    return bind(matmul_nt_p, (x, w), {})


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import elementwise as _elementwise  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
from . import reduction as _reduction  # noqa: E402
