"""Schedules: closed forms, and torch.optim.lr_scheduler where one exists (skipped without torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn, optim

N = 60

# name -> (schedule, closed form of the step count)
CLOSED_FORMS = {
    "constant": (optim.constant(0.3), lambda t: 0.3),
    "linear": (
        optim.linear(1.0, 0.1, 20, transition_begin=5),
        lambda t: 1.0 + (0.1 - 1.0) * min(max(t - 5, 0), 20) / 20,
    ),
    "cosine_decay": (
        optim.cosine_decay(2.0, 30, alpha=0.1),
        lambda t: 0.2 + 1.8 * (1 + math.cos(math.pi * min(t, 30) / 30)) / 2,
    ),
    "warmup_cosine_decay": (
        optim.warmup_cosine_decay(0.0, 1.0, 10, 50, end_value=0.05),
        lambda t: t / 10 if t < 10 else 0.05 + 0.95 * (1 + math.cos(math.pi * min(t - 10, 40) / 40)) / 2,
    ),
    "exponential_decay": (optim.exponential_decay(1.0, 0.9, transition_steps=3), lambda t: 0.9 ** (t / 3)),
    "exponential_staircase": (
        optim.exponential_decay(1.0, 0.5, transition_steps=4, staircase=True, end_value=0.05),
        lambda t: max(0.5 ** (t // 4), 0.05),
    ),
    "step_decay": (optim.step_decay(1.0, 7, gamma=0.5), lambda t: 0.5 ** (t // 7)),
    "piecewise_constant": (
        optim.piecewise_constant(1.0, {10: 0.5, 25: 0.1}),
        lambda t: 1.0 if t < 10 else (0.5 if t < 25 else 0.05),
    ),
    "polynomial": (optim.polynomial(1.0, 0.1, 2.0, 40), lambda t: 0.9 * (1 - min(t, 40) / 40) ** 2 + 0.1),
    "one_cycle": (
        optim.one_cycle(N, max_lr=1.0, pct_start=0.25),
        lambda t: (
            0.04 + (1.0 - 0.04) * (1 - math.cos(math.pi * t / 14)) / 2
            if t <= 14
            else 4e-6 + (1.0 - 4e-6) * (1 + math.cos(math.pi * (t - 14) / (N - 1 - 14))) / 2
        ),
    ),
    "cosine_warm_restarts": (
        optim.cosine_warm_restarts(1.0, T_0=5, T_mult=2, eta_min=0.1),
        None,  # closed form below: cycles of 5, 10, 20, ... steps
    ),
    "join_schedules": (
        optim.join_schedules([optim.constant(0.5), optim.linear(0.5, 0.0, 10)], [20]),
        lambda t: 0.5 if t < 20 else 0.5 * (1 - min(t - 20, 10) / 10),
    ),
}


def _warm_restarts(t: int) -> float:
    start, length = 0, 5
    while t >= start + length:
        start, length = start + length, length * 2
    return 0.1 + 0.9 * (1 + math.cos(math.pi * (t - start) / length)) / 2


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_closed_forms(name):
    schedule, form = CLOSED_FORMS[name]
    form = form or _warm_restarts
    for t in range(N):
        assert schedule(t) == pytest.approx(form(t), rel=1e-12, abs=1e-15), t


def test_every_schedule_is_tested():
    assert set(optim.schedules.__all__) <= set(CLOSED_FORMS) | {"exponential_decay"}


def _torch_lrs(make_scheduler, steps=N, base_lr=1.0):
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=base_lr)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


TORCH_CASES = {
    "StepLR": (lambda S, o: S.StepLR(o, step_size=7, gamma=0.5), optim.step_decay(1.0, 7, 0.5)),
    "MultiStepLR": (
        lambda S, o: S.MultiStepLR(o, milestones=[10, 25, 40], gamma=0.3),
        optim.piecewise_constant(1.0, {10: 0.3, 25: 0.3, 40: 0.3}),
    ),
    "ExponentialLR": (lambda S, o: S.ExponentialLR(o, gamma=0.93), optim.exponential_decay(1.0, 0.93)),
    "CosineAnnealingLR": (
        lambda S, o: S.CosineAnnealingLR(o, T_max=N, eta_min=0.05),
        optim.cosine_decay(1.0, N, alpha=0.05),
    ),
    "LinearLR": (
        lambda S, o: S.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=15),
        optim.linear(0.2, 1.0, 15),
    ),
    "PolynomialLR": (lambda S, o: S.PolynomialLR(o, total_iters=30, power=2.0), optim.polynomial(1.0, 0.0, 2.0, 30)),
    "OneCycleLR-cos": (
        lambda S, o: S.OneCycleLR(o, max_lr=2.0, total_steps=N, cycle_momentum=False),
        optim.one_cycle(N, max_lr=2.0),
    ),
    "OneCycleLR-linear-three-phase": (
        lambda S, o: S.OneCycleLR(
            o,
            max_lr=2.0,
            total_steps=N,
            pct_start=0.2,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
        ),
        optim.one_cycle(N, max_lr=2.0, pct_start=0.2, anneal_strategy="linear", three_phase=True),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
        optim.cosine_warm_restarts(1.0, T_0=5, T_mult=2, eta_min=0.01),
    ),
    "CosineAnnealingWarmRestarts-T_mult-1": (
        lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=7),
        optim.cosine_warm_restarts(1.0, T_0=7),
    ),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch_lr_scheduler(name):
    make, ours = TORCH_CASES[name]
    theirs = _torch_lrs(make)
    for t, lr in enumerate(theirs):
        assert ours(t) == pytest.approx(lr, rel=1e-9, abs=1e-12), t


def test_schedule_as_learning_rate_everywhere():
    s = optim.exponential_decay(0.5, 0.5)
    p = {"w": fl.zeros((1,), dtype=fl.float64)}
    g = {"w": fl.ones((1,), dtype=fl.float64)}
    tx = optim.sgd(lr=s)
    state = tx.init(p)
    for _ in range(3):
        u, state = tx.update(g, state, p)
        p = optim.apply_updates(p, u)
    assert p["w"].tolist() == [-(0.5 + 0.25 + 0.125)]
    for name, entry in optim.OPTIMIZERS.items():
        opt = entry.cls(lr=optim.constant(1e-3))
        assert opt.lr == 1e-3, name
        opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})


def test_negative_scheduled_lr_raises():
    tx = optim.adam(lr=optim.linear(0.1, -0.1, 2))
    p = {"w": fl.ones((1,))}
    s = tx.init(p)
    for _ in range(2):
        _, s = tx.update({"w": fl.ones((1,))}, s, p)
    with pytest.raises(fl.ConfigError, match="lr"):
        tx.update({"w": fl.ones((1,))}, s, p)


def test_bad_schedule_settings():
    with pytest.raises(fl.ConfigError):
        optim.cosine_decay(1.0, 0)
    with pytest.raises(fl.ConfigError):
        optim.warmup_cosine_decay(0.0, 1.0, 10, 5)
    with pytest.raises(fl.ConfigError):
        optim.join_schedules([optim.constant(1.0)], [3])
    with pytest.raises(fl.ConfigError):
        optim.one_cycle(10, 1.0, anneal_strategy="step")


# ---------------------------------------------------------------------------------------
# Under fl.jit the count is traced: the same values from one trace
# ---------------------------------------------------------------------------------------
TRACED = {
    "constant": lambda: optim.constant(0.1),
    "linear": lambda: optim.linear(0.1, 0.0, 5, transition_begin=2),
    "cosine_decay": lambda: optim.cosine_decay(1e-2, 10, alpha=0.1),
    "warmup_cosine_decay": lambda: optim.warmup_cosine_decay(0.0, 0.1, 2, 8),
    "exponential_decay": lambda: optim.exponential_decay(0.1, 0.5, 2, staircase=True, end_value=0.02),
    "exponential_decay_smooth": lambda: optim.exponential_decay(0.1, 0.7, 3),
    "step_decay": lambda: optim.step_decay(0.1, 2),
    "piecewise_constant": lambda: optim.piecewise_constant(0.1, {2: 0.5, 4: 0.1}),
    "polynomial": lambda: optim.polynomial(0.1, 0.01, 2.0, 5),
    "one_cycle": lambda: optim.one_cycle(10, 0.1),
    "one_cycle_three_phase": lambda: optim.one_cycle(12, 0.1, anneal_strategy="linear", three_phase=True),
    "cosine_warm_restarts": lambda: optim.cosine_warm_restarts(0.1, 3),
    "cosine_warm_restarts_mult": lambda: optim.cosine_warm_restarts(0.1, 2, T_mult=2),
    "join_schedules": lambda: optim.join_schedules([optim.constant(1.0), optim.linear(1.0, 0.0, 2)], [3]),
}


@pytest.mark.parametrize("name", sorted(TRACED))
def test_schedules_on_a_traced_count(name):
    sched = TRACED[name]()
    f = fl.jit(lambda c: sched(c) * 1.0)
    want = [sched(t) for t in range(16)]  # Python ints: exact Python floats
    got = [float(f(t)) for t in range(16)]
    assert f.cache_size() == 1
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "RMSprop", "Adagrad", "NAdam", "RAdam", "Lion"])
def test_class_optimizers_with_schedules_under_jit(cls):
    def run(jit):
        fl.random.manual_seed(0)
        m = nn.Linear(2, 1)
        kw = {"momentum": 0.9} if cls in ("SGD", "RMSprop") else {}
        opt = getattr(optim, cls)(lr=optim.cosine_decay(0.05, 4), **kw)
        vg = nn.value_and_grad(m, lambda x: fl.sum(m(x) ** 2))

        def step(x):
            loss, grads = vg(x)
            opt.update(m, grads)
            return loss

        f = fl.jit(step, inputs=[m, opt], outputs=[m, opt]) if jit else step
        return [float(f(fl.ones((3, 2)))) for _ in range(9)], (f.cache_size() if jit else 0)

    (eager, _), (jitted, traces) = run(False), run(True)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)
    assert traces <= 2
