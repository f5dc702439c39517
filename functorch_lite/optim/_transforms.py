"""Building blocks: gradient transformations that named optimizers chain together.

Each ``scale_by_*`` follows PyTorch's update rule for its optimizer, so chains of
them reproduce ``torch.optim`` step for step. Per-parameter state lives in
[`PerParam`][functorch_lite.optim.PerParam] dicts keyed by dotted parameter name, with a per-parameter
``step`` count, as PyTorch keeps it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .. import _namespace as ops
from .._core.tensor import Tensor, wrap
from ._base import (
    EmptyState,
    Flat,
    GradientTransformation,
    PerParam,
    Schedule,
    _traced_scalar,
    check_betas,
    check_nonneg,
    check_number,
    lift,
    missing_state,
    need_params,
    schedule_value,
)
from ._eager import Fallback, in_place_ok, state_array
from ._fused import adam_moments, can_fuse

_new = object.__new__

__all__ = [
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "add_decayed_weights",
    "trace",
    "scale_by_adam",
    "scale_by_rms",
    "scale_by_stddev",
    "scale_by_adagrad",
    "scale_by_adadelta",
    "scale_by_adamax",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_lion",
    "set_to_zero",
    "ScaleByScheduleState",
    "TraceState",
    "ScaleByAdamState",
    "ScaleByRmsState",
    "ScaleByAdagradState",
    "ScaleByAdadeltaState",
    "ScaleByAdamaxState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByLionState",
]


def _zeros(params: Flat) -> PerParam:
    return PerParam({k: ops.zeros_like(v) for k, v in params.items()})


def _steps(params: Flat) -> PerParam:
    return PerParam({k: 0 for k in params})


def _copy(state: NamedTuple) -> list[PerParam]:
    return [PerParam(x) if isinstance(x, PerParam) else x for x in state]


def _check_keys(g: Flat, keys: PerParam, where: str) -> None:
    for k in g:
        if k not in keys:
            raise missing_state(k, keys, where)


# ------------------------------------------------------------------------------------------
# stateless scalings
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# momentum
# ------------------------------------------------------------------------------------------
class TraceState(NamedTuple):
    """Momentum buffers; the first step stores the gradient itself (PyTorch SGD)."""

    step: PerParam
    momentum_buffer: PerParam


def trace(momentum: float, dampening: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Momentum as in ``torch.optim.SGD``: ``buf = momentum * buf + (1 - dampening) * g``.

    The first step sets ``buf = g``; the output is ``buf`` or, with ``nesterov``,
    ``g + momentum * buf``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.trace(0.9)
        >>> s = tx.init({"w": fl.zeros((1,))})
        >>> u, s = tx.update({"w": fl.ones((1,))}, s)
        >>> u, s = tx.update({"w": fl.ones((1,))}, s)
        >>> round(float(u["w"][0]), 6)
        1.9
    """
    mu = check_nonneg("momentum", momentum, "trace")
    damp = check_number("dampening", dampening, "trace")

    def init(params: Flat) -> TraceState:
        return TraceState(_steps(params), _zeros(params))

    def update(g: Flat, state: TraceState, params: Flat | None) -> Any:
        step, buf = _copy(state)
        _check_keys(g, step, "trace")
        out = {}
        for k, v in g.items():
            n = step[k]
            if isinstance(n, Tensor) and n.is_tracer:  # a traced count (fl.jit): no Python branch
                first = 1 - ops.minimum(n, 1)  # a weak 0/1; buf is still zeros at the first step
                b = buf[k] * (mu * (1 - first)) + v * (first + (1.0 - damp) * (1 - first))
            else:
                b = v if n == 0 else buf[k] * mu + v * (1.0 - damp)
            step[k] += 1
            buf[k] = b
            out[k] = v + b * mu if nesterov else b
        return out, TraceState(step, buf)

    def update_arrays(g: dict, state: TraceState, params: dict | None, xp: Any) -> Any:
        step, buf = _copy(state)
        out = {}
        for k, v in g.items():
            n = step.get(k)
            if type(n) is not int:
                raise Fallback
            b = v if n == 0 else state_array(buf.get(k), xp, v) * mu + v * (1.0 - damp)
            step[k] = n + 1
            buf[k] = wrap(b, xp)
            out[k] = v + b * mu if nesterov else b
        return out, TraceState(step, buf)

    return lift(init, update, update_arrays if type(mu) is float and type(damp) is float else None)


