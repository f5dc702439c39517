"""MAML on sine-wave regression: gradients through an inner SGD step (grad of grad).

Model-agnostic meta-learning (Finn et al., 2017) looks for an initialisation from which ONE
gradient step on a few examples of a new task already fits it. Each task is a sine wave
``a * sin(x + phase)``; the meta-loss is the loss on a task's query points *after* an inner
SGD step on its support points, so its gradient differentiates through that step:

    adapted = params - alpha * grad(loss)(params, x_support, y_support)
    meta_loss = loss(adapted, x_query, y_query)        # grad(meta_loss) is a grad of a grad

A batch of tasks is handled by ``vmap``, so the meta-gradient is ``grad(vmap(... grad ...))``,
and the meta-optimizer is the pure, optax-style ``optim.adam``.

    python examples/03_maml.py              # 1500 meta-steps
    python examples/03_maml.py --steps 3    # a quick check
"""

from __future__ import annotations

import argparse
import math

import functorch_lite as fl
from functorch_lite import optim
from functorch_lite import tree_util as tu

Params = dict[str, fl.Tensor]


def init_params(key: fl.Tensor, sizes: tuple[int, ...] = (1, 40, 40, 1)) -> Params:
    params = {}
    for i, (k, n_in, n_out) in enumerate(zip(fl.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:], strict=True)):
        bound = 1.0 / math.sqrt(n_in)  # PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        params[f"w{i}"] = fl.random.uniform(k, (n_in, n_out), minval=-bound, maxval=bound)
        params[f"b{i}"] = fl.zeros((n_out,))
    return params


def net(params: Params, x: fl.Tensor) -> fl.Tensor:
    n = len(params) // 2
    for i in range(n):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            x = fl.maximum(x, 0.0)  # relu
    return x


def loss(params: Params, x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
    return fl.mean((net(params, x) - y) ** 2)


def adapt(params: Params, x: fl.Tensor, y: fl.Tensor, inner_lr: float, inner_steps: int = 1) -> Params:
    """Inner-loop SGD on one task's support set (differentiable: it is made of transforms)."""
    for _ in range(inner_steps):
        g = fl.grad(loss)(params, x, y)
        params = tu.tree_map(lambda p, gp: p - inner_lr * gp, params, g)
    return params


def sample_tasks(key: fl.Tensor, n_tasks: int, k_shot: int) -> tuple[fl.Tensor, ...]:
    """Support and query sets of ``n_tasks`` random sine waves: four arrays of shape (n_tasks, k, 1)."""
    k_amp, k_phase, k_x = fl.random.split(key, 3)
    amp = fl.random.uniform(k_amp, (n_tasks, 1, 1), minval=0.1, maxval=5.0)
    phase = fl.random.uniform(k_phase, (n_tasks, 1, 1), minval=0.0, maxval=math.pi)
    x = fl.random.uniform(k_x, (n_tasks, 2 * k_shot, 1), minval=-5.0, maxval=5.0)
    y = amp * fl.sin(x + phase)
    return x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="meta-training steps (default 1500)")
    parser.add_argument("--tasks", type=int, default=16, help="tasks per meta-batch")
    parser.add_argument("--shots", type=int, default=10, help="support (and query) points per task")
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--meta-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def maml_loss(params: Params, xs: fl.Tensor, ys: fl.Tensor, xq: fl.Tensor, yq: fl.Tensor) -> fl.Tensor:
        return loss(adapt(params, xs, ys, args.inner_lr), xq, yq)

    def meta_loss(params: Params, xs: fl.Tensor, ys: fl.Tensor, xq: fl.Tensor, yq: fl.Tensor) -> fl.Tensor:
        per_task = fl.vmap(maml_loss, in_axes=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq)
        return fl.mean(per_task)

    key = fl.random.key(args.seed)
    k_init, k_eval, key = fl.random.split(key, 3)
    params = init_params(k_init)
    baseline = params  # the same initialisation, never meta-trained
    tx = optim.adam(lr=args.meta_lr)
    state = tx.init(params)
    meta_value_and_grad = fl.value_and_grad(meta_loss)

    for step in range(1, args.steps + 1):
        key, k_tasks = fl.random.split(key)
        value, grads = meta_value_and_grad(params, *sample_tasks(k_tasks, args.tasks, args.shots))
        updates, state = tx.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        if step % max(1, args.steps // 10) == 0:
            print(f"meta-step {step:5d}  post-adaptation query loss {float(value):.3f}")

    # Evaluate on 100 new tasks: query loss before and after one inner step, from each initialisation.
    xs, ys, xq, yq = sample_tasks(k_eval, 100, args.shots)
    results = {}
    for label, p in (("random init", baseline), ("MAML init", params)):
        before = float(fl.mean(fl.vmap(loss, in_axes=(None, 0, 0))(p, xq, yq)))
        after = float(meta_loss(p, xs, ys, xq, yq))
        results[label] = after
        print(f"{label:>12}: query loss {before:6.3f} before, {after:6.3f} after one step on {args.shots} points")
    return results


if __name__ == "__main__":
    main()
