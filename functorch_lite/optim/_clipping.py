"""Clipping: elementwise and by the global norm of all updates (``torch.nn.utils.clip_grad_norm_``)."""

from __future__ import annotations

from typing import Any

from .. import _namespace as ops
from ._base import EmptyState, Flat, GradientTransformation, check_nonneg, global_norm, lift

__all__ = ["clip", "clip_by_global_norm"]


def clip(max_delta: float) -> GradientTransformation:
    """Clip every element of every update to ``[-max_delta, max_delta]``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.clip(1.0)
        >>> tx.update({"w": fl.asarray([-3.0, 0.5])}, tx.init({}))[0]["w"].tolist()
        [-1.0, 0.5]
    """
    d = check_nonneg("max_delta", max_delta, "clip")

    def update(g: Flat, state: EmptyState, params: Flat | None) -> Any:
        return {k: ops.minimum(ops.maximum(v, -d), d) for k, v in g.items()}, state

    return lift(lambda p: EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates by ``min(1, max_norm / (norm + 1e-6))`` (``torch.nn.utils.clip_grad_norm_``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.clip_by_global_norm(1.0)
        >>> u, _ = tx.update({"w": fl.asarray([3.0, 4.0])}, tx.init({}))
        >>> [round(x, 4) for x in u["w"].tolist()]
        [0.6, 0.8]
    """
    mx = check_nonneg("max_norm", max_norm, "clip_by_global_norm")

    def update(g: Flat, state: EmptyState, params: Flat | None) -> Any:
        if not g:
            return {}, state
        norm = global_norm(g)
        coef = ops.minimum(mx / (norm + 1e-6), 1.0)
        out = {}
        for k, v in g.items():
            c = coef if coef.dtype == v.dtype else ops.astype(coef, v.dtype)
            out[k] = v * c
        return out, state

    return lift(lambda p: EmptyState(), update)
