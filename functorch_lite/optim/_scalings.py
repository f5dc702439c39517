"""The transforms that keep no per-parameter state: scaling (by a number, a learning rate or a
schedule), zeroing, and adding decayed weights."""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import _namespace as ops
from ._base import (
    EmptyState,
    Flat,
    GradientTransformation,
    Schedule,
    _traced_scalar,
    check_nonneg,
    check_number,
    lift,
    need_params,
    schedule_value,
)
from ._eager import Fallback

__all__ = [
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "add_decayed_weights",
    "set_to_zero",
    "ScaleByScheduleState",
]


def scale(step_size: float) -> GradientTransformation:
    """Multiply every update by ``step_size``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale(-2.0)
        >>> tx.update({"w": fl.ones((1,))}, tx.init({}))[0]["w"].tolist()
        [-2.0]
    """
    s = check_number("step_size", step_size, "scale")
    update = lambda g, st, p, *xp: ({k: v * s for k, v in g.items()}, st)  # noqa: E731 - Tensors or arrays
    tx = lift(lambda p: EmptyState(), update, update if type(s) is float else None)
    if type(s) is float:
        tx.update._scale = s  # type: ignore[attr-defined]  # (what chain folds into a scale_by_adam before it)
    return tx


class ScaleByScheduleState(NamedTuple):
    """The number of updates made so far (the schedule's argument)."""

    count: int  # type: ignore[assignment]


def scale_by_schedule(schedule: Schedule) -> GradientTransformation:
    """Multiply the updates by ``schedule(count)``, ``count`` = 0 at the first update.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_schedule(lambda count: 10.0 ** -count)
        >>> s = tx.init({})
        >>> u, s = tx.update({"w": fl.ones((1,))}, s)
        >>> u, s = tx.update({"w": fl.ones((1,))}, s)
        >>> u["w"].tolist()
        [0.10000000149011612]
    """
    if not callable(schedule):
        raise TypeError(f"scale_by_schedule: schedule must be callable; got {schedule!r}.")

    def update(g: Flat, state: ScaleByScheduleState, params: Flat | None) -> Any:
        s = schedule(state.count)
        if not _traced_scalar(s):  # a traced count (inside fl.jit) gives a traced value
            s = float(s)
        return {k: v * s for k, v in g.items()}, ScaleByScheduleState(state.count + 1)

    def update_arrays(g: dict, state: ScaleByScheduleState, params: dict | None, xp: Any) -> Any:
        if type(state.count) is not int:
            raise Fallback
        return update(g, state, params)

    return lift(lambda p: ScaleByScheduleState(0), update, update_arrays)


def scale_by_learning_rate(lr: float | Schedule, *, flip_sign: bool = True) -> GradientTransformation:
    """Multiply by ``-lr`` (``lr`` a float or a schedule of the step count).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_learning_rate(0.5)
        >>> tx.update({"w": fl.ones((1,))}, tx.init({}))[0]["w"].tolist()
        [-0.5]
    """
    m = -1.0 if flip_sign else 1.0
    if callable(lr):
        return scale_by_schedule(lambda count: m * schedule_value(lr, count))
    return scale(m * schedule_value(lr, 0))


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros (used by [`freeze`][functorch_lite.optim.freeze]).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.set_to_zero()
        >>> tx.update({"w": fl.ones((2,))}, tx.init({}))[0]["w"].tolist()
        [0.0, 0.0]
    """
    return lift(
        lambda p: EmptyState(),
        lambda g, st, p: ({k: ops.zeros_like(v) for k, v in g.items()}, st),
        lambda g, st, p, xp: ({k: xp.zeros_like(v) for k, v in g.items()}, st),
    )


def _mask_flat(mask: Any, params: Flat) -> dict[str, bool]:
    m = mask(params) if callable(mask) else mask
    if isinstance(m, bool):
        return {k: m for k in params}
    from .._core import tree_util

    paths, leaves, _ = tree_util.tree_flatten_with_path(m)
    return {p: bool(v) for p, v in zip(paths, leaves, strict=False)}


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """Add ``weight_decay * param`` to each update (L2 / decoupled decay, by its place in a chain).

    Args:
        weight_decay: the coefficient (>= 0).
        mask: None (all parameters), a pytree of bools with the params' paths, or a
            callable ``mask(params) -> such a pytree``; ``params`` reach it as a dict
            keyed by dotted name. False leaves get no decay.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.add_decayed_weights(0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> tx.update({"w": fl.zeros((1,))}, tx.init(p), p)[0]["w"].tolist()
        [0.10000000149011612]
    """
    wd = check_nonneg("weight_decay", weight_decay, "add_decayed_weights")

    def update(g: Flat, state: EmptyState, params: Flat | None) -> Any:
        if wd == 0.0:
            return dict(g), state
        p = need_params(params, "add_decayed_weights")
        m = None if mask is None else _mask_flat(mask, p)
        out = {}
        for k, v in g.items():
            out[k] = v + wd * p[k] if m is None or m.get(k, False) else v
        return out, state

    def update_arrays(g: dict, state: EmptyState, params: dict | None, xp: Any) -> Any:
        if wd == 0.0:
            return dict(g), state
        if params is None or mask is not None:  # a mask is a function of Tensors: the Tensor path
            raise Fallback
        return {k: v + wd * params[k] for k, v in g.items()}, state

    return lift(lambda p: EmptyState(), update, update_arrays if type(wd) is float else None)
