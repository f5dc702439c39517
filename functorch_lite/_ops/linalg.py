"""The ``linalg`` extension: decompositions as primitives with hand-written rules.

The backend computes (``impl`` calls ``xp.linalg.X``); jvp rules follow the
standard formulas (JAX's where it has one) and each vjp rule is the transpose
of its jvp under the real pairing ``<a, b> = Re sum(a * b)`` (no conjugation
of cotangents, as in JAX). Rules use public ops only, so grad-of-grad and
vmap-of-grad work. The batch rule of every primitive moves the batch axis to
the front: linalg functions already act on leading batch dimensions.

Degeneracies: ``eigh`` needs distinct eigenvalues and ``svd`` distinct,
non-zero singular values for the eigen/singular *vectors* to be
differentiable; pairs that coincide contribute zero instead of inf (values
are exact, vectors' derivatives are then not those of any fixed basis).
``inv``, ``solve``, ``det`` and ``slogdet`` need an invertible matrix for
their derivatives; ``qr`` derivatives need M >= N (reduced mode) and ``svd``
derivatives ``full_matrices=False`` (or a square matrix).
"""

from __future__ import annotations

import builtins
from typing import Any, NamedTuple

from .. import _dtypes as D
from .._core.tensor import Tensor, backend_for, wrap
from .._errors import DTypeError, ShapeError
from ._base import Primitive, as_tensor, bind, check_dtype
from ._rules import move_bdim_to_front
from .creation import tril
from .elementwise import conj, imag, real
from .linalg_core import matmul, tensordot, vecdot
from .manipulation import broadcast_shapes, broadcast_to, concat, expand_dims, matrix_transpose, squeeze

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "det",
    "diagonal",
    "eigh",
    "inv",
    "matmul",
    "matrix_transpose",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
]


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


# -- helpers (public ops only) -------------------------------------------------------------
_T = matrix_transpose


def _cplx(x: Any) -> builtins.bool:
    return x.dtype.kind == "c"


def _cj(x: Any) -> Any:
    return conj(x) if _cplx(x) else x


def _H(x: Any) -> Any:
    return _T(_cj(x))


def _eye(n: int, like: Any, m: int | None = None, k: int = 0, dtype: Any = None) -> Tensor:
    xp = like._xp
    dt = like.dtype if dtype is None else dtype
    return wrap(xp.eye(n, m, k=k, dtype=backend_for(xp).native(dt)), xp)


def _zeros(shape: tuple[int, ...], like: Any) -> Tensor:
    xp = like._xp
    return wrap(xp.zeros(shape, dtype=backend_for(xp).native(like.dtype)), xp)


def _diag_embed(v: Any) -> Any:
    """``(..., n) -> (..., n, n)`` with ``v`` on the diagonal."""
    n = v.shape[-1]
    return expand_dims(v, axis=-1) * _eye(n, v)


def _mat(v: Any) -> Any:
    """``(...) -> (..., 1, 1)`` so a per-matrix scalar scales whole matrices."""
    return expand_dims(expand_dims(v, axis=-1), axis=-1)


def _add(a: Any, b: Any) -> Any:
    return b if a is None else (a if b is None else a + b)


def _diag_scatter(g: Any, shape: tuple[int, ...], offset: int) -> Any:
    """Transpose of ``diagonal(., offset)``: place ``g (..., K)`` on that diagonal of zeros."""
    m, n = shape[-2], shape[-1]
    size = m if offset >= 0 else n
    k = g.shape[-1]
    if size > k:
        g = concat([g, _zeros(g.shape[:-1] + (size - k,), g)], axis=-1)
    mask = _eye(m, g, n, k=offset)
    return expand_dims(g, axis=-1 if offset >= 0 else -2) * mask


def _front_batch(prim: Primitive) -> None:
    """Batch rule: move every batch axis to the front (broadcasting unbatched operands)."""

    def rule(n: int, vals: Any, dims: Any, **p: Any) -> Any:
        xs = [move_bdim_to_front(v, d, n) for v, d in zip(vals, dims, strict=True)]
        out = bind(prim, xs, p)
        return out, ([0] * len(out) if prim.multiple_results else 0)

    prim.batch = rule


