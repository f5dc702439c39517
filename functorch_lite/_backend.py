"""The backend layer: the only module that may name numpy, cupy, torch, jax or dask.

A backend is an array library seen through its array API namespace
(array-api-compat where the library is not conforming by itself). Tensors
keep the namespace of their array; this module maps namespaces to
`Backend` records (dtypes, host transfers, functional ``setitem``).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from . import _dtypes as D
from ._errors import BackendError, DTypeError

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "get_backend",
    "backend_of",
    "backend_of_namespace",
    "default_backend_name",
    "set_default_backend",
    "default_backend",
    "available_backends",
    "numpy_backend",
]

BACKEND_NAMES = ("numpy", "cupy", "torch", "jax", "dask", "array_api_strict")

_NAMESPACE_MODULES = {
    "numpy": "array_api_compat.numpy",
    "cupy": "array_api_compat.cupy",
    "torch": "array_api_compat.torch",
    "jax": "jax.numpy",
    "dask": "array_api_compat.dask.array",
    "array_api_strict": "array_api_strict",
}
_LIBRARY_MODULES = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "jax": "jax",
    "dask": "dask.array",
    "array_api_strict": "array_api_strict",
}


# Per-namespace lookup tables (keyed by the namespace module: dtype objects of different
# libraries may hash alike, and comparing them across libraries warns).
DTYPE_MAPS: dict[Any, dict[Any, D.DType]] = {}
FLOAT_NATIVES: dict[Any, set[Any]] = {}
BOOL_NATIVES: dict[Any, set[Any]] = {}
INT_NATIVES: dict[Any, set[Any]] = {}


class Backend:
    """One array library: its namespace, native dtypes and transfer helpers."""

    def __init__(self, name: str, xp: Any, array_types: tuple[type, ...]) -> None:
        self.name = name
        self.xp = xp
        self.array_types = array_types
        self.to_native: dict[D.DType, Any] = {}
        self.from_native: dict[Any, D.DType] = {}
        # dtypes the library narrows (jax without x64: float64 -> float32), kept out of to_native
        # so that asking for one takes native()'s slow path, which raises (see _narrowed_error)
        self.narrowed: dict[D.DType, Any] = {}
        DTYPE_MAPS[xp] = self.from_native
        FLOAT_NATIVES[xp] = set()
        BOOL_NATIVES[xp] = set()
        INT_NATIVES[xp] = set()
        self._build_tables()
        self.immutable = name == "jax"
        # integer-array indexing (take) raises IndexError out of bounds instead of clamping or
        # wrapping (cupy, jax) or failing asynchronously (torch on CUDA)
        self.checks_bounds = name in ("numpy", "array_api_strict")
        self.is_numpy = name == "numpy"

    def _build_tables(self) -> None:
        """Fill the dtype tables (in place: other modules hold them) from what the library makes."""
        xp = self.xp
        to_native: dict[D.DType, Any] = {}
        from_native: dict[Any, D.DType] = {}
        narrowed: dict[D.DType, Any] = {}
        for dt in D.ALL_DTYPES:
            nat = getattr(xp, dt.name, None)
            if nat is None:
                continue
            try:
                with warnings.catch_warnings():  # jax without x64 warns that it narrows 64-bit dtypes
                    warnings.simplefilter("ignore")
                    key = xp.empty((0,), dtype=nat).dtype
            except Exception:  # the library lacks this dtype (torch uint16 arithmetic, ...)
                continue
            if dt.kind in "fc" and getattr(key, "name", dt.name) != dt.name:
                # a float the library silently narrows (jax without x64): asking for it raises
                narrowed[dt] = key
                continue
            to_native[dt] = key
            # setdefault: a library that narrows a dtype (jax without x64: uint64 -> uint32) must not
            # relabel its real uint32 arrays as uint64; ALL_DTYPES lists each kind narrowest first.
            from_native.setdefault(key, dt)
            try:
                from_native[nat] = dt
            except TypeError:  # unhashable native dtype objects
                pass
        for table, new in ((self.to_native, to_native), (self.from_native, from_native), (self.narrowed, narrowed)):
            table.clear()
            table.update(new)  # type: ignore[attr-defined]
        for natives, kinds in ((FLOAT_NATIVES, "fc"), (BOOL_NATIVES, "b"), (INT_NATIVES, "iu")):
            natives[xp].clear()
            natives[xp].update(k for k, v in from_native.items() if v.kind in kinds)

    def _narrowed_error(self, dtype: D.DType) -> Any:
        """The native dtype for ``dtype`` if the library gives it now (jax's x64 mode switched on
        since this backend was set up: the tables are rebuilt), else raise DTypeError."""
        if self.name == "jax":
            jax = sys.modules.get("jax")
            if jax is not None and bool(getattr(jax.config, "jax_enable_x64", False)):
                self._build_tables()
                nat = self.to_native.get(dtype)
                if nat is not None:
                    return nat
            narrow = self.narrowed.get(dtype)
            raise DTypeError(
                f"dtype: backend 'jax' is running without 64-bit mode, so {dtype.name} would silently "
                f"become {getattr(narrow, 'name', narrow)}. Enable it before creating arrays: set the "
                "environment variable JAX_ENABLE_X64=1, or call "
                'jax.config.update("jax_enable_x64", True) at startup; or ask for float32 / complex64.'
            )
        raise DTypeError(  # pragma: no cover - only jax narrows dtypes today
            f"dtype: backend {self.name!r} would silently narrow {dtype.name}; pick another dtype."
        )

    def check_not_narrowed(self, dtype: D.DType) -> None:
        """Raise (see _narrowed_error) when an array of ``dtype`` would be narrowed on this backend."""
        if dtype in self.narrowed:
            self._narrowed_error(dtype)

    def __repr__(self) -> str:
        return f"<functorch_lite backend {self.name!r}>"

    # -- dtypes ------------------------------------------------------------
    def dtype_of(self, a: Any) -> D.DType:
        dt = self.from_native.get(a.dtype)
        if dt is None:
            raise BackendError(
                f"dtype: the {self.name} array has dtype {a.dtype!r}, which is not a dtype of "
                "the array API standard; cast it to one of bool, int8..int64, uint8..uint64, "
                "float32, float64, complex64, complex128 first."
            )
        return dt

    def native(self, dtype: D.DType | None) -> Any:
        if dtype is None:
            return None
        nat = self.to_native.get(dtype)
        if nat is None:
            if dtype in self.narrowed:
                return self._narrowed_error(dtype)
            raise BackendError(
                f"dtype: backend {self.name!r} does not support {dtype.name}; pick another dtype or another backend."
            )
        return nat

    # -- arrays --------------------------------------------------------------
    def fix(self, a: Any) -> Any:
        """Turn what an op returned into a proper array (numpy scalars become 0-d arrays)."""
        if self.is_numpy and a.__class__ is not np.ndarray:
            return np.asarray(a)
        return a

    def device(self, a: Any) -> Any:
        return array_api_compat.device(a)

    def to_device(self, a: Any, device: Any) -> Any:
        return array_api_compat.to_device(self.fix(a), device)

    def setitem(self, a: Any, key: Any, value: Any) -> Any:
        """``a[key] = value`` on a copy of ``a``; the original is never changed."""
        if self.immutable:
            return a.at[key].set(value)
        out = self.xp.asarray(a, copy=True)
        if self.name == "dask":
            key, value = _dask_setitem_key(self.xp, a, key, value)
        out[key] = value
        return out

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host numpy copy of ``a`` (DLPack where possible)."""
        if self.is_numpy:
            return np.asarray(a)
        if self.name == "cupy":
            return a.get()
        if self.name == "torch":
            return a.detach().cpu().numpy()
        if self.name == "dask":
            return np.asarray(a.compute())
        try:
            return np.from_dlpack(a)
        except Exception:
            return np.asarray(a)

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        if self.is_numpy:
            return a
        if self.narrowed:
            dt = numpy_backend.from_native.get(a.dtype)
            if dt is not None:
                self.check_not_narrowed(dt)
        try:
            out = self.xp.from_dlpack(a) if device is None else self.xp.from_dlpack(a, device=device)
        except Exception:
            out = self.xp.asarray(a) if device is None else self.xp.asarray(a, device=device)
        return out

    def from_foreign(self, a: Any, source: Backend, device: Any = None) -> Any:
        """Move an array of backend ``source`` to this backend: DLPack, else a host copy."""
        if self.narrowed:
            dt = source.from_native.get(a.dtype)
            if dt is not None:
                self.check_not_narrowed(dt)
        try:
            out = self.xp.from_dlpack(a)
            if device is not None:
                out = array_api_compat.to_device(out, device)
            return out
        except Exception:
            return self.from_numpy(source.to_numpy(a), device)


