"""``fl.jit(f, compiler=...)``: each backend's compiler against the replay (and eager) values.

Every compiler is checked where its package is installed (skipped cleanly otherwise): the same
values as ``compiler="replay"`` and as the un-jitted function, composition with grad / vmap,
the caching rules (weak Python scalars do not retrace, nor recompile), the class API, errors.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn, optim
from functorch_lite.transforms import _compilers

# (backend, compiler, package): the compiler named for a backend it fits
CASES = [
    pytest.param(("numpy", "numba", "numba"), id="numba"),
    pytest.param(("jax", "xla", "jax"), id="xla"),
    pytest.param(("torch", "torch.compile", "torch"), id="torch.compile"),
]


def _installed(*names: str) -> bool:
    return all(importlib.util.find_spec(n) is not None for n in names)


@pytest.fixture
def backend(request, monkeypatch):
    """Enter the case's backend; torch.compile runs with dynamo's eager backend here (the same
    graph capture, without inductor's minute-long C++ builds on a shared test machine) except
    in the one test that checks inductor itself."""
    name, compiler, pkg = request.param
    pytest.importorskip(pkg)
    if name != "numpy":
        pytest.importorskip(name)
    if compiler == "torch.compile" and "inductor" not in request.node.name:
        import torch

        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    with fl.default_backend(name):
        yield compiler


def arr(a):
    """A Tensor on the default backend (``fl.asarray`` keeps a numpy array on numpy)."""
    return fl.to_backend(fl.asarray(a), fl.default_backend_name())


def close(a, b, tol=1e-5):
    la, lb = fl.tree_util.tree_leaves(a), fl.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y) or isinstance(x, fl.Tensor) == isinstance(y, fl.Tensor)
        x = np.asarray(x) if isinstance(x, fl.Tensor) else np.asarray(x)
        y = np.asarray(y) if isinstance(y, fl.Tensor) else np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def loss(p, x, lr):
    h = fl.tanh(x @ p["w"] + p["b"])
    return fl.sum(fl.sin(h) * 1.5 + h * h) * lr, fl.mean(h)


def data():
    r = np.random.default_rng(0)
    p = {"w": arr(r.normal(size=(4, 3)).astype(np.float32)), "b": arr(r.normal(size=(3,)).astype(np.float32))}
    return p, arr(r.normal(size=(5, 4)).astype(np.float32))


def _entry(j):
    (e,) = j._cache.values()
    return e


@pytest.mark.parametrize("backend", CASES, indirect=True)
def test_values_match_replay_and_eager_and_scalars_do_not_retrace(backend):
    p, x = data()
    vg = fl.value_and_grad(loss, has_aux=True)
    comp, rep = fl.jit(vg, compiler=backend), fl.jit(vg, compiler="replay")
    for lr in (0.1, 0.25, 2.0):  # a weak input: one trace, and one compilation
        close(comp(p, x, lr), rep(p, x, lr))
        close(comp(p, x, lr), vg(p, x, lr))
    assert comp.cache_size() == 1 and comp.traces == 1
    assert comp.compiler_for(p, x, 0.5) == backend
    native = getattr(_entry(comp).run, "native", None)
    if backend == "xla":
        assert native._cache_size() == 1  # lr traced by jax.jit, not baked in
    assert str(comp.lower(p, x, 0.1)) == str(rep.lower(p, x, 0.1))  # lower() shows the program
    x2 = fl.concat([x, x])  # a new shape: one more trace, as with the replay
    close(comp(p, x2, 0.1), vg(p, x2, 0.1))
    assert comp.cache_size() == 2


@pytest.mark.parametrize("backend", CASES, indirect=True)
def test_composes_with_grad_and_vmap(backend):
    p, x = data()
    f = fl.jit(lambda p, x, lr: loss(p, x, lr)[0], compiler=backend)
    close(fl.grad(f)(p, x, 0.3), fl.grad(lambda p, x, lr: loss(p, x, lr)[0])(p, x, 0.3))
    per_row = fl.vmap(f, in_axes=(None, 0, None))
    close(per_row(p, fl.reshape(x, (5, 1, 4)), 0.3), fl.stack([loss(p, x[i : i + 1], 0.3)[0] for i in range(5)]))
    jg = fl.jit(fl.grad(lambda p, x: loss(p, x, 1.0)[0]), compiler=backend)
    close(jg(p, x), fl.grad(lambda p, x: loss(p, x, 1.0)[0])(p, x))
    # the staged backward of grad(jit(f)) is jitted with the same compiler
    assert f._cache and all(e.compiler == backend for e in f._cache.values())


@pytest.mark.parametrize("backend", CASES, indirect=True)
def test_class_api_inputs_outputs(backend):
    def make():
        fl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
        opt = optim.SGD(lr=0.1, momentum=0.9)  # (state threaded too; a smaller program than Adam's)
        lg = nn.value_and_grad(model, lambda x, y: nn.functional.cross_entropy(model(x), y))

        def step(x, y):
            v, g = lg(x, y)
            opt.update(model, g)
            return v

        return model, opt, step

    x = arr(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4))
    y = arr(np.arange(8) % 2)
    res = []
    for comp in (backend, "eager"):  # (the replay is compared in the other tests; eager here)
        model, opt, step = make()
        js = step if comp == "eager" else fl.jit(step, inputs=[model, opt], outputs=[model, opt], compiler=comp)
        losses = [js(x, y) for _ in range(3)]
        res.append((losses, [fl.asarray(q) for q in model.parameters()]))
        assert opt.step == 3
        if comp != "eager":
            assert js.compiler_for(x, y) == backend
    close(res[0], res[1], tol=1e-5)


@pytest.mark.parametrize("backend", CASES, indirect=True)
def test_weak_scalar_outputs_and_literals(backend):
    f = fl.jit(lambda x, t: (x * (0.9**t), 0.9**t, 3, None), compiler=backend)
    r = fl.jit(lambda x, t: (x * (0.9**t), 0.9**t, 3, None), compiler="replay")
    x = fl.ones((4,))
    for t in (1, 2, 5):
        a, b = f(x, t), r(x, t)
        close(a[0], b[0])
        assert type(a[1]) is float and a[1] == pytest.approx(b[1], rel=1e-6)
        assert a[2:] == (3, None)
    assert f.cache_size() == 1


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_torch_compile_inductor_values():
    import torch  # noqa: F401  (the real torch.compile, with its default inductor backend)

    def g(x, lr):
        return fl.sum(fl.tanh(x) * lr + x * x)

    with fl.default_backend("torch"):
        x = data()[1]
        f = fl.jit(g, compiler="torch.compile")
        close(f(x, 0.1), g(x, 0.1))
        close(f(x, 0.7), g(x, 0.7))
        assert f.cache_size() == 1 and f.compiler_for(x, 0.7) == "torch.compile"


# -- xla: control flow lowered to lax, and what falls back ----------------------------------------
@pytest.mark.skipif(not _installed("jax"), reason="jax is not installed")
def test_xla_lowers_scan_cond_while_and_is_the_jax_default():
    def cf(x):
        c, ys = fl.scan(lambda c, xi: (c + fl.sin(xi), c * xi), fl.zeros(()), x)
        y = fl.cond(c > 0, lambda v: v * 2, lambda v: v - 1, c)
        z = fl.while_loop(lambda v: fl.abs(v) < 100.0, lambda v: v * 2.0 + 1.0, y)
        return ys, y, z

    with fl.default_backend("jax"):
        x = fl.arange(5.0)
        d = fl.jit(cf)
        close(d(x), fl.jit(cf, compiler="replay")(x))
        close(d(x), cf(x))
        close(d(-x), cf(-x))
        assert d.compiler_for(x) == "xla"  # the default on jax, lowered rather than fallen back
        close(fl.grad(lambda x: fl.sum(d(x)[0]))(x), fl.grad(lambda x: fl.sum(cf(x)[0]))(x))


@pytest.mark.skipif(not _installed("jax"), reason="jax is not installed")
def test_xla_default_falls_back_where_jax_cannot_trace_and_explicit_raises():
    def g(v, n):  # a while_loop's reverse pass: a scan of run-time length (not expressible in XLA)
        return fl.fori_loop(0, n, lambda i, v: v * v, v)

    with fl.default_backend("jax"):
        v, n = fl.asarray(1.01), fl.asarray(5)
        want = fl.grad(g)(v, n)
        d = fl.jit(fl.grad(g))
        close(d(v, n), want)
        assert d.compiler_for(v, n) == "replay"
        close(d(v, n), want)
        with pytest.raises(_compilers.CompilerError, match=r"compiler='xla'\) cannot compile"):
            fl.jit(fl.grad(g), compiler="xla")(v, n)


@pytest.mark.skipif(not _installed("jax"), reason="jax is not installed")
def test_xla_divides_by_weak_scalars_as_reciprocals_with_the_replays_values():
    """``x / s`` by a weak Python scalar reaches XLA as ``x * r`` with ``r = 1 / s`` computed in
    Python (see ``_compilers.reciprocals``): a float or an int divisor, one computed from an
    input, a zero of either sign (inf, -inf and nan as the replay gives), a tiny one."""

    def f(x, s, n):
        c = 1.0 - 0.9 ** (n + 1)  # a weak value computed in the program, as Adam's corrections
        return x / s, x / n, (x / c) / c, (x * 2.0) / (s * s)

    with fl.default_backend("jax"):
        x = arr(np.array([0.0, 1.5, -2.0, 3.0e-3], dtype=np.float32))
        comp, rep = fl.jit(f), fl.jit(f, compiler="replay")
        for s, n in ((3.0, 4), (0.0, 0), (-0.0, 7), (1.0e-30, 2), (-7.5, -1)):
            with np.errstate(all="ignore"):
                got, want = comp(x, s, n), rep(x, s, n)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0, equal_nan=True)
                assert np.array_equal(np.signbit(np.asarray(a)), np.signbit(np.asarray(b)))
        assert comp.cache_size() == 1 and comp.compiler_for(x, 1.0, 1) == "xla"
        prog = comp.lower(x, 1.0, 1)
        assert str(prog) == str(rep.lower(x, 1.0, 1))  # lower() shows the program, divides and all

        def by_weak(e, what):
            a, d = e.inputs[0], e.inputs[-1]
            if e.prim.name != "divide" or getattr(d, "weak", None) is None:
                return False
            return getattr(a, "weak", 0) is None if what == "array" else a.__class__ is float and a == 1.0

        assert sum(by_weak(e, "array") for e in prog.eqns) == 5
        q = _compilers.reciprocals(prog)
        assert not any(by_weak(e, "array") for e in q.eqns)
        assert sum(by_weak(e, "one") for e in q.eqns) == 4  # one 1 / s per divisor: s, n, c, s * s


@pytest.mark.skipif(not _installed("jax"), reason="jax is not installed")
def test_xla_adam_steps_match_the_replay_with_one_trace_and_one_compilation():
    """The digits benchmark's shape: value_and_grad, optim.adam (a Python step count per
    parameter), apply_updates, a batch taken from captured data; ten steps under the xla
    compiler stay within float32 1e-5 of the replay's, traced and compiled once."""
    r = np.random.default_rng(3)
    with fl.default_backend("jax"):
        xs = arr(r.normal(size=(40, 6)).astype(np.float32))
        ys = arr(np.eye(3, dtype=np.float32)[r.integers(0, 3, 40)])
        p0 = {
            "w1": arr(r.normal(size=(6, 8)).astype(np.float32) * 0.3),
            "b1": arr(np.zeros(8, np.float32)),
            "w2": arr(r.normal(size=(8, 3)).astype(np.float32) * 0.3),
            "b2": arr(np.zeros(3, np.float32)),
        }
        tx = optim.adam(1e-2)

        def lossf(p, x, y):
            h = nn.functional.relu(x @ p["w1"] + p["b1"])
            return nn.functional.cross_entropy(h @ p["w2"] + p["b2"], y)

        vg = fl.value_and_grad(lossf)

        def step(p, s, b):
            v, g = vg(p, fl.take(xs, b, axis=0), fl.take(ys, b, axis=0))
            u, s = tx.update(g, s, p)
            return optim.apply_updates(p, u), s, v

        comp, rep = fl.jit(step), fl.jit(step, compiler="replay")
        states = [(p0, tx.init(p0)), (p0, tx.init(p0))]
        for i in range(10):
            b = arr((np.arange(8) + 8 * i) % 40)
            (pc, sc, vc), (pr, sr, vr) = comp(*states[0], b), rep(*states[1], b)
            close((pc, sc, vc), (pr, sr, vr))
            states = [(pc, sc), (pr, sr)]
        assert comp.traces == 1 and comp.compiler_for(p0, tx.init(p0), b) == "xla"
        assert _entry(comp).run.native._cache_size() == 1  # the step counts are not baked in


