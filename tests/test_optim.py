"""optim: every registered optimizer, table-driven; torch.optim parity where torch is installed.

Each optimizer in ``optim.OPTIMIZERS`` is enrolled automatically: it must decrease a
quadratic and the Rosenbrock function, keep float32 as float32, survive a state_dict
round trip bit for bit and, where torch is installed, follow ``torch.optim`` for 100
steps in float64 for every option torch has (lion against a closed form).
"""

from __future__ import annotations

import inspect
import json
import math

import pytest

import functorch_lite as fl
from functorch_lite import optim

NAMES = sorted(optim.OPTIMIZERS)

# learning rates that are stable on the test problems (enrolment: every optimizer needs one)
LR = {
    "sgd": 1e-3,
    "adam": 1e-2,
    "adamw": 1e-2,
    "rmsprop": 1e-3,
    "adagrad": 5e-2,
    "adadelta": 1.0,
    "adamax": 2e-2,
    "nadam": 1e-2,
    "radam": 1e-3,
    "lion": 1e-3,
}

# a non-default value for every option (torch's names); extra settings an option needs
OPTION_VALUES = {
    "momentum": 0.9,
    "dampening": 0.3,
    "weight_decay": 0.05,
    "nesterov": True,
    "maximize": True,
    "amsgrad": True,
    "decoupled_weight_decay": True,
    "alpha": 0.9,
    "centered": True,
    "lr_decay": 0.01,
    "initial_accumulator_value": 0.1,
    "rho": 0.8,
    "momentum_decay": 0.01,
    "betas": (0.8, 0.95),
    "eps": 1e-6,
}
REQUIRES = {
    "nesterov": {"momentum": 0.9, "dampening": 0.0},
    "dampening": {"momentum": 0.9},
    "decoupled_weight_decay": {"weight_decay": 0.05},
}
TORCH_IMPLEMENTATION_FLAGS = {"params", "foreach", "capturable", "differentiable", "fused", "self"}


def _options(name: str) -> list[str]:
    return [p for p in inspect.signature(optim.OPTIMIZERS[name].factory).parameters if p != "lr"]


def _variants(name: str) -> list[dict]:
    """The defaults, each option alone (with what it needs) and all options together."""
    out = [{}]
    for opt_name in _options(name):
        v = {opt_name: OPTION_VALUES[opt_name], **REQUIRES.get(opt_name, {})}
        out.append(v)
    together = {k: OPTION_VALUES[k] for k in _options(name)}
    if together.get("nesterov"):
        together["dampening"] = 0.0
    out.append(together)
    return out


def test_every_optimizer_is_enrolled():
    assert set(LR) == set(optim.OPTIMIZERS)
    for name, entry in optim.OPTIMIZERS.items():
        assert issubclass(entry.cls, optim.Optimizer)
        assert entry.cls.__name__ == (entry.torch_name or entry.cls.__name__)
        for opt_name in _options(name):
            assert opt_name in OPTION_VALUES, f"{name}: add a test value for option {opt_name!r}"


# ------------------------------------------------------------------------------------------
# problems
# ------------------------------------------------------------------------------------------
def rosenbrock(p):
    x = p["x"]
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def quadratic(p):
    w = p["w"]
    scales = fl.asarray([1.0, 2.0, 3.0], dtype=w.dtype)
    return fl.sum(scales * (w - 1.0) ** 2) + fl.sum(p["b"] ** 2)


def _start(dtype=fl.float64):
    return {
        "x": fl.asarray([-1.2, 1.0], dtype=dtype),
        "w": fl.asarray([0.5, -0.5, 2.0], dtype=dtype),
        "b": fl.asarray([[0.3, -0.2]], dtype=dtype),
    }


def _run(tx, f, params, steps):
    state = tx.init(params)
    g = fl.grad(f)
    for _ in range(steps):
        updates, state = tx.update(g(params), state, params)
        params = optim.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_decreases(name, problem):
    f = quadratic if problem == "quadratic" else rosenbrock
    keys = ("w", "b") if problem == "quadratic" else ("x",)
    params = {k: v for k, v in _start().items() if k in keys}
    tx = optim.OPTIMIZERS[name].factory(lr=LR[name])
    final, _ = _run(tx, f, params, 200)
    assert float(f(final)) < 0.9 * float(f(params))


@pytest.mark.parametrize("name", NAMES)
def test_class_equals_pure(name):
    entry = optim.OPTIMIZERS[name]
    params = {k: v for k, v in _start().items() if k != "x"}
    pure, _ = _run(entry.factory(lr=LR[name]), quadratic, params, 7)
    opt = entry.cls(lr=LR[name])
    p = params
    for _ in range(7):
        p = opt.apply(p, fl.grad(quadratic)(p))
    for k in p:
        assert p[k].tolist() == pure[k].tolist()
    assert opt.step == 7


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    params = _start(fl.float32)
    opt = optim.OPTIMIZERS[name].cls(lr=LR[name])
    for _ in range(3):
        params = opt.apply(params, fl.grad(lambda p: quadratic(p) + rosenbrock(p))(params))
    assert all(v.dtype == fl.float32 for v in params.values())
    for t in optim.split_state_dict(opt.state_dict())[0].values():
        assert t.dtype == fl.float32


