"""``jit``: trace once per signature, optimize, and replay the program without dispatch.

The cache key of a call is its pytree structure, the shape, dtype and backend (and device,
where a backend has several) of every array leaf, the *type* of every Python number (a weak
input, so a changing step counter or learning rate does not retrace) and the value of every
static argument. A hit runs the compiled program on the backend arrays: no Tensor, tracer or
tape is built. Under first-order reverse mode (``grad(jit(f))``) the program runs as one
custom node: its forward replays, its backward is a jitted program of its own; under one
``vmap`` the batched program is jitted and cached per batch axes. Under other transforms
(``jvp``, nestings) the cached program is evaluated by re-binding its
equations, so the transform sees every primitive; called while another jit traces (jit inside
jit), that inlines the program.

State (the class API, as MLX's ``mx.compile(fn, inputs=, outputs=)``): modules and
optimizers listed in ``inputs`` / ``outputs`` have their parameters, buffers and optimizer
state threaded through the program as extra inputs and outputs, written back after each
call. The global random generator (``fl.manual_seed``, ``nn.Dropout``) is threaded the same
way whenever the function draws from it, so every call gets fresh random numbers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.tensor import Tensor, backend_for, wrap
from .._errors import TransformError
from ._compile import compile_program, compiled, optimize_compiled
from ._compilers import CompilerError, check_compiler, resolve
from ._program import Program, Var, eval_program
from ._staging import merge_statics, static_split, trace_program

__all__ = ["jit", "Jitted", "RetraceWarning"]

_wrap = wrap

_RETRACE_LIMIT = 8
_SINGLE_DEVICE = ("numpy", "array_api_strict")
_DEVICE_ATTR = ("jax", "torch")  # backends whose arrays' .device is the device itself


class RetraceWarning(UserWarning):
    """A jitted function traced more signatures than a few: each new one traces again."""


# ---------------------------------------------------------------------------------------
# State threaded through a program (modules, optimizers, the global generator)
# ---------------------------------------------------------------------------------------
def _is_module(obj: Any) -> bool:
    return hasattr(obj, "named_modules") and hasattr(obj, "_parameters")


def _is_optimizer(obj: Any) -> bool:
    return hasattr(obj, "_tx") and hasattr(obj, "_state") and hasattr(obj, "_known")


class _ModuleState:
    """A module's parameters and buffers, by registry slot; read, swapped and written in place."""

    def __init__(self, m: Any) -> None:
        self.slots: list[tuple[dict[str, Any], str]] = []
        self.modules = [mod for _, mod in m.named_modules()]
        for mod in self.modules:
            for reg in (mod._parameters, mod._buffers):
                for local, t in reg.items():
                    if isinstance(t, Tensor):
                        self.slots.append((reg, local))

    def read(self) -> list[Any]:
        return [reg[local] for reg, local in self.slots]

    def key(self) -> Any:
        """What else a module's forward depends on: train/eval mode and which parameters are frozen."""
        return (
            tuple(getattr(m, "training", None) for m in self.modules),
            tuple(getattr(reg[local], "requires_grad", None) for reg, local in self.slots),
        )

    def save(self) -> Any:
        objs = self.read()
        return objs, [(t._a, t._xp, t._t) for t in objs]

    def restore(self, saved: Any) -> None:
        objs, payloads = saved
        setitem = dict.__setitem__  # (not a structural change of the module)
        for (reg, local), t, (a, xp, tt) in zip(self.slots, objs, payloads, strict=True):
            setitem(reg, local, t)
            t._a, t._xp, t._t = a, xp, tt

    def write(self, values: Sequence[Any]) -> None:
        setitem = dict.__setitem__
        for (reg, local), v in zip(self.slots, values, strict=True):
            t = reg[local]
            if t is v:
                continue
            if isinstance(t, Tensor) and tuple(t.shape) == tuple(v.shape) and t.dtype is v.dtype:
                t._a, t._xp, t._t = v._a, v._xp, v._t  # in place: the module keeps its Parameter objects
            else:
                setitem(reg, local, v)


class _OptimizerState:
    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def key(self) -> Any:
        return None

    def read(self) -> Any:
        return self.opt._state

    def save(self) -> Any:
        o = self.opt
        return o._state, o._known, o._verify_pending

    def restore(self, saved: Any) -> None:
        o = self.opt
        o._state, o._known, o._verify_pending = saved

    def statics(self) -> Any:
        return self.opt._known, self.opt._verify_pending

    def write(self, state: Any, statics: Any) -> None:
        o = self.opt
        o._state = state
        o._known, o._verify_pending = statics


def _state_handlers(objs: Sequence[Any]) -> list[Any]:
    seen: set[int] = set()
    out: list[Any] = []
    for o in objs:
        if id(o) in seen:
            continue
        seen.add(id(o))
        if _is_module(o):
            out.append(_ModuleState(o))
        elif _is_optimizer(o):
            out.append(_OptimizerState(o))
        else:
            raise TransformError(
                f"jit(inputs=/outputs=): each entry must be an nn.Module or a class optimizer (optim.Adam, ...); "
                f"got {type(o).__name__}. Pass other state as arguments and return it."
            )
    return out


_GEN: list[Any] = [None]


def _gen() -> Any:
    from .. import random as _random

    return _random._GLOBAL


# ---------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------
_MULTI_DEVICE: dict[Any, bool] = {}


def _multi_device(xp: Any) -> bool:
    m = _MULTI_DEVICE.get(xp)
    if m is None:
        m = _MULTI_DEVICE[xp] = backend_for(xp).name not in _SINGLE_DEVICE
    return m


