"""Model ensembles with ``vmap`` over stacked parameters (torch.func's ``stack_module_state`` recipe).

Several models of one architecture, each with its own initial weights, are trained and
evaluated *as one*: ``nn.stack_module_state(models)`` stacks their parameters along a new
leading axis, and ``fl.vmap`` over that axis runs ``nn.functional_call(base, params, x)``
for every member at once: one batched matmul per layer, no Python loop over the models.
The whole ensemble is trained by differentiating the summed loss (each member's gradient
only depends on its own loss) with the pure ``optim.adam``.

The task: classify scikit-learn's 8x8 digits (or, with ``--synthetic``, random blobs).

    python examples/07_ensembles.py               # 5 MLPs, 300 steps
    python examples/07_ensembles.py --steps 5     # a quick check
"""

from __future__ import annotations

import argparse

import functorch_lite as fl
from functorch_lite import nn, optim


def load_data(synthetic: bool, key: fl.Tensor) -> tuple[fl.Tensor, fl.Tensor, fl.Tensor, fl.Tensor]:
    """(x_train, y_train, x_test, y_test): scikit-learn's digits if installed, else Gaussian blobs."""
    if not synthetic:
        try:
            from functorch_lite._demo import load_digits_split

            return load_digits_split()
        except ImportError:
            print("scikit-learn is not installed: using synthetic data")
    k_c, k_x, k_y = fl.random.split(key, 3)
    centers = 2.0 * fl.random.normal(k_c, (10, 64))
    y = fl.random.randint(k_y, (1800,), 0, 10)
    x = fl.take(centers, y, axis=0) + fl.random.normal(k_x, (1800, 64)) * 2.0
    return x[:1440], y[:1440], x[1440:], y[1440:]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--models", type=int, default=5, help="ensemble size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="random blobs instead of digits")
    args = parser.parse_args(argv)

    key = fl.random.key(args.seed)
    k_data, key = fl.random.split(key)
    x_train, y_train, x_test, y_test = load_data(args.synthetic, k_data)

    fl.manual_seed(args.seed)
    models = [nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)) for _ in range(args.models)]
    params, buffers = nn.stack_module_state(models)  # {"0.weight": (M, 64, 64), ...}
    base = models[0]  # supplies the architecture; its own weights are never used below
    print(f"{args.models} models; stacked parameters:", {k: v.shape for k, v in params.items()})

    def predict(p: dict[str, fl.Tensor], x: fl.Tensor) -> fl.Tensor:
        return nn.functional_call(base, p, x)

    # Every member on the same batch: in_axes=(0, None) maps the parameters, shares the data.
    ensemble = fl.vmap(predict, in_axes=(0, None))

    def loss_fn(p: dict[str, fl.Tensor], x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
        logits = ensemble(p, x)  # (M, batch, 10)
        per_model = fl.vmap(lambda lg: nn.functional.cross_entropy(lg, y))(logits)
        return fl.sum(per_model)  # member i's gradient only sees member i's loss

    # The stacked ensemble output equals a loop over the models.
    check = ensemble(params, x_test[:4])
    loop = fl.stack([m(x_test[:4]) for m in models])
    err = float(fl.max(fl.abs(check - loop)))
    print(f"|vmap over stacked params - loop over models| = {err:.1e}")
    if err > 1e-4:
        raise SystemExit("the vmapped ensemble disagrees with the models")

    tx = optim.adam(lr=3e-3)
    state = tx.init(params)
    n = x_train.shape[0]
    for step in range(args.steps):
        start = (step * args.batch) % (n - args.batch + 1)
        xb, yb = x_train[start : start + args.batch], y_train[start : start + args.batch]
        grads = fl.grad(loss_fn)(params, xb, yb)
        updates, state = tx.update(grads, state, params)
        params = optim.apply_updates(params, updates)

    logits = ensemble(params, x_test)  # (M, n_test, 10)
    correct = fl.astype(fl.argmax(logits, axis=2) == y_test, fl.float32)
    members = fl.mean(correct, axis=1)
    mean_probs = fl.mean(nn.functional.softmax(logits, dim=-1), axis=0)
    ensemble_acc = float(fl.mean(fl.astype(fl.argmax(mean_probs, axis=1) == y_test, fl.float32)))
    print("member test accuracies:", ", ".join(f"{float(a):.2%}" for a in members))
    print(f"ensemble (averaged probabilities): {ensemble_acc:.2%}")
    return {"best_member": float(fl.max(members)), "ensemble": ensemble_acc}


if __name__ == "__main__":
    main()
