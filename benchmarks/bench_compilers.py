"""(9) One program, each backend's own compiler: ``fl.jit(f, compiler=...)`` (issue [2.5]).

Four workloads, each against its peer in the same run (one thread, rounds interleaved):

* MLP 784-512-512-10 step (value_and_grad + ``optim.sgd``), jax backend, ``fl.jit`` (its
  default there, ``compiler="xla"``) vs the same model in jax under ``jax.jit``: target <= 1.10x;
* digits end to end (64-128-10, ``optim.adam``, 900 steps), jax backend, ``fl.jit`` vs
  ``jax.jit(step)``: target <= 1.15x;
* grad of the 200-op chain of ``bench_dispatch``, numpy backend, ``compiler="numba"``:
  target <= 0.40 µs per op (``jax.jit(grad)`` and hand-written numpy in the same run);
* the MLP step, torch backend, ``compiler="torch.compile"`` vs torch eager (autograd + SGD),
  after warm-up: target <= 1.0x.

Every case is checked against the numpy (or the peer's) result before it is timed. The first
call of each compiled case (trace, optimize, the compiler's own compilation) is reported as
``first_call_s``.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import argparse
import time

import _mlp as M
import bench_digits as DG
import bench_dispatch as BD
import numpy as np

SIZES = (784, 512, 512, 10)
BATCH = 128
LR = 0.01


def timed_first(fn):
    """(result, seconds) of ``fn()``: the first call of a compiled case."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def on(fl, a, backend):
    return fl.to_backend(fl.asarray(a), backend)


# ----------------------------------------------------------------------------------
# MLP step on the jax and torch backends
# ----------------------------------------------------------------------------------
def fl_mlp_case(fl, backend, compiler, p0, x, yoh, first):
    """The whole step under fl.jit: value_and_grad, the library's optim.sgd, apply_updates."""
    optim = H.peer("functorch_lite.optim")
    vg = fl.value_and_grad(M.fl_loss(fl))
    tx = optim.sgd(LR)

    def step(p, s, x, y):
        v, g = vg(p, x, y)
        u, s = tx.update(g, s, p)
        return optim.apply_updates(p, u), s, v

    jstep = fl.jit(step, compiler=compiler)
    xf, yf = on(fl, x, backend), on(fl, yoh, backend)
    pf = {k: on(fl, v, backend) for k, v in p0.items()}
    st = {"p": pf, "s": tx.init(pf)}

    def res():
        p, _, v = jstep(pf, tx.init(pf), xf, yf)
        return {k: np.asarray(a) for k, a in p.items()}, float(v)

    def run():
        st["p"], st["s"], v = jstep(st["p"], st["s"], xf, yf)
        float(v)  # (waits for the step, as the peer's float(loss) does)

    name = f"functorch_lite jit(step), compiler={compiler!r}" if compiler else "functorch_lite jit(step) (default)"
    first[name] = timed_first(res)[1]
    return H.Case(name, run, res, rtol=2e-4, atol=2e-5)


def one_sgd_step_ref(p0, x, yoh):
    loss, g = M.np_loss_and_grads(p0, x, yoh)
    return {k: p0[k] - np.float32(LR) * g[k] for k in M.KEYS}, float(loss)


def jax_mlp_cases(jax, p0, x, yoh, first):
    jl = M.jax_loss(jax)
    jvg = jax.value_and_grad(jl)
    xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(yoh)

    @jax.jit
    def jstep(p, x, y):
        v, g = jvg(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), v

    pj = {k: jax.numpy.asarray(v) for k, v in p0.items()}
    sj = {"p": pj}

    def res():
        p, v = jstep(pj, xj, yj)
        return {k: np.asarray(a) for k, a in p.items()}, float(v)

    def run():
        sj["p"], v = jstep(sj["p"], xj, yj)
        float(v)

    first["jax.jit"] = timed_first(res)[1]
    return [H.Case("jax.jit", run, res, rtol=2e-4, atol=2e-5)]