def _signature(leaves: list[Any]) -> tuple[tuple[Any, ...], bool]:
    """The signature of the input leaves, and whether any is a tracer of an outer transform."""
    sig: list[Any] = []
    traced = False
    for x in leaves:
        c = x.__class__
        if c is float or c is int or c is complex:
            sig.append(c)
            continue
        if isinstance(x, Tensor):
            xp = x._xp
            if x._t is None:
                a = x._a
                if _multi_device(xp):
                    sig.append((xp, tuple(a.shape), a.dtype, str(backend_for(xp).device(a))))
                else:
                    sig.append((xp, a.shape, a.dtype))
            else:
                traced = True
                sig.append(("traced", xp, x.shape, x.dtype))
            continue
        sig.append(_other_sig(x))
    return tuple(sig), traced


def _other_sig(x: Any) -> Any:
    if x.__class__ is bool:
        return ("static", x)
    from .._backend import backend_of

    if backend_of(x) is not None:
        return ("array", tuple(x.shape), str(x.dtype))
    try:
        hash(x)
    except TypeError:
        raise TransformError(
            f"jit: an argument leaf of type {type(x).__name__} is neither an array nor a number, so it is "
            "treated as static and must be hashable; it is not. Mark its argument with static_argnums "
            "(and make it hashable), or pass arrays."
        ) from None
    return ("static", x)


# ---------------------------------------------------------------------------------------
# The fast path: a call with the structure and signature of an entry's last hit
# ---------------------------------------------------------------------------------------
# After an entry's first cache hit, its call is compiled to one generated function (a plan):
# it reads the arguments and the threaded state by fixed paths, checks every container's type
# and length and every leaf's class, shape, dtype and backend (what the cache key holds), runs
# the program, wraps the outputs and rebuilds the output pytree by straight-line code. Any
# difference returns _MISS and the call takes the general path, which retraces as before.
_MISS = object()
_PLAN_TRIES = 3
_PLANS_KEPT = 4


class _NoPlan(Exception):
    """This call's arguments hold something the fast path does not handle (it stays general)."""


class _Slot:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def _std_namedtuple(cls: type) -> bool:
    """Whether ``tuple.__new__(cls, values)`` builds what ``cls(*values)`` does."""
    doc = getattr(cls.__new__, "__doc__", None) or ""  # the __new__ collections.namedtuple writes
    return doc.startswith("Create new instance of ") and getattr(cls, "__init__", None) is object.__init__


def _dict_like(x: Any, ol: Any) -> bool:
    """A functorch_lite dict subclass registered as a node that flattens as its sorted keys
    (``optim.PerParam``): read and rebuilt as a dict."""
    c = type(x)
    return (
        isinstance(x, dict)
        and c.__module__.startswith("functorch_lite.")
        and c.__init__ is dict.__init__
        and c.__new__ is dict.__new__
        and not vars(x)
        and tuple(ol.metadata) == tuple(ol.entries) == tuple(sorted(x))
        and len(ol.children) == len(x)
        and all(ch is x[k] for ch, k in zip(ol.children, ol.entries, strict=True))
    )


