"""Training on a real dask.distributed LocalCluster, checked against numpy oracles.

One cluster (2 worker processes, 1 thread each, bound to 127.0.0.1) serves the module; the
out-of-core test starts its own with small memory limits. Parameters are numpy Tensors and
data dask-backed Tensors, explicitly, whatever FUNCTORCH_LITE_BACKEND says.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import functorch_lite as fl  # noqa: E402
from functorch_lite import nn, optim  # noqa: E402
from functorch_lite.data import DataLoader, TensorDataset  # noqa: E402

TIMEOUT = 60


def _boom(*args, **kwargs):
    raise AssertionError("the engine forced a dask compute while building the graph")


def _cluster(**kw):
    with warnings.catch_warnings():  # the scheduler's http server moves off 8787 when it is taken
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        return _local_cluster(**kw)


def _local_cluster(n_workers=2, **kw):
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        **kw,
    )


@pytest.fixture(scope="module")
def client():
    cluster = _cluster(memory_limit="1GiB")
    c = distributed.Client(cluster, timeout=30)
    try:
        yield c
    finally:
        c.close(timeout=30)
        cluster.close(timeout=30)


def np_tensor(a):
    with fl.default_backend("numpy"):
        return fl.asarray(np.asarray(a))


def data(n=600, d=5, chunks=150, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    y = (x @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n) > 0).astype(dtype)
    return x, y, fl.asarray(da.from_array(x, chunks=(chunks, d))), fl.asarray(da.from_array(y, chunks=chunks))


def logreg_loss(p, x, y):
    z = x @ p["w"] + p["b"]
    return fl.mean(fl.logaddexp(0.0, z) - y * z)


def logreg_oracle(p, x, y):
    z = x @ p["w"] + p["b"]
    s = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    return loss, {"w": x.T @ (s - y) / len(y), "b": np.mean(s - y)}


def host(tree):
    return {k: np.asarray(v) for k, v in tree.items()}


# -- mixed placement ------------------------------------------------------------------------
def test_mixed_placement_is_lazy_and_matches_numpy():
    x, y, X, Y = data()
    p = {"w": np_tensor(np.full(5, 0.1)), "b": np_tensor(0.2)}
    with dask.config.set(scheduler=_boom):
        z = X @ p["w"]
        assert z.backend == "dask" and p["w"].backend == "numpy"
        v, g = fl.value_and_grad(logreg_loss)(p, X, Y)
    assert v.backend == "dask" and g["w"].backend == "dask" and g["b"].backend == "dask"
    v, g = fl.dask.compute((v, g))
    assert v.backend == "numpy" and g["w"].backend == "numpy"
    lo, go = logreg_oracle(host(p), x, y)
    np.testing.assert_allclose(float(v), lo, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g["w"]), go["w"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(float(g["b"]), go["b"], rtol=1e-10, atol=1e-14)


class _CountComputes(dask.callbacks.Callback):
    """Counts graph submissions to dask's local schedulers."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def _start(self, dsk):
        self.n += 1


def test_compute_is_one_submission_per_tree():
    x, y, X, Y = data(seed=12)
    p = {"w": np_tensor(np.full(5, -0.1)), "b": np_tensor(0.0)}
    tree = fl.value_and_grad(logreg_loss)(p, X, Y)
    with dask.config.set(scheduler="sync"), _CountComputes() as cc:  # (a local scheduler: callbacks see it)
        v, g = fl.dask.compute(tree)
    assert cc.n == 1
    lo, go = logreg_oracle(host(p), x, y)
    np.testing.assert_allclose(float(v), lo, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g["w"]), go["w"], rtol=1e-10, atol=1e-14)
    with pytest.raises(fl.TransformError, match="tracer"):
        fl.grad(lambda w: fl.sum(fl.dask.compute(X @ w)))(p["w"])


