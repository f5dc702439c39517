"""The array API namespace that ``functorch_lite`` re-exports, plus Tensor methods."""

from __future__ import annotations

import builtins
import math
from typing import Any

from . import _backend
from . import _dtypes as D
from ._core.tensor import Tensor, backend_for, wrap
from ._ops import creation, dtypes, elementwise, indexing, linalg_core, manipulation, reduction, scatter, searching
from ._ops import sorting, sets, clip as _clip_mod
from ._ops._base import asarray, get_default_dtype, set_default_dtype
from ._ops.creation import *  # noqa: F403
from ._ops.dtypes import *  # noqa: F403
from ._ops.elementwise import *  # noqa: F403
from ._ops.indexing import *  # noqa: F403
from ._ops.scatter import *  # noqa: F403
from ._ops.linalg_core import *  # noqa: F403
from ._ops.manipulation import *  # noqa: F403
from ._ops.reduction import *  # noqa: F403
from ._ops.searching import *  # noqa: F403
from ._ops.sorting import *  # noqa: F403
from ._ops.sets import *  # noqa: F403
from ._ops.clip import *  # noqa: F403

e = math.e
pi = math.pi
inf = math.inf
nan = math.nan
newaxis = None

__all__ = sorted(
    set(
        creation.__all__
        + dtypes.__all__
        + elementwise.__all__
        + indexing.__all__
        + scatter.__all__
        + linalg_core.__all__
        + manipulation.__all__
        + reduction.__all__
        + searching.__all__
        + sorting.__all__
        + sets.__all__
        + _clip_mod.__all__
        + [
            "e",
            "pi",
            "inf",
            "nan",
            "newaxis",
            "asarray",
            "set_default_dtype",
            "get_default_dtype",
            "to_backend",
            "__array_namespace_info__",
        ]
    )
    - {"asarray_like"}
)


def to_backend(x: Any, name: str, device: Any = None) -> Any:
    """Move a Tensor (or every Tensor in a pytree) to backend ``name``: DLPack, else a host copy.

    Example:
        >>> import functorch_lite as fl
        >>> fl.to_backend(fl.ones((2,)), "numpy").backend
        'numpy'
    """
    from ._core import tree_util as tu

    target = _backend.get_backend(name)

    def move(t: Any) -> Any:
        if not isinstance(t, Tensor):
            return t
        if t.is_tracer:
            from ._errors import TransformError

            raise TransformError(
                "to_backend: cannot move a traced Tensor inside a transform; move the inputs before "
                "calling grad / vmap."
            )
        src = backend_for(t._xp)
        if src is target:
            return t if device is None else t.to_device(device)
        return wrap(target.from_foreign(src.fix(t._a), src, device), target.xp)

    return tu.tree_map(move, x)


class _Info:
    """``__array_namespace_info__()``: capabilities, default dtypes, devices."""

    def capabilities(self) -> dict[str, Any]:
        from ._core.engine import active_traces

        in_vmap = builtins.any(t.kind == "vmap" for t in active_traces())
        return {
            "boolean indexing": not in_vmap,
            "data-dependent shapes": not in_vmap,
            "max dimensions": 64,
        }

    def default_device(self) -> Any:
        b = _backend.current_default()
        return b.device(b.xp.empty((0,)))

    def devices(self) -> list[Any]:
        b = _backend.current_default()
        info = getattr(b.xp, "__array_namespace_info__", None)
        if info is not None:
            try:
                return list(info().devices())
            except Exception:
                pass
        return [self.default_device()]

    def default_dtypes(self, *, device: Any = None) -> dict[str, D.DType]:
        f = get_default_dtype()
        return {
            "real floating": f,
            "complex floating": D.complex64 if f is D.float32 else D.complex128,
            "integral": D.int64,
            "indexing": D.int64,
        }

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, D.DType]:
        from ._ops.dtypes import isdtype

        b = _backend.current_default()
        out = {}
        for dt in D.ALL_DTYPES:
            if dt not in b.to_native:
                continue
            if kind is None or isdtype(dt, kind):
                out[dt.name] = dt
        return out


def __array_namespace_info__() -> _Info:
    """Information about the namespace (array API standard inspection utilities).

    Example:
        >>> import functorch_lite as fl
        >>> fl.__array_namespace_info__().default_dtypes()["real floating"]
        functorch_lite.float32
    """
    return _Info()


# -- Tensor properties and methods that dispatch to ops -------------------------------------
def _T(self: Tensor) -> Tensor:
    if self.ndim != 2:
        from ._errors import ShapeError

        raise ShapeError(f"T: only defined for 2-d Tensors; got shape {self.shape}. Use .mT or permute_dims.")
    return manipulation.permute_dims(self, (1, 0))


def _mT_prop(self: Tensor) -> Tensor:
    return manipulation.matrix_transpose(self)


def _method(fn: Any) -> Any:
    def m(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    m.__name__ = fn.__name__
    m.__doc__ = fn.__doc__
    return m


def _reshape_method(self: Tensor, *shape: Any, **kwargs: Any) -> Tensor:
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = tuple(shape[0])
    return manipulation.reshape(self, shape, **kwargs)


def _matmul_dunder(self: Tensor, other: Any) -> Any:
    if other.__class__ is not Tensor and not isinstance(other, Tensor) and _backend.backend_of(other) is None:
        return NotImplemented
    return linalg_core.matmul(self, other)


def _rmatmul_dunder(self: Tensor, other: Any) -> Any:
    if _backend.backend_of(other) is None:
        return NotImplemented
    return linalg_core.matmul(other, self)


def _imatmul(self: Tensor, other: Any) -> Any:
    return elementwise.rebind(self, linalg_core.matmul(self, other), "__imatmul__")


Tensor.T = property(_T)  # type: ignore[assignment, attr-defined, method-assign]
Tensor.mT = property(_mT_prop)  # type: ignore[assignment, attr-defined, method-assign]
Tensor.__matmul__ = _matmul_dunder  # type: ignore[attr-defined, method-assign]
Tensor.__rmatmul__ = _rmatmul_dunder  # type: ignore[attr-defined, method-assign]
Tensor.__imatmul__ = _imatmul  # type: ignore[attr-defined, method-assign]
Tensor.reshape = _reshape_method  # type: ignore[attr-defined]
for _name, _fn in {
    "sum": reduction.sum,
    "mean": reduction.mean,
    "prod": reduction.prod,
    "max": reduction.max,
    "min": reduction.min,
    "std": reduction.std,
    "var": reduction.var,
    "all": reduction.all,
    "any": reduction.any,
    "argmax": searching.argmax,
    "argmin": searching.argmin,
    "astype": dtypes.astype,
    "exp": elementwise.exp,
    "log": elementwise.log,
    "sqrt": elementwise.sqrt,
    "abs": elementwise.abs,
    "tanh": elementwise.tanh,
    "flatten": lambda x: manipulation.reshape(x, (-1,)),
}.items():
    setattr(Tensor, _name, _method(_fn))