_BY_NAME: dict[str, Backend] = {}
_BY_TYPE: dict[type, Backend] = {}
_BY_NS: dict[int, Backend] = {}


def _array_types(name: str, lib: Any, xp: Any) -> tuple[type, ...]:
    if name == "numpy":
        return (np.ndarray, np.generic)
    if name == "torch":
        return (lib.Tensor,)
    if name == "cupy":
        return (lib.ndarray,)
    if name == "jax":
        return (lib.Array,)
    if name == "dask":
        return (lib.Array,)
    return (type(xp.asarray(0)),)


# The pyproject.toml extra that installs each optional backend (named in the error above).
_EXTRAS = {"cupy": "gpu", "torch": "torch", "jax": "jax", "dask": "dask", "array_api_strict": "array-api-strict"}


def _installed_names(failed: str) -> list[str]:
    """The backends whose library is installed, found without importing them (for messages)."""
    found = [n for n in BACKEND_NAMES if n in _BY_NAME or importlib.util.find_spec(_LIBRARY_MODULES[n].split(".")[0])]
    return [n for n in found if n != failed]


def get_backend(name: str) -> Backend:
    """The `Backend` called ``name`` (imported on first use)."""
    b = _BY_NAME.get(name)
    if b is not None:
        return b
    if name not in _NAMESPACE_MODULES:
        raise BackendError(f"backend: unknown backend name {name!r}; use one of {', '.join(BACKEND_NAMES)}.")
    try:
        lib = importlib.import_module(_LIBRARY_MODULES[name])
        xp = importlib.import_module(_NAMESPACE_MODULES[name])
    except ImportError as exc:
        raise BackendError(
            f"backend: {name!r} is not installed here ({exc}); install it with "
            f'pip install "functorch_lite[{_EXTRAS[name]}]", or use one of the backends installed here: '
            f"{', '.join(_installed_names(name))}."
        ) from None
    b = Backend(name, xp, _array_types(name, lib, xp))
    _BY_NAME[name] = b
    _BY_NS[id(xp)] = b
    for t in b.array_types:
        _BY_TYPE[t] = b
    return b


