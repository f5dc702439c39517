"""Gradients through an adaptive ODE solver written with ``fl.while_loop``.

A damped oscillator ``x'' = -k x - c x'`` is integrated from ``t = 0`` to ``T`` by an
adaptive Heun-Euler pair (an embedded Runge-Kutta 2(1)): each step computes the Euler and
the Heun solutions, accepts the step when they agree to ``tol`` and adapts the step size
either way, so the number of steps depends on the parameters and is only known once the
loop has run. ``fl.grad`` differentiates straight through the loop (``jax.lax.while_loop``
refuses reverse mode): the forward pass counts its iterations, the backward pass replays
them. The script checks ``d x(T) / d c`` and ``d x(T) / d k`` against central finite
differences of the same solver, shows ``vmap`` running the solver for several dampings at
once (each with its own step count), then fits the damping by gradient descent so that
``x(T)`` hits a target.

    python examples/08_ode_while_loop.py              # 30 descent steps
    python examples/08_ode_while_loop.py --steps 3    # a quick check
"""

from __future__ import annotations

import argparse
import math

import functorch_lite as fl

T = 2.0  # integrate to this time
X0, V0 = 1.0, 0.0  # initial position and velocity


def solve(c: fl.Tensor, k: fl.Tensor, tol: float = 1e-4) -> tuple[fl.Tensor, fl.Tensor, fl.Tensor]:
    """``x(T)`` of ``x'' = -k x - c x'``, and the numbers of accepted and rejected steps."""
    f64 = fl.float64

    def rhs(x: fl.Tensor, v: fl.Tensor) -> tuple[fl.Tensor, fl.Tensor]:
        return v, -k * x - c * v

    def not_done(s: tuple[fl.Tensor, ...]) -> fl.Tensor:
        t, _, _, _, acc, rej = s
        return (t < T) & (acc + rej < 100_000)

    def step(s: tuple[fl.Tensor, ...]) -> tuple[fl.Tensor, ...]:
        t, x, v, dt, acc, rej = s
        h = fl.minimum(dt, T - t)  # land exactly on T
        dx1, dv1 = rhs(x, v)
        dx2, dv2 = rhs(x + h * dx1, v + h * dv1)
        # Heun's solution and its distance from Euler's (x + h * dx1): the local error estimate
        xh, vh = x + 0.5 * h * (dx1 + dx2), v + 0.5 * h * (dv1 + dv2)
        err = fl.maximum(fl.abs(0.5 * h * (dx2 - dx1)), fl.abs(0.5 * h * (dv2 - dv1)))
        ok = err <= tol
        grow = fl.clip(0.9 * fl.sqrt(tol / fl.maximum(err, 1e-300)), 0.2, 5.0)
        return (
            fl.where(ok, t + h, t),
            fl.where(ok, xh, x),
            fl.where(ok, vh, v),
            h * grow,
            acc + ok.astype(acc.dtype),
            rej + (~ok).astype(rej.dtype),
        )

    zero = fl.asarray(0.0, dtype=f64)
    count = fl.asarray(0)
    init = (zero, zero + X0, zero + V0, zero + 0.1, count, count)
    _, x, _, _, acc, rej = fl.while_loop(not_done, step, init)
    return x, acc, rej


def x_final(c: fl.Tensor, k: fl.Tensor) -> fl.Tensor:
    return solve(c, k)[0]


def exact(c: float, k: float) -> float:
    """The closed form of x(T) for the underdamped case (c^2 < 4k), x(0) = X0, x'(0) = V0."""
    a, w = c / 2, math.sqrt(k - c * c / 4)
    return math.exp(-a * T) * (X0 * math.cos(w * T) + (V0 + a * X0) / w * math.sin(w * T))


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="gradient-descent steps of the fit (default 30)")
    parser.add_argument("--damping", type=float, default=0.5, help="the damping c where the gradient is checked")
    parser.add_argument("--stiffness", type=float, default=10.0, help="the spring constant k")
    parser.add_argument("--target", type=float, default=0.1, help="the x(T) the fit aims for")
    args = parser.parse_args(argv)

    c = fl.asarray(args.damping, dtype=fl.float64)
    k = fl.asarray(args.stiffness, dtype=fl.float64)
    x, acc, rej = solve(c, k)
    print(
        f"x({T}) = {float(x):.6f} (closed form {exact(args.damping, args.stiffness):.6f}), "
        f"{int(acc)} accepted and {int(rej)} rejected steps"
    )

    # reverse mode through the while_loop, checked against central differences of the same solver
    dc, dk = fl.grad(x_final, argnums=(0, 1))(c, k)
    eps = 1e-5
    fd_c = (float(x_final(c + eps, k)) - float(x_final(c - eps, k))) / (2 * eps)
    fd_k = (float(x_final(c, k + eps)) - float(x_final(c, k - eps))) / (2 * eps)
    print(f"d x(T)/dc: grad {float(dc):+.6f}   finite differences {fd_c:+.6f}")
    print(f"d x(T)/dk: grad {float(dk):+.6f}   finite differences {fd_k:+.6f}")
    for name, g, fd in (("c", float(dc), fd_c), ("k", float(dk), fd_k)):
        if not abs(g - fd) <= 1e-3 * max(1.0, abs(fd)):
            raise SystemExit(f"the gradient wrt {name} disagrees with finite differences: {g} vs {fd}")

    # vmap over dampings: the loop runs until every element is done, each keeps its own count
    cs = fl.asarray([0.1, 0.5, 2.0], dtype=fl.float64)
    xs, accs, _ = fl.vmap(lambda c: solve(c, k))(cs)
    grads = fl.vmap(fl.grad(x_final), in_axes=(0, None))(cs, k)
    print(
        f"vmap over c = {cs.tolist()}: x(T) {[round(v, 5) for v in xs.tolist()]}, "
        f"steps {accs.tolist()}, d x(T)/dc {[round(v, 5) for v in grads.tolist()]}"
    )

    # fit the damping so that x(T) hits the target
    def loss(c: fl.Tensor) -> fl.Tensor:
        return (x_final(c, k) - args.target) ** 2

    value_and_grad = fl.value_and_grad(loss)
    first = float(loss(c))
    lr = 2.0
    for i in range(1, args.steps + 1):
        value, g = value_and_grad(c)
        c = c - lr * g
        if i % max(1, args.steps // 5) == 0:
            print(f"fit step {i:3d}  c {float(c):.5f}  loss {float(value):.3e}")
    final = float(loss(c))
    print(f"fit: loss {first:.3e} -> {final:.3e}, x(T) = {float(x_final(c, k)):.5f} for target {args.target}")
    if not final < first:
        raise SystemExit("the fit did not lower the loss")
    return final


if __name__ == "__main__":
    main()