# ------------------------------------------------------------------------------------------
# adaptive methods
# ------------------------------------------------------------------------------------------
class ScaleByAdamState(NamedTuple):
    """Per-parameter step, first and second moments (and their running max with amsgrad)."""

    step: PerParam
    exp_avg: PerParam
    exp_avg_sq: PerParam
    max_exp_avg_sq: PerParam


def scale_by_adam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, amsgrad: bool = False
) -> GradientTransformation:
    """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` (PyTorch's rule; ``amsgrad`` keeps max v).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_adam()
        >>> u, _ = tx.update({"w": fl.asarray([2.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 5)
        1.0
    """
    b1, b2 = check_betas(betas, "scale_by_adam")
    eps = check_nonneg("eps", eps, "scale_by_adam")

    def init(params: Flat) -> ScaleByAdamState:
        return ScaleByAdamState(
            _steps(params), _zeros(params), _zeros(params), _zeros(params) if amsgrad else PerParam()
        )

    def update(g: Flat, state: ScaleByAdamState, params: Flat | None, post: float | None = None) -> Any:
        # post: the step size of a scale() that follows in a chain, folded into the last
        # multiply as torch's addcdiv does: m / denom * (-lr / bc1) (see chain)
        step, m, v, vmax = _copy(state)
        _check_keys(g, step, "scale_by_adam")
        out = {}
        for k, gk in g.items():
            t = step[k] = step[k] + 1
            bc1 = 1.0 - b1**t
            bc2_sqrt = (1.0 - b2**t) ** 0.5
            mul = None if post is None else post / bc1
            if not amsgrad and can_fuse(gk, m[k], v[k]):  # the same operations on the arrays, at once
                m[k], v[k], out[k] = adam_moments(gk, m[k], v[k], b1, b2, eps, bc2_sqrt, bc1, mul)
                continue
            m[k] = mk = m[k] + (gk - m[k]) * (1.0 - b1)
            v[k] = vk = v[k] * b2 + gk * gk * (1.0 - b2)
            if amsgrad:
                vmax[k] = vk = ops.maximum(vmax[k], vk)
            d = mk / (ops.sqrt(vk) / bc2_sqrt + eps)
            out[k] = d / bc1 if mul is None else d * mul
        return out, ScaleByAdamState(step, m, v, vmax)

    c1, c2 = 1.0 - b1, 1.0 - b2

    def update_arrays(g: dict, state: ScaleByAdamState, params: dict | None, xp: Any, post: Any = None) -> Any:
        step, m, v, vmax = _copy(state)
        out = {}
        last = None
        inplace = in_place_ok(xp)
        for k, gk in g.items():
            n = step.get(k)
            if n.__class__ is not int:
                raise Fallback
            t = step[k] = n + 1
            if t != last:  # the parameters usually share one step count
                last, bc1, bc2_sqrt = t, 1.0 - b1**t, (1.0 - b2**t) ** 0.5
                mul = None if post is None else post / bc1
            mt, vt = m.get(k), v.get(k)
            if mt.__class__ is Tensor and vt.__class__ is Tensor and mt._t is None and vt._t is None:
                mk, vk = mt._a, vt._a  # (state_array's checks, inline: the common case)
                gd, gs = gk.dtype, gk.shape
                if (
                    mt._xp is not xp
                    or vt._xp is not xp
                    or (mk.dtype is not gd and mk.dtype != gd)
                    or (vk.dtype is not gd and vk.dtype != gd)
                    or mk.shape != gs
                    or vk.shape != gs
                ):
                    raise Fallback
            else:
                mk, vk = state_array(mt, xp, gk), state_array(vt, xp, gk)
            if amsgrad:  # the Tensor path's operations, in its order
                mk = mk + (gk - mk) * c1
                vk = vk * b2 + gk * gk * c2
                vm = xp.maximum(state_array(vmax.get(k), xp, gk), vk)
                vmax[k] = wrap(vm, xp)
                d = mk / (xp.sqrt(vm) / bc2_sqrt + eps)
                out[k] = d / bc1 if mul is None else d * mul
            elif inplace:  # the same operations, each temporary reused (x + y == y + x, bit for bit)
                d = gk - mk
                d *= c1
                d += mk
                mk = d
                q = gk * gk
                q *= c2
                w = vk * b2
                w += q
                vk = w
                r = xp.sqrt(vk)
                r /= bc2_sqrt
                r += eps
                u = mk / r
                if mul is None:
                    u /= bc1
                else:
                    u *= mul
                out[k] = u
            else:
                mk = mk + (gk - mk) * c1  # _fused._adam_impl's operations, inline
                vk = vk * b2 + gk * gk * c2
                d = mk / (xp.sqrt(vk) / bc2_sqrt + eps)
                out[k] = d / bc1 if mul is None else d * mul
            m[k] = mt = _new(Tensor)  # (wrap, inline)
            mt._a, mt._xp, mt._t = mk, xp, None
            v[k] = vt = _new(Tensor)
            vt._a, vt._xp, vt._t = vk, xp, None
        return out, ScaleByAdamState(step, m, v, vmax)

    tx = lift(init, update, update_arrays if type(eps) is float else None)
    tx.update._folds_scale = True  # type: ignore[attr-defined]  # (update and update_arrays take post)
    return tx


