"""Pytrees, built on optree: tuples, lists, dicts, namedtuples, None and registered classes.

``None`` is an empty subtree (as in JAX); Tensors and arrays are leaves.
Every registration lives in functorch_lite's own optree namespace, so it
never leaks into other libraries' pytrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optree

__all__ = [
    "NAMESPACE",
    "PyTreeDef",
    "tree_map",
    "tree_map_with_path",
    "tree_flatten",
    "tree_flatten_with_path",
    "tree_unflatten",
    "tree_leaves",
    "tree_structure",
    "tree_all",
    "tree_any",
    "tree_reduce",
    "broadcast_prefix",
    "register_pytree_node",
    "register_dataclass",
    "keystr",
    "path_names",
]

NAMESPACE = "functorch_lite"
PyTreeDef = optree.PyTreeSpec


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], PyTreeDef]:
    """Flatten a pytree into its leaves and a structure.

    Example:
        >>> from functorch_lite import tree_util
        >>> leaves, treedef = tree_util.tree_flatten({"a": 1, "b": (2, 3)})
        >>> leaves
        [1, 2, 3]
    """
    return optree.tree_flatten(tree, is_leaf=is_leaf, namespace=NAMESPACE)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a pytree from a structure and leaves.

    Example:
        >>> from functorch_lite import tree_util
        >>> leaves, treedef = tree_util.tree_flatten([1, (2, 3)])
        >>> tree_util.tree_unflatten(treedef, [4, 5, 6])
        [4, (5, 6)]
    """
    return optree.tree_unflatten(treedef, leaves)


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """The leaves of a pytree, in flattening order.

    Example:
        >>> from functorch_lite import tree_util
        >>> tree_util.tree_leaves({"b": 2, "a": [1, None]})
        [1, 2]
    """
    return optree.tree_leaves(tree, is_leaf=is_leaf, namespace=NAMESPACE)


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The structure of a pytree."""
    return optree.tree_structure(tree, is_leaf=is_leaf, namespace=NAMESPACE)


def tree_map(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``f`` to every leaf (of ``tree`` and the matching leaves of ``rest``).

    Example:
        >>> from functorch_lite import tree_util
        >>> tree_util.tree_map(lambda a, b: a + b, (1, {"x": 2}), (10, {"x": 20}))
        (11, {'x': 22})
    """
    return optree.tree_map(f, tree, *rest, is_leaf=is_leaf, namespace=NAMESPACE)


