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
from .._core.tensor import Tensor, wrap
from .._errors import TransformError
from ._compile import compile_program, optimize_compiled
from ._compilers import CompilerError, check_compiler, resolve
from ._jit_guard import _closure_tensors, _diff, _lookup, _name_guards, _signature
from ._jit_plan import _MISS, _PLAN_TRIES, _PLANS_KEPT, _Entry, _make_plan
from ._jit_state import _GEN, _gen, _ModuleState, _state_handlers
from ._make_program import merge_statics, static_split
from ._program import Program, Var, eval_program
from ._staging import trace_program

__all__ = ["jit", "Jitted", "RetraceWarning"]

_wrap = wrap

_RETRACE_LIMIT = 8


class RetraceWarning(UserWarning):
    """A jitted function traced more signatures than a few: each new one traces again."""


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
                try:
                    plan = entry.plan = _make_plan(entry, handlers, statics, args, kwargs, leaves, key[2])
                except Exception:  # noqa: BLE001 - only a speed-up: whatever it cannot handle stays general
                    entry.plan_tries += 1
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
        depth = gen.stage(gen.key)  # (the traced key stays in this thread: see random._Global)
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
            gen.unstage(depth)
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