numpy_backend = get_backend("numpy")


def backend_of_namespace(xp: Any) -> Backend:
    b = _BY_NS.get(id(xp))
    if b is None:
        for name, mod in _NAMESPACE_MODULES.items():
            if getattr(xp, "__name__", None) == mod:
                return get_backend(name)
        raise BackendError(f"backend: namespace {xp!r} is not one functorch_lite knows.")
    return b


def backend_of(a: Any) -> Backend | None:
    """The backend that owns array ``a``, or None when ``a`` is not an array."""
    b = _BY_TYPE.get(type(a))
    if b is not None:
        return b
    for b in list(_BY_NAME.values()):
        if isinstance(a, b.array_types):
            _BY_TYPE[type(a)] = b
            return b
    if not hasattr(a, "__array_namespace__") and not array_api_compat.is_array_api_obj(a):
        return None
    try:
        xp = array_api_compat.array_namespace(a)
    except TypeError:
        return None
    name = getattr(xp, "__name__", "")
    for bname, mod in _NAMESPACE_MODULES.items():
        if name == mod or name == _LIBRARY_MODULES[bname]:
            b = get_backend(bname)
            _BY_TYPE[type(a)] = b
            return b
    return None


def available_backends() -> list[str]:
    """Names of the backends that import on this machine.

    Example:
        >>> import functorch_lite as fl
        >>> "numpy" in fl.available_backends()
        True
    """
    out = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
        except BackendError:
            continue
        out.append(name)
    return out


