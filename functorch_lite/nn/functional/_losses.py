"""Loss functions (``torch.nn.functional`` names, arguments and reductions), stable at extreme logits."""

from __future__ import annotations

import math
import warnings
from typing import Any

import functorch_lite as fl

from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from ._activations import log_softmax
from ._cross_entropy import fast_cross_entropy

__all__ = [
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "cosine_embedding_loss",
    "margin_ranking_loss",
    "triplet_margin_loss",
    "pairwise_distance",
    "cosine_similarity",
    "gaussian_nll_loss",
    "soft_margin_loss",
    "poisson_nll_loss",
]

# Each loss spells out torch's signature (size_average, reduce, reduction, ...) and its own docstring
# example on purpose (the public API, read by mypy, inspect.signature and the docs), so those repeat;
# the checks and the reduction they share are the helpers below.


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else fl.asarray(x)


_REDUCTIONS = ("mean", "sum", "none")


def _legacy_reduction(
    size_average: Any, reduce: Any, reduction: str, op: str, allowed: tuple[str, ...] | None = None
) -> str:
    """``reduction`` from PyTorch's deprecated ``size_average`` / ``reduce`` pair, when either is set.

    As in PyTorch: an unset one counts as True; both True give ``"mean"``, ``reduce`` alone
    ``"sum"``, ``reduce=False`` ``"none"``; they override ``reduction``, with a warning.
    Else ``reduction`` itself, checked to be one of ``allowed`` when given (one call on a hot path).
    """
    if size_average is None and reduce is None:
        if allowed is not None and reduction not in allowed:
            raise _bad_reduction(reduction, op, allowed)
        return reduction
    mean = True if size_average is None else bool(size_average)
    keep = True if reduce is None else bool(reduce)
    legacy = ("mean" if mean else "sum") if keep else "none"
    warnings.warn(
        f"{op}: size_average and reduce are deprecated (as in PyTorch); use reduction={legacy!r} instead.",
        UserWarning,
        stacklevel=3,
    )
    return legacy


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return fl.mean(loss)
    if reduction == "sum":
        return fl.sum(loss)
    if reduction == "none":
        return loss
    raise ConfigError(f"{op}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _bad_reduction(reduction: str, op: str, allowed: tuple[str, ...] = _REDUCTIONS) -> ConfigError:
    names = ", ".join(repr(r) for r in allowed)
    return ConfigError(f"{op}: reduction must be one of {names}; got {reduction!r}.")


def _weighted(loss: Tensor, weight: Tensor | None, reduction: str, op: str) -> Tensor:
    """``loss`` times the elementwise ``weight`` (when given), reduced."""
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, op)


def _equal_shapes(input: Any, target: Any, op: str) -> tuple[Tensor, Tensor]:
    x, t = _t(input), _t(target)
    if x.shape != t.shape:
        raise ShapeError(f"{op}: target shape {t.shape} must equal input shape {x.shape}.")
    return x, t


def _same_shape(a: Tensor, b: Tensor, op: str) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        try:
            fl.broadcast_shapes(a.shape, b.shape)
        except Exception:
            raise ShapeError(f"{op}: input shape {a.shape} and target shape {b.shape} do not broadcast.") from None
    return a, b


# ------------------------------------------------------------------------------------------------
# classification
# ------------------------------------------------------------------------------------------------
def _class_dim(x: Tensor) -> int:
    return 0 if x.ndim == 1 else 1


def _class_weight(weight: Any, c: int, op: str) -> Tensor:
    w = _t(weight)
    if w.shape != (c,):
        raise ShapeError(f"{op}: weight must have shape ({c},), one per class; got {w.shape}.")
    return w


