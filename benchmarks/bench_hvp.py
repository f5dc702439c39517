"""(4) Hessian-vector product of f(x) = sum(tanh(A x)), A of shape 1000 x 1000.

The floor is the hand-derived numpy HVP, ``A^T (-2 t (1 - t^2) (A v))`` with
``t = tanh(A x)``: 3 matrix-vector products. Forward-over-reverse
(``jvp(grad(f))``) needs 4, so 4/3 = 1.33x is the floor of any AD system;
reverse-over-reverse (``grad(<grad(f), v>)``) is the other classic.
Target: forward-over-reverse <= 1.50x numpy.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import numpy as np

N = 1000


def np_hvp(A, x, v):
    t = np.tanh(A @ x)
    return A.T @ (np.float32(-2.0) * t * (1 - t * t) * (A @ v))


def build_cases(A, x, v, tol):
    cases = [H.Case("numpy (hand-derived)", lambda: np_hvp(A, x, v), **tol)]

    fl = H.peer("functorch_lite")
    if fl is not None:
        Af, xf, vf = fl.asarray(A), fl.asarray(x), fl.asarray(v)

        def f(x):
            return fl.sum(fl.tanh(Af @ x))

        gf = fl.grad(f)
        cases.append(H.Case("functorch_lite jvp(grad) fwd-over-rev", lambda: fl.jvp(gf, (xf,), (vf,))[1], **tol))
        jh = fl.jit(lambda x, v: fl.jvp(gf, (x,), (v,))[1])
        cases.append(H.Case("functorch_lite jit(jvp(grad))", lambda: jh(xf, vf), **tol))
        rr = fl.grad(lambda x: fl.sum(gf(x) * vf))
        cases.append(H.Case("functorch_lite grad(grad) rev-over-rev", lambda: rr(xf), **tol))

    ag = H.peer("autograd")
    if ag is not None:
        import autograd.numpy as anp

        ahvp = ag.hessian_vector_product(lambda x: anp.sum(anp.tanh(A @ x)))
        cases.append(H.Case("autograd hvp (rev-over-rev)", lambda: ahvp(x, v), **tol))

    torch = H.peer("torch")
    if torch is not None:
        At, xt, vt = (torch.from_numpy(a) for a in (A, x, v))

        def tf(x):
            return torch.tanh(At @ x).sum()

        def t_double():
            xx = xt.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(tf(xx), xx, create_graph=True)
            (h,) = torch.autograd.grad(g @ vt, xx)
            return h

        cases.append(H.Case("torch double backward", t_double, **tol))
        tg = torch.func.grad(tf)
        cases.append(H.Case("torch.func jvp(grad)", lambda: torch.func.jvp(tg, (xt,), (vt,))[1], **tol))

    jax = H.peer("jax")
    if jax is not None:
        jnp = jax.numpy
        Aj, xj, vj = (jnp.asarray(a) for a in (A, x, v))

        def jf(x):
            return jnp.sum(jnp.tanh(Aj @ x))

        jg = jax.grad(jf)

        def jhvp(x, v):
            return jax.jvp(jg, (x,), (v,))[1]

        cases.append(H.Case("jax jvp(grad) eager", lambda: jhvp(xj, vj).block_until_ready(), **tol))
        jj = jax.jit(jhvp)
        cases.append(H.Case("jax.jit(jvp(grad))", lambda: jj(xj, vj).block_until_ready(), **tol))
    return cases


def data():
    r = H.rng(3)
    A = H.f32(r.normal(0, 1 / np.sqrt(N), (N, N)))
    x = H.f32(r.normal(0, 1, N))
    v = H.f32(r.normal(0, 1, N))
    return A, x, v


def setup():
    return build_cases(*data(), {})


def main() -> None:
    A, x, v = data()
    ref = np_hvp(A, x, v)
    tol = {"rtol": 1e-3, "atol": 1e-3 * float(np.max(np.abs(ref)))}
    cases = build_cases(A, x, v, tol)
    H.measure(H.check_cases(cases, ref), rounds=9, block_s=0.08)
    rows = H.summarize(cases, "numpy (hand-derived)", "HVP")
    H.print_table(f"Hessian-vector product, sum(tanh(A x)), A {N}x{N}", rows)
    H.emit("hvp", rows)


if __name__ == "__main__":
    main()