def _initial_default() -> str:
    name = os.environ.get("FUNCTORCH_LITE_BACKEND", "numpy") or "numpy"
    if name not in _NAMESPACE_MODULES:
        raise BackendError(
            f"FUNCTORCH_LITE_BACKEND: unknown backend name {name!r}; use one of {', '.join(BACKEND_NAMES)}."
        )
    return name


_global_default = [_initial_default()]
_context_default: contextvars.ContextVar[str | None] = contextvars.ContextVar("functorch_lite_backend", default=None)


def default_backend_name() -> str:
    """The name of the backend that new Tensors made from Python data go to.

    Example:
        >>> import functorch_lite as fl
        >>> with fl.default_backend("numpy"):
        ...     fl.default_backend_name()
        'numpy'
    """
    return _context_default.get() or _global_default[0]


def current_default() -> Backend:
    return get_backend(_context_default.get() or _global_default[0])


def set_default_backend(name: str) -> None:
    """Make ``name`` the backend of new Tensors made from Python data or creation functions.

    Example:
        >>> import functorch_lite as fl
        >>> fl.set_default_backend("numpy")
    """
    get_backend(name)
    _global_default[0] = name


@contextlib.contextmanager
def default_backend(name: str) -> Iterator[Backend]:
    """Context manager: use backend ``name`` for new Tensors inside the block.

    Example:
        >>> import functorch_lite as fl
        >>> with fl.default_backend("numpy"):
        ...     x = fl.ones((2,))
        >>> x.backend
        'numpy'
    """
    b = get_backend(name)
    token = _context_default.set(name)
    try:
        yield b
    finally:
        _context_default.reset(token)


def scatter_add(b: Backend, out: Any, key: Any, value: Any) -> Any:
    """``out[key] += value`` with duplicate indices accumulated, on a copy of ``out``."""
    xp = b.xp
    if b.is_numpy:
        res = np.array(out, copy=True)
        np.add.at(res, key, value)
        return res
    if b.immutable:
        return out.at[key].add(value)
    if b.name == "cupy":
        import cupyx

        res = out.copy()
        cupyx.scatter_add(res, key, value)
        return res
    # Generic array-API path: linear positions, sort, segment sums by cumulative_sum.
    size = 1
    for s in out.shape:
        size *= int(s)
    pos = xp.reshape(xp.arange(size, dtype=xp.int64), out.shape)[key]
    vals = xp.reshape(xp.broadcast_to(xp.asarray(value, dtype=out.dtype), pos.shape), (-1,))
    pos = xp.reshape(pos, (-1,))
    if b.name == "torch":
        res = xp.reshape(xp.asarray(out, copy=True), (-1,))
        res.index_add_(0, pos, vals)
        return xp.reshape(res, out.shape)
    order = xp.argsort(pos)
    p = xp.take(pos, order)
    v = xp.take(vals, order)
    acc_dtype = xp.float64 if out.dtype == xp.float32 else (xp.complex128 if out.dtype == xp.complex64 else out.dtype)
    c = xp.cumulative_sum(xp.astype(v, acc_dtype), include_initial=True)
    grid = xp.arange(size, dtype=xp.int64)
    ends = xp.searchsorted(p, grid, side="right")
    starts = xp.searchsorted(p, grid, side="left")
    seg = xp.astype(xp.take(c, ends) - xp.take(c, starts), out.dtype)
    return out + xp.reshape(seg, out.shape)


