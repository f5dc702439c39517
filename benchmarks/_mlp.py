"""The MLP used by workloads (2), (3), (5) and (8), written once per framework.

Parameters are a dict ``{w1, b1, w2, b2, w3, b3}`` with ``w`` of shape
(in, out); the loss is the mean softmax cross-entropy against one-hot labels.
Import ``_harness`` before this module.
"""

from __future__ import annotations

from typing import Any

import _harness as H
import numpy as np

KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")


def init_params(sizes: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    r = H.rng(seed)
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        p[f"w{i}"] = H.f32(r.normal(0, np.sqrt(2.0 / a), (a, b)))
        p[f"b{i}"] = H.f32(r.normal(0, 0.01, (b,)))
    return p


def data(n: int, d_in: int, n_cls: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = H.rng(seed)
    x = H.f32(r.normal(0, 1, (n, d_in)))
    y = r.integers(0, n_cls, n).astype(np.int64)
    return x, y, H.f32(np.eye(n_cls)[y])


# ----------------------------------------------------------------------------------
# Hand-written numpy: the floor
# ----------------------------------------------------------------------------------
def np_loss_and_grads(p: dict[str, np.ndarray], x: np.ndarray, yoh: np.ndarray) -> tuple[Any, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy of a ReLU MLP of any depth, and its gradients."""
    n = len(p) // 2
    acts, pre = [x], []
    for i in range(1, n):
        h = acts[-1] @ p[f"w{i}"] + p[f"b{i}"]
        pre.append(h)
        acts.append(np.maximum(h, 0))
    z = acts[-1] @ p[f"w{n}"] + p[f"b{n}"]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - np.sum(yoh * z, axis=1))
    d = (e / s - yoh) / np.float32(x.shape[0])
    g = {}
    for i in range(n, 0, -1):
        g[f"w{i}"] = acts[i - 1].T @ d
        g[f"b{i}"] = d.sum(axis=0)
        if i > 1:
            d = (d @ p[f"w{i}"].T) * (pre[i - 2] > 0)
    return loss, g


def np_per_example_grads(p: dict[str, np.ndarray], x: np.ndarray, yoh: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example gradients of the per-example loss: batched backward + einsum outer products."""
    w1, b1, w2, b2, w3, b3 = (p[k] for k in KEYS)
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2 + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3 + b3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    dz = e / e.sum(axis=1, keepdims=True) - yoh  # d loss_i / d z_i
    g = {"w3": np.einsum("bi,bj->bij", a2, dz), "b3": dz}
    dh2 = (dz @ w3.T) * (h2 > 0)
    g["w2"] = np.einsum("bi,bj->bij", a1, dh2)
    g["b2"] = dh2
    dh1 = (dh2 @ w2.T) * (h1 > 0)
    g["w1"] = np.einsum("bi,bj->bij", x, dh1)
    g["b1"] = dh1
    return g


# ----------------------------------------------------------------------------------
# functorch_lite, pure functions
# ----------------------------------------------------------------------------------
def fl_relu(fl: Any) -> Any:
    """``nn.functional.relu`` (a primitive: maximum forward, one-compare vjp) when nn exists."""
    F = H.peer("functorch_lite.nn.functional")
    return F.relu if F is not None else (lambda x: fl.maximum(x, 0.0))


def fl_loss(fl: Any) -> Any:
    sg = fl.stop_gradient
    relu = fl_relu(fl)

    def loss(p: dict[str, Any], x: Any, yoh: Any) -> Any:
        n = len(p) // 2
        for i in range(1, n):
            x = relu(x @ p[f"w{i}"] + p[f"b{i}"])
        z = x @ p[f"w{n}"] + p[f"b{n}"]
        m = sg(fl.max(z, axis=-1, keepdims=True))  # NOTE: logsumexp is invariant to the shift m
        lse = fl.log(fl.sum(fl.exp(z - m), axis=-1)) + m[..., 0]
        return fl.mean(lse - fl.sum(yoh * z, axis=-1))

    return loss


# ----------------------------------------------------------------------------------
# autograd, torch, jax
# ----------------------------------------------------------------------------------
def ag_loss() -> Any:
    import autograd.numpy as anp

    def loss(p: dict[str, Any], x: Any, yoh: Any) -> Any:
        n = len(p) // 2
        for i in range(1, n):
            x = anp.maximum(x @ p[f"w{i}"] + p[f"b{i}"], 0.0)
        z = x @ p[f"w{n}"] + p[f"b{n}"]
        m = anp.max(z, axis=-1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(z - m), axis=-1)) + m[..., 0]
        return anp.mean(lse - anp.sum(yoh * z, axis=-1))

    return loss


def torch_loss(torch: Any) -> Any:
    F = torch.nn.functional

    def loss(p: dict[str, Any], x: Any, y: Any) -> Any:
        n = len(p) // 2
        for i in range(1, n):
            x = torch.relu(x @ p[f"w{i}"] + p[f"b{i}"])
        return F.cross_entropy(x @ p[f"w{n}"] + p[f"b{n}"], y)

    return loss


def jax_loss(jax: Any) -> Any:
    jnp = jax.numpy

    def loss(p: dict[str, Any], x: Any, yoh: Any) -> Any:
        n = len(p) // 2
        for i in range(1, n):
            x = jax.nn.relu(x @ p[f"w{i}"] + p[f"b{i}"])
        z = x @ p[f"w{n}"] + p[f"b{n}"]
        return jnp.mean(jax.nn.logsumexp(z, axis=-1) - jnp.sum(yoh * z, axis=-1))

    return loss


# ----------------------------------------------------------------------------------
# functorch_lite.nn (when it exists)
# ----------------------------------------------------------------------------------
def fl_nn_model(fl: Any, params: dict[str, np.ndarray]) -> Any:
    """An nn.Sequential with the given weights (nn.Linear stores weight as (out, in))."""
    import functorch_lite.nn as nn

    n = len(params) // 2
    layers: list[Any] = []
    for i in range(1, n + 1):
        w = params[f"w{i}"]
        layers.append(nn.Linear(w.shape[0], w.shape[1]))
        if i < n:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    lin = [m for m in layers if isinstance(m, nn.Linear)]
    for i, m in enumerate(lin, start=1):
        m.weight = nn.Parameter(fl.asarray(np.ascontiguousarray(params[f"w{i}"].T)))
        m.bias = nn.Parameter(fl.asarray(params[f"b{i}"]))
    return model


def fl_nn_grads_as_dict(model: Any, grads: Any) -> dict[str, Any]:
    """nn gradients (dotted names) -> {w1, b1, ...} in the (in, out) layout."""
    names = [n for n, _ in model.named_parameters()]
    if not isinstance(grads, dict):
        grads = dict(zip(names, [g for g in _leaves(grads)], strict=False))
    out = {}
    for i in range(len(names) // 2):
        out[f"w{i + 1}"] = np.asarray(grads[names[2 * i]]).T
        out[f"b{i + 1}"] = np.asarray(grads[names[2 * i + 1]])
    return out


def fl_nn_params_as_dict(model: Any) -> dict[str, Any]:
    ps = [np.asarray(p) for _, p in model.named_parameters()]
    out = {}
    for i in range(len(ps) // 2):
        out[f"w{i + 1}"] = ps[2 * i].T
        out[f"b{i + 1}"] = ps[2 * i + 1]
    return out


def _leaves(tree: Any) -> list[Any]:
    import functorch_lite as fl

    return fl.tree_util.tree_leaves(tree)
