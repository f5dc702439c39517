"""The transforms: grad, value_and_grad, vjp, jvp, linearize, vmap, jacrev, jacfwd, hessian."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.engine import Primitive, active_traces, bind, new_trace
from .._core.tensor import Tensor
from .._errors import BatchAxisError, NonScalarOutputError, TransformError
from .._backend import FLOAT_NATIVES as _FLOATS
from ._ad import JVPTrace, VJPTrace, backward, forward_replay
from ._batch import BatchTrace
from . import _ad as _L__ad  # noqa: E402
from .. import _dtypes as _L_pkg2__dtypes  # noqa: E402
from .._core import tensor as _L_up__core_tensor  # noqa: E402
from .._ops import _base as _L_up__ops__base  # noqa: E402
from .._ops import creation as _L_up__ops_creation  # noqa: E402
from .._ops import dtypes as _L_up__ops_dtypes  # noqa: E402
from .._ops import indexing as _L_up__ops_indexing  # noqa: E402
from .._ops import manipulation as _L_up__ops_manipulation  # noqa: E402
from .._ops import reduction as _L_up__ops_reduction  # noqa: E402

_new = object.__new__

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "linearize",
    "vmap",
    "jacrev",
    "jacfwd",
    "hessian",
    "linear_transpose",
    "stop_gradient",
]


def _stack_str() -> str:
    s = " > ".join(repr(t) for t in active_traces())
    return f" (inside {s})" if s else ""


def _to_leaf(x: Any, what: str) -> Tensor:
    asarray = _L_up__ops__base.asarray

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
    with new_trace(VJPTrace) as tr:
        tracers = []
        in_payloads = []  # read now: f may rebind its arguments (x[i] = v, x += y)
        for i, x in enumerate(leaves):
            if x.__class__ is not Tensor:
                x = leaves[i] = _to_leaf(x, what)
            if (x._a.dtype in _FLOATS[x._xp]) if x._t is None else _is_float(x):
                t = tr.new_input(x)
                tracers.append(t)
                in_payloads.append(t._t)
            else:
                if on_int is not None:
                    on_int(i)
                tracers.append(x)
                in_payloads.append(None)
        out = f(*tu.tree_unflatten(in_tree, tracers))
        aux = None
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TransformError(
                    f"{what}(has_aux=True): the function must return a pair (output, aux); got "
                    f"{type(out).__name__}. Return (out, aux) or set has_aux=False."
                )
            out, aux = out
            aux = _strip(aux, tr)
        if out.__class__ is Tensor:  # one Tensor (grad's case): no pytree walk
            out_leaves, out_tree = [out], _leaf_treedef()
        else:
            out_leaves, out_tree = tu.tree_flatten(out)
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
    _L__ad.prune(tr)
    tape.out_tree = out_tree
    return tape, (prim_outs[0] if out_tree is _LEAF[0] else tu.tree_unflatten(out_tree, prim_outs)), aux


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
    zeros_like = _L_up__ops_creation.zeros_like
    fit_cotangent = _L__ad.fit_cotangent

    for p, c, o in zip(tape.out_payloads, cts, tape.out_primals, strict=True):
        if p is None or c is None:
            continue
        c = fit_cotangent(c, o)
        node = p.node
        if node.multi:
            node.ct[p.idx] = _L__ad._acc(node.ct[p.idx], c, c._xp)
        else:
            node.ct = _L__ad._acc(node.ct, c, c._xp)
    backward(tape.nodes, free)
    res = []
    for p, x in zip(tape.in_payloads, tape.in_leaves, strict=True):
        if p is None:
            res.append(zeros_like(x))
            continue
        c = p.node.ct
        p.node.ct = None
        res.append(zeros_like(x) if c is None else _L__ad.as_cotangent(c, x._xp))
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
    ones_like = _L_up__ops_creation.ones_like

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
        nums = _argnums(argnums, len(args), "grad")
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


# --------------------------------------------------------------------------------------
# jvp / linearize
# --------------------------------------------------------------------------------------
def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False) -> Any:
    """Forward mode: ``(f(*primals), J @ tangents)``.

    Example:
        >>> import functorch_lite as fl
        >>> out, t = fl.jvp(fl.sin, (fl.asarray(0.0),), (fl.asarray(2.0),))
        >>> t.item()
        2.0
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TransformError(
            "jvp: primals and tangents must be tuples (one entry per argument of f); got "
            f"{type(primals).__name__} and {type(tangents).__name__}. Write jvp(f, (x,), (t,))."
        )
    p_leaves, p_tree = tu.tree_flatten(tuple(primals))
    t_leaves, t_tree = tu.tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise TransformError(f"jvp: tangents must have the structure of primals; primals {p_tree}, tangents {t_tree}.")
    p_leaves = [_to_leaf(x, "jvp") for x in p_leaves]
    t_leaves = [_to_leaf(x, "jvp") for x in t_leaves]
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves, strict=True)):
        if p.shape != t.shape:
            raise TransformError(
                f"jvp: tangent {i} has shape {t.shape} but its primal has shape {p.shape}; they must match."
            )
    with new_trace(JVPTrace) as tr:
        tracers = []
        for p, t in zip(p_leaves, t_leaves, strict=True):
            if _is_float(p):
                if t.dtype is not p.dtype:
                    astype = _L_up__ops_dtypes.astype

                    t = astype(t, p.dtype)
                tracers.append(tr.tracer(p, t))
            else:
                if t._t is None and t.size and bool(_L_up__ops_reduction.any(t != 0)):
                    raise TransformError(
                        f"jvp: primal {len(tracers)} has dtype {p.dtype.name}, which carries no tangent, but its "
                        "tangent is not zero; an integer or bool input cannot move. Pass a zero tangent, or cast "
                        "the input to a floating dtype to differentiate it."
                    )
                tracers.append(p)
        out = f(*tu.tree_unflatten(p_tree, tracers))
        aux = None
        if has_aux:
            out, aux = out
            aux = _strip(aux, tr)
        o_leaves, o_tree = tu.tree_flatten(out)
    outs = []
    touts = []
    zeros_like = _L_up__ops_creation.zeros_like

    for o in o_leaves:
        o = _to_leaf(o, "jvp")
        p = o._t
        if p is not None and p.trace is tr:
            outs.append(p.primal)
            touts.append(p.tangent)
        else:
            outs.append(o)
            touts.append(zeros_like(o))
    res = (tu.tree_unflatten(o_tree, outs), tu.tree_unflatten(o_tree, touts))
    return res + (aux,) if has_aux else res


