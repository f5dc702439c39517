"""The array API ``linalg`` extension, differentiable and batchable.

Decompositions and solvers are primitives (``functorch_lite._ops.linalg``);
the functions defined here are composed from them, so they differentiate and
batch for free. ``matmul``, ``tensordot``, ``vecdot`` and
``matrix_transpose`` are the main namespace's own functions.

Example:
    >>> import functorch_lite as fl
    >>> a = fl.asarray([[2.0, 1.0], [1.0, 3.0]])
    >>> round(float(fl.grad(lambda m: fl.linalg.det(m))(a)[0, 0]), 4)
    3.0
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from . import _dtypes as D
from ._core.tensor import Tensor
from ._errors import DTypeError, ShapeError
from ._ops._base import as_tensor, normalize_axes, normalize_axis
from ._ops.dtypes import astype, finfo
from ._ops.elementwise import abs as _abs
from ._ops.elementwise import conj, prep_binary, real, sqrt
from ._ops.elementwise import pow as _pow
from ._ops.linalg import (
    _H,
    EighResult,
    QRResult,
    SlogdetResult,
    SVDResult,
    _eye,
    _matrix,
    cholesky,
    det,
    diagonal,
    eigh,
    inv,
    qr,
    slogdet,
    solve,
    svd,
    svdvals,
    trace,
)
from ._ops.linalg_core import matmul, tensordot, vecdot
from ._ops.manipulation import broadcast_arrays, broadcast_to, expand_dims, matrix_transpose, moveaxis, stack
from ._ops.reduction import max as _max
from ._ops.reduction import min as _min
from ._ops.reduction import sum as _sum
from ._ops.searching import where

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
]


def eigvalsh(x: Any, /) -> Tensor:
    """Eigenvalues (ascending) of symmetric (Hermitian) matrices.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.eigvalsh(fl.asarray([[2.0, 0.0], [0.0, 1.0]])).tolist()
        [1.0, 2.0]
    """
    return eigh(x).eigenvalues


def outer(x1: Any, x2: Any, /) -> Tensor:
    """Outer product of two vectors.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.outer(fl.asarray([1.0, 2.0]), fl.asarray([1.0, 0.0, 3.0])).shape
        (2, 3)
    """
    a, b = prep_binary("linalg.outer", as_tensor(x1, "linalg.outer"), as_tensor(x2, "linalg.outer"))
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"linalg.outer: needs two 1-d arrays; got shapes {a.shape} and {b.shape}.")
    return expand_dims(a, axis=-1) * expand_dims(b, axis=0)


def cross(x1: Any, x2: Any, /, *, axis: int = -1) -> Tensor:
    """Cross product of 3-element vectors along ``axis`` (broadcasting elsewhere).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.cross(fl.asarray([1.0, 0.0, 0.0]), fl.asarray([0.0, 1.0, 0.0])).tolist()
        [0.0, 0.0, 1.0]
    """
    a, b = prep_binary("linalg.cross", as_tensor(x1, "linalg.cross"), as_tensor(x2, "linalg.cross"))
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"linalg.cross: needs arrays with a vector axis; got shapes {a.shape} and {b.shape}.")
    a, b = broadcast_arrays(a, b)
    ax = normalize_axis(axis, a.ndim, "linalg.cross")
    if a.shape[ax] != 3:
        raise ShapeError(
            f"linalg.cross: axis {axis} must have size 3 in both arrays; got shapes {x1.shape if hasattr(x1, 'shape') else a.shape} "
            f"and {x2.shape if hasattr(x2, 'shape') else b.shape}."
        )
    a = moveaxis(a, ax, -1)
    b = moveaxis(b, ax, -1)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    c = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, ax)


def _float_input(x: Any, op: str) -> Tensor:
    x = as_tensor(x, f"linalg.{op}")
    if x.dtype.kind not in "fc":
        raise DTypeError(
            f"linalg.{op}: needs a floating-point array; got dtype {x.dtype.name}. "
            f"Cast first: fl.linalg.{op}(fl.astype(x, fl.float32))."
        )
    return x


def vector_norm(
    x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False, ord: float = 2
) -> Tensor:
    """Vector ``ord``-norm over ``axis`` (all elements when None); real-valued.

    ``ord`` is any real p (p-norm, 0 counts non-zeros), ``inf`` (max |x|) or ``-inf``.
    NOTE: the gradient of the 2-norm at x = 0 is nan (sqrt at 0), as in JAX.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.linalg.vector_norm(fl.asarray([3.0, 4.0])))
        5.0
    """
    x = _float_input(x, "vector_norm")
    ax = normalize_axes(axis, x.ndim, "linalg.vector_norm")
    if isinstance(ord, builtins.bool) or not isinstance(ord, (int, float)):
        raise ValueError(f"linalg.vector_norm: ord must be a real number, inf or -inf; got {ord!r}.")
    kw: dict[str, Any] = {"axis": ax, "keepdims": keepdims}
    if ord == 2:
        sq = real(conj(x) * x) if x.dtype.kind == "c" else x * x
        return sqrt(_sum(sq, **kw))
    a = _abs(x)
    if ord == 1:
        return _sum(a, **kw)
    if ord == math.inf:
        return _max(a, **kw)
    if ord == -math.inf:
        return _min(a, **kw)
    if ord == 0:
        return _sum(astype(a != 0.0, a.dtype), **kw)
    return _pow(_sum(_pow(a, float(ord)), **kw), 1.0 / ord)


def _keep(r: Tensor, keepdims: builtins.bool) -> Tensor:
    return expand_dims(expand_dims(r, axis=-1), axis=-1) if keepdims else r


def matrix_norm(x: Any, /, *, keepdims: builtins.bool = False, ord: Any = "fro") -> Tensor:
    """Matrix norm of each matrix: ``ord`` in 'fro', 'nuc', 1, -1, 2, -2, inf, -inf.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.linalg.matrix_norm(fl.asarray([[3.0, 0.0], [0.0, 4.0]]), ord=2))
        4.0
    """
    x = _matrix(x, "matrix_norm")
    if ord == "fro":
        return vector_norm(x, axis=(-2, -1), keepdims=keepdims)
    if ord == "nuc":
        return _keep(_sum(svdvals(x), axis=-1), keepdims)
    if isinstance(ord, str) or isinstance(ord, builtins.bool) or ord not in (1, -1, 2, -2, math.inf, -math.inf):
        raise ValueError(f"linalg.matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf; got {ord!r}.")
    if ord in (2, -2):  # singular values are sorted in descending order
        return _keep(svdvals(x)[..., 0 if ord == 2 else -1], keepdims)
    sums = _sum(_abs(x), axis=-2 if ord in (1, -1) else -1)
    return _keep((_max if ord > 0 else _min)(sums, axis=-1), keepdims)


def matrix_power(x: Any, n: int, /) -> Tensor:
    """``x`` to the integer power ``n`` (repeated squaring; negative powers invert first).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.matrix_power(fl.asarray([[1.0, 1.0], [0.0, 1.0]]), 3).tolist()
        [[1.0, 3.0], [0.0, 1.0]]
    """
    x = _matrix(x, "matrix_power", square=True)
    if isinstance(n, builtins.bool) or not isinstance(n, int):
        raise TypeError(f"linalg.matrix_power: n must be a Python int; got {n!r}.")
    if n == 0:
        return broadcast_to(_eye(x.shape[-1], x), x.shape)
    if n < 0:
        x, n = inv(x), -n
    result: Any = None
    base: Any = x
    while True:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if not n:
            return result
        base = base @ base


def _tolerance(s: Tensor, x: Tensor, rtol: Any) -> Tensor:
    """Cut-off ``rtol * max(S)`` per matrix, shaped (..., 1) against ``s`` (..., K)."""
    if rtol is None:
        rtol = builtins.max(x.shape[-2:]) * finfo(x.dtype).eps
    if isinstance(rtol, Tensor):
        rtol = expand_dims(astype(rtol, s.dtype), axis=-1)
    return s[..., :1] * rtol


def matrix_rank(x: Any, /, *, rtol: float | Tensor | None = None) -> Tensor:
    """Number of singular values above ``rtol * largest`` (default rtol: max(M, N) * eps).

    Example:
        >>> import functorch_lite as fl
        >>> int(fl.linalg.matrix_rank(fl.asarray([[1.0, 2.0], [2.0, 4.0]])))
        1
    """
    x = _matrix(x, "matrix_rank")
    s = svdvals(x)
    return _sum(astype(s > _tolerance(s, x, rtol), D.int64), axis=-1)


def pinv(x: Any, /, *, rtol: float | Tensor | None = None) -> Tensor:
    """Moore-Penrose pseudo-inverse via the SVD (singular values below ``rtol * max`` dropped).

    Example:
        >>> import functorch_lite as fl
        >>> fl.linalg.pinv(fl.asarray([[2.0, 0.0], [0.0, 0.0]])).tolist()
        [[0.5, 0.0], [0.0, 0.0]]
    """
    x = _matrix(x, "pinv")
    u, s, vh = svd(x, full_matrices=False)
    keep = s > _tolerance(s, x, rtol)
    sinv = where(keep, 1.0 / where(keep, s, 1.0), 0.0)
    return (_H(vh) * expand_dims(sinv, axis=-2)) @ _H(u)
