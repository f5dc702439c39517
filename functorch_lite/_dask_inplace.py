"""Dask graphs with fewer temporaries: a fused chunk task writes its elementwise chain into dead buffers.

Part of the backend layer (only ``_backend.compute_lazy`` imports it). Dask fuses a chain of
elementwise ops into one task per chunk, and runs each op as a separate numpy call with a fresh
result array. On a ``distributed`` worker every fresh array of a large chunk is page-faulted in
anew: the nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's mmap
threshold at 128 KiB, so each 2 MB temporary is mmap-ed and unmapped again (~0.7 ms for 500k
float32 values, 20x the ``add`` itself). Autodiff's chain rule makes many such ops per chunk.

`optimize` is dask's own array optimization followed by one rewrite: each fused task
(``_execute_subgraph``) runs under `execute_subgraph` instead, which evaluates the same
inner graph in dask's order and, where a numpy ufunc's input is a temporary this task made,
that dies at this op and has the result's shape and dtype, passes it as ``out=`` (what
``fl.jit``'s in-place buffers do for a program). The results are the same numpy calls on the
same values, so they are bitwise equal; inputs from other tasks, constants of the graph and
anything another object still refers to (a view, an alias) are never written.
"""

from __future__ import annotations

import operator
import sys
from collections import defaultdict
from typing import Any

import numpy as np

_OPERATORS: dict[Any, np.ufunc] = {
    operator.add: np.add,
    operator.sub: np.subtract,
    operator.mul: np.multiply,
    operator.truediv: np.true_divide,
    operator.floordiv: np.floor_divide,
    operator.pow: np.power,
    operator.mod: np.remainder,
    operator.neg: np.negative,
    operator.abs: np.absolute,
}
_REUSE_MIN = 1 << 15  # elements: below this a fresh array is cheap (no mmap) and out= costs more than it saves


def optimize(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """``dask.array.optimization.optimize``, then each fused task runs under `execute_subgraph`."""
    from dask.array.optimization import optimize as dask_optimize

    out = dask_optimize(dsk, keys, **kwargs)
    if not isinstance(out, dict):  # (low-level fusion switched off by the user: nothing fused to rewrite)
        return out
    return {k: _rewrite(v) for k, v in out.items()}


def _rewrite(node: Any) -> Any:
    from dask._task_spec import Task, _execute_subgraph

    if type(node) is Task and node.func is _execute_subgraph and isinstance(node.args[0], dict):
        inner = {k: _rewrite(v) for k, v in node.args[0].items()}
        return Task(node.key, execute_subgraph, inner, *node.args[1:], _data_producer=node.data_producer, **node.kwargs)
    return node


def execute_subgraph(inner_dsk: dict, outkey: Any, inkeys: Any, *dependencies: Any) -> Any:
    """dask's ``_execute_subgraph`` (same order, same calls), with dead temporaries reused as ``out=``."""
    from dask._task_spec import DataNode
    from dask.order import order

    final = dict(inner_dsk)
    for k, v in zip(inkeys, dependencies, strict=True):
        final[k] = DataNode(None, v)
    uses: defaultdict[Any, int] = defaultdict(int)
    for node in inner_dsk.values():
        for d in node.dependencies:
            uses[d] += 1
    uses[outkey] += 1  # (the result is never a dead buffer)
    priorities = order(final)
    cache: dict[Any, Any] = {}
    fresh: set[Any] = set()  # keys whose arrays this task allocated (ufunc results): the only reusable ones
    pool: list[Any] = []  # dead arrays this task allocated, that nothing refers to: free buffers
    for key, node in sorted(final.items(), key=lambda it: priorities[it[0]]):
        value, made = _run(node, cache, uses, fresh, pool)
        cache[key] = value
        if made:
            fresh.add(key)
        del value
        for d in node.dependencies:
            uses[d] -= 1
            if uses[d] == 0:
                v = cache.pop(d, None)
                if d in fresh:
                    fresh.discard(d)
                    if _reusable(v) and sys.getrefcount(v) == 2:  # (v and getrefcount's argument)
                        pool.append(v)
                del v
    return cache[outkey]


def _reusable(buf: Any) -> bool:
    return (
        type(buf) is np.ndarray
        and buf.size >= _REUSE_MIN
        and buf.base is None
        and buf.flags.writeable
        and buf.flags.c_contiguous
    )


def _ufunc_of(node: Any) -> tuple[np.ufunc | None, Any]:
    """The ufunc a Task calls (numpy's, an ``operator`` function, or inside dask's ``_enforce_dtype``)
    and the dtype dask enforces on its result (None: none); (None, None) for anything else."""
    from dask.array.core import _enforce_dtype

    f = node.func
    if f is _enforce_dtype:
        kw = node.kwargs
        if set(kw) != {"enforce_dtype", "enforce_dtype_function"}:
            return None, None
        g = kw["enforce_dtype_function"]
        g = _OPERATORS.get(g, g) if not isinstance(g, np.ufunc) else g
        return (g, np.dtype(kw["enforce_dtype"])) if isinstance(g, np.ufunc) else (None, None)
    if node.kwargs:
        return None, None
    if isinstance(f, np.ufunc):
        return f, None
    try:
        return _OPERATORS.get(f), None
    except TypeError:  # (an unhashable callable)
        return None, None


def _weak(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)):
        return v.dtype
    if type(v) in (int, float, complex):
        return type(v)
    return None