class ScaleByRmsState(NamedTuple):
    """Per-parameter step, running mean of g^2 and (centered) of g."""

    step: PerParam
    square_avg: PerParam
    grad_avg: PerParam


def scale_by_rms(alpha: float = 0.99, eps: float = 1e-8, centered: bool = False) -> GradientTransformation:
    """RMSprop's direction ``g / (sqrt(E[g^2] - centered * E[g]^2) + eps)`` (PyTorch's rule).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_rms(alpha=0.0)
        >>> u, _ = tx.update({"w": fl.asarray([-3.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 5)
        -1.0
    """
    a = check_nonneg("alpha", alpha, "scale_by_rms")
    eps = check_nonneg("eps", eps, "scale_by_rms")

    def init(params: Flat) -> ScaleByRmsState:
        return ScaleByRmsState(_steps(params), _zeros(params), _zeros(params) if centered else PerParam())

    def update(g: Flat, state: ScaleByRmsState, params: Flat | None) -> Any:
        step, sq, ga = _copy(state)
        _check_keys(g, step, "scale_by_rms")
        out = {}
        for k, gk in g.items():
            step[k] += 1
            sq[k] = s = sq[k] * a + gk * gk * (1.0 - a)
            if centered:
                ga[k] = gak = ga[k] + (gk - ga[k]) * (1.0 - a)
                s = s - gak * gak
            out[k] = gk / (ops.sqrt(s) + eps)
        return out, ScaleByRmsState(step, sq, ga)

    return lift(init, update)


def scale_by_stddev(alpha: float = 0.99, eps: float = 1e-8) -> GradientTransformation:
    """Centered RMSprop: divide by the running standard deviation of the gradient.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_stddev(alpha=0.5)
        >>> u, _ = tx.update({"w": fl.asarray([2.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 4)
        2.0
    """
    return scale_by_rms(alpha=alpha, eps=eps, centered=True)


class ScaleByAdagradState(NamedTuple):
    """Per-parameter step and sum of squared gradients."""

    step: PerParam
    sum: PerParam


