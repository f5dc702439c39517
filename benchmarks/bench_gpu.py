"""GPU figures (run by ``benchmarks/gpu_check.sh``): the cupy backend against torch CUDA.

Three workloads, each case checked against the hand-written numpy result before it is timed:
the MLP 784-512-512-10 step (batch 128, SGD), per-example gradients of that MLP (batch 64,
``vmap(grad)``) and digits end to end (64-128-10, Adam, 900 steps). functorch_lite runs on the
``cupy`` backend, eagerly and under ``fl.jit``; the peer is torch on CUDA. Every timed call ends
with a device synchronisation, and the clock is wall time (``BENCH_CLOCK=wall``: the work is on
the GPU, not in this process's CPU time). Prints the tables and writes the rows as JSON to the
path given as the first argument (default ``gpu_results.json``).
"""

from __future__ import annotations

# isort: skip_file
import os

os.environ.setdefault("BENCH_CLOCK", "wall")
import _harness as H  # first: pins the CPU side to one thread

import json
import sys

import _mlp as M
import bench_digits as DG
import numpy as np

SIZES = (784, 512, 512, 10)
LR = 0.01


def main() -> int:
    import cupy

    fl = H.peer("functorch_lite")
    optim = H.peer("functorch_lite.optim")
    torch = H.peer("torch")
    tcuda = torch is not None and torch.cuda.is_available()

    def sync() -> None:
        cupy.cuda.Device().synchronize()
        if tcuda:
            torch.cuda.synchronize()

    def on(a):
        return fl.to_backend(fl.asarray(a), "cupy")

    rows: list[dict] = []

    # -- MLP step ---------------------------------------------------------------------------
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(128, SIZES[0], SIZES[-1])
    loss_np, g_np = M.np_loss_and_grads(p0, x, yoh)
    ref = ({k: p0[k] - np.float32(LR) * g_np[k] for k in M.KEYS}, float(loss_np))
    vg = fl.value_and_grad(M.fl_loss(fl))
    tx = optim.sgd(LR)

    def step(p, s, x, y):
        v, g = vg(p, x, y)
        u, s = tx.update(g, s, p)
        return optim.apply_updates(p, u), s, v

    cases = []
    xf, yf = on(x), on(yoh)
    for name, fn in (("functorch_lite cupy eager", step), ("functorch_lite cupy jit(step)", fl.jit(step))):
        pf = {k: on(v) for k, v in p0.items()}
        st = {"p": pf, "s": tx.init(pf)}

        def run(fn=fn, st=st):
            st["p"], st["s"], _ = fn(st["p"], st["s"], xf, yf)
            sync()

        def res(fn=fn, pf=pf):
            p, _, v = fn(pf, tx.init(pf), xf, yf)
            return {k: np.asarray(fl.to_backend(a, "numpy")) for k, a in p.items()}, float(v)

        cases.append(H.Case(name, run, res, rtol=2e-4, atol=2e-5))
    if tcuda:
        tl = M.torch_loss(torch)
        xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

        def t_step(p):
            loss = tl(p, xt, yt)
            gs = torch.autograd.grad(loss, list(p.values()))
            with torch.no_grad():
                for a, g in zip(p.values(), gs, strict=True):
                    a.sub_(LR * g)
            return loss

        pt = {k: torch.from_numpy(v.copy()).cuda().requires_grad_(True) for k, v in p0.items()}

        def t_run():
            t_step(pt)
            sync()

        def t_res():
            p = {k: torch.from_numpy(v.copy()).cuda().requires_grad_(True) for k, v in p0.items()}
            v = t_step(p)
            return {k: a.detach().cpu().numpy() for k, a in p.items()}, float(v.detach())

        cases.insert(0, H.Case("torch CUDA eager", t_run, t_res, rtol=2e-4, atol=2e-5))
    H.measure(H.check_cases(cases, ref), rounds=5, block_s=0.1)
    rows += H.summarize(cases, "torch CUDA eager" if tcuda else None, "MLP step (GPU)")

    # -- per-example gradients ----------------------------------------------------------------
    xb, yb, yohb = x[:64], y[:64], yoh[:64]
    pe_ref = M.np_per_example_grads(p0, xb, yohb)
    loss = M.fl_loss(fl)

    def loss1(p, xi, yi):
        return loss(p, xi[None], yi[None])

    pf = {k: on(v) for k, v in p0.items()}
    xbf, ybf = on(xb), on(yohb)
    pe = fl.vmap(fl.grad(loss1), in_axes=(None, 0, 0))
    jpe = fl.jit(pe)
    cases = []
    for name, fn in (("functorch_lite cupy vmap(grad)", pe), ("functorch_lite cupy jit(vmap(grad))", jpe)):

        def run(fn=fn):
            fn(pf, xbf, ybf)
            sync()

        def res(fn=fn):
            return {k: np.asarray(fl.to_backend(a, "numpy")) for k, a in fn(pf, xbf, ybf).items()}

        cases.append(H.Case(name, run, res, rtol=2e-4, atol=2e-5))
    if tcuda:
        tl = M.torch_loss(torch)
        ptc = {k: torch.from_numpy(v.copy()).cuda() for k, v in p0.items()}
        xtb, ytb = torch.from_numpy(xb).cuda(), torch.from_numpy(yb).cuda()
        tpe = torch.func.vmap(torch.func.grad(lambda p, xi, yi: tl(p, xi[None], yi[None])), in_dims=(None, 0, 0))

        def t_pe():
            tpe(ptc, xtb, ytb)
            sync()

        cases.insert(
            0,
            H.Case(
                "torch.func vmap(grad) CUDA",
                t_pe,
                lambda: {k: a.cpu().numpy() for k, a in tpe(ptc, xtb, ytb).items()},
                rtol=2e-4,
                atol=2e-5,
            ),
        )
    H.measure(H.check_cases(cases, pe_ref), rounds=5, block_s=0.1)
    rows += H.summarize(cases, "torch.func vmap(grad) CUDA" if tcuda else None, "per-example grads (GPU)")

    # -- digits end to end ----------------------------------------------------------------------
    xtr, _, ytr, _ = DG.load()
    yohd = H.f32(np.eye(10)[ytr])
    pd = M.init_params(DG.SIZES, seed=4)
    full, one = DG.batches(len(xtr), DG.EPOCHS), DG.batches(len(xtr), 1)
    vgd = fl.value_and_grad(M.fl_loss(fl))
    txd = optim.adam(DG.LR, betas=(DG.B1, DG.B2), eps=DG.EPS)
    xdf, ydf = on(xtr), on(yohd)

    @fl.jit
    def dstep(p, s, b):
        _, g = vgd(p, fl.take(xdf, b, axis=0), fl.take(ydf, b, axis=0))
        u, s = txd.update(g, s, p)
        return optim.apply_updates(p, u), s

    def fl_train(idx):
        idx_f = [on(b) for b in idx]

        def run():
            p = {k: on(v) for k, v in pd.items()}
            s = txd.init(p)
            for b in idx_f:
                p, s = dstep(p, s, b)
            sync()
            return {k: np.asarray(fl.to_backend(a, "numpy")) for k, a in p.items()}

        return run

    cases = [H.Case("functorch_lite cupy jit(step) + optim.adam", fl_train(full), fl_train(one), 1e-3, 3e-4)]
    if tcuda:

        def t_train(idx):
            xt, yt = torch.from_numpy(xtr).cuda(), torch.from_numpy(ytr).cuda()
            idx_t = [torch.from_numpy(b).cuda() for b in idx]

            def run():
                lins = [torch.nn.Linear(*pd[f"w{i}"].shape).cuda() for i in (1, 2)]
                with torch.no_grad():
                    for i, lin in enumerate(lins, start=1):
                        lin.weight.copy_(torch.from_numpy(pd[f"w{i}"].T.copy()))
                        lin.bias.copy_(torch.from_numpy(pd[f"b{i}"]))
                model = torch.nn.Sequential(lins[0], torch.nn.ReLU(), lins[1])
                opt = torch.optim.Adam(model.parameters(), lr=DG.LR, betas=(DG.B1, DG.B2), eps=DG.EPS)
                for b in idx_t:
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
                    opt.step()
                sync()
                ps = [q.detach().cpu().numpy() for q in model.parameters()]
                return {"w1": ps[0].T, "b1": ps[1], "w2": ps[2].T, "b2": ps[3]}

            return run

        cases.insert(0, H.Case("torch CUDA eager (nn + optim.Adam)", t_train(full), t_train(one), 1e-3, 3e-4))
    H.measure(H.check_cases(cases, DG.np_train(pd, xtr, yohd, one)), rounds=3, block_s=0.0, warmup=0)
    rows += H.summarize(cases, "torch CUDA eager (nn + optim.Adam)" if tcuda else None, "digits end-to-end (GPU)")

    for g in dict.fromkeys(r["group"] for r in rows):
        H.print_table(g, [r for r in rows if r["group"] == g])
    out = sys.argv[1] if len(sys.argv) > 1 else "gpu_results.json"
    with open(out, "w") as f:
        json.dump(
            {
                "rows": rows,
                "versions": H.versions(),
                "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
            },
            f,
            indent=1,
            default=float,
        )
    print(f"[bench_gpu] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
