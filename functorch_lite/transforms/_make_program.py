"""``make_program``: a function traced into a [`Program`][functorch_lite.transforms.Program], and the static arguments it (and ``jit``) bakes in.

``static_split`` takes the static arguments out of a call (checking they are hashable: they are
part of ``jit``'s cache key), ``merge_statics`` puts them back; the tracing itself is
``transforms/_staging.py``'s ``trace_program``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._errors import TransformError
from ._program import Program
from ._staging import trace_program

__all__ = ["make_program", "static_split", "merge_statics"]


def static_split(
    args: tuple[Any, ...], kwargs: dict[str, Any], static_argnums: tuple[int, ...], static_argnames: tuple[str, ...]
) -> tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...]]:
    """Replace static arguments by placeholders; return (dynamic args, dynamic kwargs, statics)."""
    n = len(args)
    statics: list[Any] = []
    dyn_args = list(args)
    for i in static_argnums:
        j = i % n if -n <= i < n else None
        if j is None:
            raise TransformError(
                f"static_argnums: index {i} is out of range for a call with {n} positional argument(s); "
                f"use indices in [0, {n - 1}] or pass the argument by position."
            )
        statics.append(("pos", j, _hashable(args[j], f"argument {j}")))
        dyn_args[j] = None
    dyn_kwargs = dict(kwargs)
    for k in static_argnames:
        if k in dyn_kwargs:
            statics.append(("kw", k, _hashable(dyn_kwargs[k], f"argument {k!r}")))
            dyn_kwargs[k] = None
    return tuple(dyn_args), dyn_kwargs, tuple(statics)


def _hashable(v: Any, what: str) -> Any:
    try:
        hash(v)
    except TypeError:
        raise TransformError(
            f"static argument {what}: a static argument must be hashable (it is part of the cache key); "
            f"got an unhashable {type(v).__name__}. Pass a tuple instead of a list, or make it a traced input."
        ) from None
    return v


def merge_statics(
    dyn_args: tuple[Any, ...], dyn_kwargs: dict[str, Any], statics: tuple[Any, ...]
) -> tuple[list[Any], dict[str, Any]]:
    args = list(dyn_args)
    kwargs = dict(dyn_kwargs)
    for kind, k, v in statics:
        if kind == "pos":
            args[k] = v
        else:
            kwargs[k] = v
    return args, kwargs


def make_program(
    f: Callable[..., Any], static_argnums: int | Sequence[int] = (), static_argnames: str | Sequence[str] = ()
) -> Callable[..., Program]:
    """Return a function that traces ``f`` on its arguments' shapes and dtypes into a [`Program`][functorch_lite.transforms.Program].

    Arguments may be Tensors, arrays, [`ShapeDtypeStruct`][functorch_lite.transforms.ShapeDtypeStruct]s or Python scalars (weak
    inputs); ``static_argnums`` / ``static_argnames`` name arguments baked into the program.
    Transforms nest: ``make_program(grad(f))`` is the gradient's program.

    Example:
        >>> import functorch_lite as fl
        >>> prog = fl.make_program(fl.grad(lambda x: fl.sum(fl.sin(x))))(fl.ones((2,)))
        >>> print(prog)
        { lambda a:f32[2]; b:f32[2]. let
            c:f32[2] = sin b
            d:f32[] = sum[keepdims=False] c
            e:f32[2] = cos b
            f:f32[2] = multiply a e
          in (f) }
        >>> print(prog.optimized())  # what jit runs: the unit seed and the unused value are gone
        { lambda ; a:f32[2]. let
            b:f32[2] = cos a
          in (b) }
    """
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)

    @functools.wraps(f)
    def staged(*args: Any, **kwargs: Any) -> Program:
        dyn_args, dyn_kwargs, statics = static_split(args, kwargs, nums, names)
        leaves, in_tree = tu.tree_flatten((dyn_args, dyn_kwargs))

        def call(fn: Callable[..., Any], ak: list[Any]) -> Any:
            a, k = merge_statics(tuple(ak[0]), ak[1], statics)
            return fn(*a, **k)

        return trace_program(f, leaves, in_tree=in_tree, kind="make_program", call=call)

    return staged