def _target_weights(w: Tensor, safe: Tensor, valid: Tensor) -> Tensor:
    """Each target's class weight (0 where the target is ignored); ``safe``: the targets, ignored ones as 0."""
    return fl.where(valid, fl.reshape(fl.take(w, fl.reshape(safe, (-1,)), axis=0), safe.shape), 0.0)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log likelihood of class indices given log-probabilities (N, C, ...) or (C,).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.nll_loss(fl.log(fl.asarray([[0.5, 0.5]])), fl.asarray([1])).item()
        0.6931471824645996
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "nll_loss", _REDUCTIONS)
    x = _t(input)
    t = _t(target)
    if t.dtype.kind not in "iu":
        raise ConfigError(
            f"nll_loss: target must hold integer class indices; got dtype {t.dtype.name}. For class "
            "probabilities use cross_entropy."
        )
    cd = _class_dim(x)
    if x.ndim == 0 or t.shape != x.shape[:cd] + x.shape[cd + 1 :]:
        raise ShapeError(
            f"nll_loss: input of shape {x.shape} needs a target of shape {x.shape[:cd] + x.shape[cd + 1 :]} "
            f"(the input without its class dim {cd}); got {t.shape}."
        )
    c = x.shape[cd]
    valid = t != ignore_index
    safe = fl.where(valid, t, fl.zeros_like(t))
    picked = fl.squeeze(fl.take_along_axis(x, fl.expand_dims(safe, axis=cd), axis=cd), axis=cd)
    if weight is not None:
        wi = _target_weights(_class_weight(weight, c, "nll_loss"), safe, valid)
    else:
        wi = fl.astype(valid, x.dtype)
    loss = -picked * wi
    if reduction == "none":
        return loss
    if reduction == "sum":
        return fl.sum(loss)
    return fl.sum(loss) / fl.sum(wi)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits (N, C, ...) against class indices or class probabilities.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.cross_entropy(fl.asarray([[1e4, -1e4]]), fl.asarray([0])).item()
        0.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "cross_entropy", _REDUCTIONS)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"cross_entropy: label_smoothing must be in [0, 1]; got {label_smoothing!r}.")
    x = _t(input)
    t = _t(target)
    if x.ndim == 0:
        raise ShapeError("cross_entropy: input must have a class dimension; got a 0-d input.")
    if weight is None and label_smoothing == 0 and x.ndim == 2:  # the common case: one fused primitive
        fast = fast_cross_entropy(x, t, ignore_index, reduction)
        if fast is not None:
            return fast
    cd = _class_dim(x)
    c = x.shape[cd]
    logp = log_softmax(x, dim=cd)
    wshape = (c,) + (1,) * (x.ndim - cd - 1)
    w = None if weight is None else _class_weight(weight, c, "cross_entropy")
    if t.dtype.kind == "f":
        if t.shape != x.shape:
            raise ShapeError(
                f"cross_entropy: probability targets must have the input's shape {x.shape}; got {t.shape}."
            )
        if label_smoothing > 0:
            t = t * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * t
        if w is not None:
            prod = prod * fl.reshape(w, wshape)
        loss = -fl.sum(prod, axis=cd)
        if reduction == "mean":
            n = x.size // c if c else 0
            return fl.sum(loss) / n
        return _reduce(loss, reduction, "cross_entropy")
    nll = nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    valid = t != ignore_index
    prod = logp if w is None else logp * fl.reshape(w, wshape)
    smooth = fl.where(valid, -fl.sum(prod, axis=cd), 0.0)
    if reduction == "none":
        ret = smooth
    elif reduction == "sum":
        ret = fl.sum(smooth)
    elif w is None:
        ret = fl.sum(smooth) / fl.sum(fl.astype(valid, x.dtype))
    else:
        ret = fl.sum(smooth) / fl.sum(_target_weights(w, fl.where(valid, t, fl.zeros_like(t)), valid))
    return (1.0 - label_smoothing) * nll + ret * (label_smoothing / c)


