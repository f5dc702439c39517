"""``fl.scan`` (and its ``checkpoint=`` segments) and ``fl.map``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..._core import tree_util as tu
from ..._core.engine import find_top_trace
from ..._core.tensor import Tensor
from ..._errors import ControlFlowError
from .._program import Program
from ._common import _avals, _example, _fmt_avals, _leaf, _ops, _var_aval, close
from ._scan import _scan_bind
from ._scan_split import _split_body


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    *,
    checkpoint: int | bool = False,
    _store: bool = True,
) -> tuple[Any, Any]:
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; return ``(carry, ys)``.

    The semantics of ``jax.lax.scan``, in one primitive: ``f`` is traced once (on the shapes
    and dtypes of ``init`` and of one slice of ``xs``) and replayed per step, so a long loop
    makes one equation in a program and one node on a tape. ``ys`` stacks the per-step ``y``
    along a new leading axis (at position ``i`` also when ``reverse``).

    Args:
        f: the step, a pure function of the carry and one slice of ``xs`` (pytrees).
        init: the initial carry (a pytree); ``f`` must return a carry of the same structure,
            shapes and dtypes.
        xs: the pytree scanned over its leading axis, or None (then ``length`` is needed).
        length: the number of steps (checked against ``xs``'s leading axis when both are given).
        reverse: scan from the last slice to the first.
        unroll: accepted for compatibility with ``jax.lax.scan``; the replay calls the body once
            per step whatever its value (results do not depend on it).
        checkpoint: bound the memory of reverse mode (an extension of ``jax.lax.scan``): store
            the carry only every ``checkpoint`` steps (``True``: about ``sqrt(length)``) and
            recompute the steps between in the backward pass, one extra forward pass in all.

    Reverse mode stores, per step, the values the step's backward pass needs (its residuals:
    ``length`` times what one step keeps, as a Python loop under ``grad`` would); with
    ``checkpoint=k`` it stores a carry per ``k`` steps instead and recomputes the rest.

    Example:
        >>> import functorch_lite as fl
        >>> carry, ys = fl.scan(lambda c, x: (c + x, c * x), fl.asarray(0.0), fl.arange(1.0, 5.0))
        >>> float(carry), ys.tolist()
        (10.0, [0.0, 2.0, 9.0, 24.0])
        >>> float(fl.grad(lambda x: fl.scan(lambda c, x: (c * x, None), fl.asarray(1.0), x)[0])(fl.arange(1.0, 4.0))[0])
        6.0
    """
    if not (unroll is True or unroll is False or (isinstance(unroll, int) and unroll >= 1)):
        raise ControlFlowError(f"scan: unroll must be a positive int or a bool; got {unroll!r}.")
    init_leaves, init_tree = tu.tree_flatten(init)
    init_leaves = [_leaf(x, "scan: init") for x in init_leaves]
    x_leaves, x_tree = tu.tree_flatten(xs)
    x_leaves = [_leaf(x, "scan: xs") for x in x_leaves]
    for x in x_leaves:
        if x.ndim == 0:
            raise ControlFlowError(
                "scan: every leaf of xs is scanned over its leading axis, so it needs one; got a 0-d leaf. "
                "Pass it through the carry or a closure instead."
            )
    lens = sorted({int(x.shape[0]) for x in x_leaves})
    if len(lens) > 1:
        raise ControlFlowError(
            f"scan: the leaves of xs have leading axes of different lengths {lens}; they must agree "
            "(each step takes one slice of every leaf)."
        )
    if length is not None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise ControlFlowError(f"scan: length must be a non-negative int; got {length!r}.")
        if lens and lens[0] != length:
            raise ControlFlowError(
                f"scan: length={length} but xs has leading axis {lens[0]}; drop length or make them agree."
            )
    elif not lens:
        raise ControlFlowError("scan: with xs=None, pass length= (the number of steps).")
    n = length if length is not None else lens[0]
    if checkpoint is not False:
        k = _segment(checkpoint, n)
        if k < n:
            return _segmented(f, init, xs, x_leaves, x_tree, n, k, bool(reverse))
    nk = len(init_leaves)
    seen: list[Any] = []

    def step(*leaves: Any) -> list[Any]:
        c = tu.tree_unflatten(init_tree, list(leaves[:nk]))
        x = tu.tree_unflatten(x_tree, list(leaves[nk:]))
        out = f(c, x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise ControlFlowError(
                f"scan: the body must return a pair (carry, y); got {type(out).__name__}. Return (carry, None) "
                "when there is no per-step output."
            )
        c2, y = out
        c_leaves, c_tree = tu.tree_flatten(c2)
        if c_tree != init_tree:
            raise ControlFlowError(
                f"scan: the body returned a carry of structure {c_tree}, but init has structure {init_tree}; "
                "the carry must keep its structure from step to step."
            )
        c_leaves = [_fit_carry(o, like, "scan") for o, like in zip(c_leaves, init_leaves, strict=True)]
        y_leaves, y_tree = tu.tree_flatten(y)
        seen.append(y_tree)
        return [*c_leaves, *[_leaf(o, "scan: y") for o in y_leaves]]

    ex = [*[_example(c) for c in init_leaves], *[_example(x, True) for x in x_leaves]]
    body, consts = close(step, ex, "scan")
    _check_carry(body, init_leaves, "scan", "init")
    lp = {"length": n, "reverse": bool(reverse), "dyn": False}
    ny = len(body.outs) - nk
    top = find_top_trace([*consts, *init_leaves, *x_leaves])
    if _store and top is not None and top.kind_name == "grad" and n > 0:
        # differentiated in reverse mode right here: the forward pass keeps the residuals
        nc = len(consts)
        ci = tuple(i for i, c in enumerate(consts) if _traced_by(c, top))
        xi = tuple(i for i, x in enumerate(x_leaves) if _traced_by(x, top))
        r = _split_body(body, [*[_example(c) for c in consts], *ex], nc, nk, ci, xi)
        if r is not None:
            fwd, jextra, split = r
            res = _scan_bind([], [*jextra, *consts], init_leaves, x_leaves, fwd, [], split=split, **lp)
            res = res[: nk + ny]
            return tu.tree_unflatten(init_tree, res[:nk]), tu.tree_unflatten(seen[-1], res[nk:])
    res = _scan_bind([], [], init_leaves, x_leaves, body, consts, **lp)
    return tu.tree_unflatten(init_tree, res[:nk]), tu.tree_unflatten(seen[-1], res[nk:])


def _traced_by(t: Tensor, trace: Any) -> bool:
    p = t._t
    return p is not None and p.trace is trace and t.dtype.kind in "fc"


def _segment(checkpoint: int | bool, n: int) -> int:
    if checkpoint is True:
        return max(1, math.isqrt(max(n - 1, 0)) + 1)
    if not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or checkpoint < 1:
        raise ControlFlowError(
            f"scan: checkpoint must be a bool or a positive int (steps between stored carries); got {checkpoint!r}."
        )
    return checkpoint


def _segmented(
    f: Callable[..., Any], init: Any, xs: Any, x_leaves: list[Tensor], x_tree: Any, n: int, k: int, reverse: bool
) -> tuple[Any, Any]:
    """A scan of ``n`` steps as an outer scan over segments of ``k`` steps (an inner scan each)
    and a plain scan of the ``n % k`` steps left: reverse mode stores a carry per segment."""
    fl = _ops()
    m, r = divmod(n, k)
    head = [fl.reshape(x[: m * k], (m, k, *x.shape[1:])) for x in x_leaves]
    tail = [x[m * k :] for x in x_leaves]
    xh = tu.tree_unflatten(x_tree, head) if x_leaves else None
    xt = tu.tree_unflatten(x_tree, tail) if x_leaves else None

    def seg(c: Any, xseg: Any) -> Any:
        return scan(f, c, xseg, length=k, reverse=reverse)

    # the loop over segments stores only a carry per segment (_store=False: no residuals)
    if reverse:
        c, ys_t = scan(f, init, xt, length=r, reverse=True)
        c, ys_h = scan(seg, c, xh, length=m, reverse=True, _store=False)
    else:
        c, ys_h = scan(seg, init, xh, length=m, _store=False)
        c, ys_t = scan(f, c, xt, length=r)

    def join(h: Any, t: Any) -> Any:
        h = fl.reshape(h, (m * k, *h.shape[2:]))
        return h if r == 0 else fl.concat([h, t], axis=0)

    return c, tu.tree_map(join, ys_h, ys_t)


def _fit_carry(o: Any, like: Tensor, what: str) -> Tensor:
    """A body's carry output as a Tensor; a Python number takes the carry's dtype (as JAX's weak types)."""
    if isinstance(o, (bool, int, float, complex)) and not isinstance(o, Tensor):
        return _ops().asarray(o, dtype=like.dtype)
    return _leaf(o, what)


def _check_carry(body: Program, init: Sequence[Tensor], what: str, name: str, start: int = 0) -> None:
    got = [_var_aval(v) for v in body.outs[start : start + len(init)]]
    want = _avals(init)
    if got != want:
        raise ControlFlowError(
            f"{what}: the body returned a carry with shapes/dtypes {_fmt_avals(got)}, but {name} has "
            f"{_fmt_avals(want)}; each step must return a carry of the same shapes and dtypes (cast with "
            ".astype, or give the initial value the dtype the body computes)."
        )


def map(f: Callable[[Any], Any], xs: Any) -> Any:  # noqa: A001  (jax.lax.map's name)
    """``f`` applied to each slice of ``xs`` along its leading axis, stacked: ``jax.lax.map``.

    One traced body replayed per slice (a scan with no carry); use ``fl.vmap`` to run the
    slices at once instead.

    Example:
        >>> import functorch_lite as fl
        >>> fl.map(lambda r: fl.sum(r * r), fl.reshape(fl.arange(6.0), (3, 2))).tolist()
        [1.0, 13.0, 41.0]
    """
    return scan(lambda c, x: ((), f(x)), (), xs)[1]