# -- numba: fusion ------------------------------------------------------------------------------
def _chain(x):
    for _ in range(20):
        x = fl.sin(x) * 1.01 + 0.1
    return x


@pytest.mark.skipif(not _installed("numba"), reason="numba is not installed")
def test_numba_fuses_elementwise_runs_and_matches_the_replay():
    with fl.default_backend("numpy"):
        x = fl.asarray(np.linspace(-1, 1, 8, dtype=np.float32))
        jn = fl.jit(fl.grad(lambda x: fl.sum(_chain(x))), compiler="numba")
        jr = fl.jit(fl.grad(lambda x: fl.sum(_chain(x))), compiler="replay")
        close(jn(x), jr(x))
        close(jn(x), fl.grad(lambda x: fl.sum(_chain(x)))(x))
        fused = _entry(jn).run.program
        names = [e.prim.name for e in fused.eqns]
        assert names.count("numba_fused") >= 1 and len(names) < len(jn.lower(x).eqns) // 10
        for e in fused.eqns:  # the kernel's outputs are only values read after it
            assert len(e.outputs) <= 3


@pytest.mark.skipif(not _installed("numba"), reason="numba is not installed")
def test_numba_dtypes_broadcasts_scalars_and_ieee_edge_cases():
    def f(x, b, s, d64, z):
        y = x * s + 2  # a weak float and an int literal, in x's dtype
        y = fl.exp(-y * y) / z  # division by zero: inf / nan as numpy gives, never an exception
        y = y + b  # a broadcast (b has shape (3,)): the run ends here
        w = fl.sqrt(fl.abs(d64)) - d64 * 0.5  # float64 stays float64
        return y, w, fl.maximum(x, 0.0) + fl.minimum(x, -0.5) * fl.asarray(2.0)

    r = np.random.default_rng(1)
    with fl.default_backend("numpy"):
        args = (
            fl.asarray(r.normal(size=(4, 3)).astype(np.float32)),
            fl.asarray(r.normal(size=(3,)).astype(np.float32)),
            0.75,
            fl.asarray(r.normal(size=(4, 3))),
            fl.asarray(np.array([[0.0, 1.0, -1.0]] * 4, dtype=np.float32)),
        )
        with np.errstate(all="ignore"):
            jn = fl.jit(f, compiler="numba")
            got, want, eager = jn(*args), fl.jit(f, compiler="replay")(*args), f(*args)
        close(got, want)
        close(got, eager)
        assert np.isinf(np.asarray(got[0])).any()
        assert got[1].dtype == fl.float64
        assert "numba_fused" in [e.prim.name for e in _entry(jn).run.program.eqns]


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_compiler_names_the_choices():
    with pytest.raises(
        fl.TransformError, match="unknown compiler 'inductor'.*'replay', 'xla', 'torch.compile', 'numba'"
    ):
        fl.jit(lambda x: x, compiler="inductor")