def _safe_log(x: Tensor) -> Tensor:
    # log clamped at -100 as PyTorch does; a constant (no gradient) where x <= 0
    pos = x > 0
    lx = fl.log(fl.where(pos, x, 1.0))
    return fl.where(pos, fl.maximum(lx, -100.0), -100.0)


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities p; the logs are clamped at -100.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.binary_cross_entropy(fl.asarray([1.0, 0.0]), fl.asarray([1.0, 0.0])).item()
        0.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "binary_cross_entropy", _REDUCTIONS)
    x, t = _equal_shapes(input, target, "binary_cross_entropy")
    loss = -(t * _safe_log(x) + (1.0 - t) * _safe_log(1.0 - x))
    return _weighted(loss, weight, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Sigmoid + binary cross entropy in one stable formula: (1 - t) x + (1 + (pw - 1) t) softplus(-x).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.binary_cross_entropy_with_logits(fl.asarray([1e4, -1e4]), fl.asarray([1.0, 0.0])).item()
        0.0
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _legacy_reduction(size_average, reduce, reduction, op, _REDUCTIONS)
    x, t = _equal_shapes(input, target, op)
    sp = fl.logaddexp(fl.zeros_like(x), -x)  # log(1 + exp(-x)), finite for any x
    if pos_weight is not None:
        lw = (pos_weight - 1.0) * t + 1.0
        loss = (1.0 - t) * x + lw * sp
    else:
        loss = (1.0 - t) * x + sp
    return _weighted(loss, weight, reduction, op)


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence with ``input`` = log q and ``target`` = p (or log p with ``log_target``).

    ``reduction="batchmean"`` divides the sum by the batch size (the mathematically right mean).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> p = fl.asarray([[0.5, 0.5]])
        >>> F.kl_div(fl.log(p), p, reduction="batchmean").item()
        0.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "kl_div", (*_REDUCTIONS, "batchmean"))
    x, t = _t(input), _t(target)
    if log_target:
        loss = fl.exp(t) * (t - x)
    else:
        pos = t > 0
        tlogt = fl.where(pos, t * fl.log(fl.where(pos, t, 1.0)), 0.0)
        loss = tlogt - t * x
    if reduction == "batchmean":
        n = x.shape[0] if x.ndim else 1
        return fl.sum(loss) / n
    return _reduce(loss, reduction, "kl_div")


# ------------------------------------------------------------------------------------------------
# regression
# ------------------------------------------------------------------------------------------------
def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.mse_loss(fl.asarray([1.0, 3.0]), fl.asarray([0.0, 0.0])).item()
        5.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "mse_loss")
    x, t = _same_shape(_t(input), _t(target), "mse_loss")
    d = x - t
    return _weighted(d * d, weight, reduction, "mse_loss")


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.l1_loss(fl.asarray([1.0, -3.0]), fl.asarray([0.0, 0.0])).item()
        2.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "l1_loss")
    x, t = _same_shape(_t(input), _t(target), "l1_loss")
    return _weighted(fl.abs(x - t), weight, reduction, "l1_loss")


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """0.5 d² / beta where |d| < beta, else |d| - 0.5 beta.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.smooth_l1_loss(fl.asarray([0.5, 3.0]), fl.asarray([0.0, 0.0]), reduction="sum").item()
        2.625
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "smooth_l1_loss")
    if beta < 0:
        raise ConfigError(f"smooth_l1_loss: beta must be non-negative; got {beta}.")
    x, t = _same_shape(_t(input), _t(target), "smooth_l1_loss")
    d = fl.abs(x - t)
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = fl.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0, weight: Tensor | None = None
) -> Tensor:
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.huber_loss(fl.asarray([0.5, 3.0]), fl.asarray([0.0, 0.0]), reduction="sum").item()
        2.625
    """
    if delta <= 0:
        raise ConfigError(f"huber_loss: delta must be positive; got {delta}.")
    x, t = _same_shape(_t(input), _t(target), "huber_loss")
    d = fl.abs(x - t)
    return _weighted(fl.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), weight, reduction, "huber_loss")


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """0.5 (log var + (input - target)² / var) (+ 0.5 log 2π with ``full``); var clamped at eps.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.gaussian_nll_loss(fl.asarray([0.0]), fl.asarray([0.0]), fl.asarray([1.0])).item()
        0.0
    """
    if reduction not in _REDUCTIONS:
        raise _bad_reduction(reduction, "gaussian_nll_loss")
    x, t = _t(input), _t(target)
    v = _t(var) if not isinstance(var, (int, float)) else fl.full_like(x, float(var))
    if v.shape != x.shape:
        if x.shape[:-1] == v.shape:
            v = fl.expand_dims(v, axis=-1)
        elif not (x.shape[:-1] == v.shape[:-1] and v.shape[-1:] == (1,)):
            raise ShapeError(f"gaussian_nll_loss: var of shape {v.shape} does not fit input of shape {x.shape}.")
    # NOTE: PyTorch clamps var without autograd: the value is clamped, the gradient passes unchanged
    v = v + fl.stop_gradient(fl.maximum(v, eps) - v)
    d = x - t
    loss = 0.5 * (fl.log(v) + d * d / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, "gaussian_nll_loss")


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average: Any = None,
    eps: float = 1e-8,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log likelihood (``exp(input) - target * input`` with ``log_input``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.poisson_nll_loss(fl.asarray([0.0]), fl.asarray([1.0])).item()
        1.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "poisson_nll_loss")
    x, t = _t(input), _t(target)
    loss = fl.exp(x) - t * x if log_input else x - t * fl.log(x + eps)
    if full:
        safe = fl.where(t > 1, t, 2.0)
        stirling = safe * fl.log(safe) - safe + 0.5 * fl.log(2 * math.pi * safe)
        loss = loss + fl.where(t > 1, stirling, 0.0)
    return _reduce(loss, reduction, "poisson_nll_loss")