# ------------------------------------------------------------------------------------------
# torch parity
# ------------------------------------------------------------------------------------------
TORCH_CASES = [(n, v) for n in NAMES for v in _variants(n)]


def _torch_ids(case):
    name, v = case
    return name + ("-" + "-".join(sorted(v)) if v else "-defaults")


def _objective(p, sign):
    return sign * (rosenbrock(p) + quadratic(p))


def _lion_reference(kw, steps):
    """Lion in plain Python floats (Chen et al. 2023, decoupled weight decay)."""
    lr, (b1, b2) = LR["lion"], kw.get("betas", (0.9, 0.99))
    wd, sign = kw.get("weight_decay", 0.0), -1.0 if kw.get("maximize") else 1.0
    params = {k: [float(x) for x in fl.reshape(v, (-1,)).tolist()] for k, v in _start().items()}
    shapes = {k: v.shape for k, v in _start().items()}
    m = {k: [0.0] * len(v) for k, v in params.items()}
    g_fn = fl.grad(lambda p: _objective(p, sign))
    history = []
    for _ in range(steps):
        tp = {k: fl.reshape(fl.asarray(v, dtype=fl.float64), shapes[k]) for k, v in params.items()}
        grads = {k: fl.reshape(v, (-1,)).tolist() for k, v in g_fn(tp).items()}
        for k in params:
            for i, g in enumerate(grads[k]):
                g = -g if kw.get("maximize") else g
                c = b1 * m[k][i] + (1 - b1) * g
                u = (c > 0) - (c < 0)
                params[k][i] = params[k][i] - lr * (u + wd * params[k][i])
                m[k][i] = b2 * m[k][i] + (1 - b2) * g
        history.append({k: list(v) for k, v in params.items()})
    return history


@pytest.mark.parametrize("case", TORCH_CASES, ids=_torch_ids)
def test_matches_torch(case):
    name, kw = case
    entry = optim.OPTIMIZERS[name]
    sign = -1.0 if kw.get("maximize") else 1.0
    steps = 100
    if entry.torch_name is None:
        reference = _lion_reference(kw, steps)
    else:
        torch = pytest.importorskip("torch")
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # PyTorch keeps its scalar state in the default dtype
        try:
            tp = {k: torch.tensor(v.tolist(), requires_grad=True) for k, v in _start().items()}
            topt = getattr(torch.optim, entry.torch_name)(list(tp.values()), lr=LR[name], **kw)
            scales = torch.tensor([1.0, 2.0, 3.0])
            reference = []
            for _ in range(steps):
                topt.zero_grad()
                x, w, b = tp["x"], tp["w"], tp["b"]
                f = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
                f = f + (scales * (w - 1.0) ** 2).sum() + (b**2).sum()
                (sign * f).backward()
                topt.step()
                reference.append({k: v.detach().reshape(-1).tolist() for k, v in tp.items()})
        finally:
            torch.set_default_dtype(old)
    opt = entry.cls(lr=LR[name], **kw)
    params = _start()
    g_fn = fl.grad(lambda p: _objective(p, sign))
    for step in range(steps):
        params = opt.apply(params, g_fn(params))
        for k, ref in reference[step].items():
            ours = fl.reshape(params[k], (-1,)).tolist()
            for a, b in zip(ours, ref, strict=True):
                assert abs(a - b) <= 1e-6 * abs(b) + 1e-12, (step, k, a, b)


def test_every_torch_option_is_tested():
    torch = pytest.importorskip("torch")
    for name, entry in optim.OPTIMIZERS.items():
        if entry.torch_name is None:
            continue
        torch_opts = set(inspect.signature(getattr(torch.optim, entry.torch_name).__init__).parameters)
        ours = set(inspect.signature(entry.factory).parameters)
        missing = torch_opts - TORCH_IMPLEMENTATION_FLAGS - ours
        assert not missing, f"{name}: torch has options {missing} that optim.{name} lacks"
        for opt_name in torch_opts - TORCH_IMPLEMENTATION_FLAGS - {"lr"}:
            assert opt_name in OPTION_VALUES


def test_torch_defaults_match():
    torch = pytest.importorskip("torch")
    for name, entry in optim.OPTIMIZERS.items():
        if entry.torch_name is None:
            continue
        theirs = inspect.signature(getattr(torch.optim, entry.torch_name).__init__).parameters
        for p in inspect.signature(entry.factory).parameters.values():
            assert p.default == theirs[p.name].default, (name, p.name)


