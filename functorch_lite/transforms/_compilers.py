"""The compilers ``fl.jit(f, compiler=...)`` hands a traced program's concrete replay to.

One [`Program`][functorch_lite.transforms.Program], each backend's own compiler:

* ``"replay"``: the straight-line Python replay of ``_replay.compile_replay`` (every backend);
* ``"xla"`` (jax): that replay traced by ``jax.jit``, so XLA fuses it; ``scan``, ``cond`` and
  ``while_loop`` become ``lax.scan``, ``lax.switch`` and ``lax.while_loop``; weak Python
  scalars are traced arguments, so a changing learning rate does not recompile;
* ``"torch.compile"`` (torch, opt-in): the replay compiled by ``torch.compile``;
* ``"numba"`` (numpy): each run of elementwise equations of one shape becomes one
  ``numba.njit`` loop (its intermediates never materialised); the rest replays as usual.

A compiler only changes how the concrete replay of a cache entry runs: tracing, caching,
retracing and composition with outer transforms are ``jit``'s own and unchanged.

This module is the registry (``check_compiler``, ``resolve``, ``lower``); each compiler is a module
of its own: ``_compiler_xla.py``, ``_compiler_torch.py``, ``_compiler_numba.py`` (what the native
ones share: ``_compiler_native.py``). They import jax, torch and numba lazily, inside the functions
that lower to them (never at functorch_lite import time).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from .._core.tensor import backend_for
from .._errors import CompilerError
from ._compiler_native import _cached_replay, _used
from ._compiler_numba import _numba
from ._compiler_torch import _torch_compile
from ._compiler_xla import _xla
from ._compiler_xla import reciprocals as reciprocals  # (re-exported: the tests call it from here)
from ._program import Program, Var

__all__ = ["CompilerError", "COMPILERS", "check_compiler", "resolve", "lower"]

COMPILERS = ("replay", "xla", "torch.compile", "numba")
_FITS: dict[str, tuple[str, ...] | None] = {
    "replay": None,
    "xla": ("jax",),
    "torch.compile": ("torch",),
    "numba": ("numpy",),
}
_PACKAGE = {"xla": ("jax", "jax"), "torch.compile": ("torch", "torch"), "numba": ("numba", "numba")}
_DEFAULT = {"jax": "xla"}


def _fitting(backend: str) -> list[str]:
    return [c for c, fits in _FITS.items() if fits is None or backend in fits]


def check_compiler(compiler: Any) -> None:
    """Validate ``compiler`` when ``jit`` is built: a known name whose package is installed."""
    if compiler is None:
        return
    if compiler not in COMPILERS:
        raise CompilerError(
            f"jit: unknown compiler {compiler!r}. Choose one of None (the backend's default), "
            + ", ".join(repr(c) for c in COMPILERS)
            + ": 'replay' fits every backend, 'xla' the jax backend, 'torch.compile' torch, 'numba' numpy."
        )
    pkg = _PACKAGE.get(compiler)
    if pkg is not None and importlib.util.find_spec(pkg[0]) is None:
        raise CompilerError(
            f"jit(compiler={compiler!r}) needs the {pkg[0]} package, which is not installed; install it "
            f"(pip install 'functorch_lite[{pkg[1]}]') or use compiler='replay' (or None)."
        )


def _backends(p: Program) -> set[str]:
    """The backends of the arrays ``p`` computes with: weak scalars (Python numbers, whatever the
    default backend) and inputs no equation reads (the generator key, mostly) do not count."""
    used = _used(p)
    xps = {v.xp for v in p.in_vars if isinstance(v, Var) and v.id in used and v.weak is None}
    xps.update(v.xp for v, _ in p.consts if v.weak is None)
    for e in p.eqns:
        xps.update(o.xp for o in e.outputs if o.weak is None)
    return {backend_for(xp).name for xp in xps}


def resolve(compiler: str | None, p: Program) -> str:
    """The compiler that runs ``p``: ``compiler``, or the default of ``p``'s backend for None."""
    names = _backends(p)
    if compiler is None:
        return _DEFAULT.get(next(iter(names)), "replay") if len(names) == 1 else "replay"
    fits = _FITS[compiler]
    if fits is None or names and names <= set(fits):
        return compiler
    where = ", ".join(sorted(names))
    choices = ", ".join(repr(c) for c in _fitting(next(iter(names)))) if len(names) == 1 else "'replay'"
    raise CompilerError(
        f"jit(compiler={compiler!r}) compiles programs on the {' / '.join(fits)} backend; this program's "
        f"arrays are on {where}. For it choose one of: {choices} (or None for the backend's default)."
    )


def lower(p: Program, compiler: str, explicit: bool) -> Callable[..., list[Any]]:
    """``fn(*flat_inputs) -> list of outputs`` for optimized program ``p`` under ``compiler``.

    ``explicit``: the user named the compiler (a program it cannot compile raises), rather
    than getting the backend's default (such a program falls back to the replay)."""
    if compiler == "xla":
        return _xla(p, explicit)
    if compiler == "torch.compile":
        return _torch_compile(p, explicit)
    if compiler == "numba":
        return _numba(p)
    return _cached_replay(p)
