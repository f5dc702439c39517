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
    arrays = [leaves[i]._a for i in pos]
    if pos and _fusing():
        import dask

        from . import _fuse

        with dask.config.set(array_optimize=_fuse.optimize):  # (also runs the in-place rewrite)
            values = _backend.compute_lazy(arrays, client=client, timeout=timeout)
    else:
        values = _backend.compute_lazy(arrays, client=client, timeout=timeout)
    nxp = _backend.numpy_backend.xp
    for i, v in zip(pos, values, strict=True):
        leaves[i] = wrap(v, nxp)
    return tu.tree_unflatten(treedef, leaves)


def _fusing() -> bool:
    """Whether `compute` merges each chunk's tasks (`_fuse`): not under a user's own
    ``array_optimize``, nor with the dask config ``functorch_lite.fuse-chunk-tasks: false``."""
    import dask

    return dask.config.get("array_optimize", None) is None and bool(
        dask.config.get("functorch_lite.fuse-chunk-tasks", True)
    )


def persist(tree: Any, *, client: Any = None, balance: bool = True, timeout: float | None = None) -> Any:
    """Persist every dask-backed Tensor of ``tree``: computed once and kept on the workers.

    Use it on training data that fits the cluster's memory, so every step reads it from
    memory instead of recomputing it (loading files, ``da.random``); do not use it on data
    larger than the workers' memory (stream it: leave it lazy).

    On a ``distributed.Client`` with two or more workers, ``balance=True`` (the default) waits
    for the data and then spreads its row chunks evenly over the workers (by bytes), keeping
    the blocks of one row range of arrays chunked alike by rows (``X`` and ``y``) on one
    worker: left to itself the scheduler may put most chunks on one worker, and every step
    then waits for that one. Chunks that move are copied worker to worker once, here.
    ``balance=False`` returns at once, as dask's own ``persist`` does.

    Args:
        tree: a pytree whose dask-backed Tensors are persisted.
        client: a ``distributed.Client`` (default: dask's current scheduler).
        balance: spread the row chunks evenly over the workers (with a client).
        timeout: seconds to wait for the data when balancing.

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
    cl = client if client is not None else _backend._current_client()
    if balance and cl is not None and arrays:
        arrays = _balance(cl, arrays, timeout)
    for i, a in zip(pos, arrays, strict=True):
        leaves[i] = wrap(a, leaves[i]._xp)
    return tu.tree_unflatten(treedef, leaves)


def _tune_workers(client: Any) -> None:
    """Once per cluster: the workers keep freed chunk temporaries in their heap (see `_worker`)."""
    if client is not None:
        from . import _worker

        _worker.install(client)


# -- balanced placement (persist) -------------------------------------------------------------
def _identity(a: Any) -> Any:
    return a


def _block_futures(a: Any, cl: Any) -> list[tuple[Any, Any]] | None:
    """(key, Future) of every block of dask array ``a`` in row-major block order, when every
    block is a future of ``cl`` (``a`` is persisted by that client); else None."""
    import distributed
    from dask.core import flatten

    out = []
    graph = a.__dask_graph__()
    for k in flatten(a.__dask_keys__()):
        f = graph.get(k)
        if not isinstance(f, distributed.Future) or f.key != k or f.client is not cl:
            return None
        out.append((k, f))
    return out


def _block_nbytes(a: Any, key: Any) -> int:
    n = int(a.dtype.itemsize)
    for d, i in enumerate(key[1:]):
        n *= int(a.chunks[d][i])
    return n


def _holders(blocks: list[tuple[int, Any]], who: dict[Any, Any]) -> list[str]:
    """The workers that hold most bytes of a shard, sorted (several when the shard has replicas,
    such as the copies a stolen task leaves behind): ``blocks`` are (bytes, key) pairs."""
    held: dict[str, int] = {}
    for nb, k in blocks:
        for w in who.get(k, ()):
            held[w] = held.get(w, 0) + nb
    most = max(held.values(), default=0)
    return sorted(w for w, n in held.items() if n == most)


def _homes(sizes: list[int], holders: list[list[str]]) -> list[str | None]:
    """Each shard's worker among its holders: a shard held in full by several workers counts on
    the least loaded of them (largest shards first), so replicas never make an even placement
    look uneven (which would move blocks for nothing)."""
    load: dict[str, int] = {}
    homes: list[str | None] = [hs[0] if len(hs) == 1 else None for hs in holders]
    for u, h in enumerate(homes):
        if h is not None:
            load[h] = load.get(h, 0) + sizes[u]
    for u in sorted((u for u, hs in enumerate(holders) if len(hs) > 1), key=lambda u: -sizes[u]):
        h = min(holders[u], key=lambda w: (load.get(w, 0), w))
        homes[u] = h
        load[h] = load.get(h, 0) + sizes[u]
    return homes


def _plan(sizes: list[int], homes: list[str], workers: list[str]) -> list[str]:
    """Shard -> worker: shards stay where they are, except that shards move from the most to the
    least loaded worker while a move narrows the gap (greedy; about an equal share of bytes each)."""
    load = dict.fromkeys(workers, 0)
    for s, h in zip(sizes, homes, strict=True):
        load[h] = load.get(h, 0) + s
    target = list(homes)
    for _ in range(len(sizes)):
        hi = max(load, key=lambda w: load[w])
        lo = min(load, key=lambda w: load[w])
        gap = load[hi] - load[lo]
        movable = [u for u, w in enumerate(target) if w == hi and 0 < sizes[u] < gap]
        if not movable:
            break
        u = min(movable, key=lambda u: abs(gap - 2 * sizes[u]))  # the move that evens the pair most
        target[u] = lo
        load[hi] -= sizes[u]
        load[lo] += sizes[u]
    return target


def _balance(cl: Any, arrays: list[Any], timeout: float | None) -> list[Any]:
    """Persisted ``arrays`` with their row chunks spread evenly over ``cl``'s workers.

    The blocks of one row index across arrays chunked alike by rows (``X`` and ``y``) form a
    shard and are kept on one worker. Blocks that move are copied worker to worker by a task
    pinned to the new worker; an array with a moved block gets new keys (the old copies are
    released when the old persisted array is dropped). ``client.rebalance`` is not used: it
    balances process memory and moves nothing while the workers are below its thresholds."""
    import distributed

    workers = sorted(cl.scheduler_info()["workers"])
    blocks = [_block_futures(a, cl) if getattr(a, "ndim", 0) >= 1 else None for a in arrays]
    if len(workers) < 2 or not any(blocks):
        return arrays
    distributed.wait([f for b in blocks if b for _, f in b], timeout=timeout)
    who = cl.who_has([f for b in blocks if b for _, f in b])
    groups: dict[tuple[Any, ...], list[int]] = {}  # arrays chunked alike along rows
    for i, (a, b) in enumerate(zip(arrays, blocks, strict=True)):
        rows = tuple(a.chunks[0])
        if b and all(r == r for r in rows):
            groups.setdefault(rows, []).append(i)
    shards: list[list[tuple[int, Any]]] = []  # (array index, key) of each shard's blocks
    for rows, members in groups.items():
        by_row: list[list[tuple[int, Any]]] = [[] for _ in rows]
        for i in members:
            for k, _ in blocks[i] or ():
                by_row[k[1]].append((i, k))
        shards.extend(by_row)
    sizes = [sum(_block_nbytes(arrays[i], k) for i, k in s) for s in shards]
    homes = _homes(sizes, [_holders([(_block_nbytes(arrays[i], k), k) for i, k in s], who) for s in shards])
    keep = [u for u, h in enumerate(homes) if h in workers]
    placed = [str(homes[u]) for u in keep]
    plan = dict(zip(keep, _plan([sizes[u] for u in keep], placed, workers), strict=True))
    dest: dict[Any, str] = {}
    for u, dw in plan.items():
        for _, k in shards[u]:
            dest[k] = dw
    moved = {i for i, b in enumerate(blocks) if b and any(k in dest and dest[k] not in who.get(k, ()) for k, _ in b)}
    if not moved:
        return arrays
    import uuid

    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    out = list(arrays)
    new: list[Any] = []
    for i in sorted(moved):
        a, name = arrays[i], f"{arrays[i].name.split('-')[0]}-balanced-{uuid.uuid4().hex}"
        layer: dict[Any, Any] = {}
        for k, f in blocks[i] or ():
            w = dest.get(k)
            pin = {"workers": [w], "allow_other_workers": False} if w is not None else {}
            layer[(name, *k[1:])] = cl.submit(_identity, f, key=(name, *k[1:]), pure=False, **pin)
        new.extend(layer.values())
        out[i] = da.Array(HighLevelGraph.from_collections(name, layer, dependencies=()), name, a.chunks, meta=a._meta)
    distributed.wait(new, timeout=timeout)
    return out


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


def _wide(a: Any, scale: float) -> Any:
    """``scale * a``, floating arrays widened to 64 bits (per-shard parts add up without rounding
    to the parameters' float32 on the way); other leaves as they are (scaled in their own dtype)."""
    import numpy as np

    if not hasattr(a, "dtype"):
        return a
    a = np.asarray(a)
    kind = a.dtype.kind
    if kind in "fc":
        return a.astype(np.complex128 if kind == "c" else np.float64) * scale
    return a if scale == 1.0 else (a * scale).astype(a.dtype)


def _dtype(a: Any) -> Any:
    return getattr(a, "dtype", None)


def _add(a: Any, b: Any) -> Any:
    (va, ga), (vb, gb) = a, b
    return va + vb, tu.tree_map(lambda x, y: x + y, ga, gb)


def _shards_step(fn: Any, params: Any, scales: list[float], use_jit: bool, n_data: int, *arrays: Any) -> Any:
    """On a worker: the weighted sum over shards of ``value_and_grad(fn)(params, *shard)``.

    ``arrays`` holds ``n_data`` blocks per shard, shard after shard; shard ``j`` is weighted by
    ``scales[j]`` (its rows over all rows, for a mean). Returns (value, grads) in 64-bit floats
    and the dtypes to cast them back to."""
    np_ = _backend.numpy_backend
    params_t = tu.tree_map(lambda a: wrap(a, np_.xp) if _backend.backend_of(a) is np_ else a, params)
    step = _jitted(fn, use_jit)
    acc = dtypes = None
    for j, scale in enumerate(scales):
        shard = [_backend.host_to_tensor(a, "numpy") for a in arrays[j * n_data : (j + 1) * n_data]]
        value, grads = _to_host(step(params_t, *shard))
        part = (_wide(value, scale), tu.tree_map(lambda a: _wide(a, scale), grads))  # noqa: B023
        acc = part if acc is None else _add(acc, part)
        dtypes = (_dtype(value), tu.tree_map(_dtype, grads))
    return acc, dtypes


def _cast(a: Any, dtype: Any) -> Any:
    import numpy as np

    return a if dtype is None else np.asarray(a).astype(dtype)


def _row_array(t: Any, i: int, chunks: Any) -> tuple[Any, Any]:
    """The dask array of data argument ``i`` (one block per row chunk) and its row chunks."""
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
    return a, rows


def _by_worker(cl: Any, arrays: list[Any], timeout: float | None) -> dict[str | None, list[int]] | None:
    """Row shard indices grouped by the worker holding (most bytes of) each shard, when every
    data array is persisted on ``cl``; None otherwise. One scheduler round trip (``who_has``)."""
    import distributed

    blocks = [_block_futures(a, cl) for a in arrays]
    if not all(blocks):
        return None
    futs = [f for b in blocks for _, f in b or ()]
    distributed.wait(futs, timeout=timeout)  # (persist returns at once: wait for the data to be there)
    who = cl.who_has(futs)
    shards = [
        [(_block_nbytes(a, b[r][0]), b[r][0]) for a, b in zip(arrays, blocks, strict=True) if b]
        for r in range(len(arrays[0].chunks[0]))
    ]
    homes = _homes([sum(nb for nb, _ in s) for s in shards], [_holders(s, who) for s in shards])
    groups: dict[str | None, list[int]] = {}
    for r, h in enumerate(homes):
        groups.setdefault(h, []).append(r)
    return groups


def data_parallel(
    fn: Callable[..., Any],
    *,
    client: Any = None,
    reduction: str = "mean",
    jit: bool = True,
    timeout: float | None = None,
) -> Callable[..., tuple[Tensor, Any]]:
    """A data-parallel ``value_and_grad`` of ``fn(params, *data)``: one shard per row chunk.

    On a ``distributed.Client`` with data persisted there (`persist`), each step submits one
    task per worker, pinned to it, that loops over the shards the worker holds: a
    ``fl.jit``-ed ``value_and_grad(fn)`` (made once per worker) on each shard, the results
    summed, weighted by rows when ``reduction="mean"`` (so a mean loss gives the full batch's
    mean and its gradient); the client adds the workers' few partial sums. Every task gets
    the same parameters, so every shard sees the same state. Data that is not persisted (or no
    client) takes one task per shard and a tree of sums in one graph submission instead.
    Partial sums are kept in 64-bit floats and cast back to the parameters' dtypes at the end.

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
        arrays: list[Any] = []
        for i, t in enumerate(data):
            a, chunks = _row_array(t, i, chunks)
            arrays.append(a)
        rows = chunks or ()
        n_total = int(sum(rows))
        scales = [r / n_total if reduction == "mean" else 1.0 for r in rows]
        host = _to_host(params)
        n = len(arrays)
        groups = None
        if cl is not None:
            _tune_workers(cl)
            if id(cl) not in shipped:  # kept alive: workers keep one fn object, so its jit cache hits
                shipped[id(cl)] = (cl, cl.scatter([fn], broadcast=True, hash=False)[0])
            fn_ref = shipped[id(cl)][1]
            groups = _by_worker(cl, arrays, timeout)
        else:
            fn_ref = fn
        if groups is not None:  # one task per worker, on the shards it holds; the client adds them
            assert cl is not None
            blocks = [[f for _, f in _block_futures(a, cl) or ()] for a in arrays]
            futs = []
            for w, shard_ids in groups.items():
                args = [blocks[d][r] for r in shard_ids for d in range(n)]
                pin = {"workers": [w], "allow_other_workers": False} if w is not None else {}
                sc = [scales[r] for r in shard_ids]
                futs.append(cl.submit(_shards_step, fn_ref, host, sc, jit, n, *args, pure=False, **pin))
            import distributed

            distributed.wait(futs, timeout=timeout)
            results = cl.gather(futs)
        else:  # one task per shard (data computed in the same graph), a tree of sums on the cluster
            # the parameters: one key of the step's graph, read by every shard's task
            p_ref = dask.delayed(host, pure=True, traverse=False)
            task = dask.delayed(_shards_step, pure=False)
            per = [list(a.to_delayed().reshape(-1)) for a in arrays]
            parts = [task(fn_ref, p_ref, [scales[r]], jit, n, *(p[r] for p in per)) for r in range(len(rows))]
            add = dask.delayed(_add_results, pure=False)
            while len(parts) > 1:
                parts = [
                    add(parts[k], parts[k + 1]) if k + 1 < len(parts) else parts[k] for k in range(0, len(parts), 2)
                ]
            if cl is not None:
                results = [cl.compute(parts[0]).result(timeout=timeout)]
            else:
                results = [dask.compute(parts[0])[0]]
        (value, grads), (dt_v, dt_g) = results[0]
        for (v, g), _ in results[1:]:
            value, grads = _add((value, grads), (v, g))
        nxp = _backend.numpy_backend.xp
        as_t = lambda a, dt: wrap(_backend.host_array(_cast(a, dt)), nxp)  # noqa: E731
        return as_t(value, dt_v), tu.tree_map(as_t, grads, dt_g)

    return step


def _add_results(a: Any, b: Any) -> Any:
    return _add(a[0], b[0]), a[1]