def tree_map_with_path(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Like [`tree_map`][functorch_lite.tree_util.tree_map], with the leaf's dotted path string as first argument.

    Example:
        >>> from functorch_lite import tree_util
        >>> tree_util.tree_map_with_path(lambda p, v: p, {"a": [1, 2]})
        {'a': ['a.0', 'a.1']}
    """

    def g(path: tuple[Any, ...], *leaves: Any) -> Any:
        return f(keystr(path), *leaves)

    return optree.tree_map_with_path(g, tree, *rest, is_leaf=is_leaf, namespace=NAMESPACE)


def tree_flatten_with_path(
    tree: Any, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[str], list[Any], PyTreeDef]:
    """Flatten to (dotted paths, leaves, structure).

    Example:
        >>> from functorch_lite import tree_util
        >>> paths, leaves, _ = tree_util.tree_flatten_with_path({"w": [1, 2]})
        >>> paths
        ['w.0', 'w.1']
    """
    paths, leaves, treedef = optree.tree_flatten_with_path(tree, is_leaf=is_leaf, namespace=NAMESPACE)
    return [keystr(p) for p in paths], leaves, treedef


def tree_all(tree: Any) -> bool:
    return all(tree_leaves(tree))


def tree_any(tree: Any) -> bool:
    return any(tree_leaves(tree))


def tree_reduce(f: Callable[[Any, Any], Any], tree: Any, initial: Any = None) -> Any:
    leaves = tree_leaves(tree)
    if initial is None:
        it = iter(leaves)
        acc = next(it)
    else:
        it = iter(leaves)
        acc = initial
    for leaf in it:
        acc = f(acc, leaf)
    return acc


def broadcast_prefix(prefix: Any, tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """Leaves of ``prefix`` repeated so there is one per leaf of ``tree``.

    ``None`` in the prefix is a leaf here (it means "unmapped" in in_axes).
    Raises ValueError when ``prefix`` is not a prefix of ``tree``.
    """
    return optree.broadcast_prefix(prefix, tree, is_leaf=is_leaf, none_is_leaf=True, namespace=NAMESPACE)


def keystr(path: Sequence[Any]) -> str:
    """The dotted name of a key path: ``("layers", 0, "weight")`` -> ``"layers.0.weight"``."""
    return ".".join(str(getattr(k, "name", k)) for k in path)


def path_names(tree: Any) -> list[str]:
    return tree_flatten_with_path(tree)[0]


def register_pytree_node(
    cls: type,
    flatten_func: Callable[[Any], tuple[Iterable[Any], Any] | tuple[Iterable[Any], Any, Iterable[Any]]],
    unflatten_func: Callable[[Any, Iterable[Any]], Any],
) -> type:
    """Register ``cls`` as a pytree node.

    ``flatten_func(obj) -> (children, aux_data[, keys])`` and
    ``unflatten_func(aux_data, children) -> obj``, as in JAX.

    Example:
        >>> from functorch_lite import tree_util
        >>> class Pair:
        ...     def __init__(self, a, b):
        ...         self.a, self.b = a, b
        >>> _ = tree_util.register_pytree_node(
        ...     Pair, lambda p: ((p.a, p.b), None), lambda aux, ch: Pair(*ch))
        >>> tree_util.tree_leaves(Pair(1, 2))
        [1, 2]
    """

    def flatten(obj: Any) -> Any:
        out = flatten_func(obj)
        if len(out) == 2:
            children, aux = out
            return children, aux
        children, aux, keys = out
        return children, aux, tuple(keys)

    optree.register_pytree_node(cls, flatten, unflatten_func, namespace=NAMESPACE)
    return cls


def register_dataclass(
    cls: type | None = None,
    *,
    data_fields: Sequence[str] | None = None,
    meta_fields: Sequence[str] | None = None,
) -> Any:
    """Register a dataclass as a pytree: ``data_fields`` are children, ``meta_fields`` static.

    Usable as a decorator. By default every field is a data field.

    Example:
        >>> import dataclasses
        >>> from functorch_lite import tree_util
        >>> @tree_util.register_dataclass
        ... @dataclasses.dataclass
        ... class Params:
        ...     w: float
        ...     b: float
        >>> tree_util.tree_leaves(Params(1.0, 2.0))
        [1.0, 2.0]
    """

    def wrap(c: type) -> type:
        if not dataclasses.is_dataclass(c):
            raise TypeError(
                f"register_dataclass: {c.__name__} is not a dataclass; decorate it with "
                "@dataclasses.dataclass first (below @register_dataclass)."
            )
        names = [f.name for f in dataclasses.fields(c)]
        data = (
            list(data_fields)
            if data_fields is not None
            else [n for n in names if meta_fields is None or n not in meta_fields]
        )
        meta = list(meta_fields) if meta_fields is not None else [n for n in names if n not in data]

        def flatten(obj: Any) -> Any:
            return (
                [getattr(obj, n) for n in data],
                tuple(getattr(obj, n) for n in meta),
                data,
            )

        def unflatten(aux: Any, children: Iterable[Any]) -> Any:
            kwargs = dict(zip(data, children, strict=True))
            kwargs.update(zip(meta, aux, strict=True))
            obj = object.__new__(c)
            for k, v in kwargs.items():
                object.__setattr__(obj, k, v)
            return obj

        optree.register_pytree_node(c, flatten, unflatten, namespace=NAMESPACE)  # type: ignore[arg-type]
        return c

    return wrap if cls is None else wrap(cls)


_COTANGENT = __import__("threading").local()


def in_cotangent_unflatten() -> bool:
    """True while [`tree_unflatten_cotangent`][functorch_lite.tree_util.tree_unflatten_cotangent] rebuilds a tree of gradients.

    Registered nodes with static data (nn.Module: frozen parameters, buffers)
    put ``None`` there instead of the static values.
    """
    return getattr(_COTANGENT, "on", False)


def tree_unflatten_cotangent(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a tree of gradients (cotangents) of the inputs described by ``treedef``.

    Example:
        >>> from functorch_lite import tree_util
        >>> _, treedef = tree_util.tree_flatten([1.0, 2.0])
        >>> tree_util.tree_unflatten_cotangent(treedef, [0.5, 0.5])
        [0.5, 0.5]
    """
    prev = getattr(_COTANGENT, "on", False)
    _COTANGENT.on = True
    try:
        return treedef.unflatten(leaves)  # (optree.tree_unflatten without its Python wrapper)
    finally:
        _COTANGENT.on = prev
