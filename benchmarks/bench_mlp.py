"""(2) MLP 784-512-512-10 training step: batch 128, softmax cross-entropy, SGD.

The floor is a hand-written numpy forward + backward with in-place SGD.
Every case's loss and gradients are checked against it before timing; then
each case is timed doing full steps (its parameters keep training).
Target: functorch_lite <= 1.10x the numpy step.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import _mlp as M

SIZES = (784, 512, 512, 10)
BATCH = 128
LR = 0.01


def build_cases(p0, x, y, yoh):
    cases = []

    # --- numpy -------------------------------------------------------------------------
    pn = {k: v.copy() for k, v in p0.items()}

    def np_step():
        _, g = M.np_loss_and_grads(pn, x, yoh)
        for k in M.KEYS:
            pn[k] -= LR * g[k]

    cases.append(H.Case("numpy (hand-written)", np_step, lambda: M.np_loss_and_grads(p0, x, yoh)))

    # --- functorch_lite ----------------------------------------------------------------
    fl = H.peer("functorch_lite")
    if fl is not None:
        vg = fl.value_and_grad(M.fl_loss(fl))
        xf, yf = fl.asarray(x), fl.asarray(yoh)
        st = {"p": {k: fl.asarray(v) for k, v in p0.items()}}

        def fl_step():
            p = st["p"]
            _, g = vg(p, xf, yf)
            st["p"] = {k: p[k] - LR * g[k] for k in p}

        p0f = {k: fl.asarray(v) for k, v in p0.items()}
        cases.append(H.Case("functorch_lite grad", fl_step, lambda: vg(p0f, xf, yf)))
        optim = H.peer("functorch_lite.optim")
        tx = optim.sgd(LR)

        @fl.jit
        def fl_jstep(p, s, x, y):  # the whole step staged: value_and_grad + the library's SGD
            v, g = vg(p, x, y)
            u, s = tx.update(g, s, p)
            return optim.apply_updates(p, u), s, v

        jst = {"p": dict(p0f), "s": tx.init(p0f)}

        def fl_jit_step():
            jst["p"], jst["s"], _ = fl_jstep(jst["p"], jst["s"], xf, yf)

        cases.append(H.Case("functorch_lite jit(step) + optim.sgd", fl_jit_step, lambda: fl.jit(vg)(p0f, xf, yf)))
        cases += fl_nn_case(fl, p0, x, y, yoh)

    # --- autograd ------------------------------------------------------------------------
    ag = H.peer("autograd")
    if ag is not None:
        avg = ag.value_and_grad(M.ag_loss())
        sa = {"p": {k: v.copy() for k, v in p0.items()}}

        def ag_step():
            p = sa["p"]
            _, g = avg(p, x, yoh)
            sa["p"] = {k: p[k] - LR * g[k] for k in p}

        cases.append(H.Case("autograd", ag_step, lambda: avg(p0, x, yoh)))

    # --- torch -------------------------------------------------------------------------
    torch = H.peer("torch")
    if torch is not None:
        tl = M.torch_loss(torch)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        pt = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in p0.items()}

        def t_grads(p):
            loss = tl(p, xt, yt)
            gs = torch.autograd.grad(loss, list(p.values()))
            return loss, dict(zip(p, gs, strict=True))

        def t_step():
            _, g = t_grads(pt)
            with torch.no_grad():
                for k in pt:
                    pt[k].sub_(LR * g[k])

        pt0 = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in p0.items()}
        cases.append(H.Case("torch eager", t_step, lambda: t_grads(pt0)))

        tfg = torch.func.grad_and_value(tl)
        sf = {"p": {k: torch.from_numpy(v.copy()) for k, v in p0.items()}}

        def tf_step():
            p = sf["p"]
            g, _ = tfg(p, xt, yt)
            sf["p"] = {k: p[k] - LR * g[k] for k in p}

        def tf_res():
            g, v = tfg({k: torch.from_numpy(v) for k, v in p0.items()}, xt, yt)
            return v, g

        cases.append(H.Case("torch.func grad", tf_step, tf_res))

    # --- jax ---------------------------------------------------------------------------
    jax = H.peer("jax")
    if jax is not None:
        jl = M.jax_loss(jax)
        xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(yoh)
        jvg = jax.value_and_grad(jl)

        def jstep(p, x, yoh):
            _, g = jvg(p, x, yoh)
            return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g)

        jit_step = jax.jit(jstep)
        sj = {
            "p": {k: jax.numpy.asarray(v) for k, v in p0.items()},
            "q": {k: jax.numpy.asarray(v) for k, v in p0.items()},
        }

        def j_eager():
            sj["p"] = jstep(sj["p"], xj, yj)
            jax.block_until_ready(sj["p"])

        def j_jit():
            sj["q"] = jit_step(sj["q"], xj, yj)
            jax.block_until_ready(sj["q"])

        pj0 = {k: jax.numpy.asarray(v) for k, v in p0.items()}
        cases.append(H.Case("jax eager", j_eager, lambda: jvg(pj0, xj, yj)))
        cases.append(H.Case("jax.jit", j_jit, lambda: jax.jit(jvg)(pj0, xj, yj)))
    return cases


def fl_nn_case(fl, p0, x, y, yoh):
    """functorch_lite.nn + optim, when those subpackages exist."""
    nn, optim = H.peer("functorch_lite.nn"), H.peer("functorch_lite.optim")
    if nn is None or optim is None:
        return [H.Case("functorch_lite nn+optim", lambda: None, error="functorch_lite.nn / optim missing")]
    try:
        model = M.fl_nn_model(fl, p0)
        xf, yf = fl.asarray(x), fl.asarray(y)
        opt = optim.SGD(lr=LR)
        lg = nn.value_and_grad(model, lambda a, b: nn.functional.cross_entropy(model(a), b))

        def step():
            _, g = lg(xf, yf)
            opt.update(model, g)

        ref_model = M.fl_nn_model(fl, p0)
        ref_lg = nn.value_and_grad(ref_model, lambda a, b: nn.functional.cross_entropy(ref_model(a), b))

        def res():
            v, g = ref_lg(xf, yf)
            return v, M.fl_nn_grads_as_dict(ref_model, g)

        return [H.Case("functorch_lite nn+optim", step, res)]
    except Exception as exc:  # noqa: BLE001 - API still in flux: report, do not crash
        return [H.Case("functorch_lite nn+optim", lambda: None, error=f"{type(exc).__name__}: {exc}"[:300])]


def setup():
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(BATCH, SIZES[0], SIZES[-1])
    return build_cases(p0, x, y, yoh)


def main() -> None:
    p0 = M.init_params(SIZES)
    x, y, yoh = M.data(BATCH, SIZES[0], SIZES[-1])
    cases = build_cases(p0, x, y, yoh)
    ok = H.check_cases(cases, M.np_loss_and_grads(p0, x, yoh))
    H.measure(ok, rounds=7, block_s=0.15)
    rows = H.summarize(cases, "numpy (hand-written)", "MLP step")
    H.print_table(f"MLP {'-'.join(map(str, SIZES))} training step, batch {BATCH}", rows)
    H.emit("mlp", rows)


if __name__ == "__main__":
    main()
