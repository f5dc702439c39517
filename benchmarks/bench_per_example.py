"""(3) Per-example gradients of the 784-512-512-10 MLP, batch 64.

The floor is a hand-written numpy batched backward with ``einsum`` outer
products. functorch_lite's ``vmap(grad(loss))`` is compared with it, with a
Python loop of ``grad`` calls, and with the peers (torch.func.vmap(grad),
jax.vmap(grad), autograd / torch loops). Target: vmap(grad) <= 1.30x numpy.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import _mlp as M

SIZES = (784, 512, 512, 10)
BATCH = 64


def build_cases(p0, x, y, yoh):
    cases = [H.Case("numpy einsum (hand-written)", lambda: M.np_per_example_grads(p0, x, yoh))]
    tol = {"rtol": 2e-4, "atol": 2e-5}

    fl = H.peer("functorch_lite")
    if fl is not None:
        loss = M.fl_loss(fl)
        pf = {k: fl.asarray(v) for k, v in p0.items()}
        xf, yf = fl.asarray(x), fl.asarray(yoh)
        pe = fl.vmap(fl.grad(loss), in_axes=(None, 0, 0))
        cases.append(H.Case("functorch_lite vmap(grad)", lambda: pe(pf, xf, yf), **tol))
        fl_jpe = fl.jit(pe)
        cases.append(H.Case("functorch_lite jit(vmap(grad))", lambda: fl_jpe(pf, xf, yf), **tol))
        g1 = fl.grad(loss)

        def fl_loop():
            gs = [g1(pf, xf[i], yf[i]) for i in range(BATCH)]
            return {k: fl.stack([g[k] for g in gs]) for k in M.KEYS}

        cases.append(H.Case("functorch_lite loop of grad", fl_loop, **tol))

    ag = H.peer("autograd")
    if ag is not None:
        ga = ag.grad(M.ag_loss())
        import numpy as np

        def ag_loop():
            gs = [ga(p0, x[i], yoh[i]) for i in range(BATCH)]
            return {k: np.stack([g[k] for g in gs]) for k in M.KEYS}

        cases.append(H.Case("autograd loop", ag_loop, **tol))

    torch = H.peer("torch")
    if torch is not None:
        tl = M.torch_loss(torch)

        def tl1(p, xi, yi):
            return tl(p, xi[None], yi[None])

        pt = {k: torch.from_numpy(v) for k, v in p0.items()}
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        tpe = torch.func.vmap(torch.func.grad(tl1), in_dims=(None, 0, 0))
        cases.append(H.Case("torch.func vmap(grad)", lambda: tpe(pt, xt, yt), **tol))
        ptr = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in p0.items()}

        def t_loop():
            out = {k: [] for k in M.KEYS}
            for i in range(BATCH):
                gs = torch.autograd.grad(tl1(ptr, xt[i], yt[i]), list(ptr.values()))
                for k, g in zip(ptr, gs, strict=True):
                    out[k].append(g)
            return {k: torch.stack(v) for k, v in out.items()}

        cases.append(H.Case("torch loop of backward", t_loop, **tol))

    jax = H.peer("jax")
    if jax is not None:
        jl = M.jax_loss(jax)
        pj = {k: jax.numpy.asarray(v) for k, v in p0.items()}
        xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(yoh)
        jpe = jax.vmap(jax.grad(jl), in_axes=(None, 0, 0))
        cases.append(H.Case("jax vmap(grad) eager", lambda: jax.block_until_ready(jpe(pj, xj, yj)), **tol))
        jj = jax.jit(jpe)
        cases.append(H.Case("jax.jit(vmap(grad))", lambda: jax.block_until_ready(jj(pj, xj, yj)), **tol))
    return cases


def setup():
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(BATCH, SIZES[0], SIZES[-1], seed=2)
    return build_cases(p0, x, y, yoh)


def main() -> None:
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(BATCH, SIZES[0], SIZES[-1], seed=2)
    cases = build_cases(p0, x, y, yoh)
    ok = H.check_cases(cases, M.np_per_example_grads(p0, x, yoh))
    H.measure(ok, rounds=9, block_s=0.12, warmup=1)
    rows = H.summarize(cases, "numpy einsum (hand-written)", "per-example grads")
    H.print_table(f"per-example gradients, MLP {'-'.join(map(str, SIZES))}, batch {BATCH}", rows)
    H.emit("per_example", rows)


if __name__ == "__main__":
    main()