def torch_mlp_cases(torch, p0, x, y, yoh):
    tl = M.torch_loss(torch)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    pt = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in p0.items()}

    def step(p):
        loss = tl(p, xt, yt)
        gs = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            for a, g in zip(p.values(), gs, strict=True):
                a.sub_(LR * g)
        return loss

    def run():
        float(step(pt).detach())

    def res():
        p = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in p0.items()}
        v = step(p)
        return {k: a.detach().numpy() for k, a in p.items()}, float(v.detach())

    return [H.Case("torch eager", run, res, rtol=2e-4, atol=2e-5)]


# ----------------------------------------------------------------------------------
# The grad chain on numpy
# ----------------------------------------------------------------------------------
def chain_cases(x0, first):
    cases = [H.Case("numpy (hand-written)", lambda: BD.np_grad(x0))]
    fl = H.peer("functorch_lite")
    chain = BD.generic_chain(fl.sin)
    xf = fl.asarray(x0)
    for comp in ("replay", "numba"):
        try:
            jg = fl.jit(fl.grad(lambda x: fl.sum(chain(x))), compiler=comp)
        except fl.TransformError as exc:  # (numba not installed)
            cases.append(H.Case(f"functorch_lite jit(grad), compiler={comp!r}", lambda: None, error=str(exc)[:200]))
            continue
        name = f"functorch_lite jit(grad), compiler={comp!r}"
        first[name] = timed_first(lambda jg=jg: jg(xf))[1]
        cases.append(H.Case(name, lambda jg=jg: jg(xf)))
    jax = H.peer("jax")
    if jax is not None:
        jnp = jax.numpy
        xj = jnp.asarray(x0)
        gjj = jax.jit(jax.grad(lambda x: jnp.sum(BD.generic_chain(jnp.sin)(x))))
        first["jax.jit(grad)"] = timed_first(lambda: gjj(xj).block_until_ready())[1]
        cases.append(H.Case("jax.jit(grad)", lambda: gjj(xj).block_until_ready()))
    return cases


# ----------------------------------------------------------------------------------
# digits end to end on jax
# ----------------------------------------------------------------------------------
def fl_digits_jax(fl, p0, x, yoh, idx, first, name):
    optim = H.peer("functorch_lite.optim")
    vg = fl.value_and_grad(M.fl_loss(fl))
    xf, yf = on(fl, x, "jax"), on(fl, yoh, "jax")
    idx_f = [on(fl, b, "jax") for b in idx]
    tx = optim.adam(DG.LR, betas=(DG.B1, DG.B2), eps=DG.EPS)

    @fl.jit
    def step(p, s, b):
        _, g = vg(p, fl.take(xf, b, axis=0), fl.take(yf, b, axis=0))
        u, s = tx.update(g, s, p)
        return optim.apply_updates(p, u), s

    def run():
        p = {k: on(fl, v, "jax") for k, v in p0.items()}
        s = tx.init(p)
        for i, b in enumerate(idx_f):
            if i == 0 and name not in first:
                (p, s), first[name] = timed_first(lambda p=p, s=s, b=b: step(p, s, b))
                continue
            p, s = step(p, s, b)
        return {k: np.asarray(a) for k, a in p.items()}

    return run


def digits_cases(first):
    xtr, xte, ytr, yte = DG.load()
    yoh = H.f32(np.eye(10)[ytr])
    p0 = M.init_params(DG.SIZES, seed=4)
    full, one = DG.batches(len(xtr), DG.EPOCHS), DG.batches(len(xtr), 1)
    fl, jax = H.peer("functorch_lite"), H.peer("jax")
    cases = []
    if jax is not None:
        run_full, run_one = DG.jax_train(jax, p0, xtr, yoh, full), DG.jax_train(jax, p0, xtr, yoh, one)
        cases.append(H.Case("jax.jit(step)", run_full, result=run_one, rtol=1e-3, atol=3e-4))
        name = "functorch_lite jit(step) + optim.adam (default)"
        run_one = fl_digits_jax(fl, p0, xtr, yoh, one, first, name)
        run_full = fl_digits_jax(fl, p0, xtr, yoh, full, first, name)
        cases.append(H.Case(name, run_full, result=run_one, rtol=1e-3, atol=3e-4))
    return cases, DG.np_train(p0, xtr, yoh, one)


