"""Fewer tasks per chunk in the graphs that ``fl.dask.compute`` submits.

Dask fuses each chain of blockwise ops into one task per chunk, but a gradient's graph still
has several tasks per row chunk: ``x @ w`` (a matmul with its own contraction), the fused
elementwise chain of the forward and backward pass, and one task per reduction of that chain
(``x.T @ g`` for a weight, ``sum(g)`` for a bias), joined by aliases that linear fusion leaves
behind. Each task costs the scheduler and the worker a fixed overhead, and the shared small
inputs (the lifted parameters) are a task each that the other workers must fetch before they
start. `optimize` runs after dask's own optimization (and `_dask_inplace`'s rewrite) and:

1. drops aliases that nothing requested (their dependents read the target instead);
2. embeds small constant arrays of the graph (the lifted parameters, at most `_SMALL` bytes)
   in the tasks that read them, instead of one task each that every other worker must fetch
   before it starts; a root task computed from such constants alone (a slice or a reshape of
   a parameter) is evaluated here, once, and embedded the same way when its value is small;
3. merges a task into its only dependent when every other input of that dependent is ready
   early: data on the cluster, a root of the graph or a task that reads roots only (a chunk's
   getter), so nothing that could run alongside has to wait, and no cycle forms;
4. merges a task of a chunked layer with all its dependents, under the same condition, into one
   task with several results (the per-chunk reductions of one elementwise chain), which its
   consumers index.

Each merged task evaluates the same task objects in dask's order (``execute_graph``), so the
values are the same; only the number of scheduler tasks changes (the logistic-regression
gradient of the benchmark: 60 tasks for 8 chunks before, 16 after).
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from typing import Any

import numpy as np

_SMALL = 1 << 16  # bytes: constants up to this size are embedded in every task that reads them


def optimize(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """``_dask_inplace.optimize`` (dask's array optimization + in-place chunk tasks), then `fuse`."""
    from dask.core import flatten

    from .. import _dask_inplace

    out = _dask_inplace.optimize(dsk, keys, **kwargs)
    if not isinstance(out, dict):
        return out
    return fuse(out, set(flatten(keys if isinstance(keys, list) else [keys])))


def execute_multi(inner_dsk: dict, outkeys: tuple, inkeys: tuple, *dependencies: Any) -> tuple:
    """dask's ``_execute_subgraph`` with several results: a tuple of the values of ``outkeys``."""
    from dask._task_spec import DataNode, execute_graph

    final = dict(inner_dsk)
    for k, v in zip(inkeys, dependencies, strict=True):
        final[k] = DataNode(None, v)
    res = execute_graph(final, keys=set(outkeys))
    return tuple(res[k] for k in outkeys)


def _layer(key: Any) -> Any:
    """The layer (array) of a chunk's key ``(name, i, j, ...)``; a plain key is its own layer."""
    return key[0] if isinstance(key, tuple) and key else (key,)


def _small_constant(node: Any) -> bool:
    from dask._task_spec import DataNode

    if type(node) is not DataNode:
        return False
    v = node.value
    if isinstance(v, np.ndarray | np.generic):
        return bool(v.nbytes <= _SMALL)
    return isinstance(v, int | float | complex | bool)


def _fold(node: Any) -> Any:
    """A DataNode of the value of root task ``node`` when every input of it is a small constant
    and every function in it one that cannot make a large array of small ones (indexing,
    reshapes, dtype casts, elementwise arithmetic, a broadcast to a small shape), and its value
    is small; else None. (Never a chunk generator or a file read: those are left to the cluster.)"""
    from dask._task_spec import DataNode, Task

    if not isinstance(node, Task) or node.dependencies or node.block_fusion or not _foldable(node):
        return None
    try:
        value = node({})
    except Exception:  # (left to the cluster, which reports it as dask does)
        return None
    out = DataNode(node.key, value)
    return out if _small_constant(out) else None


def _cheap_call(func: Any, args: tuple, kwargs: dict, consts: dict | None = None) -> bool:
    """Whether ``func(*args, **kwargs)`` on small inputs gives a small array cheaply
    (``consts``: the values of the constants of the enclosing subgraph, by key)."""
    from dask.array.chunk import getitem as chunk_getitem
    from dask.array.core import _enforce_dtype
    from dask.utils import methodcaller as dask_methodcaller

    from .. import _dask_inplace

    if isinstance(func, np.ufunc) or func in (operator.getitem, chunk_getitem, np.asarray):
        return True
    if getattr(func, "__module__", None) == "_operator":
        return True
    if isinstance(func, dask_methodcaller):
        return func.method in ("reshape", "astype", "transpose", "copy")
    if func is _enforce_dtype:
        f = kwargs.get("enforce_dtype_function", kwargs.get("_func"))
        return f is not None and _cheap_call(f, (), {})
    inner = getattr(func, "func", None) if isinstance(func, functools.partial) else None
    inner = getattr(inner, "func", inner)  # (dask wraps it in a toolz curry)
    if getattr(inner, "__qualname__", None) == "_broadcast_trick_inner":  # (ones_like, zeros_like, full_like)
        shape = args[0] if args else None
        shape = (consts or {}).get(getattr(shape, "key", None), getattr(shape, "value", shape))
        return isinstance(shape, tuple) and int(np.prod(shape)) <= _SMALL // 8
    return func in (_execute_subgraph_fn(), _dask_inplace.execute_subgraph, execute_multi)


def _execute_subgraph_fn() -> Any:
    from dask._task_spec import _execute_subgraph

    return _execute_subgraph


def _foldable(node: Any) -> bool:
    """Every node of root task ``node`` (its subgraphs' too) is a small constant or a cheap call
    (`_cheap_call`) on small literals; no alias, future or other node."""
    from dask._task_spec import DataNode, Task, TaskRef

    nodes, consts, stack = [], {}, [node]
    while stack:
        n = stack.pop()
        nodes.append(n)
        if type(n) is DataNode:
            consts[n.key] = n.value
        elif isinstance(n, Task):
            for a in (*n.args, *n.kwargs.values()):
                if isinstance(a, dict) and n.func is not np.asarray:
                    stack.extend(a.values())
                elif hasattr(a, "dependencies") and not isinstance(a, TaskRef):
                    stack.append(a)
    for n in nodes:
        if type(n) is DataNode:
            if not _small_constant(n) and not _small_literal(n.value):
                return False
            continue
        if not isinstance(n, Task) or not _cheap_call(n.func, n.args, n.kwargs, consts):
            return False
        for a in (*n.args, *n.kwargs.values()):
            if isinstance(a, TaskRef | dict) or hasattr(a, "dependencies") or callable(a):
                continue
            if not _small_literal(a):
                return False
    return True


def _small_literal(v: Any) -> bool:
    if isinstance(v, np.ndarray | np.generic):
        return bool(v.nbytes <= _SMALL)
    if isinstance(v, tuple | list):
        return len(v) <= 64 and all(_small_literal(e) for e in v)
    return v is None or isinstance(v, int | float | complex | bool | str | slice | np.dtype | type)


def _graph_maps(dsk: dict) -> tuple[dict[Any, set[Any]], dict[Any, set[Any]]]:
    deps = {k: {d for d in v.dependencies if d in dsk} for k, v in dsk.items()}
    dependents: dict[Any, set[Any]] = defaultdict(set)
    for k, ds in deps.items():
        for d in ds:
            dependents[d].add(k)
    return deps, dependents


def _in_order(deps: dict[Any, set[Any]]) -> list[Any]:
    """The keys, each before its inputs (deepest first, then by name). The merges below are
    greedy, so their result depends on the order they visit the tasks in: dict order followed
    dask's graph construction, which varies with the hash seed (the MLP gradient of the tests
    merged to 37 or 61 tasks). Visiting the consumers first is deterministic and merges the most."""
    depth: dict[Any, int] = {}
    for k in deps:
        stack = [k]
        while stack:
            t = stack[-1]
            if t in depth:
                stack.pop()
                continue
            todo = [e for e in deps[t] if e not in depth]
            if todo:
                stack.extend(todo)
                continue
            depth[t] = 1 + max((depth[e] for e in deps[t]), default=-1)
            stack.pop()
    return sorted(deps, key=lambda k: (-depth[k], str(k)))


def fuse(dsk: dict, outputs: set[Any]) -> dict:
    """The rewrites 1-4 of this module on task-spec graph ``dsk`` (``outputs``: the keys asked for)."""
    from dask._task_spec import Alias, GraphNode, Task, TaskRef

    dsk = dict(dsk)
    if not all(isinstance(v, GraphNode) for v in dsk.values()):
        return dsk  # (a legacy graph: left to dask)
    # 1. aliases: dependents read the target
    subs: dict[Any, Any] = {}
    for k, v in dsk.items():
        if type(v) is Alias and k not in outputs and v.target in dsk:
            subs[k] = v.target
    # 2. small constants: embedded where they are read; roots computed from small constants
    # only (a slice or reshape of a lifted parameter) are evaluated here and embedded too
    for k, v in dsk.items():
        if k in outputs or k in subs:
            continue
        if _small_constant(v):
            subs[k] = v
        elif (c := _fold(v)) is not None:
            subs[k] = c
    for k in list(subs):  # chains: an alias of an alias, of a constant
        t = subs[k]
        while not isinstance(t, GraphNode) and t in subs:
            t = subs[t]
        subs[k] = t
    if subs:
        dsk = {k: v.substitute(subs) for k, v in dsk.items() if k not in subs}
    deps, dependents = _graph_maps(dsk)

    def early(e: Any) -> bool:
        """A root (no inputs in the graph) or a task that reads roots only (a data chunk's getter)."""
        return all(not deps[f] for f in deps[e])

    def free(t: Any, d: Any, members: set[Any]) -> bool:
        """Every input of ``t`` other than ``d`` and ``members`` is ready early, so merging waits
        for nothing that could run alongside; and no cycle forms: such an input reads roots
        only, so it reads no member (a dependent of ``d`` is a member)."""
        return all(e in members or early(e) for e in deps[t] if e != d)

    def mergeable(k: Any) -> bool:
        return isinstance(dsk.get(k), Task) and not dsk[k].block_fusion

    # 3. a task into its only dependent (linear fusion where the dependent also reads roots)
    for d in _in_order(deps):
        if d not in dsk or d in outputs or not mergeable(d):
            continue
        ts = dependents.get(d, set())
        if len(ts) != 1:
            continue
        (t,) = ts
        if not mergeable(t) or not free(t, d, set()):
            continue
        dsk[t] = Task.fuse(dsk[d], dsk[t], key=t)
        del dsk[d]
        deps[t] = (deps[t] | deps[d]) - {d}
        for e in deps[d]:
            dependents[e].discard(d)
            dependents[e].add(t)
        del deps[d], dependents[d]
    # 4. a chunk's task with all its dependents: one task, several results
    per_layer: dict[Any, int] = defaultdict(int)
    for k in dsk:
        per_layer[_layer(k)] += 1
    for d in _in_order(deps):
        if d not in dsk or d in outputs or not mergeable(d) or per_layer[_layer(d)] < 2:
            continue
        sibs = tuple(sorted(dependents.get(d, set()), key=str))
        if len(sibs) < 2 or any(t in outputs or not mergeable(t) for t in sibs):
            continue
        members = {d, *sibs}
        if not all(free(t, d, members) for t in sibs) or any(dependents.get(t, set()) & members for t in sibs):
            continue
        inner = {k: dsk[k] for k in (d, *sibs)}
        ext = tuple(sorted({e for k in members for e in dsk[k].dependencies} - members, key=hash))
        dsk[d] = Task(d, execute_multi, inner, sibs, ext, *(TaskRef(e) for e in ext))
        pick = {t: Task(t, operator.getitem, TaskRef(d), j) for j, t in enumerate(sibs)}
        for t in sibs:
            for c in dependents.get(t, set()):
                dsk[c] = dsk[c].substitute(pick)
                deps[c] = (deps[c] - {t}) | {d}
            dependents[d] = (dependents[d] - {t}) | dependents.get(t, set())
            deps[d] |= deps[t] - members
            for e in deps[t] - members:
                dependents[e].discard(t)
                dependents[e].add(d)
            del dsk[t], deps[t]
            dependents.pop(t, None)
    return dsk