class _CountTasks(dask.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _posttask(self, key, result, dsk, state, id):
        self.n += 1


def test_compute_merges_each_chunks_tasks_exactly():
    # fl.dask.compute merges a chunk's matmul, elementwise chain and reductions into one task:
    # the same numpy calls (bitwise equal), far fewer tasks; a loss asked for with its gradients
    # and an MLP (two matmuls per chunk, tanh) too
    x, y, X, Y = data(n=4000, d=6, chunks=500, seed=17, dtype=np.float32)
    rng = np.random.default_rng(18)
    mlp = {
        "w1": np_tensor(rng.standard_normal((6, 8)).astype(np.float32)),
        "b1": np_tensor(np.zeros(8, np.float32)),
        "w2": np_tensor(rng.standard_normal(8).astype(np.float32)),
        "b2": np_tensor(np.float32(0.1)),
    }
    lin = {"w": np_tensor(np.linspace(-1, 1, 6).astype(np.float32)), "b": np_tensor(np.float32(0.2))}
    for loss, p in ((logreg_loss, lin), (mlp_loss, mlp)):
        tree = fl.value_and_grad(loss)(p, X, Y)
        counts, got = [], []
        for fuse in (False, True):
            with (
                dask.config.set({"scheduler": "sync", "functorch_lite.fuse-chunk-tasks": fuse}),
                _CountTasks() as ct,
            ):
                got.append(fl.dask.compute(tree))
            counts.append(ct.n)
        assert counts[1] * 2.5 <= counts[0], counts  # (logistic regression 88 -> 28, MLP 143 -> 37)
        v0, g0 = got[0]
        v1, g1 = got[1]
        assert float(v0) == float(v1)
        for k in g0:
            np.testing.assert_array_equal(np.asarray(g1[k]), np.asarray(g0[k]))
    lo, go = logreg_oracle(host(lin), x.astype(np.float64), y.astype(np.float64))
    v, g = fl.dask.compute(fl.value_and_grad(logreg_loss)(lin, X, Y))
    np.testing.assert_allclose(float(v), lo, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g["w"]), go["w"], rtol=1e-4, atol=1e-6)


def test_dataloader_one_compute_per_batch():
    x, y, X, Y = data(n=100, chunks=30, seed=13)
    loader = DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=True, seed=1)
    with dask.config.set(scheduler="sync"), _CountComputes() as cc:
        batches = list(loader)
    assert cc.n == len(batches) == 7
    rows = np.concatenate([np.asarray(b[0]) for b in batches])
    ids = [int(np.flatnonzero((x == r).all(1))[0]) for r in rows]  # (random rows: each is unique)
    assert sorted(ids) == list(range(100)), "every sample once"
    np.testing.assert_array_equal(np.concatenate([np.asarray(b[1]) for b in batches]), y[ids])


def test_mixed_placement_numpy_only_terms_and_reuse():
    # a parameter used on the numpy side (a penalty) and in the graph: cotangents meet across backends
    x, y, X, Y = data(seed=1)
    w = np_tensor(np.linspace(-0.5, 0.5, 5))

    def f(w, X, Y):
        z = X @ w
        return fl.sum((z - Y) ** 2) + 0.5 * fl.sum(w**3) + fl.sum(w * z[:3, None])

    with dask.config.set(scheduler=_boom):
        g = fl.grad(f)(w, X, Y)
    g = fl.dask.compute(g)
    wn = np.asarray(w)
    z = x @ wn
    oracle = 2 * x.T @ (z - y) + 1.5 * wn**2 + z[:3].sum() + x[:3].T @ np.full(3, wn.sum())
    np.testing.assert_allclose(np.asarray(g), oracle, rtol=1e-10)


def test_other_backend_pairs_still_raise():
    strict = pytest.importorskip("array_api_strict")
    X = fl.asarray(da.ones((4, 2), chunks=2))
    s = fl.asarray(strict.ones((2,)))
    with pytest.raises(fl.BackendMismatchError, match="two backends"):
        X @ s