# ----------------------------------------------------------------------------------
WORKLOADS = ("chain", "mlp-jax", "digits", "mlp-torch")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only",
        nargs="+",
        choices=WORKLOADS,
        default=list(WORKLOADS),
        help="run only these workloads (default: all four)",
    )
    only = set(ap.parse_args(argv).only)
    firsts: dict[str, dict[str, float]] = {}  # group -> case -> seconds of its first call
    fl = H.peer("functorch_lite")
    rows: list[dict] = []

    # (a) grad chain, numpy backend
    if "chain" in only:
        _chain(rows, firsts)
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(BATCH, SIZES[0], SIZES[-1])
    ref = one_sgd_step_ref(p0, x, yoh)

    # (b) MLP step, jax backend
    jax = H.peer("jax") if only & {"mlp-jax", "digits"} else None
    if jax is not None and "mlp-jax" in only:
        first = firsts.setdefault("MLP step (jax backend)", {})
        cases = jax_mlp_cases(jax, p0, x, yoh, first)
        cases.append(fl_mlp_case(fl, "jax", None, p0, x, yoh, first))
        cases.append(fl_mlp_case(fl, "jax", "replay", p0, x, yoh, first))
        H.measure(H.check_cases(cases, ref), rounds=7, block_s=0.15)
        rows += H.summarize(cases, "jax.jit", "MLP step (jax backend)")

    # (c) digits end to end, jax backend
    if jax is not None and "digits" in only:
        cases, dref = digits_cases(firsts.setdefault("digits end-to-end (jax backend)", {}))
        H.measure(H.check_cases(cases, dref), rounds=3, block_s=0.0, warmup=0)
        rows += H.summarize(cases, "jax.jit(step)", "digits end-to-end (jax backend)")

    # (d) MLP step, torch backend (last: torch.compile's machinery stays loaded)
    torch = H.peer("torch") if "mlp-torch" in only else None
    if torch is not None:
        first = firsts.setdefault("MLP step (torch backend)", {})
        cases = torch_mlp_cases(torch, p0, x, y, yoh)
        cases.append(fl_mlp_case(fl, "torch", "torch.compile", p0, x, yoh, first))
        cases.append(fl_mlp_case(fl, "torch", "replay", p0, x, yoh, first))
        H.measure(H.check_cases(cases, ref), rounds=7, block_s=0.15, warmup=5)
        rows += H.summarize(cases, "torch eager", "MLP step (torch backend)")

    for r in rows:
        f = firsts.get(r["group"], {})
        if r["case"] in f:
            r["first_call_s"] = f[r["case"]]
    extra = [
        ("us_per_op", "µs/op", lambda v: f"{v:.2f}"),
        ("first_call_s", "first call", lambda v: H.fmt_time(v)),
    ]
    for g in dict.fromkeys(r["group"] for r in rows):
        H.print_table(g, [r for r in rows if r["group"] == g], extra)
    H.emit("compilers", rows, n_ops=BD.N_OPS)


def _chain(rows: list[dict], firsts: dict[str, dict[str, float]]) -> None:
    x0 = H.f32(H.rng(0).uniform(-1, 1, BD.N))
    first = firsts.setdefault("grad chain (numpy backend)", {})
    cases = chain_cases(x0, first)
    H.measure(H.check_cases(cases, BD.np_grad(x0)), rounds=9, block_s=0.06)
    g_rows = H.summarize(cases, "numpy (hand-written)", "grad chain (numpy backend)")
    for r in g_rows:
        if "median_s" in r:
            r["us_per_op"] = r["median_s"] * 1e6 / BD.N_OPS
    rows += g_rows


if __name__ == "__main__":
    main()
