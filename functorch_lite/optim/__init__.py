"""Optimizers: pure gradient transformations (optax style) with a class facade (MLX style).

Pure: ``tx = optim.adam(1e-3); state = tx.init(params);
updates, state = tx.update(grads, state, params); params = optim.apply_updates(params, updates)``.
Classes: ``opt = optim.Adam(lr=1e-3); opt.update(model, grads)``. Trees are matched by
dotted parameter name, never by position. ``optim`` never imports ``nn``.

Example:
    >>> import functorch_lite as fl
    >>> from functorch_lite import optim
    >>> w = {"w": fl.asarray([3.0])}
    >>> opt = optim.SGD(lr=0.25)
    >>> for _ in range(3):
    ...     w = opt.apply(w, fl.grad(lambda p: fl.sum(p["w"] ** 2))(w))
    >>> w["w"].tolist()
    [0.375]
"""

from __future__ import annotations

from typing import NamedTuple

from . import schedules
from ._alias import adadelta, adagrad, adam, adamax, adamw, lion, nadam, radam, rmsprop, sgd
from ._base import (
    EmptyState,
    GradientTransformation,
    OptState,
    Params,
    PerParam,
    Schedule,
    Updates,
    apply_updates,
    chain,
    global_norm,
    identity,
    rebind,
)
from ._clipping import clip, clip_by_global_norm
from ._optimizer import STATE_DICT_FORMAT, Optimizer, join_state_dict, optimizer_class, split_state_dict
from ._plateau import ReduceLROnPlateau
from ._transforms import (
    ScaleByAdadeltaState,
    ScaleByAdagradState,
    ScaleByAdamaxState,
    ScaleByAdamState,
    ScaleByLionState,
    ScaleByNadamState,
    ScaleByRadamState,
    ScaleByRmsState,
    ScaleByScheduleState,
    TraceState,
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
    scale_by_schedule,
    scale_by_stddev,
    set_to_zero,
    trace,
)
from ._wrappers import (
    ApplyIfFiniteState,
    InjectHyperparamsState,
    MaskedState,
    MultiSteps,
    MultiStepsState,
    apply_if_finite,
    freeze,
    inject_hyperparams,
    masked,
)
from .schedules import (
    constant,
    cosine_decay,
    cosine_warm_restarts,
    exponential_decay,
    join_schedules,
    linear,
    one_cycle,
    piecewise_constant,
    polynomial,
    step_decay,
    warmup_cosine_decay,
)


def _example(cls: str, args: str) -> str:
    return (
        "        >>> import functorch_lite as fl\n"
        "        >>> from functorch_lite import optim\n"
        f"        >>> opt = optim.{cls}({args})\n"
        '        >>> w = opt.apply({"w": fl.asarray([1.0])}, {"w": fl.asarray([1.0])})\n'
        '        >>> bool(w["w"][0] < 1.0), opt.step\n'
        "        (True, 1)\n"
    )


SGD = optimizer_class("SGD", sgd, _example("SGD", "lr=0.1, momentum=0.9"))
Adam = optimizer_class("Adam", adam, _example("Adam", "lr=1e-3"))
AdamW = optimizer_class("AdamW", adamw, _example("AdamW", "lr=1e-3, weight_decay=0.01"))
RMSprop = optimizer_class("RMSprop", rmsprop, _example("RMSprop", "lr=1e-2, centered=True"))
Adagrad = optimizer_class("Adagrad", adagrad, _example("Adagrad", "lr=1e-2"))
Adadelta = optimizer_class("Adadelta", adadelta, _example("Adadelta", "lr=1.0"))
Adamax = optimizer_class("Adamax", adamax, _example("Adamax", "lr=2e-3"))
NAdam = optimizer_class("NAdam", nadam, _example("NAdam", "lr=2e-3"))
RAdam = optimizer_class("RAdam", radam, _example("RAdam", "lr=1e-3"))
Lion = optimizer_class("Lion", lion, _example("Lion", "lr=1e-4"))


class OptimizerEntry(NamedTuple):
    """One registered optimizer: its pure factory, its class and the ``torch.optim`` twin (or None)."""

    factory: object
    cls: type
    torch_name: str | None


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(sgd, SGD, "SGD"),
    "adam": OptimizerEntry(adam, Adam, "Adam"),
    "adamw": OptimizerEntry(adamw, AdamW, "AdamW"),
    "rmsprop": OptimizerEntry(rmsprop, RMSprop, "RMSprop"),
    "adagrad": OptimizerEntry(adagrad, Adagrad, "Adagrad"),
    "adadelta": OptimizerEntry(adadelta, Adadelta, "Adadelta"),
    "adamax": OptimizerEntry(adamax, Adamax, "Adamax"),
    "nadam": OptimizerEntry(nadam, NAdam, "NAdam"),
    "radam": OptimizerEntry(radam, RAdam, "RAdam"),
    "lion": OptimizerEntry(lion, Lion, None),
}
"""Every named optimizer (tests enrol them all from here)."""

# Spelled out name by name on purpose, so it repeats the submodules' __all__: the public API in one place.
__all__ = [
    "GradientTransformation",
    "OptState",
    "Params",
    "Updates",
    "Schedule",
    "PerParam",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "rebind",
    "global_norm",
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
    "clip",
    "clip_by_global_norm",
    "set_to_zero",
    "masked",
    "freeze",
    "apply_if_finite",
    "MultiSteps",
    "inject_hyperparams",
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
    "radam",
    "lion",
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "Lion",
    "OPTIMIZERS",
    "OptimizerEntry",
    "ReduceLROnPlateau",
    "STATE_DICT_FORMAT",
    "split_state_dict",
    "join_state_dict",
    "schedules",
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
    "MaskedState",
    "ApplyIfFiniteState",
    "MultiStepsState",
    "InjectHyperparamsState",
]