class _PlanWriter:
    def __init__(self, sig: tuple[Any, ...]) -> None:
        self.sig = sig
        self.lines: list[str] = []
        self.env: dict[str, Any] = {"MISS": _MISS}
        self.names: dict[int, str] = {}
        self.leaves: list[str] = []  # a local per input leaf, in flattening order (arrays for Tensors)
        self.objs: list[str] = []  # the local holding each leaf object
        self.n = 0

    def const(self, v: Any) -> str:
        name = self.names.get(id(v))
        if name is None or self.env[name] is not v:
            name = f"K{len(self.env)}"
            self.env[name] = v
            self.names[id(v)] = name
        return name

    def tmp(self, expr: str) -> str:
        self.n += 1
        t = f"t{self.n}"
        self.lines.append(f"    {t} = {expr}")
        return t

    def fail_if(self, cond: str) -> None:
        self.lines.append(f"    if {cond}: return MISS")

    # -- the inputs -----------------------------------------------------------------------
    def node(self, expr: str, x: Any) -> None:
        """Check the subtree at ``expr`` against ``x`` (this call's value there); bind its leaves."""
        if x is None:
            self.fail_if(f"{expr} is not None")
            return
        c = type(x)
        entry = tu.optree.register_pytree_node.get(c, namespace=tu.NAMESPACE)
        if entry is None and not tu.optree.is_namedtuple(x):
            if tu.optree.is_structseq(x):
                raise _NoPlan("structseq")
            self.leaf(expr, x)
            return
        t = self.tmp(expr)
        kind = entry.kind if entry is not None else None
        P = tu.optree.PyTreeKind
        if c is tuple or c is list or entry is None or kind == P.NAMEDTUPLE:  # (the self-check confirms the order)
            n = len(x)
            self.fail_if(f"{t}.__class__ is not {self.const(c)} or len({t}) != {n}")
            for i, child in enumerate(x):
                self.node(f"{t}[{i}]", child)
            return
        ol = tu.optree.tree_flatten_one_level(x, namespace=tu.NAMESPACE)
        n = len(ol.children)
        if c is dict or (kind == P.CUSTOM and _dict_like(x, ol)):
            self.fail_if(f"{t}.__class__ is not {self.const(c)} or len({t}) != {n}")
            kids = [f"{t}[{self.const(k)}]" for k in ol.entries]  # a missing key: KeyError, a miss
        elif kind == P.CUSTOM:
            self.fail_if(f"{t}.__class__ is not {self.const(c)}")
            r = self.tmp(f"{self.const(entry.flatten_func)}({t})")
            self.fail_if(f"{r}[1] != {self.const(ol.metadata)}")
            ch = self.tmp(f"tuple({r}[0])")
            self.fail_if(f"len({ch}) != {n}")
            kids = [f"{ch}[{i}]" for i in range(n)]
        else:
            raise _NoPlan(f"node kind {kind}")
        for e, child in zip(kids, ol.children, strict=True):
            self.node(e, child)

    def leaf(self, expr: str, x: Any) -> None:
        k = len(self.leaves)
        if k >= len(self.sig):
            raise _NoPlan("more leaves than the signature")
        s = self.sig[k]
        t = self.tmp(expr)
        self.objs.append(t)
        if s is float or s is int or s is complex:
            self.fail_if(f"{t}.__class__ is not {s.__name__}")
            self.leaves.append(t)
            return
        if isinstance(x, Tensor) and isinstance(s, tuple) and len(s) in (3, 4) and s[0] is x._xp:
            a = f"a{self.n}"
            self.fail_if(
                f"{t}.__class__ is not {self.const(type(x))} or {t}._t is not None or {t}._xp is not {self.const(s[0])}"
            )
            self.lines.append(f"    {a} = {t}._a")
            dt = self.const(s[2])  # (numpy's dtypes are singletons, array-api-strict's are not)
            cond = f"{a}.shape != {self.const(s[1])} or ({a}.dtype is not {dt} and {a}.dtype != {dt})"
            if len(s) == 4:
                dev = getattr(x._a, "device", None)
                name = backend_for(s[0]).name
                aval = getattr(x._a, "aval", None) if name == "jax" else None
                if aval is not None and getattr(aval, "shape", None) == tuple(s[1]):
                    # a jax array's shape and dtype are its aval's, which the outputs of one compiled
                    # call share: the same aval object as this one's is the same shape and dtype
                    cond = f"({a}.aval is not {self.const(aval)} and ({cond}))"
                if name == "jax" and getattr(x._a, "sharding", None) is not None:
                    sh = self.const(x._a.sharding)  # (one device: its sharding, compared by identity first)
                    cond += f" or ({a}.sharding is not {sh} and {a}.sharding != {sh})"
                elif name in _DEVICE_ATTR and dev is not None and not callable(dev):
                    # the array's own device attribute (a torch.device): what the signature's
                    # string names, compared in well under a microsecond
                    cond += f" or {a}.device != {self.const(dev)}"
                else:
                    cond += f" or str({self.const(backend_for(s[0]).device)}({a})) != {self.const(s[3])}"
            self.fail_if(cond)
            self.leaves.append(a)
            return
        if isinstance(s, tuple) and len(s) == 2 and s[0] == "static":
            v = s[1]
            if v.__class__ in (int, str, float, bytes):
                self.fail_if(f"{t}.__class__ is not {v.__class__.__name__} or {t} != {self.const(v)}")
            else:
                self.fail_if(f"{t} is not {self.const(v)}")
            self.leaves.append(t)
            return
        raise _NoPlan(f"leaf {s!r}")

    # -- the outputs ----------------------------------------------------------------------
    def build(self, x: Any, outs: list[str]) -> str:
        """An expression that rebuilds template ``x`` (an output tree of _Slot leaves)."""
        if isinstance(x, _Slot):
            return outs[x.i]
        if x is None:
            return "None"
        c = type(x)
        if c is tuple:
            return "(" + "".join(self.build(v, outs) + ", " for v in x) + ")"
        if c is list:
            return "[" + ", ".join(self.build(v, outs) for v in x) + "]"
        if c is dict:
            return "{" + ", ".join(f"{self.const(k)}: {self.build(v, outs)}" for k, v in x.items()) + "}"
        entry = tu.optree.register_pytree_node.get(c, namespace=tu.NAMESPACE)
        if tu.optree.is_namedtuple(x) and (entry is None or entry.kind == tu.optree.PyTreeKind.NAMEDTUPLE):
            kids = "(" + "".join(self.build(v, outs) + ", " for v in x) + ")"
            if _std_namedtuple(c):
                return f"{self.const(tuple.__new__)}({self.const(c)}, {kids})"
            return f"{self.const(c)}(*{kids})"
        if entry is None or entry.kind != tu.optree.PyTreeKind.CUSTOM:
            raise _NoPlan(f"output node {c.__name__}")
        ol = tu.optree.tree_flatten_one_level(x, namespace=tu.NAMESPACE)
        if _dict_like(x, ol):
            items = ", ".join(f"{self.const(k)}: {self.build(v, outs)}" for k, v in x.items())
            return f"{self.const(c)}({{{items}}})"
        kids = "[" + ", ".join(self.build(v, outs) for v in ol.children) + "]"
        return f"{self.const(entry.unflatten_func)}({self.const(ol.metadata)}, {kids})"


def _same_tree(a: Any, b: Any) -> bool:
    """Whether two output trees are the same nodes (types, keys in order) over the same leaves."""
    if isinstance(a, _Slot) or isinstance(b, _Slot):
        return a is b
    if type(a) is not type(b):
        return False
    if a is None:
        return True
    if isinstance(a, dict):
        if list(a) != list(b) or (type(a) is not dict and vars(a) != vars(b)):
            return False
        return all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and (type(a) in (tuple, list) or tu.optree.is_namedtuple(a)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b, strict=True))
    oa = tu.optree.tree_flatten_one_level(a, namespace=tu.NAMESPACE)
    ob = tu.optree.tree_flatten_one_level(b, namespace=tu.NAMESPACE)
    return (
        oa.metadata == ob.metadata
        and len(oa.children) == len(ob.children)
        and all(_same_tree(x, y) for x, y in zip(oa.children, ob.children, strict=True))
    )


class _Entry:
    __slots__ = (
        "program",
        "out_tree",
        "outs",
        "state_trees",
        "state_statics",
        "rng_out",
        "n_user_out",
        "run",
        "dyn",
        "out_xps",
        "traced_consts",
        "staged_call",
        "batched",
        "names",
        "plan",
        "plan_tries",
        "compiler",
    )


