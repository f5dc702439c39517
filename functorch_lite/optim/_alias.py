"""Named optimizers: each is a chain of building blocks with PyTorch's rule, defaults and names.

``lr`` may be a float or a schedule (a function of the step count) everywhere.
"""

from __future__ import annotations

from .._errors import ConfigError
from ._base import GradientTransformation, Schedule, chain, check_betas, check_lr, check_nonneg
from ._transforms import (
    add_decayed_weights,
    scale,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rms,
    trace,
)

__all__ = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "radam", "lion"]


# Each optimizer spells out its own signature and docstring example on purpose (the public API:
# mypy, inspect.signature, the class facades and the docs read them); the checks and the chain they
# all share are _check and _named.


def _check(where: str, lr: float | Schedule, weight_decay: float) -> None:
    check_lr(lr, where)
    check_nonneg("weight_decay", weight_decay, where)


def _named(
    lr: float | Schedule, weight_decay: float, maximize: bool, *core: GradientTransformation, decoupled: bool = False
) -> GradientTransformation:
    """The chain of a named optimizer: sign flip if maximizing, L2 weight decay (before ``core``;
    after it if ``decoupled``), ``core``, then the learning rate."""
    wd = add_decayed_weights(weight_decay)
    parts = [*core, wd] if decoupled else [wd, *core]
    return chain(*([scale(-1.0)] if maximize else []), *parts, scale_by_learning_rate(lr))


def sgd(
    lr: float | Schedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.sgd(lr=0.5, momentum=0.9)
        >>> p = {"w": fl.ones((1,))}
        >>> u, s = tx.update({"w": fl.ones((1,))}, tx.init(p), p)
        >>> u["w"].tolist()
        [-0.5]
    """
    check_lr(lr, "sgd")  # not _check: momentum is checked between lr and weight_decay, as ever
    mom = check_nonneg("momentum", momentum, "sgd")
    check_nonneg("weight_decay", weight_decay, "sgd")
    if nesterov and (mom <= 0 or dampening != 0):
        raise ConfigError(
            f"sgd: nesterov momentum requires momentum > 0 and dampening = 0; got momentum="
            f"{momentum!r}, dampening={dampening!r}."
        )
    return _named(lr, weight_decay, maximize, *([trace(mom, dampening, nesterov)] if mom != 0 else []))


def adam(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    """Adam (``amsgrad`` optional; L2 weight decay, or decoupled as AdamW), as ``torch.optim.Adam``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.adam(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> u, s = tx.update({"w": fl.asarray([3.0])}, tx.init(p), p)
        >>> round(float(u["w"][0]), 6)
        -0.1
    """
    _check("adam", lr, weight_decay)
    core = scale_by_adam(check_betas(betas, "adam"), eps, amsgrad)
    return _named(lr, weight_decay, maximize, core, decoupled=decoupled_weight_decay)


def adamw(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.adamw(lr=0.1, weight_decay=0.0)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.ones((1,))}, tx.init(p), p)[0]["w"][0]), 6)
        -0.1
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


def rmsprop(
    lr: float | Schedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """RMSprop (``centered``, ``momentum``), as ``torch.optim.RMSprop``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.rmsprop(lr=0.1, alpha=0.0)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([5.0])}, tx.init(p), p)[0]["w"][0]), 6)
        -0.1
    """
    _check("rmsprop", lr, weight_decay)
    mom = check_nonneg("momentum", momentum, "rmsprop")
    core = scale_by_rms(alpha, eps, centered)
    return _named(lr, weight_decay, maximize, core, *([trace(mom)] if mom > 0 else []))


def adagrad(
    lr: float | Schedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adagrad (``lr_decay``, ``initial_accumulator_value``), as ``torch.optim.Adagrad``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.adagrad(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([2.0])}, tx.init(p), p)[0]["w"][0]), 6)
        -0.1
    """
    _check("adagrad", lr, weight_decay)
    return _named(lr, weight_decay, maximize, scale_by_adagrad(lr_decay, initial_accumulator_value, eps))


def adadelta(
    lr: float | Schedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adadelta, as ``torch.optim.Adadelta``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.adadelta()
        >>> p = {"w": fl.ones((1,))}
        >>> tx.update({"w": fl.zeros((1,))}, tx.init(p), p)[0]["w"].tolist()
        [-0.0]
    """
    _check("adadelta", lr, weight_decay)
    return _named(lr, weight_decay, maximize, scale_by_adadelta(rho, eps))


def adamax(
    lr: float | Schedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adamax (Adam with the infinity norm), as ``torch.optim.Adamax``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.adamax(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([2.0])}, tx.init(p), p)[0]["w"][0]), 6)
        -0.1
    """
    _check("adamax", lr, weight_decay)
    return _named(lr, weight_decay, maximize, scale_by_adamax(check_betas(betas, "adamax"), eps))


def nadam(
    lr: float | Schedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """NAdam (Nesterov-accelerated Adam), as ``torch.optim.NAdam``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.nadam(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([2.0])}, tx.init(p), p)[0]["w"][0]), 2)
        -0.11
    """
    _check("nadam", lr, weight_decay)
    core = scale_by_nadam(check_betas(betas, "nadam"), eps, momentum_decay)
    return _named(lr, weight_decay, maximize, core, decoupled=decoupled_weight_decay)


def radam(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """RAdam (rectified Adam), as ``torch.optim.RAdam``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.radam(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([2.0])}, tx.init(p), p)[0]["w"][0]), 6)
        -0.2
    """
    _check("radam", lr, weight_decay)
    core = scale_by_radam(check_betas(betas, "radam"), eps)
    return _named(lr, weight_decay, maximize, core, decoupled=decoupled_weight_decay)


def lion(
    lr: float | Schedule = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Lion (sign of an interpolated momentum, decoupled weight decay; Chen et al. 2023).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.lion(lr=0.1)
        >>> p = {"w": fl.ones((1,))}
        >>> round(float(tx.update({"w": fl.asarray([2.0])}, tx.init(p), p)[0]["w"][0]), 6)
        -0.1
    """
    _check("lion", lr, weight_decay)
    return _named(lr, weight_decay, maximize, scale_by_lion(check_betas(betas, "lion")), decoupled=True)