# ------------------------------------------------------------------------------------------------
# embeddings and ranking
# ------------------------------------------------------------------------------------------------
def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p along the last dim.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.pairwise_distance(fl.asarray([[3.0, 0.0]]), fl.asarray([[0.0, 4.0]])).item(), 3)
        5.0
    """
    d = _t(x1) - _t(x2) + eps
    if p == 2:
        return fl.sqrt(fl.sum(d * d, axis=-1, keepdims=keepdim))
    if p == 1:
        return fl.sum(fl.abs(d), axis=-1, keepdims=keepdim)
    return fl.sum(fl.abs(d) ** p, axis=-1, keepdims=keepdim) ** (1.0 / p)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x1·x2 / max(||x1|| ||x2||, eps) along ``dim``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.cosine_similarity(fl.asarray([[1.0, 0.0]]), fl.asarray([[2.0, 0.0]])).tolist()
        [1.0]
    """
    a, b = _t(x1), _t(x2)
    na = fl.sqrt(fl.sum(a * a, axis=dim))
    nb = fl.sqrt(fl.sum(b * b, axis=dim))
    return fl.sum(a * b, axis=dim) / fl.maximum(na * nb, eps)


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """1 - cos(x1, x2) for target 1, max(0, cos(x1, x2) - margin) for target -1.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.cosine_embedding_loss(fl.asarray([[1.0, 0.0]]), fl.asarray([[1.0, 0.0]]), fl.asarray([1.0])).item()
        0.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "cosine_embedding_loss")
    a, b, y = _t(input1), _t(input2), _t(target)
    d = 1 if a.ndim == 2 else 0
    eps = 1e-12
    prod = fl.sum(a * b, axis=d)
    m1 = fl.sum(a * a, axis=d) + eps
    m2 = fl.sum(b * b, axis=d) + eps
    cos = prod / fl.sqrt(m1 * m2)
    pos = 1.0 - cos
    neg = fl.maximum(cos - margin, 0.0)
    loss = fl.where(y == 1, pos, 0.0) + fl.where(y == -1, neg, 0.0)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """max(0, -y (x1 - x2) + margin).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.margin_ranking_loss(fl.asarray([1.0]), fl.asarray([2.0]), fl.asarray([1.0])).item()
        1.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "margin_ranking_loss")
    a, b, y = _t(input1), _t(input2), _t(target)
    return _reduce(fl.maximum(-y * (a - b) + margin, 0.0), reduction, "margin_ranking_loss")


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d the p-norm pairwise distance.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> a = fl.asarray([[0.0, 0.0]])
        >>> round(F.triplet_margin_loss(a, a, a + 5.0).item(), 3)
        0.0
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "triplet_margin_loss")
    a, pp, n = _t(anchor), _t(positive), _t(negative)
    dp = pairwise_distance(a, pp, p, eps)
    dn = pairwise_distance(a, n, p, eps)
    if swap:
        dn = fl.minimum(dn, pairwise_distance(pp, n, p, eps))
    return _reduce(fl.maximum(dp - dn + margin, 0.0), reduction, "triplet_margin_loss")


def soft_margin_loss(
    input: Tensor, target: Tensor, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> Tensor:
    """log(1 + exp(-y x)), stable.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.soft_margin_loss(fl.asarray([0.0]), fl.asarray([1.0])).item(), 4)
        0.6931
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "soft_margin_loss")
    x, y = _t(input), _t(target)
    z = -y * x
    return _reduce(fl.logaddexp(fl.zeros_like(z), z), reduction, "soft_margin_loss")
