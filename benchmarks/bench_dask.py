"""(10) Training on a dask.distributed LocalCluster (issue [2.6]): scaling, overhead, out of core.

Full batch: the gradient of a logistic regression's mean loss over N x 32 float32 rows
(persisted on the workers, row chunks of 500k), numpy parameters, one ``fl.dask.compute``
per gradient. Cases, interleaved round by round:

* functorch_lite on a 1-worker cluster and on a 2-worker cluster (the scaling ratio);
* the same loss's gradient written by hand with dask.array on the 2-worker cluster;
* ``fl.dask.data_parallel`` (one task per worker, a jit-ed value_and_grad per row chunk it
  holds, the workers' sums added on the client), 1 and 2 workers;
* the loss written with ``fl.logaddexp`` instead (numpy's float32 logaddexp is slow), 2 workers;
* the graph path with ``functorch_lite.fuse-chunk-tasks: false`` (dask's own tasks per chunk,
  not merged into one: the same run's before and after of that merging), 2 workers.

Machine ceiling (no dask): the same gradient in numpy over all rows in one process, against
two processes each over half the rows at once (a barrier starts both); what 2 vs 1 workers
could reach on this machine at best.

Out of core: the same model trained for 3 full-batch steps on an ``.npy`` stack on disk
(``da.from_npy_stack``, memory-mapped chunk by chunk) twice as large as the two workers'
memory limits together; the time of the 3 steps and whether any worker was lost.

Workers: one thread each, processes, bound to 127.0.0.1. Wall clock (the work runs in the
worker processes, so this process's CPU time says nothing). Each case is checked against a
numpy gradient of the same data before it is timed.
"""

from __future__ import annotations

# isort: skip_file
import os

os.environ["BENCH_CLOCK"] = "wall"  # the work runs in the worker processes
import _harness as H  # noqa: E402  (first: pins every framework to one thread; workers inherit it)

import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

N = 1_000_000 if H.QUICK else 4_000_000
D = 32
CHUNK = int(os.environ.get("BENCH_DASK_CHUNK", "500000"))
OOC_WORKER_MIB = 256 if H.QUICK else 512  # per worker; the dataset is twice both together


def cluster(n: int, memory_limit: str):
    import distributed

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        c = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=memory_limit,
        )
    return c, distributed.Client(c, timeout=60)


