"""Building blocks: gradient transformations that named optimizers chain together.

Each ``scale_by_*`` follows PyTorch's update rule for its optimizer, so chains of
them reproduce ``torch.optim`` step for step. Per-parameter state lives in
[`PerParam`][functorch_lite.optim.PerParam] dicts keyed by dotted parameter name, with a per-parameter
``step`` count, as PyTorch keeps it.

Momentum ([`trace`][functorch_lite.optim.trace]) and
[`scale_by_adam`][functorch_lite.optim.scale_by_adam], the two with an eager array path over their
state, are defined here; the stateless scalings in ``_scalings`` and the other adaptive methods in
``_adaptive``. All are re-exported here and keep this module as their ``__module__``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import _namespace as ops
from .._core.tensor import Tensor, wrap
from ._adaptive import (
    ScaleByAdadeltaState,
    ScaleByAdagradState,
    ScaleByAdamaxState,
    ScaleByLionState,
    ScaleByNadamState,
    ScaleByRadamState,
    ScaleByRmsState,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adamax,
    scale_by_lion,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rms,
    scale_by_stddev,
)
from ._base import Flat, GradientTransformation, PerParam, check_betas, check_nonneg, check_number, lift
from ._eager import Fallback, in_place_ok, state_array
from ._fused import adam_moments, can_fuse
from ._per_param import _check_keys, _copy, _steps, _zeros
from ._scalings import (
    ScaleByScheduleState,
    add_decayed_weights,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    set_to_zero,
)
from ._scalings import _mask_flat as _mask_flat

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

# Defined in _scalings and _adaptive, documented (and pickled, for the states) as this module's, as
# before the split: the docs are generated from __module__.
for _moved in (
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    add_decayed_weights,
    set_to_zero,
    ScaleByScheduleState,
    scale_by_rms,
    scale_by_stddev,
    scale_by_adagrad,
    scale_by_adadelta,
    scale_by_adamax,
    scale_by_nadam,
    scale_by_radam,
    scale_by_lion,
    ScaleByRmsState,
    ScaleByAdagradState,
    ScaleByAdadeltaState,
    ScaleByAdamaxState,
    ScaleByNadamState,
    ScaleByRadamState,
    ScaleByLionState,
):
    _moved.__module__ = __name__
del _moved


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