# ------------------------------------------------------------------------------------------
# state dicts and checkpoints
# ------------------------------------------------------------------------------------------
def _train(opt, params, steps):
    g_fn = fl.grad(lambda p: quadratic(p) + rosenbrock(p))
    for _ in range(steps):
        params = opt.apply(params, g_fn(params))
    return params


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_identically(name, tmp_path):
    entry = optim.OPTIMIZERS[name]
    kw = {k: v for k, v in _variants(name)[-1].items() if k != "maximize"}  # the largest state
    opt = entry.cls(lr=LR[name], **kw)
    params = _train(opt, _start(), 4)
    tensors, meta = optim.split_state_dict(opt.state_dict())
    meta = json.loads(json.dumps(meta))
    saved_params = {k: fl.asarray(v, copy=True) for k, v in params.items()}
    st = pytest.importorskip("safetensors.numpy")
    np = pytest.importorskip("numpy")
    path = tmp_path / "opt.safetensors"
    st.save_file({k: np.asarray(v) for k, v in tensors.items()}, str(path), metadata={"optim": json.dumps(meta)})
    loaded = st.load_file(str(path))
    with open(path, "rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    restored = optim.join_state_dict(loaded, json.loads(header["__metadata__"]["optim"]))
    opt2 = entry.cls(lr=LR[name], **kw)
    opt2.load_state_dict(restored)
    assert opt2.step == opt.step == 4
    a = _train(opt, params, 5)
    b = _train(opt2, saved_params, 5)
    for k in a:
        assert a[k].tolist() == b[k].tolist()


def test_state_is_keyed_by_name_not_position():
    opt = optim.Adam(lr=0.1)
    p = {"a": fl.ones((2,)), "b": fl.ones((3,))}
    p = opt.apply(p, {"a": fl.ones((2,)), "b": fl.ones((3,))})
    sd = opt.state_dict()
    assert set(sd["state"]) == {"a", "b"}
    assert sd["state"]["a"]["exp_avg"].shape == (2,)
    assert sd["state"]["b"]["step"] == 1
    # a new model whose leaves come in another order loads and continues
    opt2 = optim.Adam(lr=0.1)
    opt2.load_state_dict(sd, params={"b": fl.ones((3,)), "a": fl.ones((2,))})
    out = opt2.apply({"b": p["b"], "a": p["a"]}, {"b": fl.ones((3,)), "a": fl.ones((2,))})
    ref = opt.apply(p, {"a": fl.ones((2,)), "b": fl.ones((3,))})
    assert out["a"].tolist() == ref["a"].tolist() and out["b"].tolist() == ref["b"].tolist()


def test_load_state_for_another_model_raises_and_changes_nothing():
    opt = optim.Adam(lr=0.1)
    p = opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
    other = optim.Adam(lr=0.1)
    q = other.apply({"v": fl.ones((3,))}, {"v": fl.ones((3,))})
    before = other.state_dict()
    with pytest.raises(fl.StateDictError, match="'w'"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(fl.StateDictError, match="shape"):
        fresh = optim.Adam(lr=0.1)
        fresh.load_state_dict(opt.state_dict(), params={"w": fl.ones((5,))})
    after = other.state_dict()
    assert (
        after["step"] == before["step"]
        and after["state"]["v"]["exp_avg"].tolist() == before["state"]["v"]["exp_avg"].tolist()
    )
    with pytest.raises(fl.StateDictError, match="SGD"):
        optim.Adam().load_state_dict(optim.SGD().state_dict())
    # an unchecked load is verified at the first update, before anything changes
    lazy = optim.Adam(lr=0.1)
    lazy.load_state_dict(opt.state_dict())
    with pytest.raises(fl.StateDictError):
        lazy.apply({"v": q["v"]}, {"v": fl.ones((3,))})
    assert lazy.step == 1
    del p


def test_settings_mismatch_in_state_dict_is_restored_like_torch():
    a = optim.Adam(lr=0.1, amsgrad=True)
    a.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
    b = optim.Adam(lr=0.5)
    b.load_state_dict(a.state_dict())
    assert b.hyperparams["amsgrad"] is True and b.lr == 0.1


def test_model_and_optimizer_checkpoint(tmp_path):
    nn = pytest.importorskip("functorch_lite.nn")
    if not hasattr(nn, "save") or not hasattr(nn, "Linear"):
        pytest.skip("nn checkpoints not available")
    pytest.importorskip("safetensors")
    x = fl.reshape(fl.linspace(-1.0, 1.0, 24), (8, 3))
    y = fl.sum(x, axis=1, keepdims=True)

    def make():
        return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))

    def train(model, opt, steps):
        step = nn.value_and_grad(model, lambda: fl.mean((model(x) - y) ** 2))
        for _ in range(steps):
            _, grads = step()
            opt.update(model, grads)

    model, opt = make(), optim.AdamW(lr=0.05)
    train(model, opt, 3)
    nn.save(model, str(tmp_path / "model.safetensors"))
    tensors, meta = optim.split_state_dict(opt.state_dict())
    nn.save(tensors, str(tmp_path / "opt.safetensors"), metadata={"optimizer": meta})
    train(model, opt, 4)

    model2, opt2 = make(), optim.AdamW(lr=0.05)
    model2.load_state_dict(nn.load(str(tmp_path / "model.safetensors")))
    tensors2, meta2 = nn.load(str(tmp_path / "opt.safetensors"), with_metadata=True)
    opt2.load_state_dict(optim.join_state_dict(tensors2, meta2["optimizer"]), params=model2)
    train(model2, opt2, 4)
    for (k1, v1), (k2, v2) in zip(model.named_parameters(), model2.named_parameters(), strict=True):
        assert k1 == k2 and v1.tolist() == v2.tolist()