def test_unknown_chunk_sizes_unbroadcast_without_compute():
    x, _, X, _ = data(n=200, d=4, chunks=50, seed=2)
    w = np_tensor(np.arange(12.0).reshape(4, 3) / 10)
    b = np_tensor(np.array([0.1, -0.2, 0.3]))

    def f(w, b):
        m = X[X[:, 0] > 0]  # rows of unknown (nan) count
        z = m @ w + b  # b broadcast over unknown rows: its cotangent sums them
        return fl.sum(z**2) + fl.sum(fl.sum(m, axis=1, keepdims=True) * z)

    with dask.config.set(scheduler=_boom):
        gw, gb = fl.grad(f, argnums=(0, 1))(w, b)
    gw, gb = fl.dask.compute((gw, gb))
    m = x[x[:, 0] > 0]
    ez = 2 * (m @ np.asarray(w) + np.asarray(b)) + m.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(gw), m.T @ ez, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(gb), ez.sum(0), rtol=1e-10)


def test_integer_labels_on_dask_need_no_compute():
    # cross_entropy and take check index bounds; on lazy labels that must not run the graph
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 4))
    t = rng.integers(0, 3, 120)
    X = fl.asarray(da.from_array(x, chunks=(40, 4)))
    T = fl.asarray(da.from_array(t, chunks=40))
    w = np_tensor(rng.standard_normal((4, 3)))
    with dask.config.set(scheduler=_boom):
        v, g = fl.value_and_grad(lambda w: nn.functional.cross_entropy(X @ w, T))(w)
        picked = fl.take(X, fl.asarray(da.from_array(np.array([5, 0, 7]), chunks=2)), axis=0)
    v, g, picked = fl.dask.compute((v, g, picked))
    z = x @ np.asarray(w)
    pr = np.exp(z - z.max(1, keepdims=True))
    pr /= pr.sum(1, keepdims=True)
    np.testing.assert_allclose(float(v), -np.mean(np.log(pr[np.arange(120), t])), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g), x.T @ (pr - np.eye(3)[t]) / 120, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(np.asarray(picked), x[[5, 0, 7]])


def test_mean_over_unknown_rows_on_cluster(client):
    # rows of unknown (nan) count: mean divides by a count made in the graph, not by nan
    x, y, X, Y = data(n=400, d=3, chunks=100, seed=21, dtype=np.float32)
    w = np_tensor(np.array([0.3, -0.2, 0.1], np.float32))

    def f(w):
        keep = Y > 0.5
        m = X[keep]  # rows of unknown (nan) count
        return fl.mean((m @ w) ** 2) + fl.mean(fl.mean(m, axis=0) * w)

    with dask.config.set(scheduler=_boom):
        v, g = fl.value_and_grad(f)(w)
        per_col = fl.mean(X[Y > 0.5], axis=0, keepdims=True)
    assert fl.dask.is_lazy(v) and fl.dask.is_lazy(g)
    v, g, per_col = fl.dask.compute((v, g, per_col), client=client, timeout=TIMEOUT)
    m = x[y > 0.5].astype(np.float64)
    wn = np.asarray(w, np.float64)
    np.testing.assert_allclose(float(v), np.mean((m @ wn) ** 2) + np.mean(m.mean(0) * wn), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g), 2 * m.T @ (m @ wn) / len(m) + m.mean(0) / 3, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(per_col), m.mean(0, keepdims=True), rtol=1e-6)
    assert np.asarray(per_col).dtype == np.float32


def test_compute_reuses_dead_chunk_temporaries_exactly(client):
    # fl.dask.compute runs each fused chunk task with dead temporaries reused as out=: the same
    # numpy calls, so bitwise equal to dask's own execution; inputs and views never written
    import functorch_lite._dask_inplace as inplace

    rng = np.random.default_rng(22)
    xn = rng.standard_normal((200_000, 4)).astype(np.float32)
    x = da.from_array(xn, chunks=(50_000, 4))
    z = x[:, 0] * 2.0 + 1.0
    view = z[::-1]  # a view of a temporary: must keep its values
    chain = -(da.exp(-da.abs(z)) + 1.0) / (z * z + 2.0) - view
    t = fl.asarray(x[:, 1])
    grad_chain = fl.grad(lambda w: fl.mean(fl.log1p(fl.exp(-fl.abs(t * w))) * w))(np_tensor(np.float32(0.7)))
    want = dask.compute(chain, grad_chain._a, scheduler="sync")
    got = fl.dask.compute((fl.asarray(chain), grad_chain), client=client, timeout=TIMEOUT)
    np.testing.assert_array_equal(np.asarray(got[0]), want[0])
    np.testing.assert_array_equal(np.asarray(got[1]), want[1])
    np.testing.assert_array_equal(xn, x.compute())  # (the source array untouched)
    with dask.config.set(scheduler="sync", array_optimize=inplace.optimize):
        np.testing.assert_array_equal(chain.compute(), want[0])
        kept = np.ones(100_000)
        out = ((da.from_array(kept, chunks=50_000) + 1.0) * 3.0 - 2.0).compute()
    assert (kept == 1.0).all() and (out == 4.0).all()


