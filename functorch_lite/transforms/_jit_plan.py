"""The fast path of ``jit``: a call with the structure and signature of an entry's last hit.

A cache entry (``_Entry``) holds the optimized program of one signature, how to run it, and
how to rebuild its outputs and write back the threaded state. After its first hit,
``_make_plan`` compiles such calls into one generated function; ``Jitted`` tries it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import tree_util as tu
from .._core.tensor import Tensor, backend_for
from ._jit_guard import _lookup
from ._jit_state import _gen, _ModuleState
from ._program import Var
from ._replay import compiled

_DEVICE_ATTR = ("jax", "torch")  # backends whose arrays' .device is the device itself


class _Entry:
    """One cached signature: its optimized program, how to run it, and its fast-path plan."""

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
