"""Learning-rate schedules: functions of the step count (0 at the first update) returning a float.

Pass one wherever a learning rate goes (``optim.adam(lr=optim.cosine_decay(1e-3, 1000))``).
Each matches its closed form, and the ``torch.optim.lr_scheduler`` it is named after where
one exists (noted in each docstring).

A Python ``int`` count gives a Python ``float`` (exact Python arithmetic); a traced count (the
optimizer state's count inside ``fl.jit``, where it is a weak scalar) gives a traced scalar
from the same formula written with ``fl`` ops, so a jitted training step with a schedule
traces once and follows the schedule at every step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core.tensor import Tensor
from .._errors import ConfigError
from ._base import Schedule, check_nonneg, check_number

__all__ = [
    "constant",
    "linear",
    "cosine_decay",
    "warmup_cosine_decay",
    "exponential_decay",
    "step_decay",
    "piecewise_constant",
    "polynomial",
    "one_cycle",
    "cosine_warm_restarts",
    "join_schedules",
]


def _positive_int(name: str, value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: {name} must be an int > 0; got {value!r}.")
    return value


def _count(count: Any) -> Any:
    return count if isinstance(count, Tensor) else int(count)


class _Py:
    """Scalar math on a concrete count."""

    min = staticmethod(min)
    max = staticmethod(max)
    cos = staticmethod(math.cos)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return a if c else b


class _Traced:
    """The same math on a traced count (fl ops on weak scalars, so the value stays weak: it
    scales float32 updates as a Python float does)."""

    @staticmethod
    def min(a: Any, b: Any) -> Any:
        from .._ops.elementwise import minimum

        return minimum(a, b)

    @staticmethod
    def max(a: Any, b: Any) -> Any:
        from .._ops.elementwise import maximum

        return maximum(a, b)

    @staticmethod
    def cos(a: Any) -> Any:
        from .._ops.elementwise import cos

        return cos(a)

    @staticmethod
    def ge(t: Any, s: int) -> Any:
        """1 where the integer count ``t >= s``, else 0 (a weak int; a comparison would not be weak)."""
        return _Traced.min(_Traced.max(t - (s - 1), 0), 1)

    @staticmethod
    def pick(values: Sequence[Any], t: Any, starts: Sequence[int]) -> Any:
        """``values[i]`` for the last ``starts[i] <= t`` (``starts[0]`` is reached by every count)."""
        inds = [1] + [_Traced.ge(t, s) for s in starts[1:]] + [0]
        out: Any = 0
        for i, v in enumerate(values):
            out = out + v * (inds[i] - inds[i + 1])  # one term is v * 1, the others exact zeros
        return out


def _ops(count: Any) -> type[_Py] | type[_Traced]:
    return _Traced if isinstance(count, Tensor) else _Py


def constant(value: float) -> Schedule:
    """The same value at every step.

    Example:
        >>> from functorch_lite import optim
        >>> optim.constant(0.1)(1000)
        0.1
    """
    v = check_number("value", value, "constant")
    return lambda count: v


def linear(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """From ``init_value`` to ``end_value`` linearly over ``transition_steps`` (``LinearLR``), then flat.

    Example:
        >>> from functorch_lite import optim
        >>> optim.linear(1.0, 0.0, 4)(1)
        0.75
    """
    a = check_number("init_value", init_value, "linear")
    b = check_number("end_value", end_value, "linear")
    n = _positive_int("transition_steps", transition_steps, "linear")

    def schedule(count: int) -> float:
        m = _ops(count)
        t = m.min(m.max(_count(count) - transition_begin, 0), n)
        return a + (b - a) * t / n

    return schedule


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Half a cosine from ``init_value`` to ``alpha * init_value`` over ``decay_steps`` (``CosineAnnealingLR``
    with ``eta_min = alpha * lr``), then flat.

    Example:
        >>> from functorch_lite import optim
        >>> optim.cosine_decay(1.0, 10)(5)
        0.5
    """
    v = check_number("init_value", init_value, "cosine_decay")
    n = _positive_int("decay_steps", decay_steps, "cosine_decay")
    a = check_number("alpha", alpha, "cosine_decay")
    end = a * v

    def schedule(count: int) -> float:
        m = _ops(count)
        t = m.min(_count(count), n)
        return end + (v - end) * (1 + m.cos(math.pi * t / n)) / 2

    return schedule


