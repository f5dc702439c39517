"""Swapping backends: one training function, run on every installed array library.

``train`` below is written once against ``functorch_lite``; nothing in it names NumPy, torch
or JAX. Run under ``fl.default_backend(name)``, every Tensor it creates lives in that
backend, and every operation (forward, gradients, optimizer) runs as that library's calls.
The data and the initial weights come from ``fl.random`` keys, which give the same bits on
every backend, so all runs start from identical numbers and their results can be compared.

Backends tried: numpy, array_api_strict, and torch, jax, cupy, dask when installed (or the
ones named with ``--backends``).

    python examples/06_swap_backends.py                 # 300 steps on each backend
    python examples/06_swap_backends.py --steps 5       # a quick check
    python examples/06_swap_backends.py --backends numpy torch
"""

from __future__ import annotations

import argparse
import time
import warnings

import functorch_lite as fl
from functorch_lite import optim


def train(steps: int, seed: int) -> tuple[float, dict[str, fl.Tensor]]:
    """Fit a 3-16-1 tanh network to a smooth function of 3 inputs with Adam; on the default backend."""
    k_x, k_w1, k_w2 = fl.random.split(fl.random.key(seed), 3)
    x = fl.random.uniform(k_x, (256, 3), minval=-2.0, maxval=2.0)
    y = fl.sin(x[:, :1]) * fl.cos(x[:, 1:2]) + 0.1 * x[:, 2:3]
    params = {
        "w1": fl.random.normal(k_w1, (3, 16)) * 0.5,
        "b1": fl.zeros((16,)),
        "w2": fl.random.normal(k_w2, (16, 1)) * 0.25,
        "b2": fl.zeros((1,)),
    }

    def loss_fn(p: dict[str, fl.Tensor]) -> fl.Tensor:
        hidden = fl.tanh(x @ p["w1"] + p["b1"])
        return fl.mean((hidden @ p["w2"] + p["b2"] - y) ** 2)

    tx = optim.adam(lr=1e-2)
    state = tx.init(params)
    loss = loss_fn(params)
    for _ in range(steps):
        loss, grads = fl.value_and_grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    return float(loss_fn(params)), params


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per backend (default 300)")
    parser.add_argument("--backends", nargs="+", default=None, help="backends to run (default: all installed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with warnings.catch_warnings():  # jax warns that it has no 64-bit dtypes unless JAX_ENABLE_X64 is set
        warnings.simplefilter("ignore", UserWarning)
        names = args.backends or fl.available_backends()
    results: dict[str, float] = {}
    reference: dict[str, fl.Tensor] | None = None
    print(f"{'backend':<17} {'device':<12} {'final loss':>11} {'max |param - numpy param|':>27} {'time':>8}")
    for name in names:
        start = time.perf_counter()
        with warnings.catch_warnings(), fl.default_backend(name):
            warnings.simplefilter("ignore", UserWarning)
            loss, params = train(args.steps, args.seed)
            device = str(params["w1"].device)
        seconds = time.perf_counter() - start
        host = fl.to_backend(params, "numpy")  # compare on one backend
        if reference is None:
            reference = host
        diff = max(float(fl.max(fl.abs(host[k] - reference[k]))) for k in host)
        results[name] = loss
        print(f"{name:<17} {device[:12]:<12} {loss:11.6f} {diff:27.2e} {seconds:7.2f}s")
        if not diff < 1e-3:  # float32 on different libraries: rounding differs, the training does not
            raise SystemExit(f"{name} disagrees with {names[0]}")
    return results


if __name__ == "__main__":
    main()
