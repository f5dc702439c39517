"""Wrappers around transformations: masking, freezing, skipping non-finite steps,
gradient accumulation and run-time hyperparameters."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import _namespace as ops
from .._errors import ConfigError
from ._base import (
    Flat,
    GradientTransformation,
    OptState,
    Params,
    PerParam,
    Updates,
    lift,
    missing_state,
)
from ._eager import Fallback, array_fn
from ._transforms import _mask_flat, set_to_zero

__all__ = [
    "masked",
    "freeze",
    "apply_if_finite",
    "MultiSteps",
    "inject_hyperparams",
    "MaskedState",
    "ApplyIfFiniteState",
    "MultiStepsState",
    "InjectHyperparamsState",
]


def _check_tx(t: Any, where: str) -> None:
    if not (callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))):
        raise ConfigError(
            f"{where}: expected a gradient transformation (an object with init and update); got {type(t).__name__}."
        )


class MaskedState(NamedTuple):
    """The inner transformation's state (over the masked parameters only)."""

    inner_state: Any


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``inner`` to the parameters where ``mask`` is True; pass the others through.

    Args:
        inner: the transformation to apply.
        mask: a pytree of bools with the params' paths, or ``mask(params)`` returning one
            (``params`` reach it as a dict keyed by dotted name).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.masked(optim.scale(0.0), {"a": True, "b": False})
        >>> p = {"a": fl.ones((1,)), "b": fl.ones((1,))}
        >>> u, _ = tx.update(p, tx.init(p), p)
        >>> u["a"].tolist(), u["b"].tolist()
        ([0.0], [1.0])
    """
    _check_tx(inner, "masked")

    def init(params: Flat) -> MaskedState:
        m = _mask_flat(mask, params)
        return MaskedState(inner.init({k: v for k, v in params.items() if m.get(k, False)}))

    def update(g: Flat, state: MaskedState, params: Flat | None) -> Any:
        m = _mask_flat(mask, params if params is not None else g)
        sub = {k: v for k, v in g.items() if m.get(k, False)}
        sub_p = None if params is None else {k: params[k] for k in sub}
        out_sub, inner_state = inner.update(sub, state.inner_state, sub_p)
        out = {k: out_sub[k] if k in sub else v for k, v in g.items()}
        return out, MaskedState(inner_state)

    return lift(init, update)


def freeze(mask: Any) -> GradientTransformation:
    """Zero the updates of the parameters where ``mask`` is True (they stay as they are).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.chain(optim.freeze({"a": True, "b": False}), optim.sgd(lr=1.0))
        >>> p = {"a": fl.ones((1,)), "b": fl.ones((1,))}
        >>> u, _ = tx.update(p, tx.init(p), p)
        >>> u["a"].tolist(), u["b"].tolist()
        ([-0.0], [-1.0])
    """
    return masked(set_to_zero(), mask)


class ApplyIfFiniteState(NamedTuple):
    """Counts of rejected steps and the inner state."""

    notfinite_count: int
    last_finite: bool
    total_notfinite: int
    inner_state: Any


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors: int = 5) -> GradientTransformation:
    """Skip steps whose gradients hold nan or inf (zero updates, inner state unchanged).

    After more than ``max_consecutive_errors`` rejected steps in a row, the step is applied anyway.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.apply_if_finite(optim.sgd(lr=1.0))
        >>> p = {"w": fl.ones((1,))}
        >>> u, s = tx.update({"w": fl.asarray([fl.nan])}, tx.init(p), p)
        >>> u["w"].tolist(), s.notfinite_count
        ([0.0], 1)
    """
    _check_tx(inner, "apply_if_finite")
    if (
        isinstance(max_consecutive_errors, bool)
        or not isinstance(max_consecutive_errors, int)
        or max_consecutive_errors < 0
    ):
        raise ConfigError(
            f"apply_if_finite: max_consecutive_errors must be an int >= 0; got {max_consecutive_errors!r}."
        )

    def init(params: Flat) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(0, True, 0, inner.init(params))

    def update(g: Flat, state: ApplyIfFiniteState, params: Flat | None) -> Any:
        finite = all(bool(ops.all(ops.isfinite(v))) for v in g.values())
        count = 0 if finite else state.notfinite_count + 1
        total = state.total_notfinite + (0 if finite else 1)
        if finite or count > max_consecutive_errors:
            out, inner_state = inner.update(g, state.inner_state, params)
        else:
            out, inner_state = {k: ops.zeros_like(v) for k, v in g.items()}, state.inner_state
        return out, ApplyIfFiniteState(count, finite, total, inner_state)

    return lift(init, update)


class MultiStepsState(NamedTuple):
    """Mini-step counter, number of applied steps, the inner state and the gradient sums."""

    mini_step: int
    gradient_step: int
    inner_state: Any
    acc_grads: PerParam


class MultiSteps:
    """Gradient accumulation: apply ``inner`` to the mean of every ``every_k_schedule`` gradients.

    In between, the updates are zeros. ``every_k_schedule`` is an int or a function of
    the number of applied steps. The object is a gradient transformation itself
    (``init`` / ``update``); [`gradient_transformation`][functorch_lite.optim.MultiSteps.gradient_transformation] returns the plain pair.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.MultiSteps(optim.sgd(lr=1.0), every_k_schedule=2)
        >>> p = {"w": fl.zeros((1,))}
        >>> s = tx.init(p)
        >>> u, s = tx.update({"w": fl.asarray([1.0])}, s, p)
        >>> u, s = tx.update({"w": fl.asarray([3.0])}, s, p)
        >>> u["w"].tolist()
        [-2.0]
    """

    def __init__(self, inner: GradientTransformation, every_k_schedule: int | Callable[[int], int]) -> None:
        _check_tx(inner, "MultiSteps")
        if not callable(every_k_schedule):
            if isinstance(every_k_schedule, bool) or not isinstance(every_k_schedule, int) or every_k_schedule < 1:
                raise ConfigError(
                    f"MultiSteps: every_k_schedule must be an int >= 1 or a schedule; got {every_k_schedule!r}."
                )
        self.inner = inner
        self.every_k_schedule = every_k_schedule
        self._tx = lift(self._init, self._update)

    def _k(self, gradient_step: int) -> int:
        s = self.every_k_schedule
        k = int(s(gradient_step)) if callable(s) else s
        if k < 1:
            raise ConfigError(f"MultiSteps: every_k_schedule gave {k} at step {gradient_step}; it must be >= 1.")
        return k

    def _init(self, params: Flat) -> MultiStepsState:
        return MultiStepsState(
            0, 0, self.inner.init(params), PerParam({k: ops.zeros_like(v) for k, v in params.items()})
        )

    def _update(self, g: Flat, state: MultiStepsState, params: Flat | None) -> Any:
        acc = PerParam(state.acc_grads)
        for k, v in g.items():
            if k not in acc:
                raise missing_state(k, acc, "MultiSteps")
            acc[k] = acc[k] + v
        k_now = self._k(state.gradient_step)
        mini = state.mini_step + 1
        if mini < k_now:
            zeros = {k: ops.zeros_like(v) for k, v in g.items()}
            return zeros, MultiStepsState(mini, state.gradient_step, state.inner_state, acc)
        mean = {k: acc[k] / k_now for k in g}
        out, inner_state = self.inner.update(mean, state.inner_state, params)
        acc = PerParam({k: ops.zeros_like(v) for k, v in acc.items()})
        return out, MultiStepsState(0, state.gradient_step + 1, inner_state, acc)

    def init(self, params: Params) -> OptState:
        """The initial state: zero sums and the inner transformation's state."""
        return self._tx.init(params)

    def update(self, grads: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        """Accumulate ``grads``; every k-th call, apply the inner transformation to their mean."""
        return self._tx.update(grads, state, params)

    def has_updated(self, state: MultiStepsState) -> bool:
        """True when the last call to [`update`][functorch_lite.optim.MultiSteps.update] applied the inner transformation."""
        return state.mini_step == 0 and state.gradient_step > 0

    def gradient_transformation(self) -> GradientTransformation:
        """This accumulation as a plain [`GradientTransformation`][functorch_lite.optim.GradientTransformation]."""
        return self._tx


class InjectHyperparamsState(NamedTuple):
    """The update count, the current hyperparameter values and the inner state."""

    count: int  # type: ignore[assignment]
    hyperparams: dict[str, Any]
    inner_state: Any


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def inject_hyperparams(
    factory: Callable[..., GradientTransformation], static_args: tuple[str, ...] = ()
) -> Callable[..., GradientTransformation]:
    """Make the numeric arguments of ``factory`` part of the state, so they can change at run time.

    A numeric argument may be given as a schedule (evaluated at each update's count).
    The current values live in ``state.hyperparams``; edit that dict (or
    ``state._replace(hyperparams=...)``) to change, e.g., the learning rate.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.inject_hyperparams(optim.sgd)(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> s = tx.init(p)
        >>> s.hyperparams["lr"] = 1.0
        >>> tx.update({"w": fl.ones((1,))}, s, p)[0]["w"].tolist()
        [-1.0]
    """
    sig = inspect.signature(factory)
    reuse = getattr(factory, "__module__", None) == "functorch_lite.optim._alias"

    def wrapped(*args: Any, **kwargs: Any) -> GradientTransformation:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"inject_hyperparams({factory.__name__}): {exc}") from exc
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        dynamic = {
            k: v
            for k, v in arguments.items()
            if k not in static_args and (_is_number(v) or (callable(v) and not isinstance(v, type)))
        }
        static = {k: v for k, v in arguments.items() if k not in dynamic}

        def values(count: int, current: dict[str, Any]) -> dict[str, Any]:
            out = dict(current)
            for k, v in dynamic.items():
                if callable(v):
                    val = v(count)
                    out[k] = val if _is_traced(count) else float(val)
            return out

        def init(params: Params) -> InjectHyperparamsState:
            hp = {k: (float(v(0)) if callable(v) else v) for k, v in dynamic.items()}
            return InjectHyperparamsState(0, hp, factory(**static, **hp).init(params))

        built: list[Any] = [None, None]  # the last (hyperparams, transformation) pair

        def make(hp: dict[str, Any]) -> GradientTransformation:
            # The named optimizers of functorch_lite.optim are pure functions of their
            # arguments: rebuild (and re-validate) them only when a value changes.
            concrete = all(type(v) is float or type(v) is int for v in hp.values())
            if reuse and concrete and built[0] == hp:
                return built[1]  # type: ignore[no-any-return]
            tx = factory(**static, **hp)
            if concrete:  # never keep traced values (a jitted step's) beyond the call
                built[0], built[1] = dict(hp), tx
            return tx

        def update(grads: Updates, state: InjectHyperparamsState, params: Params | None = None) -> Any:
            hp = values(state.count, state.hyperparams)
            updates, inner = make(hp).update(grads, state.inner_state, params)
            return updates, InjectHyperparamsState(state.count + 1, hp, inner)

        def update_flat(grads: Flat, state: InjectHyperparamsState, params: Flat | None = None) -> Any:
            # for callers whose dicts are flat and checked already (the class optimizers)
            hp = values(state.count, state.hyperparams)
            tx = make(hp)
            fu = getattr(tx.update, "_flat", None)
            updates, inner = (tx.update if fu is None else fu)(grads, state.inner_state, params)
            return updates, InjectHyperparamsState(state.count + 1, hp, inner)

        def update_arrays(grads: dict, state: InjectHyperparamsState, params: dict | None, xp: Any) -> Any:
            # the array path (see _eager): concrete count and hyperparameters only
            if type(state.count) is not int or not all(
                type(v) is float or type(v) is int for v in state.hyperparams.values()
            ):
                raise Fallback
            hp = values(state.count, state.hyperparams)
            fa = array_fn(make(hp).update)
            if fa is None:
                raise Fallback
            updates, inner = fa(grads, state.inner_state, params, xp)
            return updates, InjectHyperparamsState(state.count + 1, hp, inner)

        update._flat = update_flat  # type: ignore[attr-defined]
        update._arrays = update_arrays  # type: ignore[attr-defined]

        return GradientTransformation(init, update)  # type: ignore[arg-type]

    wrapped.__name__ = f"inject_hyperparams({getattr(factory, '__name__', 'factory')})"
    wrapped.__doc__ = factory.__doc__
    return wrapped


def _is_traced(count: Any) -> bool:
    """A traced step count (inside fl.jit): schedules then give traced values (schedules.py)."""
    from .._core.tensor import Tensor

    return isinstance(count, Tensor) and count.is_tracer
