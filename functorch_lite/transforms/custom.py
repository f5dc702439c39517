"""User-defined rules: custom_vjp, custom_jvp, and checkpoint (rematerialisation).

Each is a call that every trace handles in its own way (``Trace.process_custom``):
reverse mode records one node whose backward runs the user's rule; forward
mode and vmap rebuild the call one level down, so lower transforms still see
the custom rule. A custom_vjp function is also forward-differentiable: its
jvp is derived from the vjp (the transpose of a linear map, by one more vjp).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.engine import find_top_trace
from .._core.tensor import Tensor
from .._errors import TransformError

__all__ = ["custom_vjp", "custom_jvp", "checkpoint", "remat"]


def _zeros_like(x: Any) -> Any:
    from .._ops.creation import zeros_like

    return zeros_like(x)


def _flat_args(args: tuple[Any, ...]) -> tuple[list[Any], Any]:
    leaves, tree = tu.tree_flatten(args)
    return leaves, tree


def _per_arg_cotangents(grads: Any, args: tuple[Any, ...], what: str) -> list[Any]:
    """Flatten a tuple of per-argument cotangents (None = zero) into one entry per input leaf."""
    if not isinstance(grads, (tuple, list)) or len(grads) != len(args):
        raise TransformError(
            f"{what}: the backward rule must return a tuple with one cotangent per positional "
            f"argument ({len(args)}); got {type(grads).__name__}"
            + (f" of length {len(grads)}" if isinstance(grads, (tuple, list)) else "")
            + ". Return None for an argument without a gradient."
        )
    out: list[Any] = []
    for i, (g, a) in enumerate(zip(grads, args, strict=True)):
        a_leaves = tu.tree_leaves(a)
        if g is None:
            out.extend([None] * len(a_leaves))
            continue
        g_leaves = tu.tree_leaves(g)
        if len(g_leaves) != len(a_leaves):
            raise TransformError(
                f"{what}: the cotangent for argument {i} has {len(g_leaves)} leaves but the argument "
                f"has {len(a_leaves)}; return a cotangent with the argument's structure."
            )
        out.extend(g_leaves)
    return out


class _Call:
    """A pending custom call: the object and the pytree structure of its arguments."""

    def __init__(self, owner: Any, tree: Any, kwargs: dict[str, Any]) -> None:
        self.owner = owner
        self.tree = tree
        self.kwargs = kwargs

    def args(self, leaves: Sequence[Any]) -> tuple[Any, ...]:
        return tu.tree_unflatten(self.tree, list(leaves))

    def jvp_process(self, trace: Any, leaves: Sequence[Any]) -> Any:
        return self.owner._jvp_process(self, trace, leaves)

    def vjp_process(self, trace: Any, leaves: Sequence[Any]) -> Any:
        return self.owner._vjp_process(self, trace, leaves)

    def batch_process(self, trace: Any, leaves: Sequence[Any]) -> Any:
        return self.owner._batch_process(self, trace, leaves)


def _dispatch(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], plain: Callable[..., Any]) -> Any:
    leaves, tree = _flat_args(args)
    top = find_top_trace(leaves)
    if top is None:
        return plain(*args, **kwargs)
    return top.process_custom(_Call(owner, tree, kwargs), leaves)


def _wrap_outputs(trace: Any, out: Any, make: Callable[[Tensor, int], Any]) -> Any:
    leaves, tree = tu.tree_flatten(out)
    return tu.tree_unflatten(tree, [make(o, i) for i, o in enumerate(leaves)])


class _Rule:
    """Carrier of vjp/jvp for a recorded custom node (used by backward and linearize)."""

    avjp = None  # no array-level rule: backward always runs the Tensor-level one

    def __init__(self, name: str, vjp: Callable[..., Any], jvp: Callable[..., Any]) -> None:
        self.name = name
        self.vjp = vjp
        self.jvp = jvp
        self.multiple_results = True


def _transpose_jvp(
    pullback_fn: Callable[[list[Any]], list[Any]], outs: Sequence[Any], ins: Sequence[Any]
) -> Callable[..., Any]:
    """jvp from a linear pullback: J t = d/dg <pullback(g), t>, i.e. the vjp of the pullback."""

    def jvp(tans: Sequence[Any], out: Any, *primals: Any, **params: Any) -> list[Any]:
        from .api import vjp as _vjp

        float_idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind in "fc"]
        g0 = [_zeros_like(outs[i]) for i in float_idx]

        def pb(*g: Any) -> Any:
            full: list[Any] = [None] * len(outs)
            for i, v in zip(float_idx, g, strict=True):
                full[i] = v
            res = pullback_fn(full)
            return [r if r is not None else _zeros_like(x) for r, x in zip(res, ins, strict=True)]

        _, f_vjp = _vjp(pb, *g0)
        t_full = [t if t is not None else _zeros_like(x) for t, x in zip(tans, ins, strict=True)]
        jt = f_vjp(t_full)
        res: list[Any] = [None] * len(outs)
        for i, v in zip(float_idx, jt, strict=True):
            res[i] = v
        return res

    return jvp


# ------------------------------------------------------------------------------------
# custom_vjp
# ------------------------------------------------------------------------------------
class custom_vjp:
    """A function with a user-defined reverse-mode rule (JAX's ``custom_vjp``).

    ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, g) -> tuple`` of one
    cotangent per positional argument (None for no gradient). Unlike JAX, the
    result is also forward-differentiable and batches under vmap.

    Example:
        >>> import functorch_lite as fl
        >>> @fl.custom_vjp
        ... def clip_grad(x):
        ...     return x
        >>> clip_grad.defvjp(lambda x: (x, None), lambda res, g: (fl.clip(g, -1.0, 1.0),))
        >>> fl.grad(lambda x: fl.sum(clip_grad(x) * 5.0))(fl.ones((2,))).tolist()
        [1.0, 1.0]
    """

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        self.fwd = fwd
        self.bwd = bwd

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise TransformError(
                f"custom_vjp {getattr(self.fun, '__name__', '?')}: call defvjp(fwd, bwd) before using it."
            )
        return _dispatch(self, args, kwargs, self.fun)

    def _fwd(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        res = self.fwd(*args, **kwargs)  # type: ignore[misc]
        if not (isinstance(res, tuple) and len(res) == 2):
            raise TransformError(
                f"custom_vjp {getattr(self.fun, '__name__', '?')}: fwd must return (output, residuals); "
                f"got {type(res).__name__}."
            )
        return res

    def _vjp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        primals = trace.unpack_primals(leaves)
        args = call.args(primals)
        out, res = self._fwd(args, call.kwargs)
        o_leaves, o_tree = tu.tree_flatten(out)
        bwd = self.bwd
        name = getattr(self.fun, "__name__", "custom_vjp")

        def pullback(cts: list[Any]) -> list[Any]:
            full = [c if c is not None else _zeros_like(o) for c, o in zip(cts, o_leaves, strict=True)]
            g = tu.tree_unflatten(o_tree, full)
            grads = bwd(res, g)  # type: ignore[misc]
            return _per_arg_cotangents(grads, args, f"custom_vjp {name}")

        rule = _Rule(
            name,
            lambda cts, out_, *p, **k: pullback(list(cts)),
            _transpose_jvp(pullback, o_leaves, primals),
        )
        tracers = trace.record(rule, {}, leaves, tuple(o_leaves), True)
        return tu.tree_unflatten(o_tree, list(tracers))

    def _jvp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        primals, tangents = trace.unpack(leaves)
        args = call.args(primals)
        out = self(*args, **call.kwargs)  # lower levels see the custom rule
        if all(t is None for t in tangents):
            return out
        o_leaves, o_tree = tu.tree_flatten(out)
        _, res = self._fwd(args, call.kwargs)
        bwd = self.bwd
        name = getattr(self.fun, "__name__", "custom_vjp")

        def pullback(cts: list[Any]) -> list[Any]:
            full = [c if c is not None else _zeros_like(o) for c, o in zip(cts, o_leaves, strict=True)]
            grads = bwd(res, tu.tree_unflatten(o_tree, full))  # type: ignore[misc]
            return _per_arg_cotangents(grads, args, f"custom_vjp {name}")

        touts = _transpose_jvp(pullback, o_leaves, primals)(tangents, None)
        from ._ad import fit_tangent

        res_leaves = [
            o if t is None else trace.tracer(o, fit_tangent(t, o)) for o, t in zip(o_leaves, touts, strict=True)
        ]
        return tu.tree_unflatten(o_tree, res_leaves)

    def _batch_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from .._ops._rules import move_bdim_to_front
        from .api import vmap

        vals, dims = trace.unpack(leaves)
        vals = [v if d is None else move_bdim_to_front(v, d) for v, d in zip(vals, dims, strict=True)]
        axes = call.args([None if d is None else 0 for d in dims])
        n = trace.axis_size
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        kw = call.kwargs
        batched = custom_vjp(vmap(lambda *a: fun(*a, **kw), in_axes=axes, axis_size=n))
        batched.defvjp(
            vmap(lambda *a: fwd(*a, **kw), in_axes=axes, out_axes=0, axis_size=n),  # type: ignore[misc]
            lambda res, g: vmap(bwd, in_axes=(0, 0), out_axes=0, axis_size=n)(res, g),  # type: ignore[arg-type]
        )
        out = batched(*call.args(vals))
        return _wrap_outputs(trace, out, lambda o, i: trace.tracer(o, 0) if isinstance(o, Tensor) else o)


# ------------------------------------------------------------------------------------
# custom_jvp
# ------------------------------------------------------------------------------------
class custom_jvp:
    """A function with a user-defined forward-mode rule (JAX's ``custom_jvp``).

    ``jvp(primals, tangents) -> (primal_out, tangent_out)``; reverse mode is
    derived by transposing it, and it batches under vmap.

    Example:
        >>> import functorch_lite as fl
        >>> @fl.custom_jvp
        ... def f(x):
        ...     return fl.sin(x)
        >>> _ = f.defjvp(lambda p, t: (fl.sin(p[0]), 2.0 * t[0]))
        >>> fl.grad(lambda x: fl.sum(f(x)))(fl.zeros((1,))).tolist()
        [2.0]
    """

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.rule: Callable[..., Any] | None = None

    def defjvp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.rule = rule
        return rule

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.rule is None:
            raise TransformError(f"custom_jvp {getattr(self.fun, '__name__', '?')}: call defjvp(rule) before using it.")
        return _dispatch(self, args, kwargs, self.fun)

    def _tangent_fn(self, args: tuple[Any, ...], tree: Any, kwargs: dict[str, Any]) -> Callable[..., Any]:
        rule = self.rule

        def tan(t_leaves: Sequence[Any]) -> list[Any]:
            tans = tu.tree_unflatten(tree, list(t_leaves))
            res = rule(args, tans, **kwargs) if kwargs else rule(args, tans)  # type: ignore[misc]
            if not (isinstance(res, tuple) and len(res) == 2):
                raise TransformError(
                    f"custom_jvp {getattr(self.fun, '__name__', '?')}: the rule must return (primal_out, tangent_out)."
                )
            return tu.tree_leaves(res[1])

        return tan

    def _jvp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        primals, tangents = trace.unpack(leaves)
        args = call.args(primals)
        out = self(*args, **call.kwargs)
        if all(t is None for t in tangents):
            return out
        o_leaves, o_tree = tu.tree_flatten(out)
        tans = [t if t is not None else _zeros_like(p) for t, p in zip(tangents, primals, strict=True)]
        t_out = self._tangent_fn(args, call.tree, call.kwargs)(tans)
        from ._ad import fit_tangent

        res = [
            trace.tracer(o, fit_tangent(t, o)) if isinstance(o, Tensor) and o.dtype.kind in "fc" else o
            for o, t in zip(o_leaves, t_out, strict=True)
        ]
        return tu.tree_unflatten(o_tree, res)

    def _vjp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from .api import vjp as _vjp

        primals = trace.unpack_primals(leaves)
        args = call.args(primals)
        out = self(*args, **call.kwargs)
        o_leaves, o_tree = tu.tree_flatten(out)
        tan = self._tangent_fn(args, call.tree, call.kwargs)
        float_in = [i for i, p in enumerate(primals) if isinstance(p, Tensor) and p.dtype.kind in "fc"]

        def pullback(cts: list[Any]) -> list[Any]:
            def lin(*t: Any) -> Any:
                full = [_zeros_like(p) for p in primals]
                for i, v in zip(float_in, t, strict=True):
                    full[i] = v
                return tan(full)

            _, f_vjp = _vjp(lin, *[_zeros_like(primals[i]) for i in float_in])
            full_ct = [c if c is not None else _zeros_like(o) for c, o in zip(cts, o_leaves, strict=True)]
            g = f_vjp(full_ct)
            res: list[Any] = [None] * len(primals)
            for i, v in zip(float_in, g, strict=True):
                res[i] = v
            return res

        def jvp(tans: Sequence[Any], out_: Any, *p: Any, **k: Any) -> list[Any]:
            full = [t if t is not None else _zeros_like(x) for t, x in zip(tans, primals, strict=True)]
            return tan(full)

        rule = _Rule(getattr(self.fun, "__name__", "custom_jvp"), lambda cts, o, *p, **k: pullback(list(cts)), jvp)
        tracers = trace.record(rule, {}, leaves, tuple(o_leaves), True)
        return tu.tree_unflatten(o_tree, list(tracers))

    def _batch_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from .._ops._rules import move_bdim_to_front
        from .api import vmap

        vals, dims = trace.unpack(leaves)
        vals = [v if d is None else move_bdim_to_front(v, d) for v, d in zip(vals, dims, strict=True)]
        axes = call.args([None if d is None else 0 for d in dims])
        n = trace.axis_size
        fun, rule, kw = self.fun, self.rule, call.kwargs
        batched = custom_jvp(vmap(lambda *a: fun(*a, **kw), in_axes=axes, axis_size=n))
        batched.defjvp(
            lambda p, t: vmap(lambda pp, tt: rule(pp, tt), in_axes=(axes, axes), out_axes=0, axis_size=n)(p, t)  # type: ignore[misc]
        )
        out = batched(*call.args(vals))
        return _wrap_outputs(trace, out, lambda o, i: trace.tracer(o, 0) if isinstance(o, Tensor) else o)


# ------------------------------------------------------------------------------------
# checkpoint
# ------------------------------------------------------------------------------------
class _Checkpointed:
    def __init__(self, fun: Callable[..., Any]) -> None:
        self.fun = fun

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _dispatch(self, args, kwargs, self.fun)

    def _vjp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from . import api as _api

        primals = trace.unpack_primals(leaves)
        fun, kw = self.fun, call.kwargs
        out = fun(*call.args(primals), **kw)  # intermediates of this level are not kept
        o_leaves, o_tree = tu.tree_flatten(out)
        float_in = [i for i, p in enumerate(primals) if isinstance(p, Tensor) and p.dtype.kind in "fc"]
        # Only inputs that carry a gradient at this level are differentiated in backward.
        diff_in = [
            i
            for i in float_in
            if isinstance(leaves[i], Tensor) and leaves[i]._t is not None and leaves[i]._t.trace is trace
        ]

        def f_flat(*fl_: Any) -> Any:
            full = list(primals)
            for i, v in zip(float_in, fl_, strict=True):
                full[i] = v
            return tu.tree_leaves(fun(*call.args(full), **kw))

        def f_diff(*d: Any) -> Any:
            full = list(primals)
            for i, v in zip(diff_in, d, strict=True):
                full[i] = v
            return tu.tree_leaves(fun(*call.args(full), **kw))

        def pullback(cts: list[Any]) -> list[Any]:
            # recompute the forward, then a one-shot backward that frees the residuals as it goes
            tape, _, _ = _api._record(f_diff, [primals[i] for i in diff_in], False, "checkpoint")
            full_ct = [c if c is not None else _zeros_like(o) for c, o in zip(cts, o_leaves, strict=True)]
            g = _api._run_backward(tape, full_ct, free=True)
            res: list[Any] = [None] * len(primals)
            for i, v in zip(diff_in, g, strict=True):
                res[i] = v
            return res

        def jvp(tans: Sequence[Any], out_: Any, *p: Any, **k: Any) -> list[Any]:
            from .api import jvp as _jvp

            ts = [tans[i] if tans[i] is not None else _zeros_like(primals[i]) for i in float_in]
            return list(_jvp(f_flat, tuple(primals[i] for i in float_in), tuple(ts))[1])

        rule = _Rule(getattr(fun, "__name__", "checkpoint"), lambda cts, o, *p, **k: pullback(list(cts)), jvp)
        tracers = trace.record(rule, {}, leaves, tuple(o_leaves), True)
        return tu.tree_unflatten(o_tree, list(tracers))

    def _jvp_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from .api import jvp as _jvp

        primals, tangents = trace.unpack(leaves)
        fun, kw = self.fun, call.kwargs
        float_in = [i for i, p in enumerate(primals) if isinstance(p, Tensor) and p.dtype.kind in "fc"]
        k = len(float_in)
        captured: dict[str, Any] = {}

        def both(*pt: Any) -> Any:
            def f_sub(*fl_: Any) -> Any:
                full = list(primals)
                for i, v in zip(float_in, fl_, strict=True):
                    full[i] = v
                return fun(*call.args(full), **kw)

            o, t = _jvp(f_sub, tuple(pt[:k]), tuple(pt[k:]))
            o_leaves, o_tree = tu.tree_flatten(o)
            captured["tree"] = o_tree
            return o_leaves + tu.tree_leaves(t)

        ts = [tangents[i] if tangents[i] is not None else _zeros_like(primals[i]) for i in float_in]
        res = checkpoint(both)(*[primals[i] for i in float_in], *ts)
        half = len(res) // 2
        outs = [trace.tracer(o, t) for o, t in zip(res[:half], res[half:], strict=True)]
        return tu.tree_unflatten(captured["tree"], outs)

    def _batch_process(self, call: _Call, trace: Any, leaves: Sequence[Any]) -> Any:
        from .._ops._rules import move_bdim_to_front
        from .api import vmap

        vals, dims = trace.unpack(leaves)
        vals = [v if d is None else move_bdim_to_front(v, d) for v, d in zip(vals, dims, strict=True)]
        axes = call.args([None if d is None else 0 for d in dims])
        fun, kw, n = self.fun, call.kwargs, trace.axis_size
        out = checkpoint(vmap(lambda *a: fun(*a, **kw), in_axes=axes, axis_size=n))(*call.args(vals))
        return _wrap_outputs(trace, out, lambda o, i: trace.tracer(o, 0) if isinstance(o, Tensor) else o)


def checkpoint(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Rematerialise ``fun`` under reverse mode: keep only its inputs, recompute the rest in backward.

    Lowers peak memory of grad at the cost of one more forward pass of ``fun``.

    Example:
        >>> import functorch_lite as fl
        >>> f = fl.checkpoint(lambda x: fl.sin(fl.sin(x)))
        >>> round(fl.grad(lambda x: fl.sum(f(x)))(fl.zeros((1,))).item(), 4)
        1.0
    """
    c = _Checkpointed(fun)
    functools.update_wrapper(c, fun)
    return c


remat = checkpoint
