"""Reverse mode: ``vjp``, ``grad``, ``value_and_grad`` (the tape they record, and the backward pass over it)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import _dtypes as _dtypes
from .._backend import FLOAT_NATIVES as _FLOATS
from .._core import engine as _engine
from .._core import tree_util as tu
from .._core.engine import active_traces, add_stack
from .._core.tensor import Tensor
from .._errors import FunctorchLiteError, NonScalarOutputError, TransformError
from .._ops import _base as _base
from .._ops import creation as _creation
from . import _ad as _ad
from ._ad import Node, VJPTrace, backward

_new = object.__new__


def _stack_str() -> str:
    s = " > ".join(repr(t) for t in active_traces())
    return f" (inside {s})" if s else ""


def _to_leaf(x: Any, what: str) -> Tensor:
    asarray = _base.asarray

    if isinstance(x, Tensor):
        return x
    try:
        return asarray(x)
    except Exception as exc:
        raise TransformError(
            f"{what}: every leaf of the inputs must be an array or a number; got "
            f"{type(x).__name__} ({exc}). Mark non-array arguments static by closing over them."
        ) from None


def _is_float(t: Tensor) -> bool:
    return t.dtype.kind in "fc"


# --------------------------------------------------------------------------------------
# vjp / grad
# --------------------------------------------------------------------------------------
class _Tape:
    __slots__ = ("trace", "nodes", "in_payloads", "in_leaves", "in_tree", "out_payloads", "out_primals", "out_tree")


def _record(
    f: Callable[..., Any], primals: Sequence[Any], has_aux: bool, what: str, on_int: Any = None
) -> tuple[_Tape, Any, Any]:
    """Run ``f`` on tracers of a new VJP trace; ``on_int(leaf_index)`` (when given) is called
    for a non-floating input leaf before ``f`` runs (it raises)."""
    leaves, in_tree = tu.tree_flatten(tuple(primals))
    tape = _Tape()
    # (new_trace(VJPTrace), inlined: this runs once per gradient call)
    st = _engine._state
    st.counter += 1
    tr = VJPTrace(st.counter)
    stack = st.stack
    stack.append(tr)
    try:
        tracers = []
        in_payloads: list[Any] = []  # read now: f may rebind its arguments (x[i] = v, x += y)
        for i, x in enumerate(leaves):
            if x.__class__ is not Tensor:
                x = leaves[i] = _to_leaf(x, what)
            if (x._a.dtype in _FLOATS[x._xp]) if x._t is None else _is_float(x):
                node = _new(Node)  # (VJPTrace.new_input, inlined)
                node.trace = tr
                node.primal = node.out = x
                node.idx = -1
                node.prim = node.params = None
                node.parents = node.primals = ()
                node.ct = node.tan = None
                node.multi = node.raw = False
                t = _new(Tensor)
                t._a = None
                t._xp = x._xp
                t._t = node
                tracers.append(t)
                in_payloads.append(node)
            else:
                if on_int is not None:
                    on_int(i)
                tracers.append(x)
                in_payloads.append(None)
        out = f(*in_tree.unflatten(tracers))
        aux = None
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TransformError(
                    f"{what}(has_aux=True): the function must return a pair (output, aux); got "
                    f"{type(out).__name__}. Return (out, aux) or set has_aux=False."
                )
            out, aux = out
            if aux is not None:
                aux = _strip(aux, tr)
        if out.__class__ is Tensor:  # one Tensor (grad's case): no pytree walk
            out_leaves, out_tree = [out], _leaf_treedef()
        else:
            out_leaves, out_tree = tu.tree_flatten(out)
    except BaseException as exc:
        tr.alive = False
        if isinstance(exc, FunctorchLiteError):
            add_stack(exc)
        _pop(stack, tr)
        raise
    tr.alive = False
    _pop(stack, tr)
    tape.trace = tr
    # the nodes move to the tape record: the trace keeps no reference to them, so no
    # trace <-> node cycle holds the residuals until the cyclic garbage collector runs
    tape.nodes = tr.tape
    tr.tape = []
    tape.in_leaves = leaves
    tape.in_tree = in_tree
    tape.in_payloads = in_payloads
    payloads = []
    prim_outs = []
    for o in out_leaves:
        if o.__class__ is not Tensor:
            o = _to_leaf(o, what)
        p = o._t
        if p is not None and p.trace is tr:
            payloads.append(p)
            prim_outs.append(p.primal)
        else:
            payloads.append(None)
            prim_outs.append(o)
    tape.out_payloads = payloads
    tape.out_primals = prim_outs
    if tr.prunable:
        _ad.prune(tr)
    tape.out_tree = out_tree
    return tape, (prim_outs[0] if out_tree is _LEAF[0] else tu.tree_unflatten(out_tree, prim_outs)), aux


def _pop(stack: list[Any], tr: Any) -> None:
    """Take trace ``tr`` off the trace stack (new_trace.__exit__'s bookkeeping)."""
    if stack and stack[-1] is tr:
        stack.pop()
    else:  # pragma: no cover - out-of-order exit (a generator kept a transform open)
        try:
            stack.remove(tr)
        except ValueError:
            pass


_LEAF: list[Any] = [None]


def _leaf_treedef() -> Any:
    """The structure of one Tensor leaf (cached)."""
    t = _LEAF[0]
    if t is None:
        t = _LEAF[0] = tu.tree_flatten(Tensor.__new__(Tensor))[1]
    return t


def _strip(tree: Any, tr: Any) -> Any:
    """Replace this trace's tracers in ``tree`` by their primal values."""

    def f(x: Any) -> Any:
        if isinstance(x, Tensor):
            p = x._t
            while p is not None and p.trace is tr:
                x = p.primal
                p = x._t
        return x

    return tu.tree_map(f, tree)


def _run_backward(tape: _Tape, cts: list[Any], free: bool) -> list[Any]:
    zeros_like = _creation.zeros_like
    fit_cotangent = _ad.fit_cotangent

    for p, c, o in zip(tape.out_payloads, cts, tape.out_primals, strict=True):
        if p is None or c is None:
            continue
        c = fit_cotangent(c, o)
        node = p.node
        if node.multi:
            node.ct[p.idx] = _ad._acc(node.ct[p.idx], c, c._xp)
        else:
            node.ct = _ad._acc(node.ct, c, c._xp)
    backward(tape.nodes, free)
    res = []
    for p, x in zip(tape.in_payloads, tape.in_leaves, strict=True):
        if p is None:
            res.append(zeros_like(x))
            continue
        c = p.ct  # (an input's payload is its node)
        p.ct = None
        if c is None:
            res.append(zeros_like(x))
        elif c.__class__ is Tensor:
            res.append(c)
        elif x._t is None and c.__class__ is x._a.__class__:  # a backend array of x's own kind
            t = _new(Tensor)
            t._a = c
            t._xp = x._xp
            t._t = None
            res.append(t)
        else:
            res.append(_ad.as_cotangent(c, x._xp))
    return res


def _cotangents(tape: _Tape, ct: Any, what: str) -> list[Tensor]:
    """The leaves of cotangent ``ct`` for ``tape``'s outputs, checked (structure, shapes, dtypes)."""
    ct_leaves, ct_tree = tu.tree_flatten(ct)
    if ct_tree != tape.out_tree:
        raise TransformError(
            f"{what}: the cotangent must have the structure of the output {tape.out_tree}; got "
            f"{ct_tree}. Pass one array per output leaf."
        )
    cts = []
    for i, (c, o) in enumerate(zip(ct_leaves, tape.out_primals, strict=True)):
        c = _to_leaf(c, what)
        if c.shape != o.shape:
            raise TransformError(
                f"{what}: cotangent {i} has shape {c.shape}, but the output it pairs with has shape "
                f"{o.shape}; pass an array of the output's shape."
            )
        if c.dtype is not o.dtype and not (c.dtype.kind in "fc" and o.dtype.kind in "fc"):
            raise TransformError(
                f"{what}: cotangent {i} has dtype {c.dtype.name}, but the output has dtype "
                f"{o.dtype.name}; pass a floating cotangent of the output's dtype."
            )
        cts.append(c)
    return cts


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """Evaluate ``f(*primals)`` and return ``(out, f_vjp)``; ``f_vjp(ct)`` gives the input cotangents.

    Example:
        >>> import functorch_lite as fl
        >>> out, f_vjp = fl.vjp(fl.sin, fl.asarray(0.0))
        >>> f_vjp(fl.asarray(1.0))[0].item()
        1.0
    """
    tape, out, aux = _record(f, primals, has_aux, "vjp")

    def f_vjp(ct: Any) -> tuple[Any, ...]:
        grads = _run_backward(tape, _cotangents(tape, ct, "vjp"), free=False)
        return tuple(tu.tree_unflatten_cotangent(tape.in_tree, grads))

    if has_aux:
        return out, f_vjp, aux
    return out, f_vjp


def _argnums(argnums: int | Sequence[int], nargs: int, what: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise TransformError(f"{what}: argnums is empty; name at least one argument to differentiate.")
    out = []
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise TransformError(
                f"{what}: argnums {argnums!r} is out of range for a call with {nargs} positional "
                f"argument(s){_stack_str()}; use indices in [0, {nargs - 1}]."
            )
        out.append(a % nargs)
    return tuple(out)


def _argnames(argnames: str | Sequence[str], what: str) -> tuple[str, ...]:
    """``argnames`` as a tuple of distinct keyword names (checked once, when the transform is made)."""
    names = (argnames,) if isinstance(argnames, str) else argnames
    try:
        names = tuple(names)
    except TypeError:
        raise TransformError(
            f"{what}: argnames must be a keyword name or a sequence of names; got {type(argnames).__name__}."
        ) from None
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise TransformError(f"{what}: argnames entries must be keyword argument names (identifiers); got {n!r}.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TransformError(f"{what}: argnames names {', '.join(map(repr, dup))} more than once; name each once.")
    return names


def _nonscalar_error(tape: _Tape) -> NonScalarOutputError:
    shapes = [o.shape for o in tape.out_primals]
    got = f"shape {shapes[0]}" if len(shapes) == 1 else f"{len(shapes)} outputs of shapes {shapes}"
    return NonScalarOutputError(
        f"grad requires a scalar output{_stack_str()}; got {got}. Use jacrev, or vjp with a cotangent."
    )


def _nonfloat_error(o: Tensor) -> NonScalarOutputError:
    return NonScalarOutputError(
        f"grad requires a floating scalar output; got dtype {o.dtype.name}. Cast the output to float."
    )


def _scalar_grads(g: Callable[..., Any], diff: Sequence[Any], has_aux: bool, on_int: Any) -> tuple[Any, Any, Any]:
    """Record ``g(*diff)``, check its output is a floating scalar, and pull back a unit cotangent:
    (output, aux, gradients in the structure of ``diff``)."""
    tape, out, aux = _record(g, diff, has_aux, "grad", on_int)
    if len(tape.out_primals) != 1 or tape.out_primals[0].shape != ():
        raise _nonscalar_error(tape)
    o = tape.out_primals[0]
    if o.dtype.kind not in "fc":
        raise _nonfloat_error(o)
    ones_like = _creation.ones_like

    grads = _run_backward(tape, [ones_like(o)], free=True)
    return out, aux, tu.tree_unflatten_cotangent(tape.in_tree, grads)


def value_and_grad(
    f: Callable[..., Any],
    argnums: int | Sequence[int] | None = None,
    has_aux: bool = False,
    allow_int: bool = False,
    *,
    argnames: str | Sequence[str] = (),
) -> Callable[..., Any]:
    """Return a function computing ``(f(*args), grad)`` (``((value, aux), grad)`` with has_aux).

    Args:
        f: a function with a floating scalar output.
        argnums: the positional argument(s) to differentiate: an int gives one gradient, a
            tuple a tuple of gradients. Default: ``0``, or none when ``argnames`` is given.
        has_aux: ``f`` returns ``(output, aux)``; ``aux`` is passed through undifferentiated.
        allow_int: let integer inputs through (their gradient is zero) instead of raising.
        argnames: keyword argument(s) to differentiate, by name (MLX's ``argnames``). The
            gradient is then a dict ``{name: grad}``, or ``(grads_by_position, grads_by_name)``
            when ``argnums`` is given too. Each name must be passed as a keyword in the call.

    Example:
        >>> import functorch_lite as fl
        >>> v, g = fl.value_and_grad(lambda x: (x ** 2).sum())(fl.asarray([1.0, 2.0]))
        >>> float(v), g.tolist()
        (5.0, [2.0, 4.0])
        >>> v, g = fl.value_and_grad(lambda x, *, w: (x * w).sum(), argnames="w")(fl.ones((2,)), w=fl.ones((2,)))
        >>> g["w"].tolist()
        [1.0, 1.0]
    """
    if not isinstance(argnames, str) and not argnames:
        return _value_and_grad(f, 0 if argnums is None else argnums, has_aux, allow_int)
    return _value_and_grad_named(f, argnums, _argnames(argnames, "grad"), has_aux, allow_int)


def _value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int], has_aux: bool, allow_int: bool
) -> Callable[..., Any]:
    """value_and_grad by position only (the common, per-call-overhead-sensitive path)."""

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not args:
            raise TransformError(
                "grad: the function must be called with at least one positional argument "
                "(this is the argument that is differentiated)."
            )
        n = len(args)
        if argnums.__class__ is int and -n <= argnums < n:  # type: ignore[operator]
            nums: tuple[int, ...] = (argnums % n,)  # type: ignore[operator]
        else:
            nums = _argnums(argnums, n, "grad")
        diff = [args[i] for i in nums]

        def int_leaf(k: int) -> None:
            # leaf k of the flattened diff arguments is not floating: name its argument
            _int_leaf_error(k, [(f"argument {i}", a) for i, a in zip(nums, diff, strict=True)], "argnums")

        if nums == (0,) and not kwargs:
            rest = args[1:]

            def g(*d: Any) -> Any:
                return f(d[0], *rest)
        else:

            def g(*d: Any) -> Any:
                full = list(args)
                for i, v in zip(nums, d, strict=True):
                    full[i] = v
                return f(*full, **kwargs)

        out, aux, gtree = _scalar_grads(g, diff, has_aux, None if allow_int else int_leaf)
        gres = gtree[0] if isinstance(argnums, int) else tuple(gtree)
        if has_aux:
            return (out, aux), gres
        return out, gres

    return wrapped


def _int_leaf_error(k: int, labelled: Sequence[tuple[str, Any]], leave_out: str) -> None:
    """Raise for leaf ``k`` of the flattened differentiated inputs, naming the input it belongs to."""
    for label, a in labelled:
        leaves = tu.tree_leaves(a)
        if k < len(leaves):
            t = _to_leaf(leaves[k], "grad")
            raise TransformError(
                f"grad: {label} has a leaf of dtype {t.dtype.name}; gradients need floating inputs. "
                f"Cast it with astype(x, fl.float32), pass allow_int=True, or leave it out of {leave_out}."
            )
        k -= len(leaves)


def _value_and_grad_named(
    f: Callable[..., Any],
    argnums: int | Sequence[int] | None,
    names: tuple[str, ...],
    has_aux: bool,
    allow_int: bool,
) -> Callable[..., Any]:
    """value_and_grad with ``argnames``: keyword arguments differentiated by name."""

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        missing = [n for n in names if n not in kwargs]
        if missing:
            passed = ", ".join(map(repr, kwargs)) or "none"
            raise TransformError(
                f"grad: argnames names {', '.join(map(repr, missing))}, but the call passed no such keyword "
                f"argument (keywords passed: {passed}){_stack_str()}. Pass it by keyword, "
                f"f(..., {missing[0]}=value), or differentiate it by position with argnums."
            )
        nums = () if argnums is None else _argnums(argnums, len(args), "grad")
        k = len(nums)
        diff = [args[i] for i in nums] + [kwargs[n] for n in names]
        labelled = [(f"argument {i}", args[i]) for i in nums] + [(f"keyword argument {n!r}", kwargs[n]) for n in names]

        def int_leaf(j: int) -> None:
            _int_leaf_error(j, labelled, "argnums / argnames")

        def g(*d: Any) -> Any:
            full = list(args)
            for i, v in zip(nums, d[:k], strict=True):
                full[i] = v
            kw = dict(kwargs)
            for n, v in zip(names, d[k:], strict=True):
                kw[n] = v
            return f(*full, **kw)

        out, aux, gtree = _scalar_grads(g, diff, has_aux, None if allow_int else int_leaf)
        by_name = dict(zip(names, gtree[k:], strict=True))
        if argnums is None:
            gres: Any = by_name
        else:
            gres = (gtree[0] if isinstance(argnums, int) else tuple(gtree[:k]), by_name)
        if has_aux:
            return (out, aux), gres
        return out, gres

    return wrapped


def grad(
    f: Callable[..., Any],
    argnums: int | Sequence[int] | None = None,
    has_aux: bool = False,
    allow_int: bool = False,
    *,
    argnames: str | Sequence[str] = (),
) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar-valued ``f``.

    Args:
        f: a function with a floating scalar output.
        argnums: the positional argument(s) to differentiate (default ``0``, or none when
            ``argnames`` is given); a tuple gives a tuple of gradients.
        has_aux: ``f`` returns ``(output, aux)``; the result is then ``(grad, aux)``.
        allow_int: let integer inputs through (their gradient is zero) instead of raising.
        argnames: keyword argument(s) to differentiate by name, as in MLX: the gradient is a
            dict ``{name: grad}``, or ``(grads_by_position, grads_by_name)`` with ``argnums``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.grad(lambda x: fl.sum(fl.sin(x)))(fl.asarray([0.0])).tolist()
        [1.0]
        >>> loss = lambda x, *, w, b: fl.sum(x * w + b)
        >>> g = fl.grad(loss, argnames=("w", "b"))(fl.asarray([3.0]), w=fl.ones((1,)), b=fl.zeros((1,)))
        >>> g["w"].tolist(), g["b"].tolist()
        ([3.0], [1.0])
    """
    vg = value_and_grad(f, argnums, has_aux, allow_int, argnames=argnames)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        (v, g) = vg(*args, **kwargs)
        if has_aux:
            return g, v[1]
        return g

    return wrapped


def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _argname(path: str) -> str:
    head, _, rest = path.partition(".")
    return f"args[{head}]" + (f".{rest}" if rest else "")
