"""Primitives, ``bind`` and the thread-local trace stack.

A primitive carries its impl and its rules (vjp, jvp, batch) in one place.
``bind`` looks at its Tensor arguments: if none is a tracer the impl runs at
once on the backend arrays (no tape, no tracer); otherwise the trace of the
highest level among them processes the call. Each transform invocation gets a
fresh, ever-increasing level on a thread-local stack, so nested transforms
never confuse their perturbations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import BackendMismatchError, EscapedTracerError, FunctorchLiteError
from .tensor import Tensor, wrap

__all__ = [
    "Primitive",
    "Trace",
    "Payload",
    "bind",
    "new_trace",
    "active_traces",
    "find_top_trace",
    "stack_str",
    "PRIMITIVES",
]

PRIMITIVES: dict[str, Primitive] = {}
_new = object.__new__


class Primitive:
    """A named operation with an impl and its differentiation and batching rules.

    Rule signatures (``None`` in a result means a symbolic zero):

    * ``impl(xp, *arrays, **params) -> array`` (a tuple when ``multiple_results``)
    * ``jvp(tangents, out, *primals, **params) -> tangent_out``
    * ``vjp(g, out, *primals, **params) -> tuple`` of cotangents per positional
      input; an entry may be a zero-argument function, called only when that
      input needs a gradient.
    * ``batch(axis_size, vals, dims, **params) -> (out, out_dim)``
    * ``avjp(xp, g, out, primals, parents, params) -> tuple`` (optional): the vjp on backend
      arrays, used by first-order backward when the cotangent and every residual are concrete
      (no Tensor is allocated and nothing is dispatched). ``g`` and ``out`` are backend
      arrays, ``primals`` the recorded inputs (concrete Tensors, possibly shape-only stand-ins
      for pruned residuals, or Python scalars), ``parents[i] is None`` where input ``i`` needs
      no gradient; a result entry is a backend array or None. It must compute what ``vjp``
      computes, in the same dtypes; the rule tests run both.

    ``differentiable=False`` marks primitives whose outputs carry no
    gradient (comparisons, argmax, integer ops).
    """

    __slots__ = (
        "name",
        "impl",
        "jvp",
        "vjp",
        "batch",
        "multiple_results",
        "differentiable",
        "residuals",
        "avjp",
        "aunary",
        "abinary",
        "direct",
        "__weakref__",
    )

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        *,
        multiple_results: bool = False,
        differentiable: bool = True,
    ) -> None:
        self.name = name
        self.impl = impl
        self.jvp: Callable[..., Any] | None = None
        self.vjp: Callable[..., Any] | None = None
        self.batch: Callable[..., Any] | None = None
        self.multiple_results = multiple_results
        self.differentiable = differentiable
        # What the vjp/jvp rules read besides shapes and dtypes: (inputs, output). Reverse
        # mode keeps only those after the forward pass, so the tape holds the minimum.
        self.residuals: tuple[bool, bool] = (True, True)
        self.avjp: Callable[..., Any] | None = None
        # Elementwise avjp rules in per-input form, which backward calls without the tuple
        # protocol when one input needs a gradient (set together with avjp):
        # ``aunary(xp, g, x, out)`` and ``abinary = (fx, fy)``, ``f(xp, g, x, y, out)`` or None.
        self.aunary: Callable[..., Any] | None = None
        self.abinary: tuple[Any, Any] | None = None
        # ``direct(xp)``: the backend function the impl calls for a param-less call on
        # namespace ``xp`` (or None), so a compiled program calls it without the impl's wrapper.
        self.direct: Callable[[Any], Any] | None = None
        PRIMITIVES[name] = self

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, args, params)

    def def_jvp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.jvp = rule
        return rule

    def def_vjp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.vjp = rule
        return rule

    def def_batch(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.batch = rule
        return rule


class Trace:
    """One transform invocation: its level, and whether it is still running."""

    __slots__ = ("level", "alive", "kind", "__weakref__")
    kind_name = "transform"
    float_only = False  # True where every tracer is floating (grad, jvp)
    record1: Any = None  # optional fast path for one tracer (+ a Python scalar); see VJPTrace

    def __init__(self, level: int) -> None:
        self.level = level
        self.alive = True
        self.kind = self.kind_name

    def process(self, prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def process_custom(self, call: Any, args: Sequence[Any]) -> Any:
        """Handle a custom_vjp / custom_jvp / checkpoint call (see transforms.custom)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        # the user-visible name only: levels are an implementation detail (and differ per call)
        return self.kind


class Payload:
    """What a tracer Tensor carries instead of an array: its trace and its value(s).

    The metadata properties (``shape``, ``dtype``, ``device``) must work without a concrete
    value (under vmap there is none, under staging none yet). ``concrete(t)`` returns the
    Tensor whose value ``t`` stands for, or raises the trace's own error when there is no
    single one. ``carries_derivative`` is True where handing out that value would drop a
    gradient or tangent (forward and reverse mode), so exporting it (numpy, DLPack) raises.
    """

    __slots__ = ("trace",)
    carries_derivative = False

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def dtype(self) -> Any:
        raise NotImplementedError

    @property
    def device(self) -> Any:
        raise NotImplementedError

    def concrete(self, t: Tensor) -> Tensor:
        raise NotImplementedError


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[Trace] = []
        self.counter = 0


_state = _State()


