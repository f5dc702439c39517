"""Per-example gradients with ``vmap(grad)``, and DP-SGD built on them.

``fl.vmap(fl.grad(loss), in_axes=(None, 0, 0))`` differentiates a loss written for ONE
example and maps it over the batch: one gradient per example, with no Python loop over the
batch. DP-SGD (Abadi et al., 2016) needs exactly that: clip each example's gradient to norm
``C``, average, and add Gaussian noise of scale ``sigma * C / batch``.

The task: logistic regression on synthetic data (20 features, a random true direction).

    python examples/02_per_example_grads.py             # 300 steps
    python examples/02_per_example_grads.py --steps 5   # a quick check
"""

from __future__ import annotations

import argparse

import functorch_lite as fl
from functorch_lite import tree_util as tu


def make_data(key: fl.Tensor, n: int, d: int) -> tuple[fl.Tensor, fl.Tensor]:
    """n i.i.d. points in d dimensions, labelled by a random hyperplane (with label noise)."""
    k_x, k_w, k_noise = fl.random.split(key, 3)
    x = fl.random.normal(k_x, (n, d))
    w_true = fl.random.normal(k_w, (d,))
    y = fl.astype(x @ w_true + 0.5 * fl.random.normal(k_noise, (n,)) > 0, fl.float32)
    return x, y


def loss_one(params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
    """Logistic loss of ONE example: x has shape (d,), y is a scalar."""
    z = fl.vecdot(params["w"], x) + params["b"]
    return fl.logaddexp(0.0, z) - y * z  # log(1 + e^z) - y z, stable for large |z|


def loss_batch(params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
    return fl.mean(fl.vmap(loss_one, in_axes=(None, 0, 0))(params, x, y))


per_example_grads = fl.vmap(fl.grad(loss_one), in_axes=(None, 0, 0))


def dp_gradient(
    params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor, key: fl.Tensor, clip: float, sigma: float
) -> dict[str, fl.Tensor]:
    """The DP-SGD gradient: per-example clipping to norm ``clip``, averaging, Gaussian noise."""
    grads = per_example_grads(params, x, y)  # {"w": (B, d), "b": (B,)}
    batch = x.shape[0]
    sq = sum(fl.sum(fl.reshape(g, (batch, -1)) ** 2, axis=1) for g in tu.tree_leaves(grads))
    factor = fl.minimum(1.0, clip / (fl.sqrt(sq) + 1e-12))  # (B,): shrink only the large ones
    keys = fl.random.split(key, len(grads))
    out = {}
    for k, (name, g) in zip(keys, sorted(grads.items()), strict=True):
        clipped = fl.sum(g * fl.reshape(factor, (batch,) + (1,) * (g.ndim - 1)), axis=0)
        out[name] = (clipped + sigma * clip * fl.random.normal(k, clipped.shape)) / batch
    return out


def accuracy(params: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor) -> float:
    pred = fl.astype(x @ params["w"] + params["b"] > 0, fl.float32)
    return float(fl.mean(fl.astype(pred == y, fl.float32)))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--clip", type=float, default=1.0, help="per-example gradient norm bound C")
    parser.add_argument("--sigma", type=float, default=1.0, help="noise multiplier")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    key = fl.random.key(args.seed)
    k_data, key = fl.random.split(key)
    x_all, y_all = make_data(k_data, 3072, 20)
    x, y, x_test, y_test = x_all[:2048], y_all[:2048], x_all[2048:], y_all[2048:]
    params = {"w": fl.zeros((20,)), "b": fl.asarray(0.0)}

    # 1. Per-example gradients: their mean is the batch gradient, and each one is what a loop gives.
    g_each = per_example_grads(params, x[:8], y[:8])
    g_batch = fl.grad(loss_batch)(params, x[:8], y[:8])
    g_loop = fl.grad(loss_one)(params, x[3], y[3])
    print("per-example gradient shapes:", {k: v.shape for k, v in g_each.items()})
    for name in params:
        mean_err = float(fl.max(fl.abs(fl.mean(g_each[name], axis=0) - g_batch[name])))
        loop_err = float(fl.max(fl.abs(g_each[name][3] - g_loop[name])))
        print(f"  {name}: |mean(per-example) - batch grad| = {mean_err:.1e}, |vmap - loop| = {loop_err:.1e}")
        if mean_err > 1e-5 or loop_err > 1e-5:
            raise SystemExit("per-example gradients disagree with the batch gradient")

    # 2. DP-SGD against plain SGD, from the same start, on the same batches.
    results = {}
    for label in ("SGD", "DP-SGD"):
        p = dict(params)
        k = key
        for step in range(args.steps):
            k, k_noise = fl.random.split(k)
            start = (step * args.batch) % (x.shape[0] - args.batch + 1)  # i.i.d. data: a slice is a random batch
            xb, yb = x[start : start + args.batch], y[start : start + args.batch]
            if label == "SGD":
                g = fl.grad(loss_batch)(p, xb, yb)
            else:
                g = dp_gradient(p, xb, yb, k_noise, args.clip, args.sigma)
            p = tu.tree_map(lambda a, b: a - args.lr * b, p, g)
        results[label] = accuracy(p, x_test, y_test)
        print(f"{label:>6}: test accuracy {results[label]:.2%} after {args.steps} steps")
    return results


if __name__ == "__main__":
    main()