# -- full batch on the cluster ------------------------------------------------------------------
def test_full_batch_logistic_regression_sgd(client):
    x, y, X, Y = data(n=2000, chunks=250, seed=4)
    X, Y = fl.dask.persist((X, Y), client=client)
    distributed.wait([X._a, Y._a], timeout=TIMEOUT)
    held = client.has_what()
    assert sum(1 for keys in held.values() if keys) == 2, "the row chunks sit on both workers"
    p = {"w": np_tensor(np.zeros(5)), "b": np_tensor(0.0)}
    tx = optim.sgd(0.5)
    state = tx.init(p)
    ref = {"w": np.zeros(5), "b": 0.0}
    for _ in range(4):
        loss, g = fl.dask.compute(fl.value_and_grad(logreg_loss)(p, X, Y), client=client, timeout=TIMEOUT)
        updates, state = tx.update(g, state, p)
        p = optim.apply_updates(p, updates)
        lo, go = logreg_oracle(ref, x, y)
        np.testing.assert_allclose(float(loss), lo, rtol=1e-12)
        ref = {"w": ref["w"] - 0.5 * go["w"], "b": ref["b"] - 0.5 * go["b"]}
        assert p["w"].backend == "numpy"
    np.testing.assert_allclose(np.asarray(p["w"]), ref["w"], rtol=1e-10)
    np.testing.assert_allclose(float(p["b"]), ref["b"], rtol=1e-10, atol=1e-14)


def mlp_loss(p, x, y):
    h = fl.tanh(x @ p["w1"] + p["b1"])
    return fl.mean((h @ p["w2"] + p["b2"] - y) ** 2)


def mlp_oracle(p, x, y):
    h = np.tanh(x @ p["w1"] + p["b1"])
    r = h @ p["w2"] + p["b2"] - y
    dr = 2 * r / len(y)
    dh = np.outer(dr, p["w2"]) * (1 - h**2)
    return np.mean(r**2), {"w1": x.T @ dh, "b1": dh.sum(0), "w2": h.T @ dr, "b2": dr.sum()}


def test_full_batch_mlp_adam(client):
    x, y, X, Y = data(n=1200, d=6, chunks=300, seed=5)
    X, Y = fl.dask.persist((X, Y), client=client)
    rng = np.random.default_rng(6)
    init = {
        "w1": rng.standard_normal((6, 8)) * 0.5,
        "b1": np.zeros(8),
        "w2": rng.standard_normal(8) * 0.5,
        "b2": np.array(0.0),
    }
    p = {k: np_tensor(v) for k, v in init.items()}
    tx = optim.adam(0.05)
    state = tx.init(p)
    ref = {k: v.copy() for k, v in init.items()}
    m = {k: np.zeros_like(v) for k, v in init.items()}
    s = {k: np.zeros_like(v) for k, v in init.items()}
    losses = []
    for t in range(1, 6):
        loss, g = fl.dask.compute(fl.value_and_grad(mlp_loss)(p, X, Y), client=client, timeout=TIMEOUT)
        updates, state = tx.update(g, state, p)
        p = optim.apply_updates(p, updates)
        lo, go = mlp_oracle(ref, x, y)
        np.testing.assert_allclose(float(loss), lo, rtol=1e-10)
        losses.append(lo)
        for k in ref:  # Adam, as PyTorch writes it
            m[k] = 0.9 * m[k] + 0.1 * go[k]
            s[k] = 0.999 * s[k] + 0.001 * go[k] ** 2
            ref[k] = ref[k] - 0.05 * (m[k] / (1 - 0.9**t)) / (np.sqrt(s[k] / (1 - 0.999**t)) + 1e-8)
    for k in ref:
        np.testing.assert_allclose(np.asarray(p[k]), ref[k], rtol=1e-7, atol=1e-10)
    assert losses[-1] < losses[0]


