"""(1) Dispatch overhead: a 200-op elementwise chain on shape (8,), forward and grad.

The chain is ``x = sin(x) * 1.01 + 0.1`` repeated 67 times: 201 primitive
calls (one op = one primitive call: sin, multiply or add). The grad variants
differentiate ``sum(chain(x))`` (one more primitive). Reported per op in µs.
Targets: eager <= 1.5x raw numpy; grad <= 3 µs per op; jit(grad) <= 1 µs per op.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import numpy as np

REPS = 67
N_OPS = 3 * REPS  # 201 primitive calls
N = 8


def np_chain(x):
    for _ in range(REPS):
        x = np.sin(x) * 1.01 + 0.1
    return x


def np_grad(x):
    """Hand-written reverse pass: keep cos(x_k), multiply back."""
    cs = []
    for _ in range(REPS):
        cs.append(np.cos(x))
        x = np.sin(x) * 1.01 + 0.1
    g = np.ones_like(x)
    for c in reversed(cs):
        g = g * 1.01 * c
    return g


def generic_chain(sin):
    def chain(x):
        for _ in range(REPS):
            x = sin(x) * 1.01 + 0.1
        return x

    return chain


def build_cases(x0):
    fwd, grad = [], []
    fwd.append(H.Case("numpy", lambda: np_chain(x0)))
    grad.append(H.Case("numpy (hand-written)", lambda: np_grad(x0)))

    fl = H.peer("functorch_lite")
    if fl is not None:
        xf = fl.asarray(x0)
        chain = generic_chain(fl.sin)
        fwd.append(H.Case("functorch_lite", lambda: chain(xf)))
        gf = fl.grad(lambda x: fl.sum(chain(x)))
        grad.append(H.Case("functorch_lite grad", lambda: gf(xf)))
        jf, jg = fl.jit(chain), fl.jit(gf)
        fwd.append(H.Case("functorch_lite jit", lambda: jf(xf)))
        grad.append(H.Case("functorch_lite jit(grad)", lambda: jg(xf)))

    ag = H.peer("autograd")
    if ag is not None:
        import autograd.numpy as anp

        chain_a = generic_chain(anp.sin)
        fwd.append(H.Case("autograd (eager)", lambda: chain_a(x0)))
        ga = ag.grad(lambda x: anp.sum(chain_a(x)))
        grad.append(H.Case("autograd grad", lambda: ga(x0)))

    torch = H.peer("torch")
    if torch is not None:
        xt = torch.from_numpy(x0.copy())
        chain_t = generic_chain(torch.sin)

        def t_fwd():
            with torch.no_grad():
                return chain_t(xt)

        fwd.append(H.Case("torch eager", t_fwd))

        def t_grad():
            x = xt.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(chain_t(x).sum(), x)
            return g

        grad.append(H.Case("torch backward", t_grad))
        gtf = torch.func.grad(lambda x: chain_t(x).sum())
        grad.append(H.Case("torch.func grad", lambda: gtf(xt)))

    jax = H.peer("jax")
    if jax is not None:
        import jax.numpy as jnp

        xj = jnp.asarray(x0)
        chain_j = generic_chain(jnp.sin)
        fwd.append(H.Case("jax eager", lambda: chain_j(xj).block_until_ready()))
        jc = jax.jit(chain_j)
        fwd.append(H.Case("jax.jit", lambda: jc(xj).block_until_ready()))
        gj = jax.grad(lambda x: jnp.sum(chain_j(x)))
        grad.append(H.Case("jax grad (eager)", lambda: gj(xj).block_until_ready()))
        gjj = jax.jit(gj)
        grad.append(H.Case("jax.jit(grad)", lambda: gjj(xj).block_until_ready()))
    return fwd, grad


def setup():
    fwd, grad = build_cases(H.f32(H.rng(0).uniform(-1, 1, N)))
    return fwd + grad


def main() -> None:
    x0 = H.f32(H.rng(0).uniform(-1, 1, N))
    fwd, grad = build_cases(x0)
    H.measure(H.check_cases(fwd, np_chain(x0)), rounds=9, block_s=0.04)
    H.measure(H.check_cases(grad, np_grad(x0)), rounds=9, block_s=0.06)
    rows_f = H.summarize(fwd, "numpy", "eager chain")
    rows_g = H.summarize(grad, "numpy (hand-written)", "grad chain")
    for r in rows_f + rows_g:
        if "median_s" in r:
            r["us_per_op"] = r["median_s"] * 1e6 / N_OPS
    per_op = [("us_per_op", "µs/op", lambda v: f"{v:.2f}")]
    H.print_table(f"eager chain, {N_OPS} ops on shape ({N},)", rows_f, per_op)
    H.print_table(f"grad of the chain, {N_OPS} ops (+ sum)", rows_g, per_op)
    H.emit("dispatch", rows_f + rows_g, n_ops=N_OPS)


if __name__ == "__main__":
    main()