def _fix(xp: Any, a: Any) -> Any:
    return backend_for(xp).fix(a)


def _floating(x: Any, op: str) -> Tensor:
    x = as_tensor(x, op)
    if x.dtype.kind not in "fc":
        raise DTypeError(
            f"linalg.{op}: needs a floating-point array; got dtype {x.dtype.name}. "
            f"Cast first: fl.linalg.{op}(fl.astype(x, fl.float64))."
        )
    return x


def _matrix(x: Any, op: str, square: builtins.bool = False) -> Tensor:
    x = _floating(x, op)
    if x.ndim < 2:
        raise ShapeError(f"linalg.{op}: needs a matrix (at least 2 dimensions, (..., M, N)); got shape {x.shape}.")
    if square and x.shape[-1] != x.shape[-2]:
        raise ShapeError(
            f"linalg.{op}: needs square matrices (..., M, M); got shape {x.shape}. "
            + ("Use linalg.pinv for non-square matrices." if op == "inv" else "Pass a square matrix.")
        )
    return x


# -- diagonal / trace -----------------------------------------------------------------------
diagonal_p = Primitive("linalg.diagonal", lambda xp, x, *, offset: xp.linalg.diagonal(x, offset=offset))
diagonal_p.jvp = lambda ts, out, x, *, offset: bind(diagonal_p, (ts[0],), {"offset": offset})
diagonal_p.vjp = lambda g, out, x, *, offset: (lambda: _diag_scatter(g, x.shape, offset),)
_front_batch(diagonal_p)


def diagonal(x: Any, /, *, offset: int = 0) -> Tensor:
    """The ``offset``-th diagonal of each matrix in ``x`` (..., M, N).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.diagonal(fl.asarray([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [1.0, 4.0]
    """
    x = as_tensor(x, "linalg.diagonal")
    if x.ndim < 2:
        raise ShapeError(f"linalg.diagonal: needs at least 2 dimensions; got shape {x.shape}.")
    return bind(diagonal_p, (x,), {"offset": int(offset)})


def _trace_impl(xp: Any, x: Any, *, offset: int, dtype: Any) -> Any:
    kw = {} if dtype is None else {"dtype": backend_for(xp).native(dtype)}
    return _fix(xp, xp.linalg.trace(x, offset=offset, **kw))


trace_p = Primitive("linalg.trace", _trace_impl)
trace_p.jvp = lambda ts, out, x, **p: bind(trace_p, (ts[0],), p)


def _trace_vjp(g: Any, out: Any, x: Any, *, offset: int, dtype: Any) -> Any:
    def ct() -> Any:
        m, n = x.shape[-2:]
        k = builtins.max(0, builtins.min(m, n - offset) if offset >= 0 else builtins.min(m + offset, n))
        return _diag_scatter(broadcast_to(expand_dims(g, axis=-1), g.shape + (k,)), x.shape, offset)

    return (ct,)


trace_p.vjp = _trace_vjp
_front_batch(trace_p)


def trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Tensor:
    """Sum of the ``offset``-th diagonal of each matrix (integers sum as in ``sum``).

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.linalg.trace(fl.asarray([[1.0, 2.0], [3.0, 4.0]])))
        5.0
    """
    x = as_tensor(x, "linalg.trace")
    if x.ndim < 2:
        raise ShapeError(f"linalg.trace: needs at least 2 dimensions; got shape {x.shape}.")
    dt = None if dtype is None else check_dtype(dtype, "linalg.trace")
    if dt is None and (x.dtype.kind == "b" or (x.dtype.kind in "iu" and x.dtype.bits < 64)):
        dt = D.uint64 if x.dtype.kind == "u" else D.int64
    return bind(trace_p, (x,), {"offset": int(offset), "dtype": dt})


# -- inv / solve ----------------------------------------------------------------------------
inv_p = Primitive("linalg.inv", lambda xp, x: xp.linalg.inv(x))
inv_p.jvp = lambda ts, out, x: -(out @ ts[0] @ out)
inv_p.vjp = lambda g, out, x: (lambda: -(_T(out) @ g @ _T(out)),)  # -A^-T g A^-T
_front_batch(inv_p)