def test_class_api_mlp_on_cluster(client):
    x, y, X, Y = data(n=800, d=6, chunks=200, seed=14)
    F = nn.functional
    with fl.default_backend("numpy"):
        fl.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
        fl.manual_seed(0)
        twin = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    opt, opt_twin = optim.Adam(lr=0.05), optim.Adam(lr=0.05)
    step = nn.value_and_grad(model, lambda x, y: F.mse_loss(model(x)[:, 0], y))
    step_twin = nn.value_and_grad(twin, lambda x, y: F.mse_loss(twin(x)[:, 0], y))
    xn, yn = np_tensor(x), np_tensor(y)
    for _ in range(3):
        v, grads = fl.dask.compute(step(X, Y), client=client, timeout=TIMEOUT)
        v1, grads1 = step_twin(xn, yn)  # the same model on numpy data, one process
        np.testing.assert_allclose(float(v), float(v1), rtol=1e-10)
        opt.update(model, grads)
        opt_twin.update(twin, grads1)
    p = host(model.state_dict())
    p1 = host(twin.state_dict())
    w1, b1, w2, b2 = (p1[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    lo, _ = mlp_oracle({"w1": w1.T, "b1": b1, "w2": w2[0], "b2": b2[0]}, x, y)
    np.testing.assert_allclose(lo, float(F.mse_loss(twin(xn)[:, 0], yn)), rtol=1e-10)
    for k in p:
        np.testing.assert_allclose(p[k], p1[k], rtol=1e-9, atol=1e-12)


# -- mini-batches ---------------------------------------------------------------------------------
def test_dataloader_sgd_over_dask_dataset(client):
    x, y, X, Y = data(n=500, d=5, chunks=100, seed=7)
    loader = DataLoader(TensorDataset(X, Y), batch_size=64, shuffle=True, seed=3, prefetch=2)
    order = np.asarray(
        DataLoader(
            TensorDataset(np_tensor(np.arange(500))), batch_size=64, shuffle=True, seed=3
        ).sampler.epoch_indices()
    )  # the same seeded order on numpy data
    p = {"w": np_tensor(np.zeros(5)), "b": np_tensor(0.0)}
    ref = {"w": np.zeros(5), "b": 0.0}
    tx = optim.sgd(0.3)
    state = tx.init(p)
    step = fl.jit(fl.value_and_grad(logreg_loss))
    seen = 0
    for xb, yb in loader:
        assert xb.backend == "numpy" and yb.backend == "numpy", "each batch is fetched (computed)"
        idx = order[seen : seen + 64]
        seen += len(idx)
        np.testing.assert_array_equal(np.asarray(xb), x[idx])
        _, g = step(p, xb, yb)
        updates, state = tx.update(g, state, p)
        p = optim.apply_updates(p, updates)
        _, go = logreg_oracle(ref, x[idx], y[idx])
        ref = {"w": ref["w"] - 0.3 * go["w"], "b": ref["b"] - 0.3 * go["b"]}
    assert seen == 500
    np.testing.assert_allclose(np.asarray(p["w"]), ref["w"], rtol=1e-9, atol=1e-12)
    lazy = next(iter(DataLoader(TensorDataset(X, Y), batch_size=8, fetch=False)))
    assert fl.dask.is_lazy(lazy[0])


# -- data parallel --------------------------------------------------------------------------------
def test_data_parallel_step_equals_single_process(client):
    x, y, X, Y = data(n=1000, d=5, chunks=500, seed=8)  # one shard per worker
    X, Y = fl.dask.persist((X, Y), client=client)
    step = fl.dask.data_parallel(logreg_loss, client=client, timeout=TIMEOUT)
    p = {"w": np_tensor(np.full(5, 0.05)), "b": np_tensor(-0.1)}
    single = {k: np_tensor(np.asarray(v)) for k, v in p.items()}
    tx = optim.adam(0.1)
    state, state1 = tx.init(p), tx.init(single)
    for _ in range(3):
        v, g = step(p, X, Y)
        v1, g1 = fl.value_and_grad(logreg_loss)(single, np_tensor(x), np_tensor(y))  # single process
        lo, go = logreg_oracle(host(p), x, y)
        np.testing.assert_allclose(float(v), lo, rtol=1e-12)
        np.testing.assert_allclose(float(v), float(v1), rtol=1e-12)
        for k in go:
            np.testing.assert_allclose(np.asarray(g[k]), go[k], rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(np.asarray(g[k]), np.asarray(g1[k]), rtol=1e-10, atol=1e-14)
        u, state = tx.update(g, state, p)
        p = optim.apply_updates(p, u)
        u1, state1 = tx.update(g1, state1, single)
        single = optim.apply_updates(single, u1)
        for k in p:  # the same model state after every step
            np.testing.assert_allclose(np.asarray(p[k]), np.asarray(single[k]), rtol=1e-9, atol=1e-12)
    # the workers ran the jitted step once each and reused it
    traced = client.run(lambda: len(fl.dask._STEPS))
    assert sorted(traced.values()) == [1, 1]


def test_data_parallel_sum_reduction_and_errors(client):
    x, y, X, Y = data(n=300, d=5, chunks=100, seed=9)
    step = fl.dask.data_parallel(
        lambda w, x, y: fl.sum((x @ w - y) ** 2), reduction="sum", client=client, timeout=TIMEOUT
    )
    w = np_tensor(np.linspace(0, 1, 5))
    v, g = step(w, X, Y)
    r = x @ np.asarray(w) - y
    np.testing.assert_allclose(float(v), np.sum(r**2), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g), 2 * x.T @ r, rtol=1e-10)
    with pytest.raises(fl.ShapeError, match="chunked alike"):
        step(w, X, fl.asarray(da.from_array(y, chunks=150)))
    with pytest.raises(fl.ConfigError, match="not a dask-backed"):
        step(w, np_tensor(x), Y)
    with pytest.raises(fl.ConfigError, match="reduction"):
        fl.dask.data_parallel(logreg_loss, reduction="max")


def _held(client, arrays):
    """Worker -> number of blocks of ``arrays`` it holds."""
    keys = {k for a in arrays for k in dask.core.flatten(a.__dask_keys__())}
    return {w: sum(1 for k in ks if k in keys) for w, ks in client.has_what().items()}


def test_data_parallel_uneven_placement_and_persist_balance(client):
    # every chunk on one worker, chunks of unequal rows (300, 300, 300, 100): the step runs there,
    # weighted by rows; fl.dask.persist then spreads the row chunks (X_i with y_i) over both workers
    x, y, X, Y = data(n=1000, d=5, chunks=300, seed=15)
    w0, w1 = sorted(client.scheduler_info()["workers"])
    xa, ya = client.persist([X._a, Y._a], workers=[w0], allow_other_workers=False)
    distributed.wait([xa, ya], timeout=TIMEOUT)
    assert _held(client, [xa, ya]) == {w0: 8, w1: 0}
    step = fl.dask.data_parallel(logreg_loss, client=client, timeout=TIMEOUT)
    p = {"w": np_tensor(np.linspace(-0.2, 0.3, 5)), "b": np_tensor(0.1)}
    lo, go = logreg_oracle(host(p), x, y)
    v1, g1 = fl.value_and_grad(logreg_loss)(p, np_tensor(x), np_tensor(y))
    for balance, where in [(False, [w0]), (True, [w0, w1])]:
        Xs, Ys = fl.asarray(xa), fl.asarray(ya)
        if balance:  # (after the first step: balancing copies blocks to w1, and a copy's fetch of
            # its input leaves a replica there for a while, which data_parallel may use)
            Xs, Ys = fl.dask.persist((Xs, Ys), client=client)
        with distributed.get_task_stream(client) as ts:
            v, g = step(p, Xs, Ys)
        tasks = [t for t in ts.data if "_shards_step" in str(t["key"])]
        assert sorted(t["worker"] for t in tasks) == where, "one task per worker that holds shards"
        np.testing.assert_allclose(float(v), lo, rtol=1e-12)
        np.testing.assert_allclose(float(v), float(v1), rtol=1e-12)
        for k in go:
            np.testing.assert_allclose(np.asarray(g[k]), go[k], rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(np.asarray(g[k]), np.asarray(g1[k]), rtol=1e-10, atol=1e-14)
    held = _held(client, [Xs._a, Ys._a])
    assert held == {w0: 4, w1: 4}, held  # two row chunks (with their labels) each
    who = client.who_has(distributed.futures_of(Xs._a) + distributed.futures_of(Ys._a))
    for r in range(4):  # X's and y's blocks of one row range sit together
        assert who[(Xs._a.name, r, 0)] == who[(Ys._a.name, r)]
    # already balanced: persisting again keeps the arrays as they are (checked before the graph
    # path below runs: a task it steals copies blocks, and dask's memory manager may then drop
    # either copy, which can split a shard for real)
    again = fl.dask.persist((Xs, Ys), client=client)
    assert again[0]._a.name == Xs._a.name and again[1]._a.name == Ys._a.name
    np.testing.assert_array_equal(np.asarray(fl.dask.compute(Xs, client=client)), x)
    # the graph path reads the balanced arrays too
    v, g = fl.dask.compute(fl.value_and_grad(logreg_loss)(p, Xs, Ys), client=client, timeout=TIMEOUT)
    np.testing.assert_allclose(float(v), lo, rtol=1e-12)


def test_balance_plan():
    from functorch_lite.dask import _plan

    assert sorted(_plan([1] * 8, ["a"] * 6 + ["b"] * 2, ["a", "b"])).count("a") == 4
    assert _plan([1] * 8, ["a"] * 8, ["a", "b"]).count("b") == 4
    assert _plan([3, 3, 3, 1], ["a"] * 4, ["a", "b"]).count("a") in (2, 3)
    assert _plan([1, 1], ["a", "b"], ["a", "b"]) == ["a", "b"], "balanced: nothing moves"
    got = _plan([1] * 9, ["a"] * 9, ["a", "b", "c"])
    assert sorted(got.count(w) for w in "abc") == [3, 3, 3]


def test_balance_counts_a_replicated_shard_where_it_evens_the_load():
    # after a stolen task, a shard sits on both workers: the placement is already even, so
    # nothing may move (a shard counted on the first holder made persist move another one)
    from functorch_lite.dask import _holders, _homes, _plan

    who = {"x0": ["a"], "x1": ["a"], "x2": ["a", "b"], "x3": ["b"]}
    holders = [_holders([(300 if k != "x3" else 100, k)], who) for k in ("x0", "x1", "x2", "x3")]
    assert holders == [["a"], ["a"], ["a", "b"], ["b"]]
    homes = _homes([300, 300, 300, 100], holders)
    assert homes == ["a", "a", "b", "b"]
    assert _plan([300, 300, 300, 100], homes, ["a", "b"]) == homes


def test_data_parallel_on_one_worker_cluster():
    cluster = _cluster(n_workers=1)
    c = distributed.Client(cluster, timeout=30)
    try:
        x, y, X, Y = data(n=600, d=5, chunks=200, seed=16)
        X, Y = fl.dask.persist((X, Y), client=c)  # (nothing to balance)
        step = fl.dask.data_parallel(logreg_loss, client=c, timeout=TIMEOUT)
        p = {"w": np_tensor(np.full(5, 0.2)), "b": np_tensor(0.0)}
        v, g = step(p, X, Y)
        lo, go = logreg_oracle(host(p), x, y)
        np.testing.assert_allclose(float(v), lo, rtol=1e-12)
        for k in go:
            np.testing.assert_allclose(np.asarray(g[k]), go[k], rtol=1e-10, atol=1e-14)
        assert list(c.run(lambda: len(fl.dask._STEPS)).values()) == [1]
        # a new scheduler (a new id) gets the malloc plugin too
        assert list(c.run(lambda dask_worker: dask_worker.functorch_lite_malloc).values()) != [None]
    finally:
        c.close(timeout=30)
        cluster.close(timeout=30)


# -- out of core -------------------------------------------------------------------------------------
def test_out_of_core_full_batch_training(tmp_path):
    # 2 workers x 512 MiB, a 1.15 GB float32 .npy stack on disk (memory-mapped chunk by chunk); at
    # 256 MiB a worker's own baseline (interpreter, numpy, dask, functorch_lite) got it restarted in CI
    rows, d, chunk = 9_000_000, 32, 250_000
    cluster = _cluster(memory_limit="512MiB")
    c = distributed.Client(cluster, timeout=30)
    try:
        workers = set(c.scheduler_info()["workers"])
        total = sum(w["memory_limit"] for w in c.scheduler_info()["workers"].values())
        rs = da.random.RandomState(11)
        xg = rs.standard_normal((rows, d), chunks=(chunk, d)).astype(np.float32)
        yg = (xg[:, 0] + 0.5 * xg[:, 1] > 0).astype(np.float32)
        da.to_npy_stack(str(tmp_path / "x"), xg, axis=0)
        da.to_npy_stack(str(tmp_path / "y"), yg, axis=0)
        X = fl.asarray(da.from_npy_stack(str(tmp_path / "x")))
        Y = fl.asarray(da.from_npy_stack(str(tmp_path / "y")))
        assert X._a.nbytes > total
        p = {"w": np_tensor(np.zeros(d, np.float32)), "b": np_tensor(np.float32(0.0))}
        tx = optim.sgd(1.0)
        state = tx.init(p)
        losses = []
        for _ in range(2):
            loss, g = fl.dask.compute(fl.value_and_grad(logreg_loss)(p, X, Y), client=c, timeout=TIMEOUT)
            # numpy oracle of the same step: the files read chunk by chunk on this process
            ps = host(p)
            acc_w, acc_b, acc_l = np.zeros(d), 0.0, 0.0
            for i in range(rows // chunk):
                xc = np.load(tmp_path / "x" / f"{i}.npy", mmap_mode="r").astype(np.float64)
                yc = np.load(tmp_path / "y" / f"{i}.npy").astype(np.float64)
                z = xc @ ps["w"] + ps["b"]
                s = 1.0 / (1.0 + np.exp(-z))
                acc_w += xc.T @ (s - yc)
                acc_b += np.sum(s - yc)
                acc_l += np.sum(np.logaddexp(0.0, z) - yc * z)
            np.testing.assert_allclose(float(loss), acc_l / rows, rtol=1e-4)
            np.testing.assert_allclose(np.asarray(g["w"]), acc_w / rows, rtol=1e-3, atol=1e-5)
            np.testing.assert_allclose(float(g["b"]), acc_b / rows, rtol=1e-3, atol=1e-5)
            losses.append(float(loss))
            u, state = tx.update(g, state, p)
            p = optim.apply_updates(p, u)
        assert losses[1] < losses[0]
        assert set(c.scheduler_info()["workers"]) == workers, "no worker was killed or restarted"
    finally:
        c.close(timeout=30)
        cluster.close(timeout=30)


def test_workers_keep_freed_temporaries_after_compute(client):
    """fl.dask.compute installs the malloc plugin once: every worker's thresholds were raised
    (bounded by its memory limit), so a chunk's temporaries are not page-faulted in anew."""
    from functorch_lite.dask import _worker

    x = fl.asarray(da.ones((8, 2), chunks=(4, 2)))
    assert float(fl.dask.compute(fl.sum(x), client=client)) == 16.0
    got = client.run(lambda dask_worker: dask_worker.functorch_lite_malloc)
    limits = {a: w["memory_limit"] for a, w in client.scheduler_info()["workers"].items()}
    assert set(got) == set(limits) and len(got) == 2
    for addr, values in got.items():
        assert values is not None and tuple(values) == _worker.thresholds(limits[addr])
    assert client.scheduler_info(n_workers=0)["id"] in _worker._DONE  # (keyed by the scheduler's id)
    assert _worker.thresholds(1 << 30) == (32 << 20, 64 << 20)
    assert _worker.thresholds(256 << 20) == (16 << 20, 16 << 20)
    assert _worker.thresholds(None) == (32 << 20, 64 << 20)