# -- host (numpy) round trips for checkpoints ----------------------------------------------------
def fast_reducers(xp: Any) -> dict[str, Any] | None:
    """Reductions ``f(a, axis=, keepdims=)`` that skip a library's Python-level wrappers, for
    floating arrays and no dtype argument; None where the namespace's own are used."""
    if xp is numpy_backend.xp:
        return {"sum": np.add.reduce, "prod": np.multiply.reduce, "max": np.maximum.reduce, "min": np.minimum.reduce}
    return None


class _NumpyFast:
    """numpy's array API namespace with faster equivalents of a few functions that the
    array-level vjp rules call often on small arrays (array_api_compat's wrappers, numpy's
    Python-level reductions and broadcast_to cost microseconds per call)."""

    native_bool_math = True  # bool arrays multiply floats without a cast

    def __init__(self, xp: Any) -> None:
        self._xp = xp

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._xp, name)
        setattr(self, name, fn)
        return fn

    @staticmethod
    def reshape(a: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(a, shape) if not isinstance(a, np.ndarray) else a.reshape(shape)

    @staticmethod
    def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return np.add.reduce(a, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]

    @staticmethod
    def broadcast_to(a: Any, shape: tuple[int, ...]) -> Any:
        n = 1
        for d in shape:
            n *= d
        if n > 65536:
            return np.broadcast_to(a, shape)  # a view: no copy of a large array
        r = np.empty(shape, dtype=a.dtype)  # small: a copy is cheaper than numpy's view machinery
        r[...] = a
        return r

    @staticmethod
    def permute_dims(a: Any, axes: tuple[int, ...]) -> Any:
        return np.transpose(a, axes)

    @staticmethod
    def take(a: Any, indices: Any, axis: int | None = None) -> Any:
        return a.take(indices, axis=axis) if isinstance(a, np.ndarray) else np.take(a, indices, axis=axis)

    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    empty_like = staticmethod(np.empty_like)


FAST_NAMESPACES: dict[Any, Any] = {numpy_backend.xp: _NumpyFast(numpy_backend.xp)}


def _array_refs(holder: Any) -> int:
    a = holder._a
    return sys.getrefcount(a)


class _Holder:
    __slots__ = ("_a",)

    def __init__(self, a: Any) -> None:
        self._a = a


# References to an array held by exactly one object's ``_a`` slot, as _array_refs counts them
# (measured, so the count follows the interpreter's calling convention).
_EXCLUSIVE_REFS = _array_refs(_Holder(np.empty(1)))


def setitem_in_place(holder: Any, key: Any, value: Any) -> bool:
    """Write ``holder._a[key] = value`` in place when nothing else can see the array; else False.

    Eager ``x[key] = v`` is functional (x is rebound to a new array), which costs a copy of the
    whole array per write. When x's numpy array is referenced by x alone (not a view, no view of
    it, no other Tensor, tape or user variable holding it), writing into it cannot be observed,
    so the copy is skipped. Other backends always copy.
    """
    a = holder._a
    if a.__class__ is not np.ndarray or a.base is not None or not a.flags.writeable:
        return False
    if sys.getrefcount(a) != _EXCLUSIVE_REFS:  # (the slot, the local name a, the call's argument)
        return False
    a[key] = value
    return True


def ufunc_in_place(holder: Any, ufunc: Any, other: Any) -> bool:
    """``holder._a = ufunc(holder._a, other)`` written into the array itself when nothing else
    can see it (as ``setitem_in_place``) and the result keeps its shape and dtype; else False."""
    a = holder._a
    if a.__class__ is not np.ndarray or a.base is not None or not a.flags.writeable:
        return False
    if sys.getrefcount(a) != _EXCLUSIVE_REFS:
        return False
    try:
        ufunc(a, other, out=a, casting="no")
    except (ValueError, TypeError):  # a broadcast that would grow a, or a cast: the copy path
        return False
    return True


def index_range(xp: Any, a: Any) -> tuple[int, int]:
    """(min, max) of a non-empty integer array, as Python ints (one host round trip).

    A lazy (dask) array gives (0, 0) without computing: its range is unknown until the user asks
    for a value, so the callers' bounds checks pass and dask's own indexing reports a bad index
    when the graph runs (nothing in the engine forces a compute)."""
    if isinstance(a, np.ndarray):  # the ufuncs' reduce skips numpy's Python-level wrappers
        return int(np.minimum.reduce(a, axis=None)), int(np.maximum.reduce(a, axis=None))
    if _is_dask_array(a):
        return 0, 0
    return int(xp.min(a)), int(xp.max(a))


def _is_dask_array(a: Any) -> bool:
    d = _BY_NAME.get("dask")
    return d is not None and isinstance(a, d.array_types)


def tensor_to_host(t: Any) -> np.ndarray:
    """A C-contiguous host numpy copy of concrete Tensor ``t`` (any backend), for file formats."""
    from ._core.tensor import backend_for

    c = t.concrete()
    b = backend_for(c._xp)
    a = np.asarray(b.to_numpy(b.fix(c._a)))
    return a if a.flags.c_contiguous else np.array(a, order="C")  # (ascontiguousarray makes 0-d 1-d)


def host_complex_pairs(a: Any) -> np.ndarray:
    """Host complex array ``a`` as real (re, im) pairs on a new last axis (formats without complex dtypes)."""
    return np.stack([a.real, a.imag], axis=-1)


def is_host_scalar(v: Any) -> bool:
    """A numpy scalar of a number kind (a Python number in disguise, e.g. in a program's params)."""
    return isinstance(v, np.generic) and v.dtype.kind in "biufc"


def host_to_tensor(a: Any, backend: str | None = None) -> Any:
    """A Tensor on ``backend`` (default: the default backend) holding host numpy array ``a``."""
    from ._core.tensor import wrap

    b = get_backend(backend) if backend is not None else current_default()
    arr = np.asarray(a)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return wrap(b.from_numpy(arr), b.xp)


def host_array_key(t: Any) -> tuple[int, int, tuple[int, ...], str]:
    """Identity of a concrete Tensor's memory (data pointer, size, shape, dtype) for deduplication.

    Two Tensors with equal keys hold the same bytes (tied weights).
    """
    c = t.concrete()
    a = c._a
    if isinstance(a, np.ndarray):
        ptr = a.__array_interface__["data"][0]
        return (ptr, a.nbytes, a.shape, a.dtype.str)
    return (id(a), 0, tuple(a.shape), str(a.dtype))


# -- mixed placement: numpy parameters meet dask data --------------------------------------------
# The one deliberate exception to "every input of one op lives on one backend": small numpy
# arrays (parameters, updated every step on the client) combine with dask arrays (data, large
# and chunked). The numpy side is lifted into the dask graph as a single chunk, so the result
# is a lazy dask array and nothing is computed.
def _is_lift_pair(xp1: Any, xp2: Any) -> bool:
    names = {getattr(xp1, "__name__", ""), getattr(xp2, "__name__", "")}
    return names == {_NAMESPACE_MODULES["numpy"], _NAMESPACE_MODULES["dask"]}


def mixable(xp1: Any, xp2: Any) -> bool:
    """True when arrays of namespaces ``xp1`` and ``xp2`` may meet in one op (numpy with dask)."""
    return xp1 is xp2 or _is_lift_pair(xp1, xp2)


def lift_to_dask(a: Any) -> Any:
    """Numpy array ``a`` as a dask array of one chunk (deterministically named, so the same
    parameter lifted by several ops is one key of the graph)."""
    import dask.array as da

    arr = np.asarray(a)
    return da.from_array(arr, chunks=tuple(arr.shape))


def lift_mixed(xps: list[Any], raw: list[Any]) -> tuple[Any, list[Any]] | None:
    """Inputs of one op on numpy and dask (``xps[i]``: the namespace of Tensor input i, None for
    a non-Tensor; ``raw``: the backend arrays): the dask namespace and the inputs with every numpy
    array lifted into the graph; None when the backends are not that pair (the caller raises)."""
    seen = {id(x): x for x in xps if x is not None}
    if len(seen) != 2:
        return None
    a, b = seen.values()
    if not _is_lift_pair(a, b):
        return None
    dxp = get_backend("dask").xp
    out = [lift_to_dask(r) if x is not None and x is not dxp else r for x, r in zip(xps, raw, strict=True)]
    return dxp, out


def lifted_namespace(a: Any, xp: Any) -> Any:
    """The namespace of array ``a`` when it is the other side of the numpy / dask pair from
    namespace ``xp`` (a cotangent flowing from the dask graph back into a numpy parameter, or a
    numpy one meeting a dask one); else None."""
    if xp is numpy_backend.xp:
        if a.__class__ is np.ndarray:
            return None
        b = backend_of(a)
        return b.xp if b is not None and b.name == "dask" else None
    d = _BY_NAME.get("dask")
    if d is not None and xp is d.xp and isinstance(a, (np.ndarray, np.generic)):
        return numpy_backend.xp
    return None


def is_lazy(a: Any) -> bool:
    """True for a lazy (dask) array: its values exist only once the graph is computed."""
    return _is_dask_array(a)


def gather_rows(a: Any, idx: Any) -> Any:
    """Rows ``idx`` (an integer array of any backend) of lazy array ``a``, still lazy.

    The indices go to the graph as a host numpy array, so the result's chunk sizes stay known
    (dask array indices would give unknown, nan sizes)."""
    b = backend_of(idx)
    host = np.asarray(idx) if b is None else np.asarray(b.to_numpy(b.fix(idx)))
    return a[host]


def compute_lazy(arrays: list[Any], client: Any = None, timeout: float | None = None) -> list[np.ndarray]:
    """Compute dask ``arrays`` in one graph submission (shared parts run once); host numpy arrays.

    ``client``: a ``distributed.Client`` (default: dask's current scheduler, which is the
    default client once one is created); ``timeout`` in seconds, with a client."""
    if not arrays:
        return []
    import dask

    from . import _dask_inplace

    if client is None and timeout is not None:
        client = _current_client()
    # dask's optimization, then each fused chunk task writes its elementwise chain into its own
    # dead temporaries (far fewer fresh arrays per chunk; the same numpy calls, bitwise equal)
    own = dask.config.get("array_optimize", None) is None  # (a user's own optimizer is left alone)
    with dask.config.set(array_optimize=_dask_inplace.optimize) if own else contextlib.nullcontext():
        if client is not None:
            futures = client.compute(list(arrays))
        else:
            out = dask.compute(*arrays)
    if client is not None:
        out = client.gather(futures, errors="raise") if timeout is None else _gather(client, futures, timeout)
    return [np.asarray(r) for r in out]


def _gather(client: Any, futures: Any, timeout: float) -> Any:
    import distributed

    distributed.wait(futures, timeout=timeout)
    return client.gather(futures)


def _current_client() -> Any:
    """The default ``distributed.Client`` if distributed is imported and one exists, else None."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.default_client()
    except ValueError:
        return None


def persist_lazy(arrays: list[Any], client: Any = None) -> list[Any]:
    """Dask ``arrays`` persisted (computed once, kept in the workers' memory), in one submission."""
    if not arrays:
        return []
    if client is not None:
        return list(client.persist(list(arrays)))
    import dask

    return list(dask.persist(*arrays))


def host_array(a: Any) -> np.ndarray:
    """Host numpy array of concrete backend array ``a`` (for sending to workers)."""
    b = backend_of(a)
    return np.asarray(a) if b is None else np.asarray(b.to_numpy(b.fix(a)))


def _dask_setitem_key(xp: Any, a: Any, key: Any, value: Any) -> tuple[Any, Any]:
    """Dask's ``__setitem__`` refuses ``None`` (new axes) in a key: drop them and give the value
    the shape of the view without those axes (the getitem vjp writes with the getitem's key)."""
    k = key if isinstance(key, tuple) else (key,)
    if not any(e is None for e in k):
        return key, value
    view = a[key].shape
    bare = tuple(e for e in k if e is not None)
    shape = a[bare].shape
    if hasattr(value, "shape"):
        value = xp.reshape(xp.broadcast_to(value, view), shape)
    return bare, value
