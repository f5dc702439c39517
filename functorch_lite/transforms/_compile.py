"""Optimizing a [`Program`][functorch_lite.transforms.Program] and compiling it to straight-line Python over backend arrays.

The passes are ``transforms/_passes.py`` (``optimize``), the replay's code generation
``transforms/_replay.py``, the backends' compilers ``transforms/_compilers.py``. This module
joins them: ``compile_program`` (the replay, or a backend's compiler), and
``optimize_compiled``, which shares the passes' work and the generated code between programs
of one structure (``structure_key``).
"""

from __future__ import annotations

from typing import Any

from .._core.tensor import Tensor
from .._dtypes import DType as _DType
from .._ops import indexing as _I
from ._compilers import lower
from ._passes import _COMMUTES, _IDENTITY, _const_equals, broadcasts, cse, dce, fold, optimize, reshapes, simplify
from ._program import Program, Var, custom_call_p
from ._replay import _codegen, _exec, compile_replay

__all__ = ["optimize", "fold", "simplify", "reshapes", "broadcasts", "cse", "dce", "compile_program"]


def compile_program(p: Program, override: Any = None, compiler: str = "replay", explicit: bool = False) -> Any:
    """Straight-line Python for ``p``: ``fn(*flat_inputs) -> list of outputs`` on backend arrays.

    ``compiler`` (see ``_compilers``): the replay itself, or the replay handed to a backend's
    compiler (``"xla"``, ``"torch.compile"``, ``"numba"``); ``explicit``: the user named it (a
    program it cannot compile raises rather than replaying). ``override``: see ``_replay._codegen``."""
    if compiler != "replay":
        return lower(p, compiler, explicit)
    return compile_replay(p, override)


# ---------------------------------------------------------------------------------------
# Reusing the passes' work for a program of the same structure
# ---------------------------------------------------------------------------------------
# A step traced again (a new ``jit`` of the same function, the same program for a new set of
# modules) gives a program equal to an earlier one up to variable ids and the captured
# constants' values. When no pass looked at a constant's value (nothing to fold, no ``x * c``
# with a constant ``c``), the optimized program and its code depend on the structure only:
# they are kept (without the constants) under a key of the structure, and rebuilt around the
# new program's constants.
_SKELETONS: dict[Any, Any] = {}
_SKELETON_LIMIT = 64


class _NoKey(Exception):
    pass


def _plain(v: Any) -> Any:
    """A hashable stand-in for a param or literal that equals another's only for the same value
    (floats by repr: 0.0 is not -0.0); raises _NoKey for anything else (arrays, programs)."""
    c = v.__class__
    if c in (int, bool, str, type(None), type(Ellipsis), type):
        return (c, v)
    if c in (float, complex):
        return (c, repr(v))
    if c is tuple:
        if all(x.__class__ is int for x in v):  # shapes and axes
            return ("i", v)
        return ("t", tuple(_plain(x) for x in v))
    if c is slice:
        return ("s", _plain(v.start), _plain(v.stop), _plain(v.step))
    if c is _DType:
        return ("d", id(v))  # (the dtypes are module-level constants; their __hash__ is Python code)
    if c is _I._Arr:
        return ("a", v.i, v.is_bool, v.ndim)
    raise _NoKey(c.__name__)


def _aval(v: Var) -> Any:
    return (v.shape, id(v.dtype), id(v.xp), v.weak)


class _Key:
    """A structure key with its hash computed once (a tuple's is recomputed at every lookup)."""

    __slots__ = ("items", "h")

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items
        self.h = hash(items)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.h == other.h and self.items == other.items


def structure_key(p: Program) -> Any:
    """The key under which ``p``'s optimized form can be shared, or None where a pass may read a
    constant's value (or a param is not a plain value)."""
    try:
        ids: dict[int, int] = {}
        items: list[Any] = [p.kind]
        for v in p.in_vars:
            if isinstance(v, Var):
                ids[v.id] = len(ids)
                items.append(_aval(v))
            else:
                items.append(("static", _plain(v[1])))
        consts: dict[int, Tensor] = {}
        for v, c in p.consts:
            if c._t is not None:
                return None
            ids[v.id] = len(ids)
            consts[v.id] = c
            items.append(("c", _aval(v)))
        append = items.append
        for e in p.eqns:
            prim = e.prim
            if prim is custom_call_p:
                return None
            ins = e.inputs
            refs: list[Any] = []
            all_const = any_var = False
            for i in ins:
                if isinstance(i, Var):
                    refs.append(ids[i.id])
                    all_const = (all_const or not any_var) and i.id in consts
                    any_var = True
                else:
                    refs.append(("l", _plain(i)))
            if all_const:
                return None  # fold would evaluate it
            params = e.params
            if len(ins) == 2 and not params and (prim.name in _IDENTITY or prim.name == "pow"):
                x, y = ins  # simplify compares a constant operand with 1 or 0: its answer is part of the key
                unit = _IDENTITY.get(prim.name, 1)
                if isinstance(y, Var) and y.id in consts:
                    append(("y", _const_equals(y, unit, consts)))
                if prim.name in _COMMUTES and isinstance(x, Var) and x.id in consts:
                    append(("x", _const_equals(x, unit, consts)))
            outs = []
            for o in e.outputs:
                ids[o.id] = len(ids)
                outs.append((o.shape, id(o.dtype), id(o.xp), o.weak))
            append(
                (prim, tuple([(k, _plain(v)) for k, v in params.items()]) if params else (), tuple(refs), tuple(outs))
            )
        items.append(tuple(ids[o.id] if isinstance(o, Var) else ("l", _plain(o)) for o in p.outs))
        return _Key(tuple(items))
    except (_NoKey, KeyError, TypeError):
        return None


def optimize_compiled(p: Program) -> Program:
    """``optimize(p)`` with its compiled replay set (``_compiled``); a program of an already
    seen structure reuses the optimized equations and the generated code."""
    key = structure_key(p)
    skel = _SKELETONS.get(key) if key is not None else None
    if skel is not None:
        in_vars, eqns, outs, cvars, pos, src, tmpl = skel
        consts = [(v, p.consts[k][1]) for v, k in zip(cvars, pos, strict=True)]
        q = Program(in_vars, p.in_tree, eqns, outs, p.out_tree, consts, p.kind)
        q.guards = p.guards
        env = dict(tmpl)
        env.update({f"c{k}": c._a for k, (_, c) in enumerate(consts)})
        q._compiled = _exec(src, env)
        return q
    q = optimize(p)
    src, env = _codegen(q)
    q._compiled = _exec(src, dict(env))
    if key is not None:
        where = {v.id: k for k, (v, _) in enumerate(p.consts)}
        pos = [where.get(v.id) for v, _ in q.consts]
        if None not in pos:  # (no constant of the passes' own: nothing but the trace's)
            tmpl = {n: x for n, x in env.items() if not (n[0] == "c" and n[1:].isdigit())}
            if len(_SKELETONS) >= _SKELETON_LIMIT:
                del _SKELETONS[next(iter(_SKELETONS))]
            _SKELETONS[key] = (q.in_vars, q.eqns, q.outs, [v for v, _ in q.consts], pos, src, tmpl)
    return q
