"""Loss modules: PyTorch's classes and constructor arguments, thin Modules over ``nn.functional``.

Each holds its settings (class ``weight`` and ``pos_weight`` as buffers, as in PyTorch, so they
follow the module to another backend and into its ``state_dict``), checks them when it is built,
and calls the function of the same name in its ``forward(input, target)``.
"""

from __future__ import annotations

import math
from typing import Any

import functorch_lite as fl

from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from .. import functional as F
from .._module import Module
from ..functional._losses import _legacy_reduction

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "HuberLoss",
    "SmoothL1Loss",
    "KLDivLoss",
]


def _as_tensor(value: Any, name: str, loss: str) -> Tensor | None:
    if value is None or isinstance(value, Tensor):
        return value
    try:
        return fl.asarray(value)
    except Exception:
        raise ConfigError(f"{loss}: {name} must be a Tensor (or array) or None; got {type(value).__name__}.") from None


def _check_float(value: Any, name: str, loss: str, *, low: float, strict: bool, high: float = math.inf) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if strict else value >= low) and value <= high
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        limit = f"a number {bound}" + (f" and <= {high}" if high != math.inf else "")
        raise ConfigError(f"{loss}: {name} must be {limit}; got {value!r}.")
    return float(value)


class _Loss(Module):
    """The shared part of every loss module: ``reduction`` (PyTorch's legacy ``size_average`` /
    ``reduce`` pair is translated to it, with PyTorch's warning), checked when the module is built."""

    _reductions: tuple[str, ...] = ("none", "mean", "sum")

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        reduction = _legacy_reduction(size_average, reduce, reduction, name)
        if reduction not in self._reductions:
            allowed = ", ".join(repr(r) for r in self._reductions)
            raise ConfigError(f"{name}: reduction must be one of {allowed}; got {reduction!r}.")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional per-class (or per-element) ``weight``, kept as a buffer."""

    def __init__(
        self, weight: Any = None, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_tensor(weight, "weight", type(self).__name__))


class _ClassWeightedLoss(_WeightedLoss):
    """A classification loss: ``weight`` holds one entry per class, ``ignore_index`` an int."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        name = type(self).__name__
        if self.weight is not None and self.weight.ndim != 1:
            raise ShapeError(f"{name}: weight must be 1-d, one entry per class; got shape {self.weight.shape}.")
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise ConfigError(f"{name}: ignore_index must be an int (a class index to skip); got {ignore_index!r}.")
        self.ignore_index = ignore_index


class NLLLoss(_ClassWeightedLoss):
    """Negative log likelihood of class indices given log-probabilities (``F.nll_loss``).

    Args:
        weight: one rescaling weight per class (a buffer), or None.
        ignore_index: a target value that contributes nothing (and is not counted in the mean).
        reduction: ``"mean"`` (weighted by ``weight``), ``"sum"`` or ``"none"``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.NLLLoss()(fl.log(fl.asarray([[0.5, 0.5]])), fl.asarray([1])).item()
        0.6931471824645996
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(_ClassWeightedLoss):
    """Cross entropy of logits against class indices or class probabilities (``F.cross_entropy``).

    Args:
        weight: one rescaling weight per class (a buffer), or None.
        ignore_index: a target index that contributes nothing (class-index targets only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1]; mixes the targets with the uniform distribution.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)
        >>> round(loss(fl.asarray([[2.0, 0.0, 0.0]]), fl.asarray([0])).item(), 4)
        0.3729
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self.label_smoothing = _check_float(
            label_smoothing, "label_smoothing", "CrossEntropyLoss", low=0.0, strict=False, high=1.0
        )

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class MSELoss(_Loss):
    """Mean squared error (``F.mse_loss``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.MSELoss()(fl.asarray([1.0, 3.0]), fl.asarray([0.0, 0.0])).item()
        5.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error (``F.l1_loss``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.L1Loss(reduction="sum")(fl.asarray([1.0, -3.0]), fl.asarray([0.0, 0.0])).item()
        4.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities (``F.binary_cross_entropy``; logs clamped at -100).

    Args:
        weight: a rescaling weight that broadcasts against the input (a buffer), or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> round(nn.BCELoss()(fl.asarray([0.5, 0.5]), fl.asarray([1.0, 0.0])).item(), 4)
        0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid and binary cross entropy in one stable formula (``F.binary_cross_entropy_with_logits``).

    Args:
        weight: a rescaling weight that broadcasts against the input (a buffer), or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: a weight of the positive examples, one per class (broadcast along the last
            dim; a buffer), or None.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> loss = nn.BCEWithLogitsLoss(pos_weight=fl.asarray([2.0]))
        >>> round(loss(fl.asarray([0.0]), fl.asarray([1.0])).item(), 4)
        1.3863
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", _as_tensor(pos_weight, "pos_weight", "BCEWithLogitsLoss"))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class HuberLoss(_Loss):
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta) (``F.huber_loss``).

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        delta: where the loss turns from quadratic to linear; positive.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.HuberLoss(delta=2.0)(fl.asarray([1.0, 4.0]), fl.asarray([0.0, 0.0])).item()
        3.25
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = _check_float(delta, "delta", "HuberLoss", low=0.0, strict=True)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """0.5 d² / beta where |d| < beta, else |d| - 0.5 beta (``F.smooth_l1_loss``).

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        beta: where the loss turns from quadratic to linear; non-negative (0 gives the L1 loss).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.SmoothL1Loss(beta=2.0)(fl.asarray([1.0, 4.0]), fl.asarray([0.0, 0.0])).item()
        1.625
    """

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = _check_float(beta, "beta", "SmoothL1Loss", low=0.0, strict=False)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class KLDivLoss(_Loss):
    """KL divergence with ``input`` = log q and ``target`` = p, or log p with ``log_target`` (``F.kl_div``).

    Args:
        reduction: ``"batchmean"`` (the sum divided by the batch size: the true KL divergence
            per example), ``"mean"`` (over every element, PyTorch's default), ``"sum"`` or ``"none"``.
        log_target: the target holds log-probabilities.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> p = fl.asarray([[0.5, 0.5]])
        >>> nn.KLDivLoss(reduction="batchmean", log_target=True)(fl.log(p), fl.log(p)).item()
        0.0
    """

    _reductions = ("none", "mean", "sum", "batchmean")

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean", log_target: bool = False
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if not isinstance(log_target, bool):
            raise ConfigError(f"KLDivLoss: log_target must be True or False; got {log_target!r}.")
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