def active_traces() -> list[Trace]:
    """The transforms running on this thread, outermost first."""
    return _state.stack


class new_trace:
    """Context manager: push a fresh trace of class ``cls`` and kill it on exit."""

    __slots__ = ("cls", "kwargs", "trace")

    def __init__(self, cls: type[Trace], **kwargs: Any) -> None:
        self.cls = cls
        self.kwargs = kwargs

    def __enter__(self) -> Any:
        st = _state
        st.counter += 1
        tr = self.cls(st.counter, **self.kwargs)
        st.stack.append(tr)
        self.trace = tr
        return tr

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        self.trace.alive = False
        if ev is not None and isinstance(ev, FunctorchLiteError):
            add_stack(ev)
        st = _state.stack
        if st and st[-1] is self.trace:
            st.pop()
        else:  # pragma: no cover - out-of-order exit (a generator kept a transform open)
            try:
                st.remove(self.trace)
            except ValueError:
                pass


def stack_str() -> str:
    """`` (inside vmap > grad)``: the transforms running now, outermost first ('' when none)."""
    s = " > ".join(t.kind for t in _state.stack)
    return f" (inside {s})" if s else ""


def add_stack(exc: BaseException) -> None:
    """Append the running transforms to ``exc``'s message, once.

    Called by each transform as an error leaves it (``new_trace.__exit__``): the innermost
    transform sees the error first, while the whole stack is still in place, and marks it, so
    the outer transforms leave it alone. Messages that name the stack themselves (``(inside``)
    are left as they are. The eager path never gets here.
    """
    if getattr(exc, "_fl_stack", False):
        return
    try:
        exc._fl_stack = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - an exception type with __slots__
        return
    args = exc.args
    msg = args[0] if args and isinstance(args[0], str) else None
    if msg is not None and "(inside " in msg:
        return
    where = stack_str()
    if not where:
        return
    if msg is None:
        exc.args = (where.strip(),) + args
    else:
        exc.args = (msg + where,) + args[1:]


def _dead(trace: Trace) -> EscapedTracerError:
    return EscapedTracerError(
        f"A tracer made inside {trace.kind} was used after that {trace.kind} call returned. "
        "A value computed inside a transform escaped it, e.g. stored in a global, a closure, "
        "a list or a module attribute. Return it from the transformed function instead, or "
        "call stop_gradient before storing it."
    )


def find_top_trace(args: Sequence[Any]) -> Trace | None:
    top = None
    for a in args:
        if isinstance(a, Tensor):
            p = a._t
            if p is not None:
                tr = p.trace
                if not tr.alive:
                    raise _dead(tr)
                if top is None or tr.level > top.level:
                    top = tr
    return top


def bind(prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Any:
    """Apply ``prim`` to ``args``: eagerly, or through the highest active trace among them."""
    top = None
    for a in args:
        if isinstance(a, Tensor):
            p = a._t
            if p is not None:
                tr = p.trace
                if not tr.alive:
                    raise _dead(tr)
                if top is None or tr.level > top.level:
                    top = tr
    if top is None:
        return eager(prim, args, params)
    return top.process(prim, args, params)


def eager(prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Any:
    if len(args) == 1:
        a = args[0]
        if a.__class__ is Tensor:
            xp = a._xp
            out = prim.impl(xp, a._a, **params)
            if prim.multiple_results:
                return tuple(wrap(o, xp) for o in out)
            t = _new(Tensor)
            t._a = out
            t._xp = xp
            t._t = None
            return t
    elif len(args) == 2 and not prim.multiple_results:
        a, b = args
        ac, bc = a.__class__, b.__class__
        if ac is Tensor and (bc is float or bc is int):
            xp = a._xp
            t = _new(Tensor)
            t._a = prim.impl(xp, a._a, b, **params)
            t._xp = xp
            t._t = None
            return t
        if ac is Tensor and bc is Tensor and a._xp is b._xp:
            xp = a._xp
            t = _new(Tensor)
            t._a = prim.impl(xp, a._a, b._a, **params)
            t._xp = xp
            t._t = None
            return t
    xp = None
    raw = []
    mixed = None
    for a in args:
        if isinstance(a, Tensor):
            axp = a._xp
            if xp is None:
                xp = axp
            elif axp is not xp:
                mixed = axp
            raw.append(a._a)
        else:
            raw.append(a)
    if mixed is not None:  # numpy meets dask: lifted into the graph (_backend.lift_mixed); else an error
        from .._backend import lift_mixed

        lifted = lift_mixed([a._xp if isinstance(a, Tensor) else None for a in args], raw)
        if lifted is None:
            raise mixed_backends(prim.name, xp, mixed)
        xp, raw = lifted
    if xp is None:
        from .._backend import current_default

        xp = current_default().xp
    out = prim.impl(xp, *raw, **params)
    if prim.multiple_results:
        return tuple(wrap(o, xp) for o in out)
    return wrap(out, xp)


def mixed_backends(op: str, xp1: Any, xp2: Any) -> BackendMismatchError:
    from .._backend import backend_of_namespace

    n1 = backend_of_namespace(xp1).name
    n2 = backend_of_namespace(xp2).name
    return BackendMismatchError(
        f"{op}: its inputs live on two backends, {n1!r} and {n2!r}; every input of one op must "
        f"live on one backend (the one exception: numpy with dask, see fl.dask). Move one with "
        f"fl.to_backend(t, {n1!r}) first."
    )