def inv(x: Any, /) -> Tensor:
    """Inverse of each square matrix in ``x`` (..., M, M).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.inv(fl.asarray([[2.0, 0.0], [0.0, 4.0]])).tolist()
        [[0.5, 0.0], [0.0, 0.25]]
    """
    return bind(inv_p, (_matrix(x, "inv", square=True),), {})


solve_p = Primitive("linalg.solve", lambda xp, a, b: xp.linalg.solve(a, b))


def _solve_jvp(ts: Any, out: Any, a: Any, b: Any) -> Any:
    ta, tb = ts
    r = _add(tb, None if ta is None else -(ta @ out))
    return None if r is None else bind(solve_p, (a, r), {})


def _solve_vjp(g: Any, out: Any, a: Any, b: Any) -> Any:
    gb = bind(solve_p, (_T(a), g), {})
    return (lambda: -(gb @ _T(out)), gb)


solve_p.jvp = _solve_jvp
solve_p.vjp = _solve_vjp
_front_batch(solve_p)


def solve(x1: Any, x2: Any, /) -> Tensor:
    """Solve ``x1 @ out = x2`` for square ``x1`` (..., M, M); ``x2`` is (..., M, K) or (M,).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.solve(fl.asarray([[2.0, 0.0], [0.0, 4.0]]), fl.asarray([1.0, 1.0])).tolist()
        [0.5, 0.25]
    """
    from .elementwise import prep_binary

    a = _matrix(x1, "solve", square=True)
    b = _floating(as_tensor(x2, "linalg.solve", like=a), "solve")
    a, b = prep_binary("linalg.solve", a, b)
    vec = b.ndim == 1
    if vec:
        b = expand_dims(b, axis=-1)
    m = a.shape[-1]
    if b.shape[-2] != m:
        raise ShapeError(
            f"linalg.solve: x1 has shape {a.shape} but x2 has shape {x2.shape if hasattr(x2, 'shape') else b.shape}; "
            f"x2 needs {m} rows ((..., {m}, K) or ({m},))."
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = broadcast_to(a, batch + a.shape[-2:])
    b = broadcast_to(b, batch + b.shape[-2:])
    out = bind(solve_p, (a, b), {})
    return squeeze(out, axis=-1) if vec else out


# -- cholesky -------------------------------------------------------------------------------
def _phi(x: Any) -> Any:
    """Lower triangle with the diagonal halved."""
    return tril(x, k=-1) + 0.5 * (x * _eye(x.shape[-1], x))


def _sym(x: Any) -> Any:
    return (x + _H(x)) * 0.5


cholesky_p = Primitive("linalg.cholesky", lambda xp, x: xp.linalg.cholesky(x))


def _cholesky_jvp(ts: Any, out: Any, x: Any) -> Any:
    linv = inv(out)
    return out @ _phi(linv @ _sym(ts[0]) @ _H(linv))  # dL = L phi(L^-1 sym(dA) L^-H)


def _cholesky_vjp(g: Any, out: Any, x: Any) -> Any:
    def ct() -> Any:
        linv = inv(out)
        return _sym(_T(linv) @ _phi(_T(out) @ g) @ _cj(linv))

    return (ct,)


cholesky_p.jvp = _cholesky_jvp
cholesky_p.vjp = _cholesky_vjp
_front_batch(cholesky_p)


def cholesky(x: Any, /, *, upper: builtins.bool = False) -> Tensor:
    """Cholesky factor of symmetric (Hermitian) positive-definite matrices (lower, or upper = L^H).

    Derivatives treat the input as symmetric: they are those of ``cholesky((A + A^H) / 2)``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.cholesky(fl.asarray([[4.0, 2.0], [2.0, 2.0]])).tolist()
        [[2.0, 0.0], [1.0, 1.0]]
    """
    L = bind(cholesky_p, (_matrix(x, "cholesky", square=True),), {})
    return _H(L) if upper else L


# -- det / slogdet --------------------------------------------------------------------------
det_p = Primitive("linalg.det", lambda xp, x: _fix(xp, xp.linalg.det(x)))
det_p.jvp = lambda ts, out, x: out * trace(solve(x, ts[0]))  # det * tr(A^-1 dA)
det_p.vjp = lambda g, out, x: (lambda: _mat(g * out) * _T(inv(x)),)
_front_batch(det_p)


def det(x: Any, /) -> Tensor:
    """Determinant of each square matrix.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.linalg.det(fl.asarray([[2.0, 1.0], [1.0, 3.0]])))
        5.0
    """
    return bind(det_p, (_matrix(x, "det", square=True),), {})


def _slogdet_impl(xp: Any, x: Any) -> Any:
    r = xp.linalg.slogdet(x)
    return _fix(xp, r[0]), _fix(xp, r[1])


slogdet_p = Primitive("linalg.slogdet", _slogdet_impl, multiple_results=True)


def _slogdet_jvp(ts: Any, out: Any, x: Any) -> Any:
    t = trace(solve(x, ts[0]))  # tr(A^-1 dA)
    if not _cplx(x):
        return None, t
    return out[0] * (imag(t) * 1j), real(t)


def _slogdet_vjp(g: Any, out: Any, x: Any) -> Any:
    gs, gl = g
    ct = gl
    if _cplx(x) and gs is not None:
        ct = _add(ct, imag(gs * out[0]) * 1j)
    if ct is None:
        return (None,)
    return (lambda: _mat(ct) * _T(inv(x)),)


slogdet_p.jvp = _slogdet_jvp
slogdet_p.vjp = _slogdet_vjp
_front_batch(slogdet_p)


def slogdet(x: Any, /) -> SlogdetResult:
    """Sign and natural log of the absolute determinant (namedtuple ``sign, logabsdet``).

    Example:
        >>> import functorch_lite as fl
        >>> r = fl.linalg.slogdet(fl.asarray([[-2.0, 0.0], [0.0, 1.0]]))
        >>> float(r.sign), round(float(r.logabsdet), 4)
        (-1.0, 0.6931)
    """
    return SlogdetResult(*bind(slogdet_p, (_matrix(x, "slogdet", square=True),), {}))


# -- eigh -----------------------------------------------------------------------------------
def _eigh_impl(xp: Any, x: Any) -> Any:
    r = xp.linalg.eigh(x)
    return r[0], r[1]


eigh_p = Primitive("linalg.eigh", _eigh_impl, multiple_results=True)


def _gap_inverse(w: Any) -> Any:
    """F[i, j] = 1 / (w_j - w_i) off the diagonal, 0 where w_j == w_i (degenerate pairs)."""
    from .searching import where

    d = expand_dims(w, axis=-2) - expand_dims(w, axis=-1)
    z = d == 0.0
    return where(z, 0.0, 1.0 / where(z, 1.0, d))


def _eigh_jvp(ts: Any, out: Any, x: Any) -> Any:
    w, v = out
    m = _H(v) @ _sym(ts[0]) @ v
    dw = diagonal(m)
    return (real(dw) if _cplx(dw) else dw), v @ (_gap_inverse(w) * m)


def _eigh_vjp(g: Any, out: Any, x: Any) -> Any:
    gw, gv = g
    w, v = out

    def ct() -> Any:
        cm = None if gw is None else _diag_embed(gw)
        if gv is not None:
            cm = _add(cm, _gap_inverse(w) * (_T(v) @ gv))
        return _sym(_cj(v) @ cm @ _T(v))

    return (None,) if gw is None and gv is None else (ct,)


eigh_p.jvp = _eigh_jvp
eigh_p.vjp = _eigh_vjp
_front_batch(eigh_p)


def eigh(x: Any, /) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of symmetric (Hermitian) matrices.

    Derivatives treat the input as symmetric and need distinct eigenvalues for the
    eigenvectors (degenerate pairs contribute zero); eigenvectors are defined up to sign,
    so differentiate sign-invariant functions of them.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.eigh(fl.asarray([[2.0, 0.0], [0.0, 1.0]])).eigenvalues.tolist()
        [1.0, 2.0]
    """
    return EighResult(*bind(eigh_p, (_matrix(x, "eigh", square=True),), {}))


# -- qr -------------------------------------------------------------------------------------
qr_p = Primitive("linalg.qr", lambda xp, x, *, mode: tuple(xp.linalg.qr(x, mode=mode)), multiple_results=True)


def _qr_check(x: Any, mode: str) -> None:
    m, n = x.shape[-2:]
    if m < n or (mode == "complete" and m != n):
        raise NotImplementedError(
            f"linalg.qr: derivatives need M >= N with mode='reduced' (or a square matrix); got shape "
            f"{x.shape} with mode={mode!r}. Differentiate qr of the transpose, or use mode='reduced'."
        )


def _qr_jvp(ts: Any, out: Any, x: Any, *, mode: str) -> Any:
    _qr_check(x, mode)
    q, r = out
    p = ts[0] @ inv(r)  # dA R^-1
    c = _H(q) @ p
    lo = tril(c, k=-1)
    do = lo - _H(lo)  # skew-Hermitian
    if _cplx(c):
        do = do + _eye(c.shape[-1], c) * (imag(c) * 1j)
    return q @ (do - c) + p, (c - do) @ r


def _qr_vjp(g: Any, out: Any, x: Any, *, mode: str) -> Any:
    gq, gr = g
    if gq is None and gr is None:
        return (None,)
    _qr_check(x, mode)
    q, r = out

    def ct() -> Any:
        d = _add(None if gq is None else _T(q) @ gq, None if gr is None else -(gr @ _T(r)))
        cc = tril(d - _H(d), k=-1) - d
        if _cplx(d):
            cc = cc + _eye(d.shape[-1], d) * (imag(d) * 1j)
        cp = _add(gq, _cj(q) @ cc)
        return cp @ _T(inv(r))

    return (ct,)


qr_p.jvp = _qr_jvp
qr_p.vjp = _qr_vjp
_front_batch(qr_p)


def qr(x: Any, /, *, mode: str = "reduced") -> QRResult:
    """QR decomposition (namedtuple ``Q, R``); ``mode`` is 'reduced' or 'complete'.

    Example:
        >>> import functorch_lite as fl
        >>> q, r = fl.linalg.qr(fl.ones((3, 2)))
        >>> q.shape, r.shape
        ((3, 2), (2, 2))
    """
    if mode not in ("reduced", "complete"):
        raise ValueError(f"linalg.qr: mode must be 'reduced' or 'complete'; got {mode!r}.")
    return QRResult(*bind(qr_p, (_matrix(x, "qr"),), {"mode": mode}))


# -- svd / svdvals --------------------------------------------------------------------------
def _svd_impl(xp: Any, x: Any, *, full_matrices: builtins.bool) -> Any:
    r = xp.linalg.svd(x, full_matrices=full_matrices)
    return r[0], r[1], r[2]


svd_p = Primitive("linalg.svd", _svd_impl, multiple_results=True)


def _svd_check(x: Any, full_matrices: builtins.bool) -> None:
    if full_matrices and x.shape[-1] != x.shape[-2]:
        raise NotImplementedError(
            f"linalg.svd: derivatives of non-square matrices (shape {x.shape}) need full_matrices=False "
            "(the extra singular vectors are not unique)."
        )


def _svd_parts(s: Any) -> tuple[Any, Any]:
    """F[i, j] = 1 / (s_j^2 - s_i^2) (0 when equal) and 1 / s (0 where s == 0)."""
    from .searching import where

    z = s == 0.0
    return _gap_inverse(s * s), where(z, 0.0, 1.0 / where(z, 1.0, s))


def _row(v: Any) -> Any:
    return expand_dims(v, axis=-2)  # scales columns j


def _col(v: Any) -> Any:
    return expand_dims(v, axis=-1)  # scales rows i


def _svd_jvp(ts: Any, out: Any, x: Any, *, full_matrices: builtins.bool) -> Any:
    _svd_check(x, full_matrices)
    u, s, vh = out
    da = ts[0]
    v = _H(vh)
    f, sinv = _svd_parts(s)
    ds_mat = _H(u) @ da @ v
    dsv = diagonal(ds_mat)
    ds = real(dsv) if _cplx(dsv) else dsv
    dss = ds_mat * _row(s)
    sds = _col(s) * ds_mat
    du_in = f * (dss + _H(dss))
    if _cplx(ds_mat):
        du_in = du_in + _diag_embed(imag(dsv) * 1j * sinv)
    du = u @ du_in
    dv = v @ (f * (sds + _H(sds)))
    m, n = x.shape[-2:]
    if m > n:
        dav = da @ v
        du = du + (dav - u @ (_H(u) @ dav)) * _row(sinv)
    if n > m:
        dahu = _H(da) @ u
        dv = dv + (dahu - v @ (vh @ dahu)) * _row(sinv)
    return du, ds, _H(dv)


def _svd_vjp(g: Any, out: Any, x: Any, *, full_matrices: builtins.bool) -> Any:
    gu, gs, gvh = g
    if gu is None and gs is None and gvh is None:
        return (None,)
    _svd_check(x, full_matrices)
    u, s, vh = out

    def ct() -> Any:
        v = _H(vh)
        f, sinv = _svd_parts(s)
        cds = None if gs is None else _diag_embed(gs)
        m, n = x.shape[-2:]
        extra = None
        if gu is not None:
            ju = _T(u) @ gu
            ku = f * ju
            cds = _add(cds, (ku + _H(ku)) * _row(s))
            if _cplx(ju):
                cds = cds + _diag_embed(imag(diagonal(ju)) * 1j * sinv)
            if m > n:
                gus = gu * _row(sinv)
                extra = (gus - _cj(u) @ (_T(u) @ gus)) @ _T(v)
        if gvh is not None:
            gv = _H(gvh)
            kv = f * (_T(v) @ gv)
            cds = _add(cds, _col(s) * (kv + _H(kv)))
            if n > m:
                h = _H(gv * _row(sinv))
                extra = _add(extra, _cj(u) @ (h - (h @ _cj(v)) @ _T(v)))
        return _add(_cj(u) @ cds @ _T(v), extra)

    return (ct,)


svd_p.jvp = _svd_jvp
svd_p.vjp = _svd_vjp
_front_batch(svd_p)


def svd(x: Any, /, *, full_matrices: builtins.bool = True) -> SVDResult:
    """Singular value decomposition ``x = U @ diag(S) @ Vh`` (namedtuple ``U, S, Vh``).

    Derivatives need ``full_matrices=False`` for non-square input and distinct, non-zero
    singular values for U and Vh (coinciding pairs contribute zero); singular vectors are
    defined up to sign (phase), so differentiate functions invariant to it.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.svd(fl.asarray([[3.0, 0.0], [0.0, 4.0]])).S.tolist()
        [4.0, 3.0]
    """
    return SVDResult(*bind(svd_p, (_matrix(x, "svd"),), {"full_matrices": builtins.bool(full_matrices)}))


svdvals_p = Primitive("linalg.svdvals", lambda xp, x: xp.linalg.svdvals(x))


def _svdvals_jvp(ts: Any, out: Any, x: Any) -> Any:
    u, _, vh = bind(svd_p, (x,), {"full_matrices": False})
    d = diagonal(_H(u) @ ts[0] @ _H(vh))
    return real(d) if _cplx(d) else d


def _svdvals_vjp(g: Any, out: Any, x: Any) -> Any:
    def ct() -> Any:
        u, _, vh = bind(svd_p, (x,), {"full_matrices": False})
        return _cj(u * _row(g) @ vh)  # conj(U diag(g) Vh)

    return (ct,)


svdvals_p.jvp = _svdvals_jvp
svdvals_p.vjp = _svdvals_vjp
_front_batch(svdvals_p)


def svdvals(x: Any, /) -> Tensor:
    """Singular values of each matrix, in descending order.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.svdvals(fl.asarray([[3.0, 0.0], [0.0, 4.0]])).tolist()
        [4.0, 3.0]
    """
    return bind(svdvals_p, (_matrix(x, "svdvals"),), {})
