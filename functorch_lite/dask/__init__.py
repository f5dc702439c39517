"""Training on a ``dask.distributed`` cluster: compute, persist and data-parallel steps.

Data lives in dask arrays (large, chunked, on the workers); parameters stay numpy Tensors
(small, updated on the client every step). An op that meets both lifts the numpy side into
the dask graph as one chunk, so ``fl.value_and_grad(loss)(params, X, y)`` builds one lazy
graph, and [`compute`][functorch_lite.dask.compute] runs it in one submission::

    X, y = fl.dask.persist((fl.asarray(dask_x), fl.asarray(dask_y)))   # once
    for step in range(100):
        loss, grads = fl.dask.compute(fl.value_and_grad(loss_fn)(params, X, y))
        updates, state = tx.update(grads, state, params)
        params = fl.optim.apply_updates(params, updates)

Importing this module does not import dask; its functions do, when called. See
``docs/concepts/cluster.md`` for the recipe, numbers and limits.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .. import _backend
from .._core import tree_util as tu
from .._core.tensor import Tensor, wrap
from .._errors import ConfigError, ShapeError, TransformError

__all__ = ["compute", "persist", "data_parallel", "is_lazy"]


def is_lazy(x: Any) -> bool:
    """True when ``x`` is a concrete Tensor backed by a dask array (its values not computed yet).

    Example:
        >>> import functorch_lite as fl
        >>> fl.dask.is_lazy(fl.ones((2,)))
        False
    """
    return isinstance(x, Tensor) and x._t is None and _backend.is_lazy(x._a)


def _lazy_positions(leaves: list[Any], op: str) -> list[int]:
    pos = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            if leaf._t is not None:
                raise TransformError(
                    f"fl.dask.{op}: leaf {i} is a tracer (called inside grad / vmap / jit); call "
                    f"{op} on the transform's results, outside the transformed function."
                )
            if _backend.is_lazy(leaf._a):
                pos.append(i)
    return pos


def compute(tree: Any, *, client: Any = None, timeout: float | None = None) -> Any:
    """Compute every dask-backed Tensor in pytree ``tree`` in one graph submission.

    Shared parts of the graph (the forward pass under a loss and its gradients) run once.
    Dask-backed leaves come back as numpy-backed Tensors; other leaves are returned as they are.

    Args:
        tree: a pytree (Tensors, dicts, lists, tuples, Modules).
        client: a ``distributed.Client``; default: dask's current scheduler (the default
            client once one exists, else dask's local threads).
        timeout: seconds to wait for the cluster (raises ``TimeoutError``); needs a client.

    Returns:
        ``tree`` with its dask-backed Tensors replaced by numpy-backed Tensors.

    Example:
        >>> import functorch_lite as fl
        >>> import dask.array as da
        >>> x = fl.asarray(da.ones((4,), chunks=2))
        >>> float(fl.dask.compute(fl.sum(x)))
        4.0
    """
    leaves, treedef = tu.tree_flatten(tree)
    pos = _lazy_positions(leaves, "compute")
    if pos:
        _tune_workers(client if client is not None else _backend._current_client())
    values = _backend.compute_lazy([leaves[i]._a for i in pos], client=client, timeout=timeout)
    nxp = _backend.numpy_backend.xp
    for i, v in zip(pos, values, strict=True):
        leaves[i] = wrap(v, nxp)
    return tu.tree_unflatten(treedef, leaves)


def persist(tree: Any, *, client: Any = None) -> Any:
    """Persist every dask-backed Tensor of ``tree``: computed once and kept on the workers.

    Use it on training data that fits the cluster's memory, so every step reads it from
    memory instead of recomputing it (loading files, ``da.random``); do not use it on data
    larger than the workers' memory (stream it: leave it lazy).

    Example:
        >>> import functorch_lite as fl
        >>> import dask.array as da
        >>> x = fl.dask.persist(fl.asarray(da.ones((4,), chunks=2)))
        >>> fl.dask.is_lazy(x)
        True
    """
    leaves, treedef = tu.tree_flatten(tree)
    pos = _lazy_positions(leaves, "persist")
    arrays = _backend.persist_lazy([leaves[i]._a for i in pos], client=client)
    for i, a in zip(pos, arrays, strict=True):
        leaves[i] = wrap(a, leaves[i]._xp)
    return tu.tree_unflatten(treedef, leaves)


def _tune_workers(client: Any) -> None:
    """Once per cluster: the workers keep freed chunk temporaries in their heap (see `_worker`)."""
    if client is not None:
        from . import _worker

        _worker.install(client)


# -- data-parallel steps --------------------------------------------------------------------------
_STEPS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _jitted(fn: Callable[..., Any], use_jit: bool) -> Any:
    """``jit(value_and_grad(fn))``, made once per function object in this (worker) process."""
    step = _STEPS.get(fn)
    if step is None:
        from ..transforms import jit, value_and_grad

        step = jit(value_and_grad(fn)) if use_jit else value_and_grad(fn)
        _STEPS[fn] = step
    return step


def _to_host(tree: Any) -> Any:
    return tu.tree_map(lambda t: _backend.host_array(t.concrete()._a) if isinstance(t, Tensor) else t, tree)


def _shard_step(fn: Any, params: Any, n_total: int, reduction: str, use_jit: bool, *arrays: Any) -> tuple[Any, Any]:
    """On a worker: value and gradient of ``fn(params, *shard)``, weighted for the global reduction."""
    np_ = _backend.numpy_backend
    params_t = tu.tree_map(lambda a: wrap(a, np_.xp) if _backend.backend_of(a) is np_ else a, params)
    shard = [_backend.host_to_tensor(a, "numpy") for a in arrays]
    value, grads = _jitted(fn, use_jit)(params_t, *shard)
    rows = int(arrays[0].shape[0])
    scale = rows / n_total if reduction == "mean" else 1.0
    return _scaled(_to_host(value), scale), tu.tree_map(lambda a: _scaled(a, scale), _to_host(grads))


def _scaled(a: Any, scale: float) -> Any:
    if scale == 1.0 or not hasattr(a, "dtype"):
        return a
    return (a * scale).astype(a.dtype)


def _tree_add(a: Any, b: Any) -> Any:
    (va, ga), (vb, gb) = a, b
    return va + vb, tu.tree_map(lambda x, y: x + y, ga, gb)


def _row_blocks(t: Any, i: int, chunks: Any) -> tuple[list[Any], Any]:
    """The row blocks of dask-backed Tensor ``t`` as dask Delayed objects, one per row chunk."""
    if not is_lazy(t):
        raise ConfigError(
            f"fl.dask.data_parallel: data argument {i} is not a dask-backed Tensor; wrap the data "
            "with fl.asarray(dask_array) (its row chunks are the shards)."
        )
    a = t._a
    if a.ndim == 0:
        raise ShapeError(f"fl.dask.data_parallel: data argument {i} is 0-d; data needs a first (row) dimension.")
    rows = tuple(a.chunks[0])
    if any(r != r for r in rows):
        raise ShapeError(
            f"fl.dask.data_parallel: data argument {i} has unknown row chunk sizes (nan); call "
            "compute_chunk_sizes() on the dask array first."
        )
    if chunks is not None and rows != chunks:
        raise ShapeError(
            f"fl.dask.data_parallel: data argument {i} has row chunks {rows} but argument 0 has {chunks}; "
            "every data argument must be chunked alike along rows: rechunk with x.rechunk({0: chunks})."
        )
    if a.ndim > 1 and any(len(c) > 1 for c in a.chunks[1:]):
        a = a.rechunk({d: -1 for d in range(1, a.ndim)})  # one block per shard: whole rows
    return list(a.to_delayed().reshape(-1)), rows


def data_parallel(
    fn: Callable[..., Any],
    *,
    client: Any = None,
    reduction: str = "mean",
    jit: bool = True,
    timeout: float | None = None,
) -> Callable[..., tuple[Tensor, Any]]:
    """A data-parallel ``value_and_grad`` of ``fn(params, *data)``: one shard per row chunk.

    Each shard's value and gradient are computed on the worker that holds it, by a
    ``fl.jit``-ed ``value_and_grad(fn)`` made once per worker; the same parameters go to
    every shard each step (one key of the step's graph); the shards' results are summed on the cluster
    (weighted by rows when ``reduction="mean"``, so a mean loss gives the full batch's mean
    and its gradient) and come back as numpy Tensors, in one graph submission per step.

    Args:
        fn: ``fn(params, *data) -> scalar``, a mean (``reduction="mean"``) or a sum
            (``reduction="sum"``) over the rows of its data.
        client: a ``distributed.Client`` (default: the default client; dask's local
            scheduler when there is none).
        reduction: ``"mean"`` or ``"sum"``, how ``fn`` reduces rows.
        jit: run ``jit(value_and_grad(fn))`` on the workers (else ``value_and_grad(fn)``).
        timeout: seconds to wait for a step's results, with a client.

    Returns:
        ``step(params, *data) -> (value, grads)``; ``data`` are dask-backed Tensors chunked
        alike along rows, ``params`` a pytree of numpy Tensors.

    Example:
        >>> import functorch_lite as fl
        >>> import dask.array as da, numpy as np
        >>> step = fl.dask.data_parallel(lambda w, x: fl.mean((x @ w) ** 2))
        >>> x = fl.asarray(da.ones((4, 2), chunks=(2, 2)))
        >>> v, g = step(fl.asarray(np.ones(2)), x)
        >>> float(v), g.tolist()
        (4.0, [4.0, 4.0])
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"fl.dask.data_parallel: reduction must be 'mean' or 'sum'; got {reduction!r}.")
    if not callable(fn):
        raise ConfigError(f"fl.dask.data_parallel: fn must be callable; got {type(fn).__name__}.")
    shipped: dict[int, Any] = {}  # client id -> (client, the future of fn on every worker)

    def step(params: Any, *data: Any) -> tuple[Tensor, Any]:
        import dask

        if not data:
            raise ConfigError("fl.dask.data_parallel: the step needs at least one data argument after params.")
        cl = client if client is not None else _backend._current_client()
        chunks = None
        blocks: list[list[Any]] = []
        for i, t in enumerate(data):
            b, chunks = _row_blocks(t, i, chunks)
            blocks.append(b)
        n_total = int(sum(chunks or ()))
        host = _to_host(params)
        if cl is not None:
            _tune_workers(cl)
            if id(cl) not in shipped:  # kept alive: workers keep one fn object, so its jit cache hits
                shipped[id(cl)] = (cl, cl.scatter([fn], broadcast=True, hash=False)[0])
            fn_ref = shipped[id(cl)][1]
        else:
            fn_ref = fn
        # the parameters: one key of the step's graph (sent with it, no extra round trip), read by
        # every shard's task, so every shard sees the same state
        p_ref = dask.delayed(host, pure=True, traverse=False)
        task = dask.delayed(_shard_step, pure=False)
        parts = [task(fn_ref, p_ref, n_total, reduction, jit, *shard) for shard in zip(*blocks, strict=True)]
        add = dask.delayed(_tree_add, pure=False)
        while len(parts) > 1:  # pairwise: the all-reduce is a tree of sums on the cluster
            parts = [add(parts[k], parts[k + 1]) if k + 1 < len(parts) else parts[k] for k in range(0, len(parts), 2)]
        if cl is not None:
            fut = cl.compute(parts[0])
            value, grads = fut.result(timeout=timeout)
        else:
            (value, grads) = dask.compute(parts[0])[0]
        nxp = _backend.numpy_backend.xp
        as_t = lambda a: wrap(_backend.host_array(a), nxp)  # noqa: E731
        return as_t(value), tu.tree_map(as_t, grads)

    return step