def _run(node: Any, cache: dict, uses: Any, fresh: set, pool: list) -> tuple[Any, bool]:
    """Evaluate one node of the inner graph: (its value, whether it is an array this task allocated)."""
    from dask._task_spec import DataNode, GraphNode, Task, TaskRef

    uf, enforce = _ufunc_of(node) if type(node) is Task else (None, None)
    if uf is None or uf.nout != 1 or uf.nin != len(node.args):
        return node(cache), False
    vals: list[Any] = []
    dead: list[tuple[Any, int]] = []  # (temporary of this task that dies here, its references elsewhere)
    for a in node.args:
        if isinstance(a, TaskRef):
            vals.append(cache[a.key])
            if a.key in fresh and uses[a.key] == 1:
                dead.append((vals[-1], 1))  # (the cache holds it)
        elif isinstance(a, DataNode):
            vals.append(a.value)
        elif isinstance(a, GraphNode):  # an inline task: its value exists only here
            vals.append(None)
            vals[-1], made = _run(a, cache, uses, fresh, pool)
            if made:
                dead.append((vals[-1], 0))
        else:
            vals.append(a)
    out = _pick_buffer(uf, enforce, vals, dead, pool)
    dead.clear()
    res = uf(*vals) if out is None else uf(*vals, out=out)
    if enforce is not None and enforce.kind != "O" and getattr(res, "dtype", enforce) != enforce:
        res = res.astype(enforce)  # (what dask's _enforce_dtype does)
    return res, type(res) is np.ndarray


def _pick_buffer(uf: np.ufunc, enforce: Any, vals: list[Any], dead: list[tuple[Any, int]], pool: list) -> Any:
    """An array for the result of ``uf(*vals)``: an input that dies here, else a free buffer; None: a new one."""
    if not dead and not pool:
        return None
    dts = tuple(_weak(v) for v in vals)
    if any(d is None for d in dts):
        return None
    try:
        odt = uf.resolve_dtypes((*dts, None))[-1]
        shape = np.broadcast_shapes(*(np.shape(v) for v in vals))
    except (TypeError, ValueError):
        return None
    if enforce is not None and odt != enforce:
        return None
    for buf, held in dead:
        if not _reusable(buf) or buf.dtype != odt or buf.shape != shape:
            continue
        # referenced by: the cache (held), vals (once per use), the dead tuple, buf, getrefcount's
        # argument; one more reference is a view (its .base) or an alias of it elsewhere: not ours
        if sys.getrefcount(buf) == held + sum(v is buf for v in vals) + 3:
            return buf
    for i, buf in enumerate(pool):
        if buf.dtype == odt and buf.shape == shape:
            return pool.pop(i)
    return None