class Jitted:
    """A function compiled by [`jit`][functorch_lite.transforms.jit]: call it like the original.

    Example:
        >>> import functorch_lite as fl
        >>> f = fl.jit(lambda x: x * 2.0)
        >>> f(fl.ones((2,))).tolist(), f.cache_size()
        ([2.0, 2.0], 1)
        >>> print(f.lower(fl.ones((2,))))
        { lambda ; a:u32[2] b:f32[2]. let
            c:f32[2] = multiply b 2.0
          in (c) }
    """

    def __init__(
        self,
        f: Callable[..., Any],
        static_argnums: tuple[int, ...],
        static_argnames: tuple[str, ...],
        donate_argnums: tuple[int, ...],
        state: list[Any],
        compiler: str | None = None,
    ) -> None:
        functools.update_wrapper(self, f)
        self.fun = f
        self.compiler = compiler  # as given: None picks each program's backend default
        self._soft = False  # (jit's own inner jits: a compiler that does not fit replays instead)
        self.static_argnums = static_argnums
        self.static_argnames = static_argnames
        self.donate_argnums = donate_argnums
        self._state_objs = state
        self._handlers: list[Any] | None = None
        self._cache: dict[Any, _Entry] = {}
        self._warned = False
        self._last_key: Any = None
        self._fast: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None  # the last plan that ran
        self._plans: list[Callable[[tuple[Any, ...], dict[str, Any]], Any]] = []  # most recent first
        self.traces = 0  # how many times the Python function was traced

    def cache_size(self) -> int:
        """The number of signatures traced and cached."""
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._fast = None
        self._plans.clear()

    def _drop_plan(self, entry: _Entry) -> None:
        plan = entry.plan
        if plan:
            if plan in self._plans:
                self._plans.remove(plan)
            if self._fast is plan:
                self._fast = None

    def __repr__(self) -> str:
        return f"<jit of {getattr(self.fun, '__name__', self.fun)!r}: {len(self._cache)} cached signature(s)>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:  # jit on a method
        if obj is None:
            return self
        return functools.partial(self, obj)

    # -- the call ---------------------------------------------------------------------------
    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.donate_argnums:
            for i in self.donate_argnums:
                if not -len(args) <= i < len(args):
                    raise TransformError(
                        f"jit: donate_argnums index {i} is out of range for a call with {len(args)} positional "
                        f"argument(s); use indices in [0, {len(args) - 1}]."
                    )
        if self.static_argnums or self.static_argnames:
            dyn_args, dyn_kwargs, statics = static_split(args, kwargs, self.static_argnums, self.static_argnames)
        else:
            dyn_args, dyn_kwargs, statics = args, kwargs, ()
        handlers = self._handlers
        if handlers is None:
            handlers = self._handlers = _state_handlers(self._state_objs)
        gen = _GEN[0]
        if gen is None:
            gen = _GEN[0] = _gen()
        rng = gen.key
        if rng is None:
            from .. import random as _random

            rng = _random.get_state()
        tree_in = (tuple([h.read() for h in handlers]) if handlers else (), rng, (dyn_args, dyn_kwargs))
        leaves, in_tree = tu.tree_flatten(tree_in)
        sig, traced = _signature(leaves)
        if handlers:  # a module's train/eval mode and frozen flags select the program too
            return handlers, statics, leaves, in_tree, (in_tree, statics, sig, tuple(h.key() for h in handlers)), traced
        return handlers, statics, leaves, in_tree, (in_tree, statics, sig), traced

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fast = self._fast
        if fast is not None:
            out = fast(args, kwargs)
            if out is not _MISS:
                return out
            for plan in self._plans:  # the other signatures seen lately (the last, smaller batch)
                if plan is not fast:
                    out = plan(args, kwargs)
                    if out is not _MISS:
                        self._fast = plan
                        return out
        return self._call(args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        handlers, statics, leaves, in_tree, key, traced = self._prepare(args, kwargs)
        entry = self._cache.get(key)
        if entry is not None and (entry.program.guards or entry.names):
            if any(t._a is not a for t, a in entry.program.guards) or any(
                _lookup(where, k) is not v for where, k, v in entry.names
            ):  # a captured Tensor (or the name holding it) was rebound since the trace: trace again
                del self._cache[key]
                self._drop_plan(entry)
                entry = None
        if entry is None:
            entry = self._trace(handlers, statics, leaves, in_tree, key)
        elif not traced:  # a hit: later calls like this one take the fast path
            plan = entry.plan
            if plan is None and entry.plan_tries < _PLAN_TRIES:
                plan = self._plan(entry, handlers, statics, args, kwargs, leaves, key[2])
            if plan is not None:
                self._fast = plan
                plans = self._plans
                if plan in plans:
                    plans.remove(plan)
                plans.insert(0, plan)
                del plans[_PLANS_KEPT:]
        if traced or entry.traced_consts:
            flat = [leaves[i] for i in entry.dyn]
            plain = not handlers and not entry.rng_out and not entry.traced_consts
            bt = _single_batch_trace(flat) if plain else None
            if plain and _under_reverse_only(flat):
                outs = list(_staged_call(entry)(*flat))
            elif bt is not None:
                outs = _batched_call(entry, bt, flat)
            else:
                outs = eval_program(entry.program, flat)
        else:
            res = entry.run(*[x._a if isinstance(x, Tensor) else x for x in [leaves[i] for i in entry.dyn]])
            outs = [o if xp is None else _wrap(o, xp) for o, xp in zip(res, entry.out_xps, strict=True)]
        if not handlers and not entry.rng_out:
            return tu.tree_unflatten(entry.out_tree, outs)
        return self._finish(entry, handlers, outs)

    def _plan(
        self,
        entry: _Entry,
        handlers: list[Any],
        statics: tuple[Any, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        leaves: list[Any],
        sig: tuple[Any, ...],
    ) -> Any:
        try:
            entry.plan = _make_plan(entry, handlers, statics, args, kwargs, leaves, sig)
        except Exception:  # noqa: BLE001 - only a speed-up: whatever it cannot handle stays general
            entry.plan_tries += 1
        return entry.plan

    def _finish(self, entry: _Entry, handlers: list[Any], outs: list[Any]) -> Any:
        n = entry.n_user_out
        user = tu.tree_unflatten(entry.out_tree, outs[:n])
        pos = n
        for h, (tree, k), st in zip(handlers, entry.state_trees, entry.state_statics, strict=True):
            vals = outs[pos : pos + k]
            pos += k
            if isinstance(h, _ModuleState):
                h.write(vals)
            else:
                h.write(tu.tree_unflatten(tree, vals), st)
        if entry.rng_out:
            _gen().key = outs[pos]
        return user

    # -- tracing ------------------------------------------------------------------------------
    def _trace(self, handlers: list[Any], statics: Any, leaves: list[Any], in_tree: Any, key: Any) -> _Entry:
        saved = [h.save() for h in handlers]
        gen = _gen()
        saved_key = gen.key
        box: dict[str, Any] = {}
        f = self.fun

        def body(state_trees: Any, rng: Any, ak: Any) -> Any:
            dyn_args, dyn_kwargs = ak
            for h, st in zip(handlers, state_trees, strict=True):
                if isinstance(h, _ModuleState):
                    h.write(list(st))
                else:
                    h.write(st, h.statics())
            gen.key = rng
            a, k = merge_statics(tuple(dyn_args), dyn_kwargs, statics)
            out = f(*a, **k)
            new_states = []
            st_statics: list[Any] = []
            for h in handlers:
                if isinstance(h, _ModuleState):
                    new_states.append(h.read())
                    st_statics.append(None)
                else:
                    new_states.append(h.read())
                    st_statics.append(h.statics())
            box["statics"] = st_statics
            new_rng = gen.key
            box["rng_used"] = new_rng is not rng
            return out, new_states, new_rng if new_rng is not rng else None

        try:
            prog = trace_program(body, leaves, in_tree=in_tree, kind="jit", call=_call_tree)
        finally:
            for h, s in zip(handlers, saved, strict=True):
                h.restore(s)
            gen.key = saved_key
        self.traces += 1
        owned = {id(t) for h in handlers if isinstance(h, _ModuleState) for t in h.read()}
        extra = [(t, t._a) for t in _closure_tensors(self.fun) if id(t) not in owned and t._t is None]
        if extra:
            seen = {id(t) for t, _ in prog.guards}
            prog.guards = prog.guards + [(t, a) for t, a in extra if id(t) not in seen]
        names = _name_guards(self.fun, owned)
        # split the outputs: (user out, [state...], rng)
        out_leaves_tree = prog.out_tree
        (user_tree, state_tree_list, rng_tree) = _children3(out_leaves_tree)
        n_user = user_tree.num_leaves
        state_info = []
        for h, child in zip(handlers, state_tree_list.children(), strict=True):
            if isinstance(h, _ModuleState):
                state_info.append((None, child.num_leaves))
            else:
                state_info.append((child, child.num_leaves))
        opt = optimize_compiled(prog)
        try:
            chosen = resolve(self.compiler, opt)
        except CompilerError:
            if not self._soft:
                raise
            chosen = "replay"
        e = _Entry()
        e.compiler = self.compiler
        e.run = (
            opt._compiled
            if chosen == "replay"
            else compile_program(opt, compiler=chosen, explicit=self.compiler is not None and not self._soft)
        )
        e.program = opt
        e.out_tree = user_tree
        e.n_user_out = n_user
        e.state_trees = state_info
        e.state_statics = box.get("statics", [None] * len(handlers))
        e.rng_out = bool(box.get("rng_used"))
        e.dyn = [i for i, v in enumerate(opt.in_vars) if isinstance(v, Var)]
        e.out_xps = [v.xp if isinstance(v, Var) and v.weak is None else None for v in opt.outs]
        e.traced_consts = any(c._t is not None for _, c in opt.consts)
        e.staged_call = None
        e.names = names
        e.batched = {}
        e.plan = None
        e.plan_tries = 0
        if not e.traced_consts:
            self._cache[key] = e
            self._retrace_check(key)
        return e

    def _retrace_check(self, key: Any) -> None:
        last = self._last_key
        self._last_key = key
        if self._warned or len(self._cache) <= _RETRACE_LIMIT:
            return
        self._warned = True
        what = _diff(last, key) if last is not None else "its signature"
        warnings.warn(
            f"jit({getattr(self.fun, '__name__', 'f')}) has traced {len(self._cache)} signatures; the last call "
            f"differed from the one before in {what}. Each new shape, dtype, structure or static value traces "
            "again: pad inputs to a few fixed shapes, or pass changing Python values as numbers (weak inputs) "
            "instead of static arguments.",
            RetraceWarning,
            stacklevel=4,
        )

    # -- inspection ----------------------------------------------------------------------------
    def lower(self, *args: Any, **kwargs: Any) -> Program:
        """The optimized [`Program`][functorch_lite.transforms.Program] this function runs for these arguments (traced if new).

        Its inputs are the (global generator key, arguments) leaves; its outputs the function's
        outputs, then any threaded state.
        """
        handlers, statics, leaves, in_tree, key, _ = self._prepare(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace(handlers, statics, leaves, in_tree, key)
        return entry.program

    def compiler_for(self, *args: Any, **kwargs: Any) -> str:
        """The compiler that runs this function's program for these arguments (traced if new):
        ``"replay"``, ``"xla"``, ``"torch.compile"`` or ``"numba"``. A program the backend's
        default compiler cannot compile (known after its first call) says ``"replay"``."""
        handlers, statics, leaves, in_tree, key, _ = self._prepare(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace(handlers, statics, leaves, in_tree, key)
        return getattr(entry.run, "compiler", "replay")


def _make_plan(
    entry: _Entry,
    handlers: list[Any],
    statics: tuple[Any, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    leaves: list[Any],
    sig: tuple[Any, ...],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """Generate the fast path of ``entry`` for calls shaped like this one (raises _NoPlan)."""
    prog = entry.program
    if len(prog.in_vars) != len(leaves) or len(entry.out_xps) != len(prog.outs):
        raise _NoPlan("inputs")
    w = _PlanWriter(sig)
    objs = w.objs  # the local holding each leaf object (for the self-check and the writes)
    gen = _gen()
    slot_objs: list[list[str]] = []
    for h in handlers:
        k = len(w.leaves)
        if isinstance(h, _ModuleState):
            for reg, local in h.slots:
                w.leaf(f"{w.const(reg)}[{w.const(local)}]", reg[local])
            mine = objs[k:]
            slot_objs.append(mine)
            training, grads = h.key()
            for obj, attr, v in [
                *((w.const(m), "training", v) for m, v in zip(h.modules, training, strict=True)),
                *((t, "requires_grad", v) for t, v in zip(mine, grads, strict=True)),
            ]:
                op = "is not" if v is True or v is False or v is None else "!="
                if v is not None:  # the attribute read directly (a deleted one: AttributeError, a miss)
                    w.fail_if(f"{obj}.{attr} {op} {w.const(v)}")
                else:
                    w.fail_if(f"getattr({obj}, {attr!r}, None) is not None")
        else:
            w.node(f"{w.const(h.opt)}._state", h.read())
            slot_objs.append([])
    w.leaf(f"{w.const(gen)}.key", gen.key)
    static_pos = {j: v for kind, j, v in statics if kind == "pos"}
    static_kw = {j: v for kind, j, v in statics if kind == "kw"}

    def static(expr: str, v: Any) -> None:
        t = w.tmp(expr)
        if v.__class__ in (int, str, float, bytes):
            w.fail_if(f"{t}.__class__ is not {v.__class__.__name__} or {t} != {w.const(v)}")
        else:
            w.fail_if(f"{t} is not {w.const(v)}")

    w.fail_if(f"len(args) != {len(args)}")
    for j, a in enumerate(args):
        if j in static_pos:
            static(f"args[{j}]", static_pos[j])
        else:
            w.node(f"args[{j}]", a)
    if kwargs:
        w.fail_if(f"len(kwargs) != {len(kwargs)}")
        dyn_kwargs: dict[str, Any] = {kk: (None if kk in static_kw else v) for kk, v in kwargs.items()}
        order: Any = tu.optree.tree_flatten_one_level(dyn_kwargs, namespace=tu.NAMESPACE).entries  # type: ignore[arg-type]
        for kk in order:
            if kk in static_kw:
                static(f"kwargs[{w.const(kk)}]", static_kw[kk])
            else:
                w.node(f"kwargs[{w.const(kk)}]", kwargs[kk])
    else:
        w.fail_if("kwargs")
    if len(w.leaves) != len(leaves):
        raise _NoPlan("leaf count")
    for t, a in prog.guards:  # captured Tensors the program baked in, and the names holding them
        w.fail_if(f"{w.const(t)}._a is not {w.const(a)}")
    for where, name, v in entry.names:
        w.fail_if(f"{w.const(_lookup)}({w.const(where)}, {w.const(name)}) is not {w.const(v)}")
    checks = w.lines
    w.lines = []
    # -- run, wrap, write back, rebuild -------------------------------------------------------
    n_out = len(prog.outs)
    outs = [f"o{i}" for i in range(n_out)]
    ins = ", ".join(w.leaves[i] for i in entry.dyn)
    run = getattr(entry.run, "settled", None) or entry.run  # (a compiler's first call is behind it)
    w.lines.append(f"    r = {w.const(run)}({ins})")
    if n_out:
        w.lines.append(f"    {', '.join(outs)}, = r")
    new, T = w.const(object.__new__), w.const(Tensor)

    def wrapped(i: int) -> str:
        xp = entry.out_xps[i]
        if xp is None:
            return outs[i]
        nm = f"w{i}"
        w.lines.append(f"    {nm} = {new}({T}); {nm}._a = {outs[i]}; {nm}._xp = {w.const(xp)}; {nm}._t = None")
        return nm

    n = entry.n_user_out
    user_names = [wrapped(i) for i in range(n)]
    pos = n
    templates: list[tuple[Any, str]] = []
    for h, (tree, k_out), st, mine in zip(handlers, entry.state_trees, entry.state_statics, slot_objs, strict=True):
        if isinstance(h, _ModuleState):  # in place: each parameter keeps its object, backend, shape, dtype
            for j, t in enumerate(mine):
                v, x = prog.outs[pos + j], leaves[objs.index(t)]
                if not (isinstance(v, Var) and v.weak is None and v.xp is x._xp and v.shape == tuple(x.shape)):
                    raise _NoPlan("module state changes shape")
                if v.dtype != x.dtype:
                    raise _NoPlan("module state changes dtype")
                w.lines.append(f"    {t}._a = {outs[pos + j]}")
        else:
            names = [wrapped(pos + j) for j in range(k_out)]
            tmpl = tu.tree_unflatten(tree, [_Slot(j) for j in range(k_out)])
            expr = w.build(tmpl, names)
            templates.append((tmpl, w.build(tmpl, [f"S[{len(templates)}][{j}]" for j in range(k_out)])))
            w.lines.append(f"    {w.const(h.write)}({expr}, {w.const(st)})")
        pos += k_out
    if entry.rng_out:
        w.lines.append(f"    {w.const(gen)}.key = {wrapped(pos)}")
        pos += 1
    if pos != n_out:
        raise _NoPlan("outputs")
    user_tmpl = tu.tree_unflatten(entry.out_tree, [_Slot(j) for j in range(n)])
    w.lines.append(f"    return {w.build(user_tmpl, user_names)}")
    templates.append((user_tmpl, w.build(user_tmpl, [f"S[{len(templates)}][{j}]" for j in range(n)])))
    body = "\n".join("    " + ln for ln in checks)
    src = "\n".join(
        [
            "def _fast(args, kwargs, probe=None):",
            "    try:",
            body,
            "    except (KeyError, AttributeError):",
            "        return MISS",
            "    if probe is not None:",
            f"        probe.extend([{', '.join(objs)}])",
            "        return MISS",
            *w.lines,
            "",
            "def _tmpl(S):",
            f"    return [{', '.join(e for _, e in templates)}]",
        ]
    )
    env = dict(w.env)
    exec(compiled(src, "<functorch_lite jit call>"), env)  # noqa: S102 (generated above)
    got: list[Any] = []
    env["_fast"](args, kwargs, got)
    if len(got) != len(leaves) or any(a is not b for a, b in zip(got, leaves, strict=True)):
        raise _NoPlan("self-check: leaves")
    for (tmpl, _), built in zip(templates, env["_tmpl"]([_slots(t) for t, _ in templates]), strict=True):
        if not _same_tree(tmpl, built):
            raise _NoPlan("self-check: outputs")
    fast = env["_fast"]
    fast.source = src
    return fast


def _slots(tree: Any) -> list[_Slot]:
    """The _Slot leaves of a template, by index."""
    found = sorted((x for x in tu.tree_leaves(tree) if isinstance(x, _Slot)), key=lambda x: x.i)
    return found


def _closure_tensors(f: Any, depth: int = 3) -> list[Tensor]:
    """The Tensors a function reads from its closure and globals (through modules, containers and
    the closures of the functions it calls, a few levels deep): what a trace bakes in as constants."""
    found: list[Tensor] = []
    seen: set[int] = set()

    def visit(v: Any, d: int) -> None:
        if id(v) in seen or d < 0:
            return
        seen.add(id(v))
        if isinstance(v, Tensor):
            found.append(v)
        elif _is_module(v):
            for _, mod in v.named_modules():
                for reg in (mod._parameters, mod._buffers):
                    for t in reg.values():
                        if isinstance(t, Tensor):
                            found.append(t)
        elif isinstance(v, dict):
            for x in list(v.values())[:256]:
                visit(x, d - 1)
        elif isinstance(v, (list, tuple)):
            for x in v[:256]:
                visit(x, d - 1)
        elif isinstance(v, functools.partial):
            visit(v.func, d - 1)
            visit(v.args, d - 1)
        elif callable(v) and hasattr(v, "__code__"):
            for cell in getattr(v, "__closure__", None) or ():
                try:
                    visit(cell.cell_contents, d - 1)
                except ValueError:  # an empty cell
                    pass
            g = getattr(v, "__globals__", {})
            for name in v.__code__.co_names:
                x = g.get(name)
                if x is not None and not isinstance(x, type) and not hasattr(x, "__file__"):
                    visit(x, d - 1)
        elif hasattr(v, "__self__") and hasattr(v, "__func__"):  # a bound method
            visit(v.__self__, d - 1)
            visit(v.__func__, d - 1)

    visit(f, depth)
    return found


def _name_guards(f: Any, owned: set[int]) -> list[tuple[Any, Any, Any]]:
    """(cell or globals dict, name, Tensor) for each Tensor ``f`` reads by name: rebinding the
    name (``w = w - lr * g`` on a global) must retrace, as the program holds the old value."""
    out: list[tuple[Any, Any, Any]] = []
    code = getattr(f, "__code__", None)
    if code is None:
        return out
    for cell in getattr(f, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if isinstance(v, Tensor) and id(v) not in owned:
            out.append((cell, None, v))
    g = getattr(f, "__globals__", {})
    for name in code.co_names:
        v = g.get(name)
        if isinstance(v, Tensor) and id(v) not in owned:
            out.append((g, name, v))
    return out


def _lookup(where: Any, name: Any) -> Any:
    if name is None:
        try:
            return where.cell_contents
        except ValueError:
            return None
    return where.get(name)


def _under_reverse_only(flat: list[Any]) -> bool:
    """Whether every tracer among ``flat`` belongs to one reverse-mode trace with concrete primals
    (``grad(jit(f))`` at first order), where the program can run staged inside one custom node."""
    from ._ad import VJPTrace

    tr = None
    for x in flat:
        if isinstance(x, Tensor) and x._t is not None:
            t = x._t.trace
            if not isinstance(t, VJPTrace) or (tr is not None and t is not tr) or x._t.primal._t is not None:
                return False
            tr = t
    return tr is not None


def _single_batch_trace(flat: list[Any]) -> Any:
    """The vmap trace every tracer among ``flat`` belongs to (None when they are not all one's)."""
    from ._batch import BatchTrace

    tr = None
    for x in flat:
        if isinstance(x, Tensor) and x._t is not None:
            t = x._t.trace
            if not isinstance(t, BatchTrace) or (tr is not None and t is not tr):
                return None
            tr = t
    return tr


def _batched_call(entry: _Entry, tr: Any, flat: list[Any]) -> list[Any]:
    """``vmap(jit(f))``: the batched program, itself jitted (cached per batch axes and size)."""
    from .api import vmap

    vals, dims = tr.unpack(flat)
    key = (tuple(dims), tr.axis_size, tr.randomness)
    fn = entry.batched.get(key)
    if fn is None:
        prog = entry.program
        batched = vmap(
            lambda *a: prog.call_flat(list(a)), in_axes=tuple(dims), axis_size=tr.axis_size, randomness=tr.randomness
        )
        fn = entry.batched[key] = _inner_jit(batched, entry.compiler)
    return [tr.tracer(o, 0) if isinstance(o, Tensor) else o for o in fn(*vals)]


def _inner_jit(f: Callable[..., Any], compiler: str | None) -> Jitted:
    """A jit that jit makes for itself (a staged backward, a batched program): the outer one's
    compiler where it fits this program, else the replay (never an error of its own)."""
    j = jit(f, compiler=compiler)
    j._soft = True
    return j  # type: ignore[no-any-return]


def _staged_call(entry: _Entry) -> Any:
    """The program as a custom_vjp whose forward replays it and whose backward is itself a jitted
    program (the forward recomputed, then its vjp), so ``grad(jit(f))`` stays jitted."""
    sc = entry.staged_call
    if sc is not None:
        return sc
    from .api import vjp
    from .custom import custom_vjp

    prog = entry.program

    def fun(*flat: Any) -> list[Any]:
        return prog.call_flat(list(flat))

    def pullback(flat: list[Any], cts: list[Any]) -> Any:
        return vjp(lambda *a: prog.call_flat(list(a)), *flat)[1](cts)

    back = _inner_jit(pullback, entry.compiler)

    def fwd(*flat: Any) -> Any:
        return fun(*flat), flat

    def bwd(res: Any, g: Any) -> Any:
        cts = back(list(res), list(g))
        return tuple(None if not isinstance(x, Tensor) else c for x, c in zip(res, cts, strict=True))

    sc = custom_vjp(fun)
    sc.defvjp(fwd, bwd)
    entry.staged_call = sc
    return sc


def _call_tree(fn: Callable[..., Any], parts: Any) -> Any:
    return fn(*parts)


def _children3(tree: Any) -> tuple[Any, Any, Any]:
    ch = tree.children()
    return ch[0], ch[1], ch[2]


def _diff(a: Any, b: Any) -> str:
    if a[0] != b[0]:
        return "the pytree structure of its arguments"
    if a[1] != b[1]:
        return "a static argument's value"
    for i, (x, y) in enumerate(zip(a[2], b[2], strict=False)):
        if x != y:
            return f"input leaf {i} ({_sig_str(x)} -> {_sig_str(y)})"
    return "its signature"


def _sig_str(s: Any) -> str:
    if isinstance(s, tuple) and len(s) >= 3 and s[0] != "static":
        return f"shape {s[1]} dtype {s[2]}"
    return repr(s)


def jit(
    f: Callable[..., Any] | None = None,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    donate_argnums: int | Sequence[int] = (),
    *,
    inputs: Sequence[Any] | Any = (),
    outputs: Sequence[Any] | Any = (),
    compiler: str | None = None,
) -> Any:
    """Compile ``f``: trace it once per signature into a [`Program`][functorch_lite.transforms.Program], optimize it, replay it.

    Args:
        f: the function (also usable as ``@fl.jit`` or ``@fl.jit(static_argnums=...)``).
        static_argnums / static_argnames: arguments baked into the program (hashable; each
            new value traces again). Python ``int`` / ``float`` arguments are traced (weak)
            unless listed here; ``bool`` and other non-array leaves are static.
        donate_argnums: arguments whose buffers the caller gives up (checked; a hint for the
            backends' compilers, the numpy replay allocates its outputs as eager code does).
        inputs / outputs: modules and class optimizers whose state the function reads and
            writes (MLX's ``compile(inputs=, outputs=)``); threaded through the program.
        compiler: what runs the program's concrete replay. None (default): the backend's own,
            ``"xla"`` on jax, ``"replay"`` elsewhere. ``"replay"``: straight-line Python over
            the backend's arrays (every backend). ``"xla"`` (jax): the replay traced by
            ``jax.jit``. ``"torch.compile"`` (torch): the replay compiled by ``torch.compile``
            (seconds on the first call). ``"numba"`` (numpy, the ``numba`` extra): each run of
            elementwise equations fused into one compiled loop. Caching, retracing and
            composition are the same for all; a compiler that does not fit the program's
            backend, or is not installed, raises ``CompilerError`` (a ``TransformError``).

    Example:
        >>> import functorch_lite as fl
        >>> f = fl.jit(lambda x, s: fl.sum(fl.sin(x) * s))
        >>> round(float(f(fl.ones((3,)), 2.0)), 4), round(float(f(fl.ones((3,)), 3.0)), 4), f.cache_size()
        (5.0488, 7.5732, 1)
    """
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
    for what, seq in (("static_argnums", nums), ("donate_argnums", donate)):
        for i in seq:
            if not isinstance(i, int) or isinstance(i, bool):
                raise TransformError(f"jit: {what} must be ints; got {i!r}.")
    for nm in names:
        if not isinstance(nm, str):
            raise TransformError(f"jit: static_argnames must be strings; got {nm!r}.")
    overlap = set(nums) & set(donate)
    if overlap:
        raise TransformError(
            f"jit: argument(s) {sorted(overlap)} are both static and donated; a static argument has no buffer."
        )
    check_compiler(compiler)
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    state = ins + outs

    def make(fn: Callable[..., Any]) -> Jitted:
        if not callable(fn):
            raise TransformError(f"jit: expected a function; got {type(fn).__name__}.")
        return Jitted(fn, nums, names, donate, state, compiler)

    if f is None:
        return make
    return make(f)
