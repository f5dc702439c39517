"""Forward mode: ``jvp``, ``linearize``, and ``linear_transpose`` (a linear function's transpose, checked numerically)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _dtypes as _dtypes
from .._core import tree_util as tu
from .._core.engine import new_trace
from .._core.tensor import Tensor
from .._errors import TransformError
from .._ops import _base as _base
from .._ops import creation as _creation
from .._ops import dtypes as _ops_dtypes
from .._ops import reduction as _reduction
from . import _ad as _ad
from ._ad import JVPTrace, forward_replay
from ._grad import _argname, _cotangents, _is_float, _record, _run_backward, _size, _strip, _to_leaf


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
                    astype = _ops_dtypes.astype

                    t = astype(t, p.dtype)
                tracers.append(tr.tracer(p, t))
            else:
                if t._t is None and t.size and bool(_reduction.any(t != 0)):
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
    zeros_like = _creation.zeros_like

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
        zeros_like = _creation.zeros_like

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

    D = _dtypes
    astype = _ops_dtypes.astype
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
            tol = 1e-7 if gc.dtype in (_dtypes.float64, _dtypes.complex128) else 1e-3
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
    zeros_like = _creation.zeros_like
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
