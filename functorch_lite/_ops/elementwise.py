"""Elementwise functions of the standard; importing it attaches the Tensor operators.

Each function is a primitive whose impl is the backend's own function. Its
rules come from one table: a single derivative formula per op,
``apply(v, x, out) = v * df/dx`` (and one per argument for binary ops), which
serves the jvp (v a tangent) and the vjp (v a cotangent) alike. Broadcasting
is undone by the engine, and all elementwise ops share one batch rule. The
eager fast paths of the binary functions and the standard's rules for mixing
operands are in ``_binary_dispatch.py``; the operators (``x + y``, ``x += y``)
in ``_operators.py``.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core.tensor import Tensor
from . import _base
from ._base import (
    Primitive,
    as_tensor,
    bind,
    default_complex,
    default_float,
    scalar_types,
)
from ._binary_dispatch import _dunder_slow, _make_fast_binary, _scalar_first, prep_binary
from ._operators import attach_operators as _attach_operators
from ._operators import rebind as rebind  # (re-exported: _namespace.__imatmul__ uses it)

_new = object.__new__
__all__: list[str] = []


_NUMPY_XP = _backend.numpy_backend.xp
_NUMPY_FAST = _backend.FAST_NAMESPACES[_NUMPY_XP]  # what avjp rules get on numpy
_NO_PARAMS: dict[str, Any] = {}  # shared, never mutated


def _doc_values(name: str) -> tuple[str, str]:
    """Two literals of a dtype op ``name`` accepts, for its generated docstring example."""
    if name.startswith("bitwise"):
        return "3", "5"
    if name.startswith("logical"):
        return "True", "False"
    if name == "imag":
        return "0.5+1j", "2j"
    return "0.5", "2.0"


# ----------------------------------------------------------------------------
# Shared rules
# ----------------------------------------------------------------------------


def elementwise_batch(axis_size: int, vals: Any, dims: Any, **params: Any) -> tuple[Any, int]:
    """Batch rule of every elementwise op: batch axes to the front, ranks aligned."""
    moveaxis = _manipulation.moveaxis
    reshape = _manipulation.reshape

    rank = 0
    for v, d in zip(vals, dims, strict=True):
        if isinstance(v, Tensor):
            r = v.ndim - (d is not None)
            if r > rank:
                rank = r
    out = []
    for v, d in zip(vals, dims, strict=True):
        if d is not None:
            if d != 0:
                v = moveaxis(v, d, 0)
            r = v.ndim - 1
            if r < rank:
                s = v.shape
                v = reshape(v, (s[0],) + (1,) * (rank - r) + s[1:])
        out.append(v)
    return out, 0


class _FLNamespace:
    """The ops the derivative formulas call, as functorch_lite functions (differentiable).

    Each formula is written once against a namespace ``ns``: this one for the Tensor-level
    rules (jvp, vjp: differentiable and batchable), the backend namespace for the array-level
    vjp (``Primitive.avjp``) that first-order backward runs on concrete arrays."""

    def __getattr__(self, name: str) -> Any:
        for mod in (globals(), vars(_searching), vars(_ops_dtypes)):
            if name in mod:
                fn = mod[name]
                setattr(self, name, fn)
                return fn
        raise AttributeError(name)


FL = _FLNamespace()


def _unary_rules(prim: Primitive, apply: Callable[..., Any] | None, raw: bool = True) -> None:
    prim.batch = lambda n, vals, dims, **p: (bind(prim, elementwise_batch(n, vals, dims)[0], p), 0)
    if apply is None:
        return
    fl = FL
    prim.jvp = lambda ts, out, x, **p: apply(fl, ts[0], x, out)
    prim.vjp = lambda g, out, x, **p: (apply(fl, g, x, out),)
    if raw:
        # x may be a shape-only stand-in when pruned: then the formula does not read it
        prim.avjp = lambda xp, g, o, ps, par, pm: (apply(xp, g, ps[0]._a, o),)
        prim.aunary = apply


def _binary_rules(
    prim: Primitive,
    ax: Callable[..., Any] | None,
    ay: Callable[..., Any] | None,
    raw: bool = True,
) -> None:
    prim.batch = lambda n, vals, dims, **p: (bind(prim, elementwise_batch(n, vals, dims)[0], p), 0)
    if ax is None and ay is None:
        return
    fl = FL

    def jvp(ts: Any, out: Any, x: Any, y: Any, **p: Any) -> Any:
        tx, ty = ts
        r = None
        if tx is not None and ax is not None:
            r = ax(fl, tx, x, y, out)
        if ty is not None and ay is not None:
            u = ay(fl, ty, x, y, out)
            r = u if r is None else r + u
        return r

    def vjp(g: Any, out: Any, x: Any, y: Any, **p: Any) -> Any:
        return (
            None if ax is None else (lambda: ax(fl, g, x, y, out)),
            None if ay is None else (lambda: ay(fl, g, x, y, out)),
        )

    def avjp(xp: Any, g: Any, o: Any, ps: Any, par: Any, pm: Any) -> Any:
        x, y = ps
        if isinstance(x, Tensor):
            x = x._a
        if isinstance(y, Tensor):
            y = y._a
        return (
            None if ax is None or par[0] is None else ax(xp, g, x, y, o),
            None if ay is None or par[1] is None else ay(xp, g, x, y, o),
        )

    prim.jvp = jvp
    prim.vjp = vjp
    if raw:
        prim.avjp = avjp
        prim.abinary = (ax, ay)


# ----------------------------------------------------------------------------
# Function makers (the unary eager fast path; binary ones: _binary_dispatch.py)
# ----------------------------------------------------------------------------


def _unary(
    name: str, apply: Callable[..., Any] | None, *, differentiable: bool = True, doc: str = "", raw: bool = True
) -> Any:
    _np = getattr(_NUMPY_XP, name)
    prim = Primitive(
        name,
        lambda xp, x, _n=name, _np=_np: _np(x) if xp is _NUMPY_XP else getattr(xp, _n)(x),
        differentiable=differentiable,
    )
    prim.direct = lambda xp, _n=name, _np=_np: _np if xp is _NUMPY_XP else getattr(xp, _n)
    _unary_rules(prim, apply, raw)

    npxp = _NUMPY_XP
    np_fn = getattr(npxp, name)

    def op(x: Any, /) -> Tensor:
        if x.__class__ is Tensor and x._t is None:
            xp = x._xp
            t = _new(Tensor)
            t._a = np_fn(x._a) if xp is npxp else getattr(xp, name)(x._a)
            t._xp = xp
            t._t = None
            return t
        if x.__class__ is Tensor:
            p = x._t
            if p is not None:
                tr = p.trace
                if tr.alive:
                    if tr.record1 is not None:
                        r = tr.record1(prim, p, x, None, np_fn if x._xp is npxp else None)
                        if r is not None:
                            return r
                    return tr.process(prim, (x,), _NO_PARAMS)
        return bind(prim, (as_tensor(x, name),), {})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        doc
        or f"Elementwise ``{name}`` of the array API standard.\n\nExample:\n    >>> import functorch_lite as fl\n    >>> fl.{name}(fl.asarray([{_doc_values(name)[0]}])).shape\n    (1,)\n"
    )
    op.prim = prim  # type: ignore[attr-defined]
    globals()[name] = op
    __all__.append(name)
    return op


_DUNDERS: dict[str, Any] = {}


def _binary(
    name: str,
    ax: Callable[..., Any] | None,
    ay: Callable[..., Any] | None,
    *,
    differentiable: bool = True,
    symbol: str | None = None,
    raw: bool = True,
) -> Any:
    _np = getattr(_NUMPY_XP, name)
    prim = Primitive(
        name,
        lambda xp, x, y, _n=name, _np=_np: _np(x, y) if xp is _NUMPY_XP else getattr(xp, _n)(x, y),
        differentiable=differentiable,
    )
    prim.direct = lambda xp, _n=name, _np=_np: _np if xp is _NUMPY_XP else getattr(xp, _n)
    _binary_rules(prim, ax, ay, raw)

    def slow(x: Any, y: Any) -> Tensor:
        if x.__class__ is Tensor:
            p = x._t
            yc = y.__class__
            if p is not None and (yc is float or yc is int):
                tr = p.trace
                if tr.float_only and tr.alive:  # grad / jvp tracers are always floating
                    if tr.record1 is not None:
                        r = tr.record1(prim, p, x, y)
                        if r is not None:
                            return r
                    return tr.process(prim, (x, y), _NO_PARAMS)
        x, y = prep_binary(name, x, y)
        try:
            return bind(prim, (x, y), {})
        except ValueError:
            if isinstance(x, Tensor) and isinstance(y, Tensor):
                broadcast_shapes = _manipulation.broadcast_shapes

                broadcast_shapes(x.shape, y.shape)  # raises ShapeError naming both shapes
            raise

    op = _make_fast_binary(name, slow, prim)
    op.__module__ = __name__  # (made in _binary_dispatch; public here, as fl.add pickles by name)
    dunder = _scalar_first(name, _make_fast_binary(name, _dunder_slow(slow), prim), prim)
    dunder.__name__ = name
    _DUNDERS[name] = dunder
    op.__name__ = op.__qualname__ = name
    a, b = _doc_values(name)
    op.__doc__ = f"Elementwise ``{name}`` of the array API standard (broadcasting).\n\nExample:\n    >>> import functorch_lite as fl\n    >>> fl.{name}(fl.asarray([{a}, {b}]), fl.asarray([{b}, {a}])).shape\n    (2,)\n"
    op.prim = prim  # type: ignore[attr-defined]
    globals()[name] = op
    __all__.append(name)
    return op


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------
# Derivative formulas use public ops, so they are themselves differentiable and batchable.
# They are looked up lazily (g is this module's globals) so the table can reference ops
# defined further down.

g = globals()
LN2 = math.log(2.0)
LN10 = math.log(10.0)


_unary("abs", lambda ns, v, x, o: v * ns.sign(x) if not x.dtype.kind == "c" else ns.real(ns.conj(x) * v) / o, raw=False)
_unary("acos", lambda ns, v, x, o: -v / ns.sqrt(1.0 - x * x))
_unary("acosh", lambda ns, v, x, o: v / ns.sqrt((x - 1.0) * (x + 1.0)))
_unary("asin", lambda ns, v, x, o: v / ns.sqrt(1.0 - x * x))
_unary("asinh", lambda ns, v, x, o: v / ns.sqrt(x * x + 1.0))
_unary("atan", lambda ns, v, x, o: v / (x * x + 1.0))
_unary("atanh", lambda ns, v, x, o: v / (1.0 - x * x))
_unary("cos", lambda ns, v, x, o: -v * ns.sin(x))
_unary("cosh", lambda ns, v, x, o: v * ns.sinh(x))
_unary("exp", lambda ns, v, x, o: v * o)
_unary("expm1", lambda ns, v, x, o: v * (o + 1.0))
_unary("log", lambda ns, v, x, o: v / x)
_unary("log1p", lambda ns, v, x, o: v / (x + 1.0))
_unary("log2", lambda ns, v, x, o: v / (x * LN2))
_unary("log10", lambda ns, v, x, o: v / (x * LN10))
_unary("negative", lambda ns, v, x, o: -v)
_unary("positive", lambda ns, v, x, o: v)
_unary("reciprocal", lambda ns, v, x, o: -v * o * o)
_unary("sin", lambda ns, v, x, o: v * ns.cos(x))
_unary("sinh", lambda ns, v, x, o: v * ns.cosh(x))
_unary("sqrt", lambda ns, v, x, o: v / (o * 2.0))
_unary("square", lambda ns, v, x, o: v * (x * 2.0))
_unary("tan", lambda ns, v, x, o: v * (o * o + 1.0))
_unary("tanh", lambda ns, v, x, o: v * (1.0 - o * o))
# complex parts: Tensor-level rules only (their dtype changes need fit_cotangent)
_unary("conj", lambda ns, v, x, o: ns.conj(v), raw=False)
_unary("real", lambda ns, v, x, o: ns.real(v), raw=False)
_unary("imag", lambda ns, v, x, o: ns.imag(v), raw=False)
# The transpose of imag (pairing <c, t> = real(c * t), as for every rule here) is c -> -1j * c.
g["imag"].prim.vjp = lambda ct, out, x, **p: (ct * -1j,)
# Likewise abs of complex x: <c, real(conj(x) t) / |x|> = real((c conj(x) / |x|) t).
g["abs"].prim.vjp = lambda ct, out, x, **p: (ct * FL.sign(x) if x.dtype.kind != "c" else ct * FL.conj(x) / out,)
# NOTE: zero-derivative ops (rounding, sign) are non-differentiable: outputs carry no gradient.
for _n in ("ceil", "floor", "round", "trunc", "sign"):
    _unary(_n, None, differentiable=False)
for _n in ("isfinite", "isinf", "isnan", "signbit", "logical_not", "bitwise_invert"):
    _unary(_n, None, differentiable=False)


def _pow_dx(ns: Any, v: Any, x: Any, y: Any, o: Any) -> Any:
    if isinstance(y, (int, float)):
        if y == 0:
            return v * 0.0
        return v * (y * ns.pow(x, y - 1))
    return v * FL.where(FL.equal(y, 0.0), 0.0, y * FL.pow(x, y - 1.0))


def _pow_dy(ns: Any, v: Any, x: Any, y: Any, o: Any) -> Any:
    # NOTE: d/dy x**y = log(x) x**y; taken as 0 where x == 0 (the limit for y > 0), as JAX does.
    if isinstance(x, (int, float)):
        return v * (o * math.log(x)) if x > 0 else v * 0.0
    safe = FL.where(FL.equal(x, 0.0), 1.0, x)
    return v * (o * FL.log(safe))


# NOTE: relu is a primitive (not maximum(x, 0)) for speed: its vjp is one compare and one
# multiply on the output, where maximum's tie-splitting rule needs five passes.
relu_p = Primitive("relu", lambda xp, x: xp.maximum(x, 0))
relu_p.jvp = lambda ts, out, x: ts[0] * _mask_of(out)
relu_p.vjp = lambda g, out, x: (g * _mask_of(out),)
relu_p.batch = lambda n, vals, dims: (bind(relu_p, vals, {}), dims[0])


def _relu_raw(xp: Any, g: Any, x: Any, o: Any) -> Any:
    return g * (o > 0) if xp is _NUMPY_FAST else g * xp.astype(xp.greater(o, 0), g.dtype)


relu_p.aunary = _relu_raw
relu_p.avjp = lambda xp, g, o, ps, par, pm: (_relu_raw(xp, g, None, o),)


def _mask_of(out: Any) -> Any:
    # the gradient at 0 is 0, as in PyTorch
    m = FL.greater(out, 0)
    return m if out._xp is _NUMPY_XP and out._t is None else _ops_dtypes.astype(m, out.dtype)


def relu(x: Any, /) -> Tensor:
    """max(x, 0), with gradient 0 at 0 (as PyTorch).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite._ops.elementwise import relu
        >>> relu(fl.asarray([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    if x.__class__ is Tensor and x._t is None:
        xp = x._xp
        t = _new(Tensor)
        t._a = xp.maximum(x._a, 0)
        t._xp = xp
        t._t = None
        return t
    if x.__class__ is Tensor:
        p = x._t
        tr = p.trace
        if tr.record1 is not None and tr.alive:  # reverse mode: record directly
            r = tr.record1(relu_p, p, x, None)
            if r is not None:
                return r
    return bind(relu_p, (as_tensor(x, "relu"),), {})


def _max_mask(x: Any, y: Any) -> Any:
    # NOTE: at ties the gradient is split evenly between the arguments (as JAX does).
    astype = _ops_dtypes.astype

    gt = FL.greater(x, y)
    eq = FL.equal(x, y)
    dt = FL.result_type(x, y)
    return astype(gt, dt) + astype(eq, dt) * 0.5


_binary("add", lambda ns, v, x, y, o: v, lambda ns, v, x, y, o: v)
_binary("subtract", lambda ns, v, x, y, o: v, lambda ns, v, x, y, o: -v)
_binary("multiply", lambda ns, v, x, y, o: v * y, lambda ns, v, x, y, o: v * x)
_binary("divide", lambda ns, v, x, y, o: v / y, lambda ns, v, x, y, o: -v * o / y)
_binary("pow", _pow_dx, _pow_dy, raw=False)
_binary(
    "atan2",
    lambda ns, v, x, y, o: v * y / (x * x + y * y),
    lambda ns, v, x, y, o: -v * x / (x * x + y * y),
)
_binary("hypot", lambda ns, v, x, y, o: v * x / o, lambda ns, v, x, y, o: v * y / o)
_binary(
    "logaddexp",
    lambda ns, v, x, y, o: v * ns.exp(x - o),
    lambda ns, v, x, y, o: v * ns.exp(y - o),
)
# maximum/minimum/copysign/remainder: Tensor-level rules only (masks and casts)
_binary("maximum", lambda ns, v, x, y, o: v * _max_mask(x, y), lambda ns, v, x, y, o: v * _max_mask(y, x), raw=False)
_binary("minimum", lambda ns, v, x, y, o: v * _max_mask(y, x), lambda ns, v, x, y, o: v * _max_mask(x, y), raw=False)
_binary(
    "copysign",
    lambda ns, v, x, y, o: v * FL.where(FL.equal(FL.signbit(x), FL.signbit(y)), 1.0, -1.0),
    None,
    raw=False,
)
_binary("remainder", lambda ns, v, x, y, o: v, lambda ns, v, x, y, o: -v * FL.floor_divide(x, y), raw=False)
for _n in (
    "floor_divide",
    "nextafter",
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_left_shift",
    "bitwise_right_shift",
):
    _binary(_n, None, None, differentiable=False)

# NOTE: operator ** keeps numpy's behaviour of the backend for integer powers.


def result_type(*arrays_and_dtypes: Any) -> D.DType:
    """The dtype the standard's promotion rules give for the arguments (Python scalars allowed).

    Example:
        >>> import functorch_lite as fl
        >>> fl.result_type(fl.float32, fl.float64)
        functorch_lite.float64
    """
    check_dtype = _base.check_dtype

    if not arrays_and_dtypes:
        raise ValueError("result_type: needs at least one array or dtype.")
    dts: list[D.DType] = []
    scalars: list[Any] = []
    for a in arrays_and_dtypes:
        if isinstance(a, Tensor):
            dts.append(a.dtype)
        elif isinstance(a, scalar_types):
            scalars.append(a)
        elif hasattr(a, "shape") and hasattr(a, "dtype"):
            dts.append(as_tensor(a, "result_type").dtype)
        else:
            dts.append(check_dtype(a, "result_type"))
    if not dts:
        dtype_of = _base.dtype_of

        dts = [dtype_of(scalars.pop(0))]
    r = dts[0]
    for d in dts[1:]:
        r = D.promote(r, d)
    for s in scalars:
        if isinstance(s, builtins.bool):
            continue
        if isinstance(s, int):
            if r.kind == "b":
                r = D.int64
        elif isinstance(s, float):
            if r.kind in "biu":
                r = default_float()
        elif isinstance(s, complex):
            if r.kind != "c":
                r = D.complex128 if r is D.float64 else default_complex()
    return r


__all__.append("result_type")


# ----------------------------------------------------------------------------
# Tensor operators
# ----------------------------------------------------------------------------

_attach_operators(g, _DUNDERS)


# What each rule reads besides shapes and dtypes, (inputs, output); see Primitive.residuals.
def _set_residuals() -> None:
    from .._core.engine import PRIMITIVES

    table = {
        (False, False): ("add", "subtract", "negative", "positive", "conj", "real", "imag"),
        (False, True): ("exp", "expm1", "tanh", "sqrt", "tan", "relu"),
        (True, False): (
            "sin", "cos", "sinh", "cosh", "log", "log1p", "log2", "log10", "square", "acos",
            "asin", "atan", "acosh", "asinh", "atanh", "multiply", "maximum", "minimum",
            "atan2", "copysign", "remainder",
        ),
    }  # fmt: skip
    for flags, names in table.items():
        for n in names:
            PRIMITIVES[n].residuals = flags


_set_residuals()


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import dtypes as _ops_dtypes  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
from . import searching as _searching  # noqa: E402