def scale_by_adagrad(
    lr_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> GradientTransformation:
    """Adagrad's direction ``g / (sqrt(sum g^2) + eps) / (1 + (step - 1) * lr_decay)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_adagrad()
        >>> u, _ = tx.update({"w": fl.asarray([4.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 5)
        1.0
    """
    decay = check_nonneg("lr_decay", lr_decay, "scale_by_adagrad")
    init_acc = check_nonneg("initial_accumulator_value", initial_accumulator_value, "scale_by_adagrad")
    eps = check_nonneg("eps", eps, "scale_by_adagrad")

    def init(params: Flat) -> ScaleByAdagradState:
        return ScaleByAdagradState(_steps(params), PerParam({k: ops.full_like(v, init_acc) for k, v in params.items()}))

    def update(g: Flat, state: ScaleByAdagradState, params: Flat | None) -> Any:
        step, acc = _copy(state)
        _check_keys(g, step, "scale_by_adagrad")
        out = {}
        for k, gk in g.items():
            t = step[k] = step[k] + 1
            acc[k] = s = acc[k] + gk * gk
            u = gk / (ops.sqrt(s) + eps)
            out[k] = u if decay == 0.0 else u * (1.0 / (1.0 + (t - 1) * decay))
        return out, ScaleByAdagradState(step, acc)

    return lift(init, update)


class ScaleByAdadeltaState(NamedTuple):
    """Per-parameter step, running mean of g^2 and of the squared deltas."""

    step: PerParam
    square_avg: PerParam
    acc_delta: PerParam


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's direction ``sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g`` (PyTorch's rule).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_adadelta(rho=0.0, eps=1.0)
        >>> u, _ = tx.update({"w": fl.asarray([0.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> float(u["w"][0])
        0.0
    """
    r = check_number("rho", rho, "scale_by_adadelta")
    if not 0.0 <= r <= 1.0:
        from .._errors import ConfigError

        raise ConfigError(f"scale_by_adadelta: rho must be in [0, 1]; got {rho!r}.")
    eps = check_nonneg("eps", eps, "scale_by_adadelta")

    def init(params: Flat) -> ScaleByAdadeltaState:
        return ScaleByAdadeltaState(_steps(params), _zeros(params), _zeros(params))

    def update(g: Flat, state: ScaleByAdadeltaState, params: Flat | None) -> Any:
        step, sq, acc = _copy(state)
        _check_keys(g, step, "scale_by_adadelta")
        out = {}
        for k, gk in g.items():
            step[k] += 1
            sq[k] = s = sq[k] * r + gk * gk * (1.0 - r)
            delta = ops.sqrt(acc[k] + eps) / ops.sqrt(s + eps) * gk
            acc[k] = acc[k] * r + delta * delta * (1.0 - r)
            out[k] = delta
        return out, ScaleByAdadeltaState(step, sq, acc)

    return lift(init, update)


class ScaleByAdamaxState(NamedTuple):
    """Per-parameter step, first moment and exponentially weighted infinity norm."""

    step: PerParam
    exp_avg: PerParam
    exp_inf: PerParam


def scale_by_adamax(betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> GradientTransformation:
    """Adamax's direction ``m / u / (1 - beta1^t)``, ``u = max(beta2 * u, |g| + eps)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_adamax()
        >>> u, _ = tx.update({"w": fl.asarray([2.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 5)
        1.0
    """
    b1, b2 = check_betas(betas, "scale_by_adamax")
    eps = check_nonneg("eps", eps, "scale_by_adamax")

    def init(params: Flat) -> ScaleByAdamaxState:
        return ScaleByAdamaxState(_steps(params), _zeros(params), _zeros(params))

    def update(g: Flat, state: ScaleByAdamaxState, params: Flat | None) -> Any:
        step, m, u = _copy(state)
        _check_keys(g, step, "scale_by_adamax")
        out = {}
        for k, gk in g.items():
            t = step[k] = step[k] + 1
            m[k] = mk = m[k] + (gk - m[k]) * (1.0 - b1)
            u[k] = uk = ops.maximum(u[k] * b2, ops.abs(gk) + eps)
            out[k] = mk / uk / (1.0 - b1**t)
        return out, ScaleByAdamaxState(step, m, u)

    return lift(init, update)


class ScaleByNadamState(NamedTuple):
    """Per-parameter step, moments and the running product of momentum coefficients."""

    step: PerParam
    exp_avg: PerParam
    exp_avg_sq: PerParam
    mu_product: PerParam


def scale_by_nadam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, momentum_decay: float = 4e-3
) -> GradientTransformation:
    """NAdam's direction with PyTorch's momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_nadam()
        >>> u, _ = tx.update({"w": fl.asarray([2.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 2)
        1.06
    """
    b1, b2 = check_betas(betas, "scale_by_nadam")
    eps = check_nonneg("eps", eps, "scale_by_nadam")
    psi = check_nonneg("momentum_decay", momentum_decay, "scale_by_nadam")

    def init(params: Flat) -> ScaleByNadamState:
        return ScaleByNadamState(_steps(params), _zeros(params), _zeros(params), PerParam({k: 1.0 for k in params}))

    def update(g: Flat, state: ScaleByNadamState, params: Flat | None) -> Any:
        step, m, v, prod = _copy(state)
        _check_keys(g, step, "scale_by_nadam")
        out = {}
        for k, gk in g.items():
            t = step[k] = step[k] + 1
            mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            prod[k] = pk = prod[k] * mu
            m[k] = mk = m[k] + (gk - m[k]) * (1.0 - b1)
            v[k] = vk = v[k] * b2 + gk * gk * (1.0 - b2)
            denom = ops.sqrt(vk / (1.0 - b2**t)) + eps
            out[k] = gk / denom * ((1.0 - mu) / (1.0 - pk)) + mk / denom * (mu_next / (1.0 - pk * mu_next))
        return out, ScaleByNadamState(step, m, v, prod)

    return lift(init, update)


class ScaleByRadamState(NamedTuple):
    """Per-parameter step and moments."""

    step: PerParam
    exp_avg: PerParam
    exp_avg_sq: PerParam


def scale_by_radam(betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> GradientTransformation:
    """RAdam's rectified direction (PyTorch's rule: plain momentum while ``rho_t <= 5``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_radam()
        >>> u, _ = tx.update({"w": fl.asarray([2.0])}, tx.init({"w": fl.zeros((1,))}))
        >>> round(float(u["w"][0]), 5)
        2.0
    """
    b1, b2 = check_betas(betas, "scale_by_radam")
    eps = check_nonneg("eps", eps, "scale_by_radam")
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    t_rect = next(
        (t for t in range(1, 1 << 20) if rho_inf - 2.0 * t * (b2**t) / (1.0 - b2**t) > 5.0), 1 << 20
    )  # the first step whose rho_t > 5 (rho_t increases with t)

    def init(params: Flat) -> ScaleByRadamState:
        return ScaleByRadamState(_steps(params), _zeros(params), _zeros(params))

    def update(g: Flat, state: ScaleByRadamState, params: Flat | None) -> Any:
        step, m, v = _copy(state)
        _check_keys(g, step, "scale_by_radam")
        out = {}
        for k, gk in g.items():
            t = step[k] = step[k] + 1
            m[k] = mk = m[k] + (gk - m[k]) * (1.0 - b1)
            v[k] = vk = v[k] * b2 + gk * gk * (1.0 - b2)
            bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
            m_hat = mk / bc1
            rho_t = rho_inf - 2.0 * t * (b2**t) / bc2
            if isinstance(rho_t, Tensor) and rho_t.is_tracer:  # a traced count (fl.jit): both, selected
                # rho_t grows with t: rectified from step t_rect on (a weak 0/1, so lr-like values stay weak)
                on = ops.minimum(ops.maximum(t - (t_rect - 1), 0), 1)
                safe = ops.maximum(rho_t, 5.5)
                rect = ((safe - 4) * (safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe)) ** 0.5
                ra = m_hat * (bc2**0.5 * rect) / (ops.sqrt(vk) + eps)
                out[k] = ra * on + m_hat * (1 - on)
            elif rho_t > 5.0:
                rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                out[k] = m_hat * (bc2**0.5 * rect) / (ops.sqrt(vk) + eps)
            else:
                out[k] = m_hat
        return out, ScaleByRadamState(step, m, v)

    return lift(init, update)


class ScaleByLionState(NamedTuple):
    """Per-parameter step and momentum."""

    step: PerParam
    exp_avg: PerParam


def scale_by_lion(betas: tuple[float, float] = (0.9, 0.99)) -> GradientTransformation:
    """Lion's direction ``sign(b1 m + (1 - b1) g)``, then ``m = b2 m + (1 - b2) g``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.scale_by_lion()
        >>> u, _ = tx.update({"w": fl.asarray([-0.3])}, tx.init({"w": fl.zeros((1,))}))
        >>> u["w"].tolist()
        [-1.0]
    """
    b1, b2 = check_betas(betas, "scale_by_lion")

    def init(params: Flat) -> ScaleByLionState:
        return ScaleByLionState(_steps(params), _zeros(params))

    def update(g: Flat, state: ScaleByLionState, params: Flat | None) -> Any:
        step, m = _copy(state)
        _check_keys(g, step, "scale_by_lion")
        out = {}
        for k, gk in g.items():
            step[k] += 1
            out[k] = ops.sign(m[k] * b1 + gk * (1.0 - b1))
            m[k] = m[k] * b2 + gk * (1.0 - b2)
        return out, ScaleByLionState(step, m)

    return lift(init, update)
