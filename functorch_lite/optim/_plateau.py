"""``ReduceLROnPlateau``: lower a class optimizer's learning rate when a metric stops improving."""

from __future__ import annotations

import math
from typing import Any

from .._errors import ConfigError
from ._base import check_nonneg

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau:
    """PyTorch's ``ReduceLROnPlateau``, driving ``optimizer.lr`` from a metric.

    Call [`step`][functorch_lite.optim.ReduceLROnPlateau.step] with the metric after each epoch; after more than ``patience``
    epochs without improvement the learning rate is multiplied by ``factor`` (not
    below ``min_lr``), then ``cooldown`` epochs pass before counting again.
    ``optimizer`` is a class optimizer (or anything with a settable ``lr``).

    Example:
        >>> from functorch_lite import optim
        >>> opt = optim.SGD(lr=1.0)
        >>> sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        >>> for loss in [3.0, 2.0, 2.0, 2.0]:
        ...     sched.step(loss)
        >>> opt.lr
        0.5
    """

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"ReduceLROnPlateau: mode must be 'min' or 'max'; got {mode!r}.")
        if threshold_mode not in ("rel", "abs"):
            raise ConfigError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs'; got {threshold_mode!r}.")
        if not 0.0 <= factor < 1.0:
            raise ConfigError(f"ReduceLROnPlateau: factor must be in [0, 1); got {factor!r}.")
        if not hasattr(optimizer, "lr"):
            raise ConfigError(
                f"ReduceLROnPlateau: the optimizer must have a settable lr (a class optimizer such as "
                f"optim.SGD); got {type(optimizer).__name__}."
            )
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = float(factor)
        self.patience = int(check_nonneg("patience", patience, "ReduceLROnPlateau"))
        self.threshold = check_nonneg("threshold", threshold, "ReduceLROnPlateau")
        self.cooldown = int(check_nonneg("cooldown", cooldown, "ReduceLROnPlateau"))
        self.min_lr = check_nonneg("min_lr", min_lr, "ReduceLROnPlateau")
        self.eps = check_nonneg("eps", eps, "ReduceLROnPlateau")
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, a: float) -> bool:
        t = self.threshold
        if self.mode == "min":
            return a < (self.best * (1.0 - t) if self.threshold_mode == "rel" else self.best - t)
        return a > (self.best * (t + 1.0) if self.threshold_mode == "rel" else self.best + t)

    def step(self, metric: Any) -> None:
        """Record one epoch's metric (a number or a one-element Tensor); maybe lower the lr."""
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        """The counters and settings, JSON-ready."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore [`state_dict`][functorch_lite.optim.ReduceLROnPlateau.state_dict]."""
        unknown = set(state_dict) - set(self.state_dict())
        if unknown:
            from .._errors import StateDictError

            raise StateDictError(f"ReduceLROnPlateau.load_state_dict: unknown keys {sorted(unknown)}.")
        self.__dict__.update(state_dict)
