"""A pure-function MLP trained with ``fl.value_and_grad`` and a hand-written SGD loop.

The parameters are a plain dict (a pytree); the model is a function of ``(params, x)``;
``fl.value_and_grad`` returns the loss and a dict of gradients with the same keys, and the
SGD step is one ``tree_map``. Only the core transforms: no ``nn``, no ``optim``.

With ``--jit`` the whole SGD step (loss, gradients, update) runs under ``fl.jit``: traced
once, then replayed as a compiled program. The learning rate is a Python float argument,
a weak input of the program, so changing it does not trace again.

The task: fit y = sin(3x) on [-1, 1] with a 1-32-32-1 tanh network.

    python examples/01_mlp_grad.py             # 2000 steps
    python examples/01_mlp_grad.py --steps 20  # a quick check
    python examples/01_mlp_grad.py --jit       # the step under fl.jit; prints both step times
"""

from __future__ import annotations

import argparse
import statistics
import time

import functorch_lite as fl
from functorch_lite import tree_util as tu


def init_mlp(key: fl.Tensor, sizes: list[int]) -> dict[str, fl.Tensor]:
    """Weights ~ N(0, 1/fan_in), zero biases, as a dict {"w0": ..., "b0": ..., "w1": ...}."""
    params = {}
    for i, (k, n_in, n_out) in enumerate(zip(fl.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = fl.random.normal(k, (n_in, n_out)) / n_in**0.5
        params[f"b{i}"] = fl.zeros((n_out,))
    return params


def mlp(params: dict[str, fl.Tensor], x: fl.Tensor) -> fl.Tensor:
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < n_layers - 1:
            x = fl.tanh(x)
    return x


def loss_fn(params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
    return fl.mean((mlp(params, x) - y) ** 2)


def sgd_step(
    params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor, lr: float
) -> tuple[dict[str, fl.Tensor], fl.Tensor]:
    """One SGD step: the new parameters and the loss before the step."""
    loss, grads = fl.value_and_grad(loss_fn)(params, x, y)  # grads: a dict with the keys of params
    return tu.tree_map(lambda p, g: p - lr * g, params, grads), loss


def step_time(step: object, params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor, lr: float) -> float:
    """Median seconds of a step (after two warm-up calls); the parameters are left as they were."""
    times = []
    for i in range(22):
        t0 = time.perf_counter()
        _, loss = step(params, x, y, lr)  # type: ignore[operator]
        float(loss)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps (default 2000)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit", action="store_true", help="run the SGD step under fl.jit and time both")
    args = parser.parse_args(argv)

    x = fl.reshape(fl.linspace(-1.0, 1.0, 128), (128, 1))
    y = fl.sin(3.0 * x)
    params = init_mlp(fl.random.key(args.seed), [1, 32, 32, 1])
    step_fn = fl.jit(sgd_step) if args.jit else sgd_step  # jit: traced on the first call, then replayed

    first = float(loss_fn(params, x, y))
    print(f"step     0  loss {first:.5f}")
    for step in range(1, args.steps + 1):
        params, loss = step_fn(params, x, y, args.lr)
        if step % max(1, args.steps // 10) == 0:
            print(f"step {step:5d}  loss {float(loss):.5f}")
    final = float(loss_fn(params, x, y))
    print(f"final loss {final:.5f} (from {first:.5f})")
    if args.jit:
        eager, jitted = step_time(sgd_step, params, x, y, args.lr), step_time(step_fn, params, x, y, args.lr)
        print(f"step time: eager {eager * 1e3:.3f} ms, jit {jitted * 1e3:.3f} ms ({eager / jitted:.1f}x)")
    if not final < first:
        raise SystemExit("the loss did not fall")
    return final


if __name__ == "__main__":
    main()
