"""The loss modules (nn.CrossEntropyLoss, ...): a table of cases, each checked against a
hand-written NumPy formula, and against torch.nn (values and input gradients) where torch is
installed; constructor checks, PyTorch's legacy size_average / reduce, buffers and repr."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn
from functorch_lite.nn.layers import loss as loss_mod

RNG = np.random.default_rng(0)
REDUCTIONS = ("mean", "sum", "none")


def _reduce(per: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


def _log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# ------------------------------------------------------------------------------------------------
# NumPy references, written from PyTorch's documented formulas
# ------------------------------------------------------------------------------------------------
def ref_nll(logp: np.ndarray, t: np.ndarray, reduction: str, weight: Any = None, ignore_index: int = -100) -> Any:
    c = logp.shape[1]
    w = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1).squeeze(1)
    wt = np.where(valid, w[safe], 0.0)
    per = -picked * wt
    if reduction == "mean":
        return per.sum() / wt.sum()
    return _reduce(per, reduction)


def ref_cross_entropy(
    x: np.ndarray, t: np.ndarray, reduction: str, weight: Any = None, ignore_index: int = -100, label_smoothing=0.0
) -> Any:
    logp = _log_softmax(x)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    wshape = (1, c) + (1,) * (x.ndim - 2)
    if t.dtype.kind == "f":  # class probabilities
        t = t * (1 - label_smoothing) + label_smoothing / c
        per = -(logp * t * w.reshape(wshape)).sum(axis=1)
        return per.sum() / (x.size // c) if reduction == "mean" else _reduce(per, reduction)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    wt = np.where(valid, w[safe], 0.0)
    nll = -np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1).squeeze(1) * wt
    smooth = np.where(valid, -(logp * w.reshape(wshape)).sum(axis=1), 0.0) / c
    per = (1 - label_smoothing) * nll + label_smoothing * smooth
    if reduction == "mean":
        return per.sum() / wt.sum()
    return _reduce(per, reduction)


def ref_mse(x: np.ndarray, t: np.ndarray, reduction: str) -> Any:
    return _reduce((x - t) ** 2, reduction)


def ref_l1(x: np.ndarray, t: np.ndarray, reduction: str) -> Any:
    return _reduce(np.abs(x - t), reduction)


def ref_bce(p: np.ndarray, t: np.ndarray, reduction: str, weight: Any = None) -> Any:
    per = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
    return _reduce(per if weight is None else per * weight, reduction)


def ref_bce_logits(x: np.ndarray, t: np.ndarray, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    sig = 1 / (1 + np.exp(-x))
    pw = 1.0 if pos_weight is None else pos_weight
    per = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    return _reduce(per if weight is None else per * weight, reduction)


def ref_huber(x: np.ndarray, t: np.ndarray, reduction: str, delta: float = 1.0) -> Any:
    d = np.abs(x - t)
    return _reduce(np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta)), reduction)


def ref_smooth_l1(x: np.ndarray, t: np.ndarray, reduction: str, beta: float = 1.0) -> Any:
    d = np.abs(x - t)
    per = d if beta == 0 else np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)
    return _reduce(per, reduction)


def ref_kl_div(x: np.ndarray, t: np.ndarray, reduction: str, log_target: bool = False) -> Any:
    per = np.exp(t) * (t - x) if log_target else np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * x
    if reduction == "batchmean":
        return per.sum() / x.shape[0]
    return _reduce(per, reduction)


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    id: str
    cls: str
    kwargs: dict[str, Any]
    inputs: Callable[[], tuple[np.ndarray, np.ndarray]]
    ref: Callable[..., Any]
    reductions: tuple[str, ...] = REDUCTIONS


def _logits(*shape: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def make() -> tuple[np.ndarray, np.ndarray]:
        x = RNG.normal(size=shape).astype(np.float32) * 2
        t = RNG.integers(0, shape[1], size=(shape[0], *shape[2:]))
        return x, t

    return make


def _with_ignored(make: Callable[[], tuple[np.ndarray, np.ndarray]], value: int) -> Callable[[], Any]:
    def wrapped() -> tuple[np.ndarray, np.ndarray]:
        x, t = make()
        t = t.copy()
        t.flat[::3] = value
        return x, t

    return wrapped


def _probs_target() -> tuple[np.ndarray, np.ndarray]:
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    p = RNG.random((5, 4)).astype(np.float32)
    return x, p / p.sum(axis=1, keepdims=True)


def _log_probs() -> tuple[np.ndarray, np.ndarray]:
    x, t = _logits(6, 4)()
    return _log_softmax(x).astype(np.float32), t


def _pair(*shape: int, scale: float = 2.0) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    return lambda: (
        (RNG.normal(size=shape) * scale).astype(np.float32),
        (RNG.normal(size=shape) * scale).astype(np.float32),
    )


def _probabilities() -> tuple[np.ndarray, np.ndarray]:
    p = RNG.uniform(0.02, 0.98, size=(4, 3)).astype(np.float32)
    return p, (RNG.random((4, 3)) > 0.5).astype(np.float32)


def _binary_logits() -> tuple[np.ndarray, np.ndarray]:
    x = (RNG.normal(size=(4, 3)) * 3).astype(np.float32)
    return x, RNG.random((4, 3)).astype(np.float32)  # soft labels too


def _kl_inputs(log_target: bool) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def make() -> tuple[np.ndarray, np.ndarray]:
        q = _log_softmax(RNG.normal(size=(3, 5))).astype(np.float32)
        p = np.exp(_log_softmax(RNG.normal(size=(3, 5)))).astype(np.float32)
        p[0, 0] = 0.0  # 0 log 0 = 0
        return q, (np.log(np.maximum(p, 1e-30)).astype(np.float32) if log_target else p)

    return make


CLASS_W = np.array([0.2, 1.0, 2.0, 0.7], dtype=np.float32)
CASES = [
    Case("ce", "CrossEntropyLoss", {}, _logits(6, 4), ref_cross_entropy),
    Case("ce-weight", "CrossEntropyLoss", {"weight": CLASS_W}, _logits(6, 4), ref_cross_entropy),
    Case("ce-ignore", "CrossEntropyLoss", {"ignore_index": 2}, _with_ignored(_logits(6, 4), 2), ref_cross_entropy),
    Case("ce-ignore-default", "CrossEntropyLoss", {}, _with_ignored(_logits(6, 4), -100), ref_cross_entropy),
    Case("ce-smooth", "CrossEntropyLoss", {"label_smoothing": 0.2}, _logits(6, 4), ref_cross_entropy),
    Case(
        "ce-smooth-weight-ignore",
        "CrossEntropyLoss",
        {"label_smoothing": 0.1, "weight": CLASS_W, "ignore_index": 1},
        _with_ignored(_logits(6, 4), 1),
        ref_cross_entropy,
    ),
    Case("ce-kdim", "CrossEntropyLoss", {"weight": CLASS_W}, _logits(3, 4, 5), ref_cross_entropy),
    Case("ce-probs", "CrossEntropyLoss", {"label_smoothing": 0.1}, _probs_target, ref_cross_entropy),
    Case("nll", "NLLLoss", {}, _log_probs, ref_nll),
    Case("nll-weight-ignore", "NLLLoss", {"weight": CLASS_W, "ignore_index": 0}, _with_ignored(_log_probs, 0), ref_nll),
    Case("mse", "MSELoss", {}, _pair(3, 4), ref_mse),
    Case("l1", "L1Loss", {}, _pair(3, 4), ref_l1),
    Case("bce", "BCELoss", {}, _probabilities, ref_bce),
    Case("bce-weight", "BCELoss", {"weight": np.array([0.5, 1.0, 2.0], dtype=np.float32)}, _probabilities, ref_bce),
    Case("bce-logits", "BCEWithLogitsLoss", {}, _binary_logits, ref_bce_logits),
    Case(
        "bce-logits-weights",
        "BCEWithLogitsLoss",
        {"weight": np.array([[1.0], [0.5], [2.0], [1.5]], dtype=np.float32), "pos_weight": CLASS_W[:3]},
        _binary_logits,
        ref_bce_logits,
    ),
    Case("huber", "HuberLoss", {}, _pair(3, 4), ref_huber),
    Case("huber-delta", "HuberLoss", {"delta": 0.5}, _pair(3, 4), ref_huber),
    Case("smooth-l1", "SmoothL1Loss", {}, _pair(3, 4), ref_smooth_l1),
    Case("smooth-l1-beta", "SmoothL1Loss", {"beta": 2.5}, _pair(3, 4), ref_smooth_l1),
    Case("smooth-l1-beta0", "SmoothL1Loss", {"beta": 0.0}, _pair(3, 4), ref_smooth_l1),
    Case("kl", "KLDivLoss", {}, _kl_inputs(False), ref_kl_div, REDUCTIONS + ("batchmean",)),
    Case("kl-log", "KLDivLoss", {"log_target": True}, _kl_inputs(True), ref_kl_div, REDUCTIONS + ("batchmean",)),
]
PARAMS = [pytest.param(c, r, id=f"{c.id}-{r}") for c in CASES for r in c.reductions]


def test_every_loss_class_is_enrolled_and_exported() -> None:
    assert set(loss_mod.__all__) == {c.cls for c in CASES}
    assert set(loss_mod.__all__) <= set(nn.__all__)
    for name in loss_mod.__all__:
        assert getattr(nn, name) is getattr(loss_mod, name)


def _fl_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: fl.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def _value(t: fl.Tensor) -> np.ndarray:
    return np.asarray(fl.to_backend(t, "numpy").numpy())


@pytest.mark.parametrize("case, reduction", PARAMS)
def test_matches_numpy_formula(case: Case, reduction: str) -> None:
    x, t = case.inputs()
    module = getattr(nn, case.cls)(reduction=reduction, **_fl_kwargs(case.kwargs))
    out = module(fl.asarray(x), fl.asarray(t))
    kwargs = {k: v.astype(np.float64) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
    want = case.ref(x.astype(np.float64), t if t.dtype.kind == "i" else t.astype(np.float64), reduction, **kwargs)
    assert out.dtype == fl.float32
    assert out.shape == np.shape(want)
    np.testing.assert_allclose(_value(out), want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case, reduction", PARAMS)
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")  # torch's KLDivLoss
def test_matches_torch(case: Case, reduction: str) -> None:
    torch = pytest.importorskip("torch")
    x, t = case.inputs()
    module = getattr(nn, case.cls)(reduction=reduction, **_fl_kwargs(case.kwargs))
    reference = getattr(torch.nn, case.cls)(
        reduction=reduction,
        **{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()},
    )
    xt = torch.from_numpy(x).requires_grad_(True)
    want = reference(xt, torch.from_numpy(t))
    want.sum().backward()
    got = module(fl.asarray(x), fl.asarray(t))
    np.testing.assert_allclose(_value(got), want.detach().numpy(), rtol=2e-5, atol=2e-6)

    def total(xx: fl.Tensor) -> fl.Tensor:
        return fl.sum(module(xx, fl.asarray(t)))

    grad = fl.grad(total)(fl.asarray(x))
    np.testing.assert_allclose(_value(grad), xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_constructor_signatures_match_torch() -> None:
    torch = pytest.importorskip("torch")
    for name in loss_mod.__all__:
        ours = inspect.signature(getattr(nn, name))
        theirs = inspect.signature(getattr(torch.nn, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        for p in ours.parameters.values():
            assert p.default == theirs.parameters[p.name].default, (name, p.name)
        assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.MSELoss(reduction="avg"), fl.ConfigError, "MSELoss: reduction must be one of"),
        (lambda: nn.CrossEntropyLoss(reduction="batchmean"), fl.ConfigError, "reduction"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), fl.ConfigError, "label_smoothing"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), fl.ConfigError, "label_smoothing"),
        (lambda: nn.CrossEntropyLoss(ignore_index=1.5), fl.ConfigError, "ignore_index"),
        (lambda: nn.NLLLoss(ignore_index=True), fl.ConfigError, "ignore_index"),
        (lambda: nn.NLLLoss(weight=fl.ones((2, 2))), fl.ShapeError, "weight must be 1-d"),
        (lambda: nn.BCELoss(weight="heavy"), fl.ConfigError, "weight must be a Tensor"),
        (lambda: nn.BCEWithLogitsLoss(pos_weight=object()), fl.ConfigError, "pos_weight"),
        (lambda: nn.HuberLoss(delta=0.0), fl.ConfigError, "delta must be a number > 0"),
        (lambda: nn.HuberLoss(delta=float("nan")), fl.ConfigError, "delta"),
        (lambda: nn.SmoothL1Loss(beta=-1.0), fl.ConfigError, "beta must be a number >= 0"),
        (lambda: nn.KLDivLoss(log_target=1), fl.ConfigError, "log_target"),
        (lambda: nn.L1Loss(reduction=None), fl.ConfigError, "reduction"),
    ],
)
def test_bad_arguments_raise_typed_errors(make: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(fl.ShapeError, match="weight must have shape"):
        nn.CrossEntropyLoss(weight=fl.ones((3,)))(fl.ones((2, 4)), fl.asarray([0, 1]))
    with pytest.raises(fl.ShapeError, match="target"):
        nn.BCELoss()(fl.full((2, 3), 0.5), fl.ones((3, 2)))
    with pytest.raises(fl.ConfigError, match="integer class indices"):
        nn.NLLLoss()(fl.zeros((2, 3)), fl.zeros((2,)))


@pytest.mark.parametrize(
    "size_average, reduce, want",
    [(None, False, "none"), (False, None, "sum"), (True, True, "mean"), (False, False, "none")],
)
def test_legacy_size_average_and_reduce(size_average: Any, reduce: Any, want: str) -> None:
    x, t = _pair(3, 4)()
    with pytest.warns(UserWarning, match=f"reduction={want!r}"):
        legacy = nn.MSELoss(size_average=size_average, reduce=reduce)
    assert legacy.reduction == want
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the modern spelling does not warn
        modern = nn.MSELoss(reduction=want)
    np.testing.assert_allclose(
        _value(legacy(fl.asarray(x), fl.asarray(t))), _value(modern(fl.asarray(x), fl.asarray(t)))
    )
    with pytest.warns(UserWarning, match="deprecated"):
        f = nn.functional.mse_loss(fl.asarray(x), fl.asarray(t), size_average=size_average, reduce=reduce)
    np.testing.assert_allclose(_value(f), ref_mse(x, t, want), rtol=1e-6)


def test_weights_are_buffers() -> None:
    ce = nn.CrossEntropyLoss(weight=fl.asarray(CLASS_W))
    assert list(ce.state_dict()) == ["weight"] and not list(ce.parameters())
    bce = nn.BCEWithLogitsLoss(pos_weight=fl.ones((3,)))
    assert list(bce.state_dict()) == ["pos_weight"]  # weight None: registered, not saved (as in PyTorch)
    assert list(nn.MSELoss().state_dict()) == []
    moved = fl.to_backend(ce.weight, "numpy")
    assert moved.shape == (4,)


def test_losses_differentiate_and_batch() -> None:
    """A loss module inside grad and vmap, as in a training step."""
    model = nn.Linear(4, 3)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = fl.asarray(RNG.normal(size=(5, 4)).tolist())  # Python data: on the default backend, with the model
    y = fl.asarray(RNG.integers(0, 3, size=(5,)).tolist())
    value, grads = nn.value_and_grad(model, lambda x, y: loss_fn(model(x), y))(x, y)
    assert value.shape == () and set(grads) == {"weight", "bias"}
    per_example = fl.vmap(lambda xi, yi: nn.MSELoss()(xi, yi))(x, x * 0.5)
    np.testing.assert_allclose(_value(per_example), ((_value(x) * 0.5) ** 2).mean(axis=1), rtol=1e-5)
