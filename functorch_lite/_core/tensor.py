"""``Tensor``: the one user-facing array type, wrapping one backend array.

A Tensor either holds a backend array (``_a``) or, inside a transform, is a
tracer whose ``_t`` payload holds the transform's values. Operators and
methods are attached by the ops layer, so this module imports nothing of it.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from .. import _backend
from .. import _dtypes as D
from .._errors import COMING_FROM_PYTORCH, LeakedGradientError, PyTorchHabitError, TransformError

__all__ = ["Tensor", "wrap", "make_tracer", "backend_for"]

_BY_XP: dict[Any, _backend.Backend] = {}
_DTMAPS = _backend.DTYPE_MAPS


def backend_for(xp: Any) -> _backend.Backend:
    """The Backend record of namespace ``xp`` (cached)."""
    b = _BY_XP.get(xp)
    if b is None:
        b = _backend.backend_of_namespace(xp)
        _BY_XP[xp] = b
    return b


class Tensor:
    """An n-dimensional array on any array API backend, transformable by grad and vmap.

    Create one with [`functorch_lite.asarray`][functorch_lite.asarray] (or ``fl.Tensor(data)``);
    ``fl.asarray(numpy_or_torch_array)`` keeps the array on its own backend.

    Example:
        >>> import functorch_lite as fl
        >>> x = fl.asarray([[1.0, 2.0], [3.0, 4.0]])
        >>> (x @ x.T).shape
        (2, 2)
    """

    __slots__ = ("_a", "_xp", "_t", "__weakref__")
    __array_ufunc__ = None  # numpy scalars defer to Tensor's reflected operators
    __array_priority__ = 1000

    if TYPE_CHECKING:  # attached at import by the ops layer (_ops/elementwise.py, indexing.py, _namespace.py)

        def __add__(self, other: Any, /) -> Tensor: ...
        def __radd__(self, other: Any, /) -> Tensor: ...
        def __iadd__(self, other: Any, /) -> Tensor: ...
        def __sub__(self, other: Any, /) -> Tensor: ...
        def __rsub__(self, other: Any, /) -> Tensor: ...
        def __isub__(self, other: Any, /) -> Tensor: ...
        def __mul__(self, other: Any, /) -> Tensor: ...
        def __rmul__(self, other: Any, /) -> Tensor: ...
        def __imul__(self, other: Any, /) -> Tensor: ...
        def __truediv__(self, other: Any, /) -> Tensor: ...
        def __rtruediv__(self, other: Any, /) -> Tensor: ...
        def __itruediv__(self, other: Any, /) -> Tensor: ...
        def __floordiv__(self, other: Any, /) -> Tensor: ...
        def __rfloordiv__(self, other: Any, /) -> Tensor: ...
        def __ifloordiv__(self, other: Any, /) -> Tensor: ...
        def __mod__(self, other: Any, /) -> Tensor: ...
        def __rmod__(self, other: Any, /) -> Tensor: ...
        def __imod__(self, other: Any, /) -> Tensor: ...
        def __pow__(self, other: Any, /) -> Tensor: ...
        def __rpow__(self, other: Any, /) -> Tensor: ...
        def __ipow__(self, other: Any, /) -> Tensor: ...
        def __matmul__(self, other: Any, /) -> Tensor: ...
        def __rmatmul__(self, other: Any, /) -> Tensor: ...
        def __imatmul__(self, other: Any, /) -> Tensor: ...
        def __and__(self, other: Any, /) -> Tensor: ...
        def __rand__(self, other: Any, /) -> Tensor: ...
        def __iand__(self, other: Any, /) -> Tensor: ...
        def __or__(self, other: Any, /) -> Tensor: ...
        def __ror__(self, other: Any, /) -> Tensor: ...
        def __ior__(self, other: Any, /) -> Tensor: ...
        def __xor__(self, other: Any, /) -> Tensor: ...
        def __rxor__(self, other: Any, /) -> Tensor: ...
        def __ixor__(self, other: Any, /) -> Tensor: ...
        def __lshift__(self, other: Any, /) -> Tensor: ...
        def __rlshift__(self, other: Any, /) -> Tensor: ...
        def __ilshift__(self, other: Any, /) -> Tensor: ...
        def __rshift__(self, other: Any, /) -> Tensor: ...
        def __rrshift__(self, other: Any, /) -> Tensor: ...
        def __irshift__(self, other: Any, /) -> Tensor: ...
        def __lt__(self, other: Any, /) -> Tensor: ...
        def __le__(self, other: Any, /) -> Tensor: ...
        def __gt__(self, other: Any, /) -> Tensor: ...
        def __ge__(self, other: Any, /) -> Tensor: ...
        def __eq__(self, other: Any, /) -> Tensor: ...  # type: ignore[override]
        def __ne__(self, other: Any, /) -> Tensor: ...  # type: ignore[override]
        def __neg__(self) -> Tensor: ...
        def __pos__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __invert__(self) -> Tensor: ...
        def __getitem__(self, key: Any, /) -> Tensor: ...
        def __setitem__(self, key: Any, value: Any, /) -> None: ...
        @property
        def T(self) -> Tensor: ...
        @property
        def mT(self) -> Tensor: ...
        def __getattr__(self, name: str) -> Any: ...  # methods: x.sum(), x.reshape(...), ...

    def __init__(self, data: Any, dtype: D.DType | None = None, device: Any = None) -> None:
        from .. import _ops

        t = _ops.asarray(data, dtype=dtype, device=device)
        self._a = t._a  # type: ignore[has-type]
        self._xp = t._xp  # type: ignore[has-type]
        self._t = t._t  # type: ignore[has-type]

    # -- metadata -------------------------------------------------------------
    @property
    def dtype(self) -> D.DType:
        """The `DType` of the elements."""
        if self._t is None:
            dt = _DTMAPS[self._xp].get(self._a.dtype)
            if dt is None:
                return backend_for(self._xp).dtype_of(self._a)
            return dt
        return self._t.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints."""
        if self._t is None:
            return tuple(self._a.shape)
        return self._t.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        if self._t is None:
            return self._a.ndim
        return len(self._t.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def device(self) -> Any:
        """The device the data lives on (the backend's own device object)."""
        if self._t is None:
            return backend_for(self._xp).device(self._a)
        return self._t.device

    @property
    def backend(self) -> str:
        """The name of the backend that holds the data (``"numpy"``, ``"torch"``, ...)."""
        return backend_for(self._xp).name

    @property
    def is_tracer(self) -> bool:
        """True inside a transform, when this Tensor stands for a traced value."""
        return self._t is not None

    # -- PyTorch habits: gradients are returned by transforms, never stored on a Tensor --------
    @property
    def grad(self) -> Any:
        """Not here: gradients are returned by ``fl.grad`` / ``nn.value_and_grad`` (raises PyTorchHabitError)."""
        raise PyTorchHabitError(
            "Tensor.grad: gradients are not stored on Tensors here; transforms return them. For a function, "
            "grads = fl.grad(loss_fn)(params, x, y); for a model, loss, grads = nn.value_and_grad(model, "
            f"loss_fn)(x, y), a dict keyed by parameter name. See {COMING_FROM_PYTORCH}"
        )

    @property
    def backward(self) -> Any:
        """Not here: differentiate with ``fl.grad`` / ``nn.value_and_grad`` (raises PyTorchHabitError)."""
        raise PyTorchHabitError(
            "Tensor.backward: there is no loss.backward() (no tape on Tensors); differentiate the function that "
            "computes the loss instead: grads = fl.grad(loss_fn)(params, x, y), or for a model loss, grads = "
            "nn.value_and_grad(model, loss_fn)(x, y), then opt.update(model, grads) (no zero_grad(), no step()). "
            f"See {COMING_FROM_PYTORCH}"
        )

    def concrete(self) -> Tensor:
        """The concrete value behind this Tensor (itself when not a tracer).

        JVP and VJP tracers have one (their primal); vmap tracers do not.
        """
        t = self
        while t._t is not None:
            t = t._t.concrete(t)
        return t

    def _array(self, what: str = "export") -> Any:
        """The backend array, as a proper array (numpy scalars become 0-d arrays), for handing
        the data out of functorch_lite (see `_exported`)."""
        c = self if self._t is None else self._exported(what)
        return backend_for(c._xp).fix(c._a)

    def _exported(self, what: str) -> Tensor:
        """The concrete Tensor behind this one, for ``what`` to hand its data out of the graph.

        A tracer with no single value (vmap, staging) raises its own error. A tracer that
        carries a gradient or tangent raises LeakedGradientError: the exported values are
        constants to whatever computes with them, so the derivative through that path would
        silently be zero. (Python scalars, ``float(t)`` and ``.item()``, stay pathwise.)
        """
        t = self
        leak = None
        while t._t is not None:
            p = t._t
            if leak is None and p.carries_derivative and p.trace.alive:
                leak = p
            t = p.concrete(t)
        if leak is not None and t.dtype.kind in "fc":
            kind = leak.trace.kind
            what_d = "gradient" if kind == "grad" else "tangent"
            raise LeakedGradientError(
                f"{what}: this Tensor carries a {what_d} inside {kind}, and {what} hands out its "
                f"values without it, so the derivative through that path would silently be zero. "
                f"Call fl.stop_gradient(t) first to use the values as a constant, or compute with "
                f"functorch_lite ops (they differentiate). float(t), int(t), bool(t) and t.item() "
                f"do give the value of a one-element Tensor."
            )
        return t

    # -- array API protocol -----------------------------------------------------
    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        if api_version is not None and api_version not in ("2021.12", "2022.12", "2023.12", "2024.12"):
            raise ValueError(
                f"__array_namespace__: api_version {api_version!r} is not supported; "
                "functorch_lite implements '2024.12' (and the earlier versions)."
            )
        import functorch_lite

        return functorch_lite

    def __dlpack__(
        self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None
    ) -> Any:
        a = self._array("__dlpack__")
        kwargs: dict[str, Any] = {}
        if stream is not None:
            kwargs["stream"] = stream
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        try:
            return a.__dlpack__(**kwargs)
        except TypeError:
            return a.__dlpack__()

    def __dlpack_device__(self) -> Any:
        return self._array("__dlpack_device__").__dlpack_device__()

    def to_device(self, device: Any, /, *, stream: Any = None) -> Tensor:
        """A copy of this Tensor on ``device`` (same backend)."""
        b = backend_for(self._xp)
        if self._t is not None:
            raise TransformError(
                "to_device: cannot move a traced Tensor between devices inside a transform; "
                "move the inputs before calling the transform."
            )
        return wrap(b.to_device(self._a, device), self._xp)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self._host("__array__ (numpy.asarray)", dtype)

    def _host(self, what: str, dtype: Any = None) -> Any:
        a = backend_for(self._xp).to_numpy(self._array(what))
        if dtype is not None:
            a = a.astype(dtype)
        return a

    # -- Python conversions -------------------------------------------------------
    def __bool__(self) -> builtins.bool:
        return builtins.bool(self._scalar("__bool__"))

    def __int__(self) -> int:
        return int(self._scalar("__int__"))

    def __float__(self) -> float:
        return float(self._scalar("__float__"))

    def __complex__(self) -> complex:
        return complex(self._scalar("__complex__"))

    def __index__(self) -> int:
        if self.dtype.kind not in "iu":
            raise TypeError(f"__index__: only integer Tensors can be used as an index; got dtype {self.dtype.name}.")
        return int(self._scalar("__index__"))

    def _scalar(self, op: str) -> Any:
        c = self.concrete()
        a = c._a
        if _size(a.shape) != 1:
            raise TypeError(
                f"{op}: only a Tensor with one element converts to a Python scalar; "
                f"got shape {tuple(a.shape)}. Index or reduce it first (t[0], t.sum())."
            )
        if a.ndim != 0:
            a = backend_for(c._xp).xp.reshape(a, ())
        return getattr(a, op)()

    def item(self) -> Any:
        """The value of a one-element Tensor as a Python scalar.

        Inside grad / jvp this is the primal value (a constant, as ``float(t)``).
        """
        c = self.concrete()
        if _size(c.shape) != 1:
            raise ValueError(f"item: only a Tensor with one element converts to a Python scalar; got shape {c.shape}.")
        b = backend_for(c._xp)
        return b.to_numpy(b.fix(c._a)).reshape(()).item()

    def tolist(self) -> Any:
        """The values as nested Python lists."""
        return self._host("tolist").tolist()

    def numpy(self) -> Any:
        """A numpy array with the values (a host copy for device backends)."""
        return self._host("numpy")

    def __len__(self) -> int:
        s = self.shape
        if not s:
            raise TypeError("len() of a 0-d Tensor; it has no first axis.")
        return s[0]

    def __iter__(self) -> Any:
        s = self.shape
        if not s:
            raise TypeError("iteration over a 0-d Tensor; it has no first axis.")
        for i in range(s[0]):
            yield self[i]

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self._t is not None:
            return f"Tensor(<{self._t!r}>, shape={self.shape}, dtype={self.dtype.name})"
        b = backend_for(self._xp)
        try:
            import numpy as _np  # repr only: formatting values

            body = _np.array2string(b.to_numpy(self._array()), separator=", ", prefix="Tensor(")
        except Exception:
            body = repr(self._a)
        return f"Tensor({body}, dtype={self.dtype.name}, backend={b.name})"

    def __str__(self) -> str:
        return self.__repr__()

    def __reduce__(self) -> Any:
        # the values (a host numpy array) and the backend's name: it comes back on its backend
        return (_rebuild, (self._host("pickle"), backend_for(self._xp).name))

    def __copy__(self) -> Tensor:
        return _alias(self)

    def __deepcopy__(self, memo: Any) -> Tensor:
        if self._t is not None:
            return _alias(self)
        b = backend_for(self._xp)
        return wrap(b.xp.asarray(self._a, copy=True), self._xp)


def _rebuild(a: Any, backend: str) -> Tensor:
    """Unpickle a Tensor: host numpy array ``a`` onto backend ``backend``."""
    return _backend.host_to_tensor(a, backend)


def _size(shape: Any) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


_new = object.__new__


def wrap(a: Any, xp: Any) -> Tensor:
    """A concrete Tensor around backend array ``a`` of namespace ``xp``."""
    t = _new(Tensor)
    t._a = a
    t._xp = xp
    t._t = None
    return t


def make_tracer(payload: Any, xp: Any) -> Tensor:
    t = _new(Tensor)
    t._a = None
    t._xp = xp
    t._t = payload
    return t


def _alias(t: Tensor) -> Tensor:
    """A new Tensor object with the same value (unaffected by later rebinding of ``t``)."""
    n = _new(Tensor)
    n._a = t._a
    n._xp = t._xp
    n._t = t._t
    return n