def make_data(client, n: int, seed: int = 0):
    """X (n, D), y (n,) float32, generated on the workers and persisted there, row block i on
    worker i mod (number of workers): an equal share each (left to itself the scheduler may
    place 3 of 4 blocks on one worker, and each step then waits for that worker)."""
    import dask.array as da
    import distributed

    workers = sorted(client.scheduler_info()["workers"])
    w_true = np.linspace(-1, 1, D).astype(np.float32)
    xs, ys = [], []
    for i in range(n // CHUNK):
        rs = da.random.RandomState(seed * 1000 + i)
        xb = rs.standard_normal((CHUNK, D), chunks=(CHUNK, D)).astype(np.float32)
        yb = ((xb @ w_true + rs.standard_normal(CHUNK, chunks=CHUNK).astype(np.float32)) > 0).astype(np.float32)
        xb, yb = client.persist([xb, yb], workers=[workers[i % len(workers)]], allow_other_workers=False)
        xs.append(xb)
        ys.append(yb)
    # persisted again: the concatenation's alias keys are made where their block lives, so a
    # step's tasks never pull a block to the other worker
    x, y = client.persist([da.concatenate(xs), da.concatenate(ys)])
    distributed.wait([x, y], timeout=300)
    return x, y


def loss_fn(p, x, y):
    """Mean logistic loss, softplus(z) - y z, softplus as relu(z) + log1p(exp(-|z|)) (stable)."""
    import functorch_lite as fl
    from functorch_lite.nn import functional as F

    z = x @ p["w"] + p["b"]
    return fl.mean(F.relu(z) + fl.log1p(fl.exp(-fl.abs(z))) - y * z)


def loss_logaddexp(p, x, y):
    """The same loss through fl.logaddexp (numpy's float32 logaddexp is ~20x slower than the above)."""
    import functorch_lite as fl

    z = x @ p["w"] + p["b"]
    return fl.mean(fl.logaddexp(0.0, z) - y * z)


def numpy_block_grad(x, y, w, b):
    """The numpy reference on one row block, in float64: (sum of x.T (s - y), sum of s - y)."""
    x = np.asarray(x, dtype=np.float64)
    s = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    return x.T @ (s - y), np.sum(s - y)


def reference(client, x, y, w, b):
    """The numpy gradient, block by block on the workers (gathering the data to this process
    instead leaves the workers several times slower afterwards here)."""
    import dask

    parts = [
        dask.delayed(numpy_block_grad)(xb, yb, w, b)
        for xb, yb in zip(x.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    parts = client.gather(client.compute(parts))
    n = x.shape[0]
    return [sum(p[0] for p in parts) / n, sum(p[1] for p in parts) / n]


def by_hand(client, x, y, w, b):
    """The gradient of the same loss with dask.array, by hand (the peer)."""
    z = x @ w + b
    s = 1.0 / (1.0 + np.exp(-z))
    r = s - y
    gw = (x.T @ r) / x.shape[0]
    gb = r.mean()
    return client.gather(client.compute([gw, gb]))


def fl_case(client, X, Y, params, loss=loss_fn, merge=True):
    import dask
    import functorch_lite as fl

    def run():
        with dask.config.set({"functorch_lite.fuse-chunk-tasks": merge}):
            g = fl.dask.compute(fl.grad(loss)(params, X, Y), client=client, timeout=300)
        return [np.asarray(g["w"]), np.asarray(g["b"])]

    return run


def dp_case(client, x, y, params):
    """fl.dask.data_parallel: one task per worker over the row chunks it holds, summed on the client."""
    import functorch_lite as fl

    step = fl.dask.data_parallel(loss_fn, client=client, timeout=300)
    X, Y = fl.asarray(x), fl.asarray(y)

    def run():
        _, g = step(params, X, Y)
        return [np.asarray(g["w"]), np.asarray(g["b"])]

    return run


def _ceiling_worker(rows: int, bar, q, reps: int) -> None:
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, D), dtype=np.float32)
    y = (rng.random(rows) > 0.5).astype(np.float32)
    w, b = np.linspace(0.5, -0.5, D).astype(np.float32), np.float32(0.1)

    def grad():
        r = 1.0 / (1.0 + np.exp(-(x @ w + b))) - y
        return x.T @ r, r.sum()

    grad()
    for _ in range(reps):
        bar.wait()
        grad()
        bar.wait()
    q.put(None)


def _ceiling_run(nproc: int, reps: int) -> list[float]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    bar, q = ctx.Barrier(nproc + 1), ctx.Queue()
    ps = [ctx.Process(target=_ceiling_worker, args=(N // nproc, bar, q, reps)) for _ in range(nproc)]
    for p in ps:
        p.start()
    walls = []
    for _ in range(reps):
        bar.wait()
        t0 = time.perf_counter()
        bar.wait()
        walls.append(time.perf_counter() - t0)
    for p in ps:
        p.join()
    return walls


def machine_ceiling() -> list[dict]:
    """numpy's gradient in 1 process over all rows vs 2 processes over half each, at once."""
    reps = 5 if H.QUICK else 7
    one, two = [], []
    for _ in range(2):  # (alternated, as the other cases' rounds are)
        one += _ceiling_run(1, reps)
        two += _ceiling_run(2, reps)
    cases = [
        H.Case("numpy, 1 process, all rows", lambda: None),
        H.Case("numpy, 2 processes at once, half each", lambda: None),
    ]
    for c, t in zip(cases, (one, two), strict=True):
        c.times, c.wall = t, t
    rows = H.summarize(cases, "numpy, 1 process, all rows", "scaling, machine ceiling")
    for r in rows:
        r["rows"], r["bytes"] = N, N * D * 4
    return rows


def full_batch() -> list[dict]:
    import functorch_lite as fl

    c2, cl2 = cluster(2, "4GiB")
    c1, cl1 = cluster(1, "8GiB")
    try:
        x2, y2 = make_data(cl2, N)
        x1, y1 = make_data(cl1, N)
        w = np.linspace(0.5, -0.5, D).astype(np.float32)
        b = np.float32(0.1)
        with fl.default_backend("numpy"):
            params = {"w": fl.asarray(w), "b": fl.asarray(b)}
        ref = reference(cl2, x2, y2, w.astype(np.float64), float(b))
        cases = [
            H.Case("functorch_lite, 1 worker", fl_case(cl1, fl.asarray(x1), fl.asarray(y1), params)),
            H.Case("functorch_lite, 2 workers", fl_case(cl2, fl.asarray(x2), fl.asarray(y2), params)),
            H.Case("dask.array by hand, 1 worker", lambda: by_hand(cl1, x1, y1, w, b)),
            H.Case("dask.array by hand, 2 workers", lambda: by_hand(cl2, x2, y2, w, b)),
            H.Case("functorch_lite data_parallel (jit per shard), 1 worker", dp_case(cl1, x1, y1, params)),
            H.Case("functorch_lite data_parallel (jit per shard), 2 workers", dp_case(cl2, x2, y2, params)),
            H.Case(
                "functorch_lite, fl.logaddexp loss, 2 workers",
                fl_case(cl2, fl.asarray(x2), fl.asarray(y2), params, loss_logaddexp),
            ),
            H.Case(
                "functorch_lite, chunk tasks not merged, 2 workers",
                fl_case(cl2, fl.asarray(x2), fl.asarray(y2), params, merge=False),
            ),
        ]
        for case in cases:
            case.rtol, case.atol = 1e-3, 1e-5
        cases = H.check_cases(cases, ref)
        H.measure(cases, rounds=5 if H.QUICK else 7, block_s=0.0, warmup=1)
        rows = H.summarize(
            [
                c
                for c in cases
                if c.name.startswith("functorch_lite, ") and "logaddexp" not in c.name and "merged" not in c.name
            ],
            "functorch_lite, 1 worker",
            "scaling",
        )
        rows += H.summarize(
            [c for c in cases if "data_parallel" in c.name],
            "functorch_lite data_parallel (jit per shard), 1 worker",
            "scaling, data_parallel",
        )
        rows += H.summarize(
            [c for c in cases if c.name.startswith("dask.array")], "dask.array by hand, 1 worker", "scaling, by hand"
        )
        rows += H.summarize(
            [c for c in cases if "2 workers" in c.name], "dask.array by hand, 2 workers", "vs dask.array"
        )
        for r in rows:
            r["rows"], r["bytes"] = N, N * D * 4
        return rows
    finally:
        for obj in (cl1, c1, cl2, c2):
            obj.close()


def out_of_core() -> list[dict]:
    import dask.array as da
    import functorch_lite as fl
    from functorch_lite import optim

    c, cl = cluster(2, f"{OOC_WORKER_MIB}MiB")
    tmp = tempfile.mkdtemp(prefix="fl_bench_dask_")
    try:
        workers = set(cl.scheduler_info()["workers"])
        total = sum(w["memory_limit"] for w in cl.scheduler_info()["workers"].values())
        rows_n = (2 * total) // (D * 4) // CHUNK * CHUNK
        rs = da.random.RandomState(3)
        x = rs.standard_normal((rows_n, D), chunks=(CHUNK, D)).astype(np.float32)
        y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
        t0 = time.perf_counter()
        da.to_npy_stack(os.path.join(tmp, "x"), x, axis=0)
        da.to_npy_stack(os.path.join(tmp, "y"), y, axis=0)
        write_s = time.perf_counter() - t0
        X = fl.asarray(da.from_npy_stack(os.path.join(tmp, "x")))
        Y = fl.asarray(da.from_npy_stack(os.path.join(tmp, "y")))
        with fl.default_backend("numpy"):
            p = {"w": fl.zeros((D,), dtype=fl.float32), "b": fl.zeros((), dtype=fl.float32)}
        tx = optim.sgd(1.0)
        state = tx.init(p)
        losses, steps = [], []
        for _ in range(3):
            t = time.perf_counter()
            loss, g = fl.dask.compute(fl.value_and_grad(loss_fn)(p, X, Y), client=cl, timeout=600)
            u, state = tx.update(g, state, p)
            p = optim.apply_updates(p, u)
            steps.append(time.perf_counter() - t)
            losses.append(float(loss))
        lost = len(workers - set(cl.scheduler_info()["workers"]))
        row = {
            "case": "functorch_lite, 3 full-batch steps out of core",
            "group": "out of core",
            "baseline": None,
            "median_s": sorted(steps)[1],
            "q1_s": min(steps),
            "q3_s": max(steps),
            "total_s": sum(steps),
            "write_s": write_s,
            "data_bytes": int(X._a.nbytes),
            "worker_memory_bytes": int(total),
            "rows": rows_n,
            "losses": losses,
            "steps_s": steps,
            "workers_lost": lost,
            "clock": "wall",
        }
        print(
            f"\n== out of core: {X._a.nbytes / 2**30:.2f} GiB on disk, workers {total / 2**30:.2f} GiB in all ==\n"
            f"3 steps: {sum(steps):.2f} s ({', '.join(f'{s:.2f}' for s in steps)}), losses "
            f"{', '.join(f'{v:.4f}' for v in losses)}, workers lost: {lost}; writing the stack: {write_s:.1f} s"
        )
        return [row]
    finally:
        cl.close()
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    load0 = os.getloadavg()[0]
    print(f"load average at the start: {load0:.2f} (2 workers need 2 idle cores to scale)")
    rows = machine_ceiling()
    rows += full_batch()
    H.print_table(f"full-batch logistic-regression gradient, {N} x {D} float32 (wall clock)", rows)
    rows += out_of_core()
    H.emit(
        "dask",
        rows,
        n=N,
        d=D,
        chunk=CHUNK,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        load_at_start=load0,
        load_at_end=os.getloadavg()[0],
    )


if __name__ == "__main__":
    main()
