"""Saved programs (fl.export.save / fl.export.load): round trips against the original function's
eager results and gradients, a reload in a process without the test's code, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn

BACKEND = os.environ.get("FUNCTORCH_LITE_BACKEND", "numpy")


def npy(t: Any) -> np.ndarray:
    return np.asarray(t.tolist() if isinstance(t, fl.Tensor) else t)


def close(a: Any, b: Any, tol: float = 1e-6) -> None:
    la, lb = fl.tree_util.tree_leaves(a), fl.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, fl.Tensor):
            assert isinstance(y, fl.Tensor) and x.dtype == y.dtype and tuple(x.shape) == tuple(y.shape)
        np.testing.assert_allclose(npy(x), npy(y), rtol=tol, atol=tol)


def roundtrip(tmp_path: Path, obj: Any, *args: Any) -> fl.Program:
    path = tmp_path / "prog.flprog"
    fl.export.save(obj, path, *args)
    return fl.export.load(path)


def normal(seed: int, shape: tuple[int, ...], dtype: Any = None) -> fl.Tensor:
    return fl.random.normal(fl.random.key(seed), shape, dtype=dtype)


W1, B1, W2 = normal(1, (5, 8)), normal(2, (8,)), normal(3, (8, 3))


def mlp(x: fl.Tensor) -> fl.Tensor:
    return fl.tanh(x @ W1 + B1) @ W2


def loss(w: fl.Tensor, x: fl.Tensor) -> fl.Tensor:
    return fl.mean(fl.tanh(x @ w) ** 2)


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
def test_mlp_round_trip_keeps_values_and_float32(tmp_path: Path) -> None:
    x = normal(4, (6, 5))
    g = roundtrip(tmp_path, mlp, x)
    assert isinstance(g, fl.Program)
    y = g(x)
    assert y.dtype == fl.float32
    close(y, mlp(x))
    x2 = normal(5, (6, 5))  # new data, same shapes: not the example baked in
    close(g(x2), mlp(x2))
    assert not np.allclose(npy(g(x2)), npy(g(x)))


def test_float64_and_int_inputs_keep_their_dtypes(tmp_path: Path) -> None:
    def f(x: fl.Tensor, i: fl.Tensor) -> Any:
        return x * 2.0, i + 1

    x, i = fl.asarray([1.5, 2.5], dtype=fl.float64), fl.asarray([1, 2], dtype=fl.int32)
    g = roundtrip(tmp_path, f, x, i)
    close(g(x, i), f(x, i))
    assert [v.dtype for v in g(x, i)] == [fl.float64, fl.int32]


def test_module_forward_round_trip(tmp_path: Path) -> None:
    fl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    model.eval()
    x = normal(6, (2, 2, 5, 5))
    g = roundtrip(tmp_path, model, x)
    close(g(x), model(x), 1e-5)
    assert {e.prim.name for e in g.eqns} >= {"nn_unfold"}


def test_grad_function_round_trip_and_grad_of_loaded(tmp_path: Path) -> None:
    w, x = normal(7, (5, 3)), normal(8, (4, 5))
    g = roundtrip(tmp_path, fl.grad(loss), w, x)
    close(g(w, x), fl.grad(loss)(w, x))
    f = roundtrip(tmp_path, loss, w, x)
    close(fl.grad(f)(w, x), fl.grad(loss)(w, x))
    close(fl.grad(f, argnums=1)(w, x), fl.grad(loss, argnums=1)(w, x))
    # and against central finite differences in float64, an oracle independent of both
    eps, k = 1e-4, (2, 1)
    x64 = x.astype(fl.float64)

    def at(delta: float) -> float:
        wd = npy(w).astype(np.float64)
        wd[k] += delta
        return float(loss(fl.asarray(wd.tolist(), dtype=fl.float64), x64))

    fd = (at(eps) - at(-eps)) / (2 * eps)
    assert abs(float(fl.grad(f)(w, x)[k]) - fd) < 1e-4


def test_jit_vmap_jvp_of_loaded(tmp_path: Path) -> None:
    x = normal(9, (6, 5))
    g = roundtrip(tmp_path, mlp, x)
    jg = fl.jit(g)
    close(jg(x), mlp(x))
    close(jg(x), mlp(x))  # the cached run
    xs = normal(10, (3, 6, 5))
    close(fl.vmap(g)(xs), fl.vmap(mlp)(xs))
    t = normal(11, (6, 5))
    close(fl.jvp(g, (x,), (t,)), fl.jvp(mlp, (x,), (t,)))
    close(fl.jit(fl.grad(lambda x: fl.sum(g(x))))(x), fl.grad(lambda x: fl.sum(mlp(x)))(x))


def _scan_fn(c0: fl.Tensor, xs: fl.Tensor) -> Any:
    def step(c: fl.Tensor, x: fl.Tensor) -> Any:
        c = fl.tanh(c * 0.9 + x)
        return c, fl.sum(c * c)

    return fl.scan(step, c0, xs)


def _cond_fn(p: fl.Tensor, x: fl.Tensor) -> fl.Tensor:
    return fl.cond(p, lambda v: fl.sin(v) * 2.0, lambda v: fl.cos(v) - 1.0, x)


def _while_fn(x: fl.Tensor) -> Any:
    return fl.while_loop(lambda c: c[1] < 10.0, lambda c: (c[0] * 1.5, c[1] + fl.sum(c[0])), (x, fl.asarray(0.0)))


def test_scan_round_trip_and_its_gradient(tmp_path: Path) -> None:
    c0, xs = normal(12, (3,)), normal(13, (4, 3))
    g = roundtrip(tmp_path, _scan_fn, c0, xs)
    close(g(c0, xs), _scan_fn(c0, xs))

    def total(c0: fl.Tensor, xs: fl.Tensor) -> fl.Tensor:
        c, ys = _scan_fn(c0, xs)
        return fl.sum(c) + fl.sum(ys)

    dg = roundtrip(tmp_path, fl.grad(total, argnums=(0, 1)), c0, xs)  # a scan with a split body
    assert any(e.prim.name == "scan" and e.params.get("split") is not None for e in dg.eqns)
    close(dg(c0, xs), fl.grad(total, argnums=(0, 1))(c0, xs))
    f = roundtrip(tmp_path, total, c0, xs)
    close(fl.grad(f, argnums=(0, 1))(c0, xs), fl.grad(total, argnums=(0, 1))(c0, xs))


def test_cond_and_while_loop_round_trip(tmp_path: Path) -> None:
    x = normal(14, (3,))
    g = roundtrip(tmp_path, _cond_fn, fl.asarray(True), x)
    for p in (True, False):
        close(g(fl.asarray(p), x), _cond_fn(fl.asarray(p), x))
        close(
            fl.grad(lambda v: fl.sum(g(fl.asarray(p), v)))(x), fl.grad(lambda v: fl.sum(_cond_fn(fl.asarray(p), v)))(x)
        )
    x = fl.abs(x) + 0.5
    w = roundtrip(tmp_path, _while_fn, x)
    close(w(x), _while_fn(x))
    close(w(x * 3.0), _while_fn(x * 3.0))  # a different trip count


def test_weak_scalars_stay_inputs(tmp_path: Path) -> None:
    def step(x: fl.Tensor, lr: float, n: int) -> fl.Tensor:
        return x - lr * x * n

    x = normal(15, (4,))
    g = roundtrip(tmp_path, step, x, 0.5, 2)
    assert [v.weak for v in g.in_vars] == [None, float, int]
    for lr, n in ((0.5, 2), (0.25, 3)):
        y = g(x, lr, n)
        assert y.dtype == fl.float32  # a weak scalar does not promote
        close(y, step(x, lr, n))


def test_static_inputs(tmp_path: Path) -> None:
    def f(x: fl.Tensor, flag: bool, mode: str) -> fl.Tensor:
        return fl.sin(x) if flag and mode == "sin" else fl.cos(x)

    x = normal(16, (3,))
    g = roundtrip(tmp_path, f, x, True, "sin")
    close(g(x, True, "sin"), f(x, True, "sin"))
    with pytest.raises(fl.TransformError, match="static"):
        g(x, False, "sin")

    jf = fl.jit(lambda x, k: x * k + fl.sum(x[:k]), static_argnums=1)
    h = roundtrip(tmp_path, jf, x, 2)
    close(h(x, 2), jf(x, 2))
    assert h.in_vars[1] == ("static", 2)


def test_containers_program_and_jitted(tmp_path: Path) -> None:
    def f(d: dict[str, Any], xs: list[fl.Tensor]) -> Any:
        return {"s": d["b"] * d["a"], "t": [xs[0] + xs[1], None]}, (d["a"],)

    d = {"b": normal(17, (2,)), "a": normal(18, (2,))}
    xs = [normal(19, (2,)), normal(20, (2,))]
    g = roundtrip(tmp_path, f, d, xs)
    close(g(d, xs), f(d, xs))
    assert fl.tree_util.tree_structure(g(d, xs)) == fl.tree_util.tree_structure(f(d, xs))

    x = normal(21, (6, 5))
    close(roundtrip(tmp_path, fl.make_program(mlp)(x))(x), mlp(x))  # a Program needs no examples
    close(roundtrip(tmp_path, fl.jit(mlp), x)(x), mlp(x))


def test_complex_constant_and_special_floats(tmp_path: Path) -> None:
    c = fl.asarray([1 + 2j, -0.5j], dtype=fl.complex64)

    def f(x: fl.Tensor) -> Any:
        return (
            fl.real(x * c),
            fl.imag(x * c),
            fl.where(x > 0, x, float("inf")),
            fl.maximum(x, float("-inf")),
            x[..., ::-1],
        )

    x = fl.asarray([1.0, -2.0])
    g = roundtrip(tmp_path, f, x)
    close(g(x), f(x))


def test_file_names_format_and_version(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "m.flprog"
    fl.export.save(mlp, path, normal(4, (6, 5)))
    with safe_open(str(path), framework="numpy") as f:
        doc = json.loads(f.metadata()["functorch_lite.program"])
        assert len(list(f.keys())) == 3  # W1, B1, W2
    assert (doc["format"], doc["version"], doc["backend"]) == ("functorch_lite.program", 1, BACKEND)


# ---------------------------------------------------------------------------------------------
# another process, without this file's code
# ---------------------------------------------------------------------------------------------
_CHILD = """
import json, sys
import numpy as np
import functorch_lite as fl
path, inp = sys.argv[1], sys.argv[2]
g = fl.export.load(path)
x = fl.asarray(np.load(inp).tolist(), dtype=fl.float32)
out = {"y": g(x).tolist(), "raw": g(np.load(inp)).tolist(), "grad": fl.grad(lambda v: fl.sum(g(v)))(x).tolist(), "jit": fl.jit(g)(x).tolist()}
out["mods"] = sorted(m for m in sys.modules if m.startswith("test"))
print(json.dumps(out))
"""


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_load_in_a_fresh_process(tmp_path: Path, which: str) -> None:
    if which == "mlp":
        fn: Any = mlp
        x = normal(22, (6, 5))
    else:
        fl.manual_seed(1)
        fn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
        x = normal(23, (2, 1, 5, 5))
    path, inp = tmp_path / "p.flprog", tmp_path / "x.npy"
    fl.export.save(fn, path, x)
    np.save(inp, npy(x).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(inp)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["mods"] == []
    np.testing.assert_allclose(out["y"], npy(fn(x)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["jit"], npy(fn(x)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["raw"], npy(fn(x)), rtol=1e-6, atol=1e-6)  # a numpy array as input
    np.testing.assert_allclose(out["grad"], npy(fl.grad(lambda v: fl.sum(fn(v)))(x)), rtol=1e-6, atol=1e-6)


def test_backend_override_and_missing_backend(tmp_path: Path) -> None:
    x = normal(24, (6, 5))
    path = tmp_path / "p.flprog"
    fl.export.save(mlp, path, x)
    other = "numpy" if BACKEND != "numpy" else "array_api_strict"
    if other in fl.available_backends():
        with fl.default_backend(other):
            g = fl.export.load(path, backend=other)
            xo = fl.asarray(npy(x).tolist(), dtype=fl.float32)
            np.testing.assert_allclose(npy(g(xo)), npy(mlp(x)), rtol=1e-6, atol=1e-6)
    _rewrite(path, tmp_path / "q.flprog", backend="no_such_backend")
    with pytest.raises(fl.ExportError, match="backend="):
        fl.export.load(tmp_path / "q.flprog")
    np.testing.assert_allclose(npy(fl.export.load(tmp_path / "q.flprog", backend=BACKEND)(x)), npy(mlp(x)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def _rewrite(src: Path, dst: Path, **changes: Any) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(src), framework="numpy") as f:
        meta = dict(f.metadata())
    doc = json.loads(meta["functorch_lite.program"])
    doc.update(changes)
    meta["functorch_lite.program"] = json.dumps(doc)
    save_file(load_file(str(src)), str(dst), metadata=meta)


def test_unwritable_paths_leave_nothing(tmp_path: Path) -> None:
    x = normal(25, (6, 5))
    with pytest.raises(fl.ExportError, match="cannot write"):
        fl.export.save(mlp, tmp_path / "missing" / "p.flprog", x)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "adir").mkdir()
    with pytest.raises(fl.ExportError, match="cannot write"):
        fl.export.save(mlp, tmp_path / "adir", x)
    assert sorted(os.listdir(tmp_path)) == ["adir"] and os.listdir(tmp_path / "adir") == []


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.numpy

    x = normal(26, (6, 5))
    path = tmp_path / "p.flprog"
    fl.export.save(mlp, path, x)
    before = path.read_bytes()

    def broken(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(fl.ExportError, match="No space left"):
        fl.export.save(lambda v: mlp(v) * 2.0, path, x)
    assert os.listdir(tmp_path) == ["p.flprog"] and path.read_bytes() == before


def test_other_formats_are_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.safetensors"
    nn.save(nn.Linear(2, 3), ckpt)
    with pytest.raises(fl.ExportError, match=r"checkpoint.*nn\.load"):
        fl.export.load(ckpt)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(fl.ExportError, match="not a saved functorch_lite program"):
        fl.export.load(junk)
    onnx = tmp_path / "model.onnx"  # what an ONNX file starts with: a protobuf ModelProto
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x052.0.0:\x99\x01\n" + os.urandom(64))
    with pytest.raises(fl.ExportError, match="onnxruntime"):
        fl.export.load(onnx)
    with pytest.raises(fl.ExportError, match="no file"):
        fl.export.load(tmp_path / "nothing.flprog")
    good = tmp_path / "p.flprog"
    fl.export.save(mlp, good, normal(4, (6, 5)))
    _rewrite(good, tmp_path / "other.flprog", format="somebody.else")
    with pytest.raises(fl.ExportError, match="somebody.else"):
        fl.export.load(tmp_path / "other.flprog")


def test_newer_version_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "p.flprog"
    fl.export.save(mlp, good, normal(4, (6, 5)))
    _rewrite(good, tmp_path / "new.flprog", version=fl.export.VERSION + 1)
    with pytest.raises(fl.ExportError, match=r"version 2.*[Uu]pgrade functorch_lite"):
        fl.export.load(tmp_path / "new.flprog")


def test_what_is_not_data_raises_before_writing(tmp_path: Path) -> None:
    @fl.custom_vjp
    def clipped(x: fl.Tensor) -> fl.Tensor:
        return fl.sin(x)

    clipped.defvjp(lambda x: (fl.sin(x), x), lambda x, g: (fl.clip(g, -1.0, 1.0) * fl.cos(x),))
    x = normal(27, (3,))
    path = tmp_path / "p.flprog"
    with pytest.raises(fl.ExportError, match=r"custom function 'clipped'.*cannot be saved"):
        fl.export.save(lambda v: fl.sum(clipped(v)), path, x)
    # the fix the message names: the derivative has the rule inlined
    fl.export.save(fl.grad(lambda v: fl.sum(clipped(v))), path, x)
    close(fl.export.load(path)(x), fl.grad(lambda v: fl.sum(clipped(v)))(x))
    os.unlink(path)

    class Opaque:
        pass

    with pytest.raises(fl.ExportError, match="static input.*Opaque"):
        fl.export.save(lambda v, o: v * 2.0, path, x, Opaque())
    Pair = namedtuple("Pair", "a b")
    with pytest.raises(fl.ExportError, match="Pair"):
        fl.export.save(lambda p: p.a + p.b, path, Pair(x, x))
    with pytest.raises(fl.ExportError, match="example arguments"):
        fl.export.save(mlp, path)
    with pytest.raises(fl.ExportError, match="expected a Program"):
        fl.export.save(42, path)
    assert os.listdir(tmp_path) == []


def test_a_param_that_is_not_data_names_its_primitive(tmp_path: Path) -> None:
    from functorch_lite._core.engine import PRIMITIVES
    from functorch_lite.transforms._program import Eqn, Var

    x = normal(28, (3,))
    prog = fl.make_program(fl.sin)(x)
    a, b = prog.in_vars[0], prog.outs[0]
    assert isinstance(a, Var) and isinstance(b, Var)
    prog.eqns = [Eqn(PRIMITIVES["sin"], [a], [b], {"hook": lambda v: v})]
    with pytest.raises(fl.ExportError, match=r"param 'hook' of primitive 'sin'.*function"):
        fl.export.save(prog, tmp_path / "p.flprog")
    assert os.listdir(tmp_path) == []


def test_global_randomness_is_refused_and_eval_mode_saves(tmp_path: Path) -> None:
    fl.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    x = normal(29, (2, 3))
    state = fl.random.get_state()
    with pytest.raises(fl.ExportError, match=r"global random generator.*model\.eval\(\)"):
        fl.export.save(model, tmp_path / "p.flprog", x)
    assert fl.random.get_state() is state and os.listdir(tmp_path) == []
    model.eval()
    close(roundtrip(tmp_path, model, x)(x), model(x))

    def noisy(key: fl.Tensor, x: fl.Tensor) -> fl.Tensor:  # an explicit key is an input: fine
        return x + fl.random.normal(key, x.shape)

    g = roundtrip(tmp_path, noisy, fl.random.key(0), x)
    for seed in (0, 1):
        close(g(fl.random.key(seed), x), noisy(fl.random.key(seed), x))