def warmup_cosine_decay(
    init_value: float, peak_value: float, warmup_steps: int, decay_steps: int, end_value: float = 0.0
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the whole schedule, warm-up included (as in optax).

    Example:
        >>> from functorch_lite import optim
        >>> s = optim.warmup_cosine_decay(0.0, 1.0, warmup_steps=2, decay_steps=6)
        >>> [round(s(t), 3) for t in range(7)]
        [0.0, 0.5, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    w = int(warmup_steps)
    if w < 0 or w >= decay_steps:
        raise ConfigError(
            f"warmup_cosine_decay: warmup_steps must be in [0, decay_steps); got {warmup_steps!r} "
            f"with decay_steps={decay_steps!r}."
        )
    warm = linear(init_value, peak_value, w) if w > 0 else constant(peak_value)
    peak = check_number("peak_value", peak_value, "warmup_cosine_decay")
    end = check_number("end_value", end_value, "warmup_cosine_decay")

    def decay(count: int) -> float:
        m = _ops(count)
        t = m.min(_count(count), decay_steps - w)
        return end + (peak - end) * (1 + m.cos(math.pi * t / (decay_steps - w))) / 2

    return join_schedules([warm, decay], [w])


def exponential_decay(
    init_value: float,
    decay_rate: float,
    transition_steps: int = 1,
    staircase: bool = False,
    transition_begin: int = 0,
    end_value: float | None = None,
) -> Schedule:
    """``init_value * decay_rate ** (t / transition_steps)`` (``ExponentialLR`` with the defaults).

    ``staircase`` floors the exponent; ``end_value`` bounds the result.

    Example:
        >>> from functorch_lite import optim
        >>> optim.exponential_decay(1.0, 0.5)(3)
        0.125
    """
    v = check_number("init_value", init_value, "exponential_decay")
    r = check_nonneg("decay_rate", decay_rate, "exponential_decay")
    n = _positive_int("transition_steps", transition_steps, "exponential_decay")

    def schedule(count: int) -> float:
        m = _ops(count)
        t = m.max(_count(count) - transition_begin, 0)
        e = t // n if staircase else t / n
        out = v * r**e
        if end_value is not None:
            out = m.max(out, end_value) if r < 1 else m.min(out, end_value)
        return out

    return schedule


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``init_value * gamma ** (t // step_size)`` (``StepLR``).

    Example:
        >>> from functorch_lite import optim
        >>> optim.step_decay(1.0, step_size=2, gamma=0.5)(5)
        0.25
    """
    v = check_number("init_value", init_value, "step_decay")
    n = _positive_int("step_size", step_size, "step_decay")
    g = check_number("gamma", gamma, "step_decay")
    return lambda count: v * g ** (_count(count) // n)


def piecewise_constant(init_value: float, boundaries_and_scales: Mapping[int, float]) -> Schedule:
    """``init_value`` times the product of the scales of every boundary reached (``count >= boundary``).

    ``MultiStepLR(milestones, gamma)`` is ``piecewise_constant(lr, {m: gamma for m in milestones})``.

    Example:
        >>> from functorch_lite import optim
        >>> s = optim.piecewise_constant(1.0, {2: 0.5, 4: 0.1})
        >>> [round(s(t), 3) for t in range(6)]
        [1.0, 1.0, 0.5, 0.5, 0.05, 0.05]
    """
    v = check_number("init_value", init_value, "piecewise_constant")
    items = sorted((int(b), check_number("scale", s, "piecewise_constant")) for b, s in boundaries_and_scales.items())
    bounds = [b for b, _ in items]
    values = [v]
    for _, s in items:
        values.append(values[-1] * s)

    def schedule(count: int) -> float:
        if not isinstance(count, Tensor):
            return values[bisect.bisect_right(bounds, int(count))]
        out = _Traced.pick(values, count, [0, *bounds])
        return out  # type: ignore[no-any-return]

    return schedule


def polynomial(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """``(init - end) * (1 - t / T) ** power + end`` for ``t <= T``, then ``end_value`` (``PolynomialLR``).

    Example:
        >>> from functorch_lite import optim
        >>> optim.polynomial(1.0, 0.0, power=2.0, transition_steps=4)(2)
        0.25
    """
    a = check_number("init_value", init_value, "polynomial")
    b = check_number("end_value", end_value, "polynomial")
    p = check_number("power", power, "polynomial")
    n = _positive_int("transition_steps", transition_steps, "polynomial")

    def schedule(count: int) -> float:
        m = _ops(count)
        t = m.min(m.max(_count(count) - transition_begin, 0), n)
        return (a - b) * (1 - t / n) ** p + b

    return schedule


def one_cycle(
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle policy, exactly as ``torch.optim.lr_scheduler.OneCycleLR`` (learning rate only).

    Starts at ``max_lr / div_factor``, rises to ``max_lr`` over ``pct_start`` of the steps,
    then anneals to ``max_lr / div_factor / final_div_factor``.

    Example:
        >>> from functorch_lite import optim
        >>> s = optim.one_cycle(10, max_lr=1.0)
        >>> round(s(0), 3), round(s(2), 3), round(s(9), 6)
        (0.04, 1.0, 4e-06)
    """
    n = _positive_int("total_steps", total_steps, "one_cycle")
    mx = check_number("max_lr", max_lr, "one_cycle")
    if not 0.0 <= pct_start <= 1.0:
        raise ConfigError(f"one_cycle: pct_start must be in [0, 1]; got {pct_start!r}.")
    if anneal_strategy not in ("cos", "linear"):
        raise ConfigError(f"one_cycle: anneal_strategy must be 'cos' or 'linear'; got {anneal_strategy!r}.")
    initial = mx / div_factor
    lowest = initial / final_div_factor
    if three_phase:
        phases = [
            (float(pct_start * n) - 1, initial, mx),
            (float(2 * pct_start * n) - 2, mx, initial),
            (n - 1, initial, lowest),
        ]
    else:
        phases = [(float(pct_start * n) - 1, initial, mx), (n - 1, mx, lowest)]

    def anneal(start: float, end: float, pct: Any) -> Any:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (_ops(pct).cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def schedule(count: int) -> float:
        t = _count(count)
        if isinstance(t, Tensor):  # every phase's value, the right one selected
            starts = [0.0] + [e for e, _, _ in phases[:-1]]
            vals = [anneal(lo, hi, (t - st) / (e - st)) for (e, lo, hi), st in zip(phases, starts, strict=True)]
            # phase i + 1 from the first integer count past phase i's end step
            return _Traced.pick(vals, t, [0] + [math.floor(e) + 1 for e in starts[1:]])  # type: ignore[no-any-return]
        start_step = 0.0
        for i, (end_step, lo, hi) in enumerate(phases):
            if t <= end_step or i == len(phases) - 1:
                return anneal(lo, hi, (t - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover

    return schedule


def cosine_warm_restarts(init_value: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> Schedule:  # noqa: N803
    """Cosine annealing with warm restarts (SGDR), as ``CosineAnnealingWarmRestarts``.

    Each cycle anneals from ``init_value`` to ``eta_min``; cycle ``i`` lasts ``T_0 * T_mult**i`` steps.

    Example:
        >>> from functorch_lite import optim
        >>> s = optim.cosine_warm_restarts(1.0, T_0=4)
        >>> [round(s(t), 3) for t in range(6)]
        [1.0, 0.854, 0.5, 0.146, 1.0, 0.854]
    """
    v = check_number("init_value", init_value, "cosine_warm_restarts")
    t0 = _positive_int("T_0", T_0, "cosine_warm_restarts")
    tm = _positive_int("T_mult", T_mult, "cosine_warm_restarts")
    lo = check_number("eta_min", eta_min, "cosine_warm_restarts")

    def schedule(count: int) -> float:
        t_cur, t_i = _count(count), t0
        if isinstance(t_cur, Tensor):
            if tm == 1:  # equal cycles: the remainder
                tc: Any = t_cur % t0
                ti: Any = t0
            else:  # the cycle that holds the count, among those that start before 2**31 steps
                starts, lengths = [0], [t0]
                while starts[-1] + lengths[-1] < 2**31:
                    starts.append(starts[-1] + lengths[-1])
                    lengths.append(lengths[-1] * tm)
                tc = t_cur - _Traced.pick(starts, t_cur, starts)
                ti = _Traced.pick(lengths, t_cur, starts)
            return lo + (v - lo) * (1 + _Traced.cos(math.pi * tc / ti)) / 2  # type: ignore[no-any-return]
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= tm
        return lo + (v - lo) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    return schedule


def join_schedules(schedules: Sequence[Callable[[int], float]], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i + 1]`` from step ``boundaries[i]`` on, counting from 0 again.

    Example:
        >>> from functorch_lite import optim
        >>> s = optim.join_schedules([optim.constant(1.0), optim.linear(1.0, 0.0, 2)], [3])
        >>> [s(t) for t in range(6)]
        [1.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    if len(schedules) != len(boundaries) + 1:
        raise ConfigError(
            f"join_schedules: needs one more schedule than boundaries; got {len(schedules)} "
            f"schedules and {len(boundaries)} boundaries."
        )
    bounds = [int(b) for b in boundaries]
    if bounds != sorted(bounds):
        raise ConfigError(f"join_schedules: boundaries must increase; got {list(boundaries)!r}.")
    starts = [0, *bounds]

    def schedule(count: int) -> float:
        if isinstance(count, Tensor):
            vals = [sc(count - st) for sc, st in zip(schedules, starts, strict=True)]
            return _Traced.pick(vals, count, starts)  # type: ignore[no-any-return]
        i = bisect.bisect_right(bounds, _count(count))
        return float(schedules[i](_count(count) - starts[i]))

    return schedule