# ------------------------------------------------------------------------------------------
# the class facade on modules
# ------------------------------------------------------------------------------------------
def test_update_module_in_place_with_dict_or_module_grads():
    nn = pytest.importorskip("functorch_lite.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("nn.Linear not available")
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    x = fl.ones((4, 3))
    w = model[0].weight
    before = {k: v.tolist() for k, v in model.named_parameters()}
    opt = optim.SGD(lr=0.1)
    _, grads = nn.value_and_grad(model, lambda: fl.sum(model(x) ** 2))()
    opt.update(model, grads)
    assert model[0].weight is w  # the same Parameter, a new value
    after = {k: v.tolist() for k, v in model.named_parameters()}
    assert all(after[k] != before[k] for k in before)
    gm = fl.grad(lambda m: fl.sum(m(x) ** 2))(model)
    opt.update(model, gm)
    assert opt.step == 2
    snapshot = {k: v.tolist() for k, v in model.named_parameters()}
    with pytest.raises(fl.TreeMismatchError, match="0.wieght"):
        opt.update(model, {"0.wieght": fl.ones((2, 3)), "1.bias": fl.ones((1,))})
    assert {k: v.tolist() for k, v in model.named_parameters()} == snapshot and opt.step == 2


def test_frozen_leaves_are_skipped():
    opt = optim.Adam(lr=0.1)
    p = {"a": fl.ones((2,)), "b": fl.ones((2,))}
    out = opt.apply(p, {"a": fl.ones((2,)), "b": None})
    assert out["b"].tolist() == [1.0, 1.0] and out["a"].tolist() != [1.0, 1.0]
    assert set(opt.state_dict()["state"]) == {"a"}
    out = opt.apply(out, {"a": fl.ones((2,)), "b": fl.ones((2,))})  # b unfrozen: its state starts now
    sd = opt.state_dict()["state"]
    assert sd["a"]["step"] == 2 and sd["b"]["step"] == 1


def test_lr_property_and_schedules():
    opt = optim.SGD(lr=optim.step_decay(1.0, step_size=2, gamma=0.5))
    p = {"w": fl.zeros((1,), dtype=fl.float64)}
    seen = []
    for _ in range(4):
        seen.append(opt.lr)
        p = opt.apply(p, {"w": fl.ones((1,), dtype=fl.float64)})
    assert seen == [1.0, 1.0, 0.5, 0.5]
    assert p["w"].tolist() == [-3.0]
    opt.lr = 0.25  # replaces the schedule by a constant
    p = opt.apply(p, {"w": fl.ones((1,), dtype=fl.float64)})
    assert opt.lr == 0.25 and p["w"].tolist() == [-3.25]
    with pytest.raises(fl.ConfigError):
        opt.lr = -1.0
    assert opt.lr == 0.25


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_raise_config_error(name):
    entry = optim.OPTIMIZERS[name]
    opts = _options(name)
    with pytest.raises(fl.ConfigError, match="lr"):
        entry.factory(lr=-0.1)
    with pytest.raises(fl.ConfigError, match="lr"):
        entry.cls(lr=-0.1)
    if "betas" in opts:
        for bad in [(1.0, 0.9), (0.9, -0.1), (0.9, 1.5)]:
            with pytest.raises(fl.ConfigError, match="betas"):
                entry.cls(betas=bad)
    if "eps" in opts:
        with pytest.raises(fl.ConfigError, match="eps"):
            entry.factory(eps=-1e-8)
    if "weight_decay" in opts:
        with pytest.raises(fl.ConfigError, match="weight_decay"):
            entry.cls(weight_decay=-1.0)


def test_nesterov_needs_momentum():
    with pytest.raises(fl.ConfigError, match="nesterov"):
        optim.sgd(lr=0.1, nesterov=True)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_grads_name_the_path_and_change_nothing(name):
    opt = optim.OPTIMIZERS[name].cls(lr=LR[name])
    p = {"layer": {"weight": fl.ones((2,)), "bias": fl.ones((1,))}}
    p = opt.apply(p, {"layer": {"weight": fl.ones((2,)), "bias": fl.ones((1,))}})
    before = opt.state_dict()
    with pytest.raises(fl.TreeMismatchError, match="layer.wieght"):
        opt.apply(p, {"layer.wieght": fl.ones((2,))})
    with pytest.raises(fl.TreeMismatchError, match="shape"):
        opt.apply(p, {"layer.weight": fl.ones((3,))})
    assert opt.step == before["step"] == 1
    tx = optim.OPTIMIZERS[name].factory(lr=LR[name])
    with pytest.raises(fl.TreeMismatchError, match="'b'"):
        tx.update({"b": fl.ones((2,))}, tx.init({"a": fl.ones((2,))}), {"a": fl.ones((2,))})


# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------
def test_clip_and_global_norm():
    g = {"a": fl.asarray([3.0, -4.0], dtype=fl.float64), "b": fl.asarray([12.0], dtype=fl.float64)}
    u, _ = optim.clip(2.0).update(g, optim.clip(2.0).init({}))
    assert u["a"].tolist() == [2.0, -2.0] and u["b"].tolist() == [2.0]
    tx = optim.clip_by_global_norm(1.3)
    u, _ = tx.update(g, tx.init({}))
    c = 1.3 / (13.0 + 1e-6)
    assert u["a"].tolist() == pytest.approx([3.0 * c, -4.0 * c], rel=1e-12)
    assert float(optim.global_norm(u)) == pytest.approx(13.0 * c, rel=1e-12)
    small, _ = optim.clip_by_global_norm(100.0).update(g, ())
    assert small["b"].tolist() == [12.0]


def test_masked_freeze_and_decay_mask():
    p = {"w": fl.ones((2,)), "b": fl.ones((2,))}
    g = {"w": fl.zeros((2,)), "b": fl.zeros((2,))}
    tx = optim.add_decayed_weights(0.5, mask=lambda params: {k: k == "w" for k in params})
    u, _ = tx.update(g, tx.init(p), p)
    assert u["w"].tolist() == [0.5, 0.5] and u["b"].tolist() == [0.0, 0.0]
    tx = optim.chain(optim.freeze({"w": True, "b": False}), optim.sgd(lr=1.0))
    u, _ = tx.update({"w": fl.ones((2,)), "b": fl.ones((2,))}, tx.init(p), p)
    assert u["w"].tolist() == [0.0, 0.0] and u["b"].tolist() == [-1.0, -1.0]
    tx = optim.masked(optim.adam(lr=0.1), {"w": True, "b": False})
    s = tx.init(p)
    assert set(s.inner_state[1].exp_avg) == {"w"}


def test_apply_if_finite():
    tx = optim.apply_if_finite(optim.sgd(lr=1.0), max_consecutive_errors=1)
    p = {"w": fl.ones((1,))}
    s = tx.init(p)
    u, s = tx.update({"w": fl.asarray([math.inf])}, s, p)
    assert u["w"].tolist() == [0.0] and s.notfinite_count == 1 and not s.last_finite
    u, s = tx.update({"w": fl.asarray([math.nan])}, s, p)  # second in a row: applied anyway
    assert math.isnan(u["w"].tolist()[0]) and s.total_notfinite == 2
    u, s = tx.update({"w": fl.asarray([2.0])}, s, p)
    assert u["w"].tolist() == [-2.0] and s.notfinite_count == 0


def test_multisteps_equals_one_step_on_the_mean():
    grads = [fl.asarray([1.0, 2.0], dtype=fl.float64), fl.asarray([3.0, -2.0], dtype=fl.float64)]
    p = {"w": fl.zeros((2,), dtype=fl.float64)}
    ms = optim.MultiSteps(optim.adam(lr=0.1), every_k_schedule=2)
    s = ms.init(p)
    u1, s = ms.update({"w": grads[0]}, s, p)
    assert u1["w"].tolist() == [0.0, 0.0] and not ms.has_updated(s)
    u2, s = ms.update({"w": grads[1]}, s, p)
    assert ms.has_updated(s)
    ref = optim.adam(lr=0.1)
    r, _ = ref.update({"w": (grads[0] + grads[1]) / 2}, ref.init(p), p)
    assert u2["w"].tolist() == r["w"].tolist()
    chained = optim.chain(optim.clip(10.0), ms.gradient_transformation())
    assert len(chained.init(p)) == 2


def test_inject_hyperparams_changes_lr_at_run_time():
    tx = optim.inject_hyperparams(optim.adam)(lr=optim.linear(0.1, 0.0, 10), betas=(0.9, 0.99))
    p = {"w": fl.ones((1,), dtype=fl.float64)}
    s = tx.init(p)
    _, s = tx.update({"w": fl.ones((1,), dtype=fl.float64)}, s, p)
    assert s.hyperparams["lr"] == 0.1 and s.count == 1
    _, s = tx.update({"w": fl.ones((1,), dtype=fl.float64)}, s, p)
    assert s.hyperparams["lr"] == pytest.approx(0.09)
    tx2 = optim.inject_hyperparams(optim.sgd)(lr=0.1)
    s2 = tx2.init(p)
    s2.hyperparams["lr"] = 2.0
    u, _ = tx2.update({"w": fl.ones((1,), dtype=fl.float64)}, s2, p)
    assert u["w"].tolist() == [-2.0]


def test_scale_by_schedule_and_stddev():
    tx = optim.scale_by_schedule(lambda c: float(c + 1))
    s = tx.init({})
    outs = []
    for _ in range(3):
        u, s = tx.update({"w": fl.ones((1,), dtype=fl.float64)}, s)
        outs.append(u["w"].tolist()[0])
    assert outs == [1.0, 2.0, 3.0]
    tx = optim.scale_by_stddev(alpha=0.5, eps=0.0)
    s = tx.init({"w": fl.zeros((1,), dtype=fl.float64)})
    _, s = tx.update({"w": fl.asarray([2.0], dtype=fl.float64)}, s)
    u, s = tx.update({"w": fl.asarray([4.0], dtype=fl.float64)}, s)
    sq, mean = 0.5 * (0.5 * 4.0) + 0.5 * 16.0, 0.5 * (0.5 * 2.0) + 0.5 * 4.0
    assert u["w"].tolist()[0] == pytest.approx(4.0 / math.sqrt(sq - mean**2), rel=1e-12)


def test_chain_works_with_modules_and_dicts_by_path():
    nn = pytest.importorskip("functorch_lite.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("nn.Linear not available")
    model = nn.Sequential(nn.Linear(2, 2))
    tx = optim.adam(lr=0.1)
    state = tx.init(model)
    grads = {k: fl.ones_like(v) for k, v in model.named_parameters()}
    updates, state = tx.update(grads, state, model)
    assert set(updates) == {"0.weight", "0.bias"}
    new = optim.apply_updates(model, updates)
    assert type(new).__name__ == "Sequential"


def test_reduce_lr_on_plateau_matches_torch_rule():
    metrics = [5.0, 4.0, 4.0, 4.0, 4.0, 3.99999, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    ours = []
    for m in metrics:
        sched.step(m)
        ours.append(opt.lr)
    try:
        import torch
    except ImportError:
        assert ours[-1] < 1.0
        return
    w = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([w], lr=1.0)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    theirs = []
    for m in metrics:
        tsched.step(m)
        theirs.append(topt.param_groups[0]["lr"])
    assert ours == theirs
    sd = json.loads(json.dumps(sched.state_dict()))
    again = optim.ReduceLROnPlateau(optim.SGD(lr=1.0))
    again.load_state_dict(sd)
    assert again.best == sched.best and again.num_bad_epochs == sched.num_bad_epochs


def test_pytorch_habit_of_passing_parameters_is_explained():
    with pytest.raises(fl.ConfigError, match="take no parameters"):
        optim.Adam(iter([fl.ones((2,))]), lr=1e-3)
    with pytest.raises(fl.ConfigError, match="take no parameters"):
        optim.adam([fl.ones((2,))])


@pytest.mark.parametrize("name", NAMES)
def test_pure_update_composes_with_vmap_and_grad(name):
    tx = optim.OPTIMIZERS[name].factory(lr=LR[name])

    def two_steps(w):
        p = {"w": w}
        s = tx.init(p)
        for _ in range(2):
            u, s = tx.update(fl.grad(lambda q: fl.sum(q["w"] ** 4))(p), s, p)
            p = optim.apply_updates(p, u)
        return fl.sum(p["w"] ** 2)

    batch = fl.asarray([[1.0, -2.0], [0.5, 3.0]], dtype=fl.float64)
    looped = [float(two_steps(batch[i])) for i in range(2)]
    assert fl.vmap(two_steps)(batch).tolist() == pytest.approx(looped, rel=1e-12)
    assert fl.grad(two_steps)(batch[0]).shape == (2,)


# ---------------------------------------------------------------------------------------
# Per-step caches: the built transformation is reused while the hyperparameters are
# unchanged, and a Module's flattened parameters while its structure is unchanged
# ---------------------------------------------------------------------------------------
def test_class_optimizer_follows_hyperparameter_changes_between_steps() -> None:
    opt = optim.SGD(lr=1.0)
    p = {"w": fl.asarray([0.0])}
    g = {"w": fl.asarray([1.0])}
    p = opt.apply(p, g)
    p = opt.apply(p, g)  # (the same transformation again)
    opt.lr = 0.5
    p = opt.apply(p, g)
    opt.state.hyperparams["lr"] = 0.25  # inject_hyperparams' documented way
    p = opt.apply(p, g)
    assert p["w"].tolist() == [-2.75]
    sched = optim.SGD(lr=lambda step: 2.0**-step)
    q = {"w": fl.asarray([0.0])}
    for _ in range(3):
        q = sched.apply(q, g)
    assert q["w"].tolist() == [-1.75]


def test_class_optimizer_follows_module_changes_between_steps() -> None:
    from functorch_lite import nn

    model = nn.Sequential(nn.Linear(2, 2))
    opt = optim.SGD(lr=1.0)
    ones = {k: fl.ones_like(v) for k, v in model.named_parameters()}
    opt.update(model, ones)
    model.append(nn.Linear(2, 1))  # a new layer: its parameters join the state
    before = {k: v.tolist() for k, v in model.named_parameters()}
    opt.update(model, {k: fl.ones_like(v) for k, v in model.named_parameters()})
    for k, v in model.named_parameters():
        assert v.tolist() == (fl.asarray(before[k]) - 1.0).tolist(), k
    old = model[1].bias
    model[1].bias = nn.Parameter(fl.zeros((1,)))  # a new object in an existing slot
    opt.update(model, {"1.bias": fl.ones((1,))})
    assert model[1].bias.tolist() == [-1.0] and old.tolist() == (fl.asarray(before["1.bias"]) - 1.0).tolist()
    with pytest.raises(fl.TreeMismatchError):
        opt.update(model, {"2.weight": fl.ones((1, 2))})  # no such parameter (any more / yet)


def test_fused_adam_is_the_tensor_path_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    from functorch_lite.optim import _fused, _transforms

    def run() -> list[list[float]]:
        opt = optim.Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6)
        p = {"w": fl.asarray([0.5, -1.0, 2.0]), "b": fl.asarray([[0.1], [0.2]], dtype=fl.float64)}
        for i in range(4):
            p = opt.apply(p, {k: v * (1.5 - i) + 0.25 for k, v in p.items()})
        return [p["w"].tolist(), p["b"].tolist()]

    fused = run()
    monkeypatch.setattr(_transforms, "can_fuse", lambda *a: False)
    assert run() == fused
    # the primitive's batch rule (vmap over stacked moments) against a loop
    g, m, v = (fl.asarray([[1.0, -2.0], [0.5, 3.0]]) * s for s in (1.0, 0.1, 0.2))
    v = v * v
    args = (0.9, 0.999, 1e-8, 0.5, 0.3)
    got = fl.vmap(lambda g, m: _fused.adam_moments(g, m, v[0], *args), in_axes=(0, 0))(g, m)
    for i in range(2):
        exp = _fused.adam_moments(g[i], m[i], v[0], *args)
        for a, e in zip(got, exp, strict=True):
            assert a[i].tolist() == e.tolist()


# ---------------------------------------------------------------------------------------
# The eager array path (optim/_eager.py) is the Tensor path bit for bit, and is taken
# ---------------------------------------------------------------------------------------
SCALES = (1.0, 3.0, 0.1, 1.0, 0.01, 2.0, 0.5, 1.0)  # gradients that grow and shrink: maxima, signs change


def _eager_run(name: str, kw: dict, dtype, class_api: bool) -> list:
    from functorch_lite import nn

    entry = optim.OPTIMIZERS[name]
    p = {"w": fl.asarray([0.5, -1.0, 2.0], dtype=dtype), "b": fl.asarray([[0.1], [0.2]], dtype=dtype)}
    f = lambda q: fl.sum(q["w"] ** 4) + fl.sum(fl.sin(q["b"]))  # noqa: E731
    if class_api:
        model = nn.Module()
        model.w, model.b = nn.Parameter(p["w"]), nn.Parameter(p["b"])
        opt = entry.cls(lr=LR[name], **kw)
        for c in SCALES:
            opt.update(model, {k: v * c for k, v in fl.grad(f)({"w": model.w, "b": model.b}).items()})
        return [model.w.tolist(), model.b.tolist(), model.w.dtype.name, opt.step]
    tx = entry.factory(lr=LR[name], **kw)
    s = tx.init(p)
    for c in SCALES:
        u, s = tx.update({k: v * c for k, v in fl.grad(f)(p).items()}, s, p)
        p = optim.apply_updates(p, u)
    leaves = [x.tolist() if isinstance(x, fl.Tensor) else x for x in fl.tree_util.tree_leaves(s)]
    return [p["w"].tolist(), p["b"].tolist(), p["w"].dtype.name, leaves]


def _no_array_path(*a):
    raise AssertionError("the array path ran while switched off")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("class_api", [False, True], ids=["pure", "class"])
def test_eager_array_path_is_the_tensor_path_bit_for_bit(name, class_api, monkeypatch):
    from functorch_lite.optim import _eager, _transforms

    for kw in _variants(name):
        for dtype in (fl.float32, fl.float64):
            fast = _eager_run(name, kw, dtype, class_api)
            with monkeypatch.context() as m:
                m.setattr(_eager, "enabled", False)
                m.setattr(_transforms, "can_fuse", lambda *a: False)
                m.setattr(_transforms, "state_array", _no_array_path)
                slow = _eager_run(name, kw, dtype, class_api)
            assert fast == slow, (name, kw, dtype)
            assert fast[2] == dtype.name


@pytest.mark.parametrize("factory", [optim.adam, optim.adamw, optim.sgd, optim.Adam, optim.SGD])
def test_eager_array_path_is_taken_for_concrete_tensors(factory, monkeypatch):
    from functorch_lite.optim import _base, _transforms

    def tensor_path(*a):
        raise AssertionError("the Tensor path ran on concrete float32 Tensors")

    kw = {"momentum": 0.9, "weight_decay": 0.1} if factory in (optim.sgd, optim.SGD) else {"weight_decay": 0.1}
    p = {"w": fl.ones((3,)), "b": fl.zeros((2, 2))}
    g = {"w": fl.full((3,), 0.5), "b": fl.ones((2, 2))}
    if isinstance(factory, type):
        opt = factory(lr=0.1, **kw)
        p = opt.apply(p, g)  # the first step initialises the state (general path)
        monkeypatch.setattr(_base, "check_match", tensor_path)
        monkeypatch.setattr(_transforms, "can_fuse", tensor_path)
        p = opt.apply(p, g)
    else:
        tx = factory(0.1, **kw)
        s = tx.init(p)
        monkeypatch.setattr(_base, "check_match", tensor_path)
        monkeypatch.setattr(_transforms, "can_fuse", tensor_path)
        for _ in range(2):
            u, s = tx.update(g, s, p)
            p = optim.apply_updates(p, u)
    assert p["w"].dtype == fl.float32 and p["w"].shape == (3,)


def test_eager_array_path_falls_back_for_tracers_and_mixed_inputs():
    tx = optim.adam(0.1)
    p = {"w": fl.asarray([1.0, 2.0])}
    s = tx.init(p)
    # grads of another dtype than the params: the Tensor path's promotion, then the param's dtype
    u, s2 = tx.update({"w": fl.asarray([1.0, 1.0], dtype=fl.float64)}, s, p)
    assert u["w"].dtype == fl.float64 and optim.apply_updates(p, u)["w"].dtype == fl.float32
    # a state traced under jit, concrete grads: the Tensor path stages it
    step = fl.jit(lambda s, g: tx.update(g, s, p))
    u_jit, _ = step(s, {"w": fl.asarray([1.0, 1.0])})
    u_eager, _ = tx.update({"w": fl.asarray([1.0, 1.0])}, s, p)
    assert u_jit["w"].tolist() == u_eager["w"].tolist()
    # a shape mismatch still raises the typed error, naming the path
    with pytest.raises(fl.TreeMismatchError, match="'w'"):
        tx.update({"w": fl.ones((3,))}, s, p)
    with pytest.raises(fl.TreeMismatchError, match="'w'"):
        optim.apply_updates(p, {"w": fl.ones((3,))})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_folds_the_learning_rate_in_torchs_order(dtype):
    # torch.optim.Adam (single-tensor): denom = sqrt(v) / sqrt(bc2) + eps;
    # p += (-lr / bc1) * (m / denom). The chain scale_by_adam + scale(-lr) that optim.adam is
    # takes that order in one pass, eagerly (array path), and on the Tensor path.
    import numpy as np

    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((60, 40)).astype(dtype)
    grads = [rng.standard_normal((60, 40)).astype(dtype) for _ in range(4)]
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        m = m + (g - m) * (1 - b1)
        v = v * b2 + g * g * (1 - b2)
        p = p + (m / (np.sqrt(v) / (1 - b2**t) ** 0.5 + eps)) * (-lr / (1 - b1**t))
    for tx in (optim.adam(lr), optim.chain(optim.scale_by_adam((b1, b2), eps), optim.scale(-lr))):
        q = {"w": fl.asarray(p0)}
        s = tx.init(q)
        for g in grads:
            u, s = tx.update({"w": fl.asarray(g)}, s, q)
            q = optim.apply_updates(q, u)
        np.testing.assert_array_equal(np.asarray(q["w"]), p)
        assert np.asarray(q["w"]).dtype == np.dtype(dtype)
