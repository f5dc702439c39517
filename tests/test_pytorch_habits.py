"""PyTorch habits (``loss.backward()``, ``x.grad``, ``opt.zero_grad()``, ``opt.step()``) get a typed
error that says what to write instead and links the coming-from-PyTorch page; ``opt.step`` stays
the step counter."""

from __future__ import annotations

import copy
import json
import pathlib
import pickle
import re

import pytest

import functorch_lite as fl
from functorch_lite import nn, optim
from functorch_lite._errors import COMING_FROM_PYTORCH

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _trained_opt(name: str = "Adam") -> optim.Optimizer:
    opt = optim.OPTIMIZERS[name.lower()].cls(lr=0.1)
    for _ in range(3):
        opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
    return opt


def _habits() -> dict[str, tuple[object, tuple[str, ...]]]:
    """habit -> (a callable that commits it, what the message must name)."""
    loss = fl.sum(fl.ones((3,)) ** 2)
    opt = _trained_opt()
    return {
        "loss.backward()": (lambda: loss.backward(), ("fl.grad", "nn.value_and_grad", "opt.update(model, grads)")),
        "x.grad": (lambda: nn.Parameter(fl.ones((2,))).grad, ("fl.grad", "nn.value_and_grad")),
        "opt.zero_grad()": (lambda: opt.zero_grad(), ("nn.value_and_grad", "opt.update(model, grads)")),
        "opt.step()": (lambda: opt.step(), ("opt.update(model, grads)", "nn.value_and_grad", "now 3")),
    }


@pytest.mark.parametrize("habit", list(_habits()))
def test_habit_raises_a_typed_error_that_says_what_to_do(habit: str) -> None:
    commit, names = _habits()[habit]
    with pytest.raises(fl.PyTorchHabitError) as info:
        commit()
    msg = str(info.value)
    for name in names:
        assert name in msg, f"{habit}: the message does not name {name!r}: {msg}"
    assert COMING_FROM_PYTORCH in msg
    # code that catches the builtins keeps working: a missing attribute, a bad call
    assert isinstance(info.value, AttributeError) and isinstance(info.value, TypeError)
    assert isinstance(info.value, fl.FunctorchLiteError)


def test_the_linked_anchor_exists_and_shows_each_replacement() -> None:
    page_path, anchor = COMING_FROM_PYTORCH.split("#")
    page = (ROOT / page_path).read_text(encoding="utf-8")
    headings = [
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^##+ (.+)$", page, re.M)
    ]
    assert anchor in headings, f"{page_path} has no heading with the anchor #{anchor}"
    section = page.split("## Gradients without backward", 1)[1].split("\n## ", 1)[0]
    for text in (
        "loss.backward()",
        "x.grad",
        "opt.zero_grad()",
        "opt.step()",
        "opt.update(model, grads)",
        "PyTorchHabitError",
    ):
        assert text in section, text


def test_hasattr_stays_false_for_the_missing_pytorch_attributes() -> None:
    x, opt = fl.ones((2,)), _trained_opt()
    assert not hasattr(x, "grad") and not hasattr(x, "backward") and not hasattr(opt, "zero_grad")
    assert getattr(x, "grad", None) is None  # duck typing (getattr with a default) keeps working


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_step_counter_stays_an_int(name: str) -> None:
    opt = optim.OPTIMIZERS[name].cls(lr=0.01)
    assert opt.step == 0 and isinstance(opt.step, int)
    opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
    s = opt.step
    assert s == 1 and s + 1 == 2 and f"{s}" == "1" and repr(s) == "1" and int(s) == 1 and [0, 9][s] == 9
    assert json.dumps({"step": s}) == '{"step": 1}'
    assert type(pickle.loads(pickle.dumps(s))) is int and copy.deepcopy(s) == 1
    assert type(opt.state_dict()["step"]) is int
    with pytest.raises(fl.PyTorchHabitError, match=rf"{opt.__class__.__name__}\.step is the number of updates"):
        opt.step()


def test_step_counter_and_schedules_in_a_training_loop() -> None:
    model = nn.Linear(3, 1)
    opt = optim.SGD(lr=lambda step: 0.1 / (1 + step))
    lg = nn.value_and_grad(model, lambda x: fl.sum(model(x) ** 2))
    seen = []
    for _ in range(3):
        _, g = lg(fl.ones((4, 3)))
        opt.update(model, g)
        seen.append((opt.step, opt.lr))
    assert seen == [(1, 0.05), (2, 0.1 / 3), (3, 0.025)]


def test_step_counter_under_jit_is_the_traced_count() -> None:
    model = nn.Linear(2, 1)
    opt = optim.Adam(lr=0.1)
    lg = nn.value_and_grad(model, lambda x: fl.sum(model(x) ** 2))

    def step(x):
        _, g = lg(x)
        opt.update(model, g)

    opt.update(model, lg(fl.ones((2, 2)))[1])
    jstep = fl.jit(step, inputs=[model, opt], outputs=[model, opt])
    for _ in range(2):
        jstep(fl.ones((2, 2)))
    assert opt.step == 3
