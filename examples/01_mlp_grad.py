"""A pure-function MLP trained with ``fl.value_and_grad`` and a hand-written SGD loop.

The parameters are a plain dict (a pytree); the model is a function of ``(params, x)``;
``fl.value_and_grad`` returns the loss and a dict of gradients with the same keys, and the
SGD step is one ``tree_map``. Only the core transforms: no ``nn``, no ``optim``.

The task: fit y = sin(3x) on [-1, 1] with a 1-32-32-1 tanh network.

    python examples/01_mlp_grad.py             # 2000 steps
    python examples/01_mlp_grad.py --steps 20  # a quick check
"""

from __future__ import annotations

import argparse

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


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps (default 2000)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x = fl.reshape(fl.linspace(-1.0, 1.0, 128), (128, 1))
    y = fl.sin(3.0 * x)
    params = init_mlp(fl.random.key(args.seed), [1, 32, 32, 1])
    loss_and_grad = fl.value_and_grad(loss_fn)

    first = float(loss_fn(params, x, y))
    print(f"step     0  loss {first:.5f}")
    for step in range(1, args.steps + 1):
        loss, grads = loss_and_grad(params, x, y)  # grads: a dict with the keys of params
        params = tu.tree_map(lambda p, g: p - args.lr * g, params, grads)
        if step % max(1, args.steps // 10) == 0:
            print(f"step {step:5d}  loss {float(loss):.5f}")
    final = float(loss_fn(params, x, y))
    print(f"final loss {final:.5f} (from {first:.5f})")
    if not final < first:
        raise SystemExit("the loss did not fall")
    return final


if __name__ == "__main__":
    main()