def linearize(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """Evaluate ``f`` once; return ``(out, f_jvp)`` with ``f_jvp(*tangents)`` = J @ tangents.

    Example:
        >>> import functorch_lite as fl
        >>> out, f_jvp = fl.linearize(fl.exp, fl.asarray(0.0))
        >>> f_jvp(fl.asarray(3.0)).item()
        3.0
    """
    tape, out, _ = _record(f, primals, False, "linearize")

    def f_jvp(*tangents: Any) -> Any:
        zeros_like = _L_up__ops_creation.zeros_like

        t_leaves, t_tree = tu.tree_flatten(tuple(tangents))
        if t_tree != tape.in_tree:
            raise TransformError(
                f"linearize: tangents must have the structure of the primals {tape.in_tree}; got {t_tree}."
            )
        for p, x, t in zip(tape.in_payloads, tape.in_leaves, t_leaves, strict=True):
            t = _to_leaf(t, "linearize")
            if t.shape != x.shape:
                raise TransformError(f"linearize: a tangent has shape {t.shape}, its primal {x.shape}.")
            if p is not None:
                p.node.tan = t
        forward_replay(tape.nodes)
        res = []
        for p, o in zip(tape.out_payloads, tape.out_primals, strict=True):
            if p is None:
                res.append(zeros_like(o))
                continue
            n = p.node
            t = n.tan[p.idx] if n.multi else n.tan
            res.append(zeros_like(o) if t is None else t)
        for p in tape.in_payloads:
            if p is not None:
                p.node.tan = None
        return tu.tree_unflatten(tape.out_tree, res)

    return out, f_jvp


# --------------------------------------------------------------------------------------
# linear_transpose
# --------------------------------------------------------------------------------------
def _random_like(x: Tensor, seed: int) -> Tensor:
    """Random values of unit scale (|v| uniform in [0.5, 2], random signs; complex: both parts)
    with ``x``'s shape, dtype and backend, from a fixed seed. Drawn with the key-level sampler,
    so an enclosing vmap's ``randomness`` rule does not apply: they are constants of the check,
    not random ops of the user's code."""
    from .. import random as _random
    from .._backend import default_backend
    from .._ops.searching import where

    D = _L_pkg2__dtypes
    astype = _L_up__ops_dtypes.astype
    real = x.dtype
    if x.dtype.kind == "c":
        real = D.float64 if x.dtype is D.complex128 else D.float32

    def draw(k: Tensor) -> Tensor:
        u = _random._uniform(k, x.shape, real, -1.5, 1.5)
        return where(u < 0.0, u - 0.5, u + 0.5)

    with default_backend(x.backend):
        k1, k2 = _random.split(_random.key(seed))
        if x.dtype.kind != "c":
            return draw(k1)
        return astype(draw(k1), x.dtype) + astype(draw(k2), x.dtype) * 1j


def _concrete(t: Tensor) -> Tensor | None:
    """The one concrete value behind ``t``; None under vmap or staging (no single value)."""
    try:
        return t.concrete()
    except TransformError:
        return None


def _max_abs(t: Tensor) -> float:
    from .._ops import elementwise as _ew
    from .._ops import reduction as _red

    if _size(t.shape) == 0:
        return 0.0
    return float(_red.max(_ew.abs(t)))


def _outname(path: str) -> str:
    return "the output" if not path else f"output {path}"


def _check_linear(
    f: Callable[..., Any], zargs: Any, zero_leaves: list[Tensor], in_tree: Any, out0: list[Tensor], paths: list[str]
) -> None:
    """Raise unless ``f`` is (numerically) linear; see linear_transpose's docstring."""
    vals = [_concrete(o) for o in out0]
    if any(v is None for v in vals):
        return  # f computes with values of an enclosing vmap or staging trace: no single value to test
    for path, v in zip(paths, vals, strict=True):
        m = _max_abs(v)  # type: ignore[arg-type]
        if not m == 0.0:
            raise TransformError(
                f"linear_transpose: f is not linear: f(0) is not zero ({_outname(path)} has max |f(0)| = "
                f"{m:.3g}). Only linear functions have a transpose; an affine f(x) = A x + b is rejected, "
                "as in JAX. Transpose its linear part, lambda *x: f(*x) - f(*zeros), or use fl.vjp."
            )
    _, f_jvp = linearize(f, *zargs)  # J = the Jacobian at 0, which a linear f has everywhere
    r = [_random_like(z, 1000 + i) for i, z in enumerate(zero_leaves)]
    for sign in (1.0, -1.0):  # x and -x: catches even (x * x) and one-sided (relu) functions
        xs = tu.tree_unflatten(in_tree, r if sign > 0 else [-t for t in r])
        want = tu.tree_leaves(f_jvp(*xs))
        got = tu.tree_leaves(f(*xs))
        for path, w, g in zip(paths, want, got, strict=True):
            gc, wc = _concrete(_to_leaf(g, "linear_transpose")), _concrete(w)
            if gc is None or wc is None:
                return
            tol = 1e-7 if gc.dtype in (_L_pkg2__dtypes.float64, _L_pkg2__dtypes.complex128) else 1e-3
            diff = _max_abs(gc - wc)
            scale = max(_max_abs(gc), _max_abs(wc))
            if not diff <= tol * scale:
                raise TransformError(
                    f"linear_transpose: f is not linear: at a random point x, {_outname(path)} f(x) differs "
                    f"from J x, J its Jacobian at 0, by up to {diff:.3g} (values of size {scale:.3g}). Only "
                    "linear functions have a transpose (no sin, x * x, relu, ... of the inputs); for a "
                    "non-linear f, pull back through its vjp at a point: fl.vjp(f, *primals)[1]."
                )


def linear_transpose(f: Callable[..., Any], *primals: Any) -> Callable[[Any], tuple[Any, ...]]:
    """Transpose a linear function (JAX's ``linear_transpose``).

    ``f_t = linear_transpose(f, *primals)`` takes a cotangent with the structure, shapes and
    dtypes of ``f``'s output and returns a tuple of input cotangents shaped like ``primals``:
    ``<ct, f(x)> == <f_t(ct), x>``, with ``<a, b> = sum(a * b)`` summed over the leaves (not
    conjugated for complex values, as in JAX). ``primals`` give only the shapes, dtypes and
    backends of the inputs; their values are never used.

    ``f`` is traced once at zero (its vjp there is the transpose). Since a primitive carries no
    linearity flag, linearity is checked numerically when the transpose is made: ``f(0)`` must
    be exactly zero (affine maps are rejected, as in JAX), and at a random point ``x`` (fixed
    seed) and at ``-x``, ``f(x)`` must equal ``J x``, ``J`` the Jacobian at 0, to a relative
    ``1e-7`` in float64 (``1e-3`` otherwise). Odd or even non-linearities (``sin``, ``x * x``,
    ``relu``, ``abs``) fail at one of the two points. A function that is linear on a region
    containing both points only (``clip`` with wide bounds) passes; so does one non-linear by
    less than the tolerance there. When ``f`` computes with values of an enclosing ``vmap`` or
    staging trace (no single value to compare), the check is skipped.

    Args:
        f: a linear function of floating (or complex) inputs and outputs.
        *primals: arrays (or pytrees) with the shapes and dtypes of ``f``'s arguments.

    Returns:
        ``f_t(ct) -> tuple`` of cotangents, one per primal.

    Example:
        >>> import functorch_lite as fl
        >>> A = fl.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> f_t = fl.linear_transpose(lambda x: A @ x, fl.zeros((2,)))
        >>> f_t(fl.asarray([1.0, 0.0, 1.0]))[0].tolist()
        [6.0, 8.0]
    """
    leaves, in_tree = tu.tree_flatten(tuple(primals))
    paths = tu.path_names(tuple(primals))
    leaves = [_to_leaf(x, "linear_transpose") for x in leaves]
    for path, x in zip(paths, leaves, strict=True):
        if not _is_float(x):
            raise TransformError(
                f"linear_transpose: input {_argname(path)} has dtype {x.dtype.name}; a linear map needs "
                "floating (or complex) inputs. Close over integer arguments instead of passing them."
            )
    zeros_like = _L_up__ops_creation.zeros_like
    zeros = [zeros_like(x) for x in leaves]  # only the shape, dtype and backend of the primals
    zargs = tu.tree_unflatten(in_tree, zeros)
    tape, out0, _ = _record(f, zargs, False, "linear_transpose")
    o_leaves = tape.out_primals
    o_paths = tu.path_names(out0)
    for path, o in zip(o_paths, o_leaves, strict=True):
        if not _is_float(o):
            raise TransformError(
                f"linear_transpose: {_outname(path)} has dtype {o.dtype.name}; a linear map needs floating "
                "(or complex) outputs. Return the integer part from a separate function."
            )
    _check_linear(f, zargs, zeros, in_tree, list(o_leaves), o_paths)

    def f_transpose(ct: Any) -> tuple[Any, ...]:
        grads = _run_backward(tape, _cotangents(tape, ct, "linear_transpose"), free=False)
        return tuple(tu.tree_unflatten_cotangent(tape.in_tree, grads))

    return f_transpose


# --------------------------------------------------------------------------------------
# vmap
# --------------------------------------------------------------------------------------
def _flat_axes(axes: Any, tree: Any, what: str, argnames: str) -> list[Any]:
    try:
        return tu.broadcast_prefix(axes, tree)
    except ValueError as exc:
        raise BatchAxisError(
            f"vmap: {what}={axes!r} does not match the structure of the {argnames} "
            f"{tu.tree_structure(tree)}: {exc}. Give one entry per argument (or an int / None for all)."
        ) from None


def vmap(
    f: Callable[..., Any],
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
    chunk_size: int | None = None,
    randomness: str = "error",
) -> Callable[..., Any]:
    """Vectorise ``f`` over a batch axis of its inputs (no Python loop over the batch).

    Args:
        f: the function to vectorise.
        in_axes: int, None, or a pytree prefix of the positional arguments (None: unmapped).
        out_axes: int, None or a pytree prefix of the outputs.
        axis_size: the batch size, needed only when no input is mapped.
        chunk_size: process the batch in chunks of this size, bounding memory.
        randomness: "error", "same" or "different": what random ops inside mean.

    Example:
        >>> import functorch_lite as fl
        >>> fl.vmap(lambda r: r.sum())(fl.ones((3, 4))).tolist()
        [4.0, 4.0, 4.0]
    """
    if randomness not in ("error", "same", "different"):
        raise TransformError(f"vmap: randomness must be 'error', 'same' or 'different'; got {randomness!r}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise TransformError(f"vmap: chunk_size must be a positive int or None; got {chunk_size!r}.")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        in_ax = in_axes
        if isinstance(in_ax, list):
            in_ax = tuple(in_ax)
        if isinstance(in_ax, tuple) and len(in_ax) != len(args):
            raise BatchAxisError(
                f"vmap: in_axes has {len(in_ax)} entries but the function was called with "
                f"{len(args)} positional argument(s); give one entry per argument."
            )
        leaves, tree = tu.tree_flatten(args)
        axes = _flat_axes(in_ax if isinstance(in_ax, tuple) else (in_ax,) * len(args), args, "in_axes", "arguments")
        paths = tu.path_names(args)
        tleaves: list[Any] = []
        sizes: dict[str, int] = {}
        norm_axes: list[Any] = []
        for path, x, ax in zip(paths, leaves, axes, strict=True):
            if ax is None:
                tleaves.append(x)
                norm_axes.append(None)
                continue
            t = _to_leaf(x, "vmap")
            if not isinstance(ax, int):
                raise BatchAxisError(
                    f"vmap: in_axes entries must be ints or None; got {ax!r} for argument {_argname(path)}."
                )
            nd = t.ndim
            if not -nd <= ax < nd:
                raise BatchAxisError(
                    f"vmap: in_axes={ax} for argument {_argname(path)} of shape {t.shape} is out of range; "
                    f"use an axis in [{-nd}, {nd - 1}] or None to leave it unmapped."
                )
            ax %= nd
            sizes[_argname(path)] = t.shape[ax]
            tleaves.append(t)
            norm_axes.append(ax)
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{k} has size {v}" for k, v in sizes.items())
            raise BatchAxisError(
                f"vmap: the mapped axes of the arguments disagree in size: {detail}{_stack_str()}. "
                "Every mapped input needs the same batch size."
            )
        if sizes:
            n = next(iter(sizes.values()))
            if axis_size is not None and axis_size != n:
                raise BatchAxisError(f"vmap: axis_size={axis_size} but the mapped inputs have size {n}.")
        elif axis_size is not None:
            n = axis_size
        else:
            raise BatchAxisError(
                "vmap: no argument is mapped (all in_axes are None) and axis_size is not given; "
                "map at least one input or pass axis_size."
            )
        if chunk_size is not None and n > chunk_size:
            return _chunked(f, tleaves, norm_axes, tree, kwargs, n, chunk_size, out_axes, randomness)
        return _vmap_once(f, tleaves, norm_axes, tree, kwargs, n, out_axes, randomness)

    return wrapped


def _argname(path: str) -> str:
    head, _, rest = path.partition(".")
    return f"args[{head}]" + (f".{rest}" if rest else "")


def _vmap_once(
    f: Callable[..., Any],
    leaves: list[Any],
    axes: list[Any],
    tree: Any,
    kwargs: dict[str, Any],
    n: int,
    out_axes: Any,
    randomness: str,
    index_offset: int = 0,
) -> Any:
    with new_trace(BatchTrace, axis_size=n, randomness=randomness, index_offset=index_offset) as tr:
        tracers = [x if ax is None else tr.tracer(x, ax) for x, ax in zip(leaves, axes, strict=True)]
        out = f(*tu.tree_unflatten(tree, tracers), **kwargs)
        o_leaves, o_tree = tu.tree_flatten(out)
        oax = out_axes
        if isinstance(oax, list):
            oax = tuple(oax)
        o_axes = _flat_axes(oax, out, "out_axes", "outputs")
        res = []
        for o, ax in zip(o_leaves, o_axes, strict=True):
            res.append(_unbatch(o, ax, tr, n))
    return tu.tree_unflatten(o_tree, res)


def _unbatch(o: Any, ax: Any, tr: Any, n: int) -> Any:
    broadcast_to = _L_up__ops_manipulation.broadcast_to
    expand_dims = _L_up__ops_manipulation.expand_dims
    moveaxis = _L_up__ops_manipulation.moveaxis

    o = _to_leaf(o, "vmap")
    p = o._t
    batched = p is not None and p.trace is tr
    if ax is None:
        if batched:
            raise BatchAxisError(
                "vmap: an output with out_axes=None varies over the batch; return it with an "
                "integer out_axes, or make it independent of the mapped inputs."
            )
        return o
    if batched:
        val, d = p.val, p.bdim
    else:
        val = broadcast_to(expand_dims(o, axis=0), (n,) + o.shape)
        d = 0
    nd = val.ndim
    if not -nd <= ax < nd:
        raise BatchAxisError(f"vmap: out_axes={ax} is out of range for an output of {nd} dimension(s).")
    ax %= nd
    return val if ax == d else moveaxis(val, d, ax)


def _chunked(
    f: Callable[..., Any],
    leaves: list[Any],
    axes: list[Any],
    tree: Any,
    kwargs: dict[str, Any],
    n: int,
    chunk: int,
    out_axes: Any,
    randomness: str,
) -> Any:
    getitem = _L_up__ops_indexing.getitem
    concat = _L_up__ops_manipulation.concat

    outs = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        part = [
            x if ax is None else getitem(x, (slice(None),) * ax + (slice(start, stop),))
            for x, ax in zip(leaves, axes, strict=True)
        ]
        outs.append(_vmap_once(f, part, axes, tree, kwargs, stop - start, out_axes, randomness, start))
    o_leaves0, o_tree = tu.tree_flatten(outs[0])
    o_axes = _flat_axes(out_axes if not isinstance(out_axes, list) else tuple(out_axes), outs[0], "out_axes", "outputs")
    per = [tu.tree_leaves(o) for o in outs]
    res = []
    for i, ax in enumerate(o_axes):
        if ax is None:
            res.append(per[0][i])
        else:
            nd = per[0][i].ndim
            res.append(concat([p[i] for p in per], axis=ax % nd))
    return tu.tree_unflatten(o_tree, res)


# --------------------------------------------------------------------------------------
# Jacobians
# --------------------------------------------------------------------------------------
def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _check_chunk_size(chunk_size: Any, what: str) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise TransformError(f"{what}: chunk_size must be a positive int or None; got {chunk_size!r}.")


def jacrev(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Jacobian of ``f`` by reverse mode (one vjp per output element, vectorised by vmap).

    The result has shape ``out.shape + in.shape`` per (output leaf, input leaf).

    Example:
        >>> import functorch_lite as fl
        >>> fl.jacrev(lambda x: x * 2.0)(fl.ones((2,))).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    _check_chunk_size(chunk_size, "jacrev")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        astype = _L_up__ops_dtypes.astype
        getitem = _L_up__ops_indexing.getitem
        reshape = _L_up__ops_manipulation.reshape

        nums = _argnums(argnums, len(args), "jacrev")
        diff = [args[i] for i in nums]

        def g(*d: Any) -> Any:
            full = list(args)
            for i, v in zip(nums, d, strict=True):
                full[i] = v
            return f(*full, **kwargs)

        res = vjp(g, *diff, has_aux=has_aux)
        out, f_vjp = res[0], res[1]
        o_leaves, o_tree = tu.tree_flatten(out)
        o_leaves = [_to_leaf(o, "jacrev") for o in o_leaves]
        sizes = [_size(o.shape) for o in o_leaves]
        total = sum(sizes)
        like = o_leaves[0]
        basis = astype(_eye_like(total, like), like.dtype)
        cts = []
        start = 0
        for o, s in zip(o_leaves, sizes, strict=True):
            cols = getitem(basis, (slice(None), slice(start, start + s)))
            cts.append(reshape(astype(cols, o.dtype), (total,) + o.shape))
            start += s
        ct_tree = tu.tree_unflatten(o_tree, cts)
        rows = vmap(lambda c: f_vjp(c), chunk_size=chunk_size)(ct_tree)
        # rows: tuple over diff args of pytrees with leading axis total
        in_leaves, in_tree = tu.tree_flatten(tuple(rows))
        per_out = []
        start = 0
        for o, s in zip(o_leaves, sizes, strict=True):
            leaves_k = [
                reshape(getitem(x, (slice(start, start + s),)), o.shape + tuple(x.shape[1:])) for x in in_leaves
            ]
            sub = tu.tree_unflatten(in_tree, leaves_k)
            per_out.append(sub[0] if isinstance(argnums, int) else tuple(sub))
            start += s
        jac = tu.tree_unflatten(o_tree, per_out)
        if has_aux:
            return jac, res[2]
        return jac

    return wrapped


def _eye_like(n: int, like: Tensor) -> Tensor:
    wrap = _L_up__core_tensor.wrap
    backend_for = _L_up__ops__base.backend_for

    xp = like._xp
    b = backend_for(xp)
    dt = like.dtype if like.dtype.kind in "fc" else None
    D = _L_pkg2__dtypes

    return wrap(xp.eye(n, dtype=b.native(dt or D.float32)), xp)


def jacfwd(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Jacobian of ``f`` by forward mode (one jvp per input element, vectorised by vmap).

    Example:
        >>> import functorch_lite as fl
        >>> fl.jacfwd(lambda x: x * 2.0)(fl.ones((2,))).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    _check_chunk_size(chunk_size, "jacfwd")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        astype = _L_up__ops_dtypes.astype
        getitem = _L_up__ops_indexing.getitem
        reshape = _L_up__ops_manipulation.reshape

        nums = _argnums(argnums, len(args), "jacfwd")
        diff = tuple(args[i] for i in nums)
        d_leaves, d_tree = tu.tree_flatten(diff)
        d_leaves = [_to_leaf(x, "jacfwd") for x in d_leaves]
        for x in d_leaves:
            if not _is_float(x):
                raise TransformError(f"jacfwd: inputs to differentiate must be floating; got dtype {x.dtype.name}.")
        sizes = [_size(x.shape) for x in d_leaves]
        total = sum(sizes)
        basis = _eye_like(total, d_leaves[0])
        # tangent for leaf k, per basis column j: column j of the identity restricted to leaf k
        tans = []
        start = 0
        for x, s in zip(d_leaves, sizes, strict=True):
            cols = getitem(basis, (slice(None), slice(start, start + s)))  # (total, s)
            tans.append(reshape(astype(cols, x.dtype), (total,) + x.shape))
            start += s

        def push(*t_leaves: Any) -> Any:
            def g(*d: Any) -> Any:
                full = list(args)
                for i, v in zip(nums, d, strict=True):
                    full[i] = v
                return f(*full, **kwargs)

            res = jvp(g, diff, tu.tree_unflatten(d_tree, list(t_leaves)), has_aux=has_aux)
            return res[1] if not has_aux else (res[1], res[2])

        res = vmap(push, out_axes=-1, chunk_size=chunk_size)(*tans) if not has_aux else None
        if has_aux:
            res_t = vmap(lambda *t: push(*t)[0], out_axes=-1, chunk_size=chunk_size)(*tans)
            aux = push(*[getitem(t, 0) for t in tans])[1]
        else:
            res_t = res
        o_leaves, o_tree = tu.tree_flatten(res_t)
        per_out = []
        for o in o_leaves:
            oshape = o.shape[:-1]
            parts = []
            start = 0
            for x, s in zip(d_leaves, sizes, strict=True):
                piece = getitem(o, (..., slice(start, start + s)))
                parts.append(reshape(piece, oshape + x.shape))
                start += s
            sub = tu.tree_unflatten(d_tree, parts)
            per_out.append(sub[0] if isinstance(argnums, int) else tuple(sub))
        jac = tu.tree_unflatten(o_tree, per_out)
        if has_aux:
            return jac, aux
        return jac

    return wrapped


def hessian(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Hessian of scalar ``f``: ``jacfwd(jacrev(f))``.

    ``chunk_size`` bounds memory as on ``jacrev`` / ``jacfwd``: both the reverse pass (one
    vjp per gradient entry) and the forward pass over it (one jvp per input entry) run in
    chunks of that many basis vectors.

    Example:
        >>> import functorch_lite as fl
        >>> fl.hessian(lambda x: (x ** 3).sum())(fl.asarray([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
        >>> fl.hessian(lambda x: (x ** 3).sum(), chunk_size=1)(fl.asarray([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
    """
    _check_chunk_size(chunk_size, "hessian")
    inner = jacrev(f, argnums, has_aux=has_aux, chunk_size=chunk_size)
    return jacfwd(inner, argnums, has_aux=has_aux, chunk_size=chunk_size)


# --------------------------------------------------------------------------------------
# stop_gradient
# --------------------------------------------------------------------------------------
stop_gradient_p = Primitive("stop_gradient", lambda xp, x: x, differentiable=False)
stop_gradient_p.batch = lambda n, vals, dims: (bind(stop_gradient_p, vals, {}), dims[0])


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` (a pytree) with no gradient flowing through it.

    Example:
        >>> import functorch_lite as fl
        >>> fl.grad(lambda x: fl.sum(x * fl.stop_gradient(x)))(fl.asarray([3.0])).tolist()
        [3.0]
    """

    if x.__class__ is Tensor:  # the common case: one Tensor, no pytree walk
        p = x._t
        # stop_gradient(tracer) is stop_gradient(its primal) under forward and reverse mode
        while p is not None and p.trace.alive and isinstance(p, _L__ad.PrimalPayload):
            x = p.primal
            p = x._t
        if x._t is None:
            t = _new(Tensor)  # a new Tensor: rebinding it (t[i] = v) must not change x
            t._a = x._a
            t._xp = x._xp
            t._t = None
            return t
        return bind(stop_gradient_p, (x,), {})

    def f(t: Any) -> Any:
        if isinstance(t, Tensor):
            return bind(stop_gradient_p, (t,), {})
        return t

    return tu.tree_map(f, x)