def test_a_compiler_that_does_not_fit_the_backend_names_what_fits():
    default = fl.default_backend_name()
    own = {"numpy": ", 'numba'", "jax": ", 'xla'", "torch": ", 'torch.compile'"}.get(default, "")
    want = "'replay'" + own
    for comp, pkg in (("xla", "jax"), ("torch.compile", "torch")):
        if not _installed(pkg) or pkg == default:  # (on its own backend the compiler fits)
            continue
        f = fl.jit(lambda x: x * 2.0, compiler=comp)
        with pytest.raises(_compilers.CompilerError, match=f"compiles programs on the {pkg} backend.*{want}"):
            f(fl.ones((2,)))
    if _installed("numba", "jax"):
        with fl.default_backend("jax"), pytest.raises(_compilers.CompilerError, match="'replay', 'xla'"):
            fl.jit(lambda x: x * 2.0, compiler="numba")(fl.ones((2,)))


def test_a_missing_package_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "numba" else real(n, *a))
    with pytest.raises(_compilers.CompilerError, match=r"needs the numba package.*functorch_lite\[numba\]"):
        fl.jit(lambda x: x, compiler="numba")


def test_replay_everywhere_and_defaults():
    f = fl.jit(lambda x: fl.sin(x) * 2.0, compiler="replay")
    close(f(fl.ones((3,))), fl.sin(fl.ones((3,))) * 2.0)
    assert f.compiler_for(fl.ones((3,))) == "replay"
    d = fl.jit(lambda x: fl.sin(x) * 2.0)
    assert d.compiler_for(fl.ones((3,))) == ("xla" if fl.default_backend_name() == "jax" else "replay")
