"""The saved-program codec: a Program to JSON-ready data and host arrays, and back.

``_Encoder`` raises ExportError on anything that is not data; ``_Decoder`` rebuilds Vars,
equations (primitives looked up by name), nested programs and constants, and executes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core import engine as _engine
from .._core import tree_util as tu
from .._core.tensor import Tensor
from .._errors import ExportError
from ..transforms._program import Eqn, Program, Var

FORMAT = "functorch_lite.program"
"""The ``"format"`` a saved program's JSON names."""
VERSION = 1
"""The newest format version this functorch_lite writes and reads."""

_META_KEY = "functorch_lite.program"
_WEAK = {"int": int, "float": float, "complex": complex}


def _name(f: Any) -> str:
    return repr(getattr(f, "__name__", type(f).__name__))


class _Encoder:
    """Program -> (a JSON-ready dict, {tensor name: host array}); raises ExportError on what is not data."""

    def __init__(self) -> None:
        self.vars: list[Any] = []
        self.var_ids: dict[int, int] = {}
        self.programs: list[Any] = []
        self.program_ids: dict[int, int] = {}
        self.arrays: dict[str, Any] = {}
        self.tensor_ids: dict[int, str] = {}
        self.complex: list[str] = []
        self.backend: str | None = None
        self.where = "the program"

    def document(self, program: Program) -> tuple[dict[str, Any], dict[str, Any]]:
        main = self.program(program)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "functorch_lite": _version(),
            "backend": self.backend or _backend.default_backend_name(),
            "vars": self.vars,
            "programs": self.programs,
            "main": main,
            "complex_tensors": self.complex,
        }
        return doc, self.arrays

    def note_backend(self, xp: Any, what: str) -> None:
        name = _backend.backend_of_namespace(xp).name
        if self.backend is None:
            self.backend = name
        elif name != self.backend:
            raise ExportError(
                f"fl.export.save: {what} is on backend {name!r} but the program's other values are on "
                f"{self.backend!r}; a saved program has one backend. Move it with fl.to_backend(t, {self.backend!r})."
            )

    def var(self, v: Var) -> int:
        i = self.var_ids.get(id(v))
        if i is None:
            if v.weak is None:
                self.note_backend(v.xp, f"a variable of {self.where}")
            weak = None if v.weak is None else v.weak.__name__
            i = self.var_ids[id(v)] = len(self.vars)
            self.vars.append([list(v.shape), getattr(v.dtype, "name", None), weak])
        return i

    def tensor(self, t: Tensor) -> str:
        if not isinstance(t, Tensor) or t._t is not None:
            raise ExportError(
                f"fl.export.save: {self.where} captured a traced value as a constant; save outside grad / vmap / "
                "jit (fl.export.save(fl.grad(f), path, x) saves the gradient)."
            )
        key = id(t._a)
        name = self.tensor_ids.get(key)
        if name is None:
            self.note_backend(t._xp, f"a constant of {self.where}")
            name = self.tensor_ids[key] = f"c{len(self.tensor_ids)}"
            a = _backend.tensor_to_host(t)
            if a.dtype.kind == "c":  # safetensors has no complex dtypes: (re, im) pairs on a last axis
                self.complex.append(name)
                a = _backend.host_complex_pairs(a)
            self.arrays[name] = a
        return name

    def program(self, p: Program) -> int:
        i = self.program_ids.get(id(p))
        if i is not None:
            return i
        outer = self.where
        body: dict[str, Any] = {"kind": p.kind}
        body["in_vars"] = [
            {"var": self.var(v)} if isinstance(v, Var) else {"static": self.value(v[1], "a static input")}
            for v in p.in_vars
        ]
        body["consts"] = [[self.var(v), self.tensor(c)] for v, c in p.consts]
        eqns = []
        for e in p.eqns:
            self.where = f"primitive {e.prim.name!r}"
            if _engine.PRIMITIVES.get(e.prim.name) is not e.prim:  # (custom_call is kept out of it)
                call = e.params.get("call")
                fn = getattr(getattr(call, "owner", None), "fun", None)
                raise ExportError(
                    f"fl.export.save: the program calls the custom function {_name(fn)} (custom_vjp / custom_jvp / "
                    "checkpoint), whose rules are Python functions: custom functions cannot be saved as data. "
                    "Save the derivative you need instead (fl.export.save(fl.grad(f), path, x) inlines the rule), "
                    "or save a version of the function without the custom rule."
                    if e.prim.name == "custom_call"
                    else f"fl.export.save: primitive {e.prim.name!r} is not in the primitive registry, so a loaded "
                    "program could not find it by name; register it with functorch_lite's Primitive."
                )
            ins = [{"var": self.var(x)} if isinstance(x, Var) else self.value(x, "an equation input") for x in e.inputs]
            params = {k: self.value(v, f"param {k!r}") for k, v in e.params.items()}
            eqns.append([e.prim.name, ins, [self.var(o) for o in e.outputs], params])
        self.where = outer
        body["eqns"] = eqns
        body["outs"] = [{"var": self.var(v)} if isinstance(v, Var) else self.value(v, "an output") for v in p.outs]
        body["in_tree"] = _tree_to_json(p.in_tree, "input")
        body["out_tree"] = _tree_to_json(p.out_tree, "output")
        i = self.program_ids[id(p)] = len(self.programs)
        self.programs.append(body)
        return i

    def value(self, v: Any, what: str) -> Any:  # noqa: PLR0911 - one branch per kind of value
        if _backend.is_host_scalar(v):
            v = v.item()  # a numpy scalar: the Python number it holds
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"float": repr(v)}
        if isinstance(v, complex):
            return {"complex": [self.value(v.real, what), self.value(v.imag, what)]}
        if isinstance(v, tuple) and type(v) is tuple:
            return {"tuple": [self.value(x, what) for x in v]}
        if type(v) is list:
            return {"list": [self.value(x, what) for x in v]}
        if type(v) is dict and all(isinstance(k, str) for k in v):
            return {"dict": [[k, self.value(x, what)] for k, x in v.items()]}
        if isinstance(v, slice):
            return {"slice": [self.value(x, what) for x in (v.start, v.stop, v.step)]}
        if v is Ellipsis:
            return {"ellipsis": None}
        if isinstance(v, D.DType):
            return {"dtype": v.name}
        if isinstance(v, Program):
            return {"program": self.program(v)}
        if isinstance(v, Tensor):
            return {"tensor": self.tensor(v)}
        from .._ops.indexing import _Arr
        from ..transforms.control_flow import _Split

        if isinstance(v, _Arr):
            return {"index_array": [v.i, v.is_bool, v.ndim]}
        if isinstance(v, _Split):
            return {
                "scan_split": {
                    "bwd": self.program(v.bwd),
                    "bwd_extra": [self.tensor(t) for t in v.bwd_extra],
                    "n_res": v.n_res,
                    "ne": v.ne,
                    "masks": self.value((v.ci, v.ki, v.xi, v.yf), what),
                }
            }
        raise ExportError(
            f"fl.export.save: {what} of {self.where} is {_short_repr(v)} (a {type(v).__name__}), which a saved "
            "program cannot describe as data (it holds ints, floats, bools, strings, None, tuples, lists, "
            "slices, dtypes, arrays and programs). Pass arrays as arguments and Python objects as static "
            "values of those kinds."
        )


def _short_repr(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _version() -> str:
    from .. import __version__

    return __version__


def _tree_to_json(tree: Any, what: str) -> Any:
    """A pytree structure as nested JSON: ``"*"`` a leaf, null None, {"tuple"|"list": [...]}, {"dict": [[k, v]]}."""
    if tree is None:
        return {"none_tree": None}
    obj = tu.tree_unflatten(tree, [_Leaf()] * tree.num_leaves)

    def enc(x: Any) -> Any:
        if isinstance(x, _Leaf):
            return "*"
        if x is None:
            return None
        if type(x) is tuple:
            return {"tuple": [enc(c) for c in x]}
        if type(x) is list:
            return {"list": [enc(c) for c in x]}
        if type(x) is dict and all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in x):
            return {"dict": [[k, enc(c)] for k, c in x.items()]}
        raise ExportError(
            f"fl.export.save: the program's {what} structure holds a {type(x).__name__}; a saved program keeps "
            "only tuples, lists, dicts (string or int keys) and None around its arrays. Pass the arrays in plain "
            "containers (a Module's parameters: close over the Module instead of passing it)."
        )

    return enc(obj)


class _Leaf:
    __slots__ = ()


class _Decoder:
    def __init__(self, doc: dict[str, Any], get_tensor: Callable[[str], Any], backend: Any) -> None:
        self.doc = doc
        self.get_tensor = get_tensor
        self.b = backend
        self.vars: dict[int, Var] = {}
        self.programs: dict[int, Program] = {}
        self.tensors: dict[str, Tensor] = {}
        self.complex = set(doc.get("complex_tensors", ()))

    def var(self, i: int) -> Var:
        v = self.vars.get(i)
        if v is None:
            shape, dtype, weak = self.doc["vars"][i]
            dt = D.by_name(dtype) if dtype is not None else None
            v = self.vars[i] = Var(tuple(shape), dt, self.b.xp, _WEAK[weak] if weak is not None else None)
        return v

    def tensor(self, name: str) -> Tensor:
        t = self.tensors.get(name)
        if t is None:
            a = self.get_tensor(name)
            if name in self.complex:
                a = a[..., 0] + 1j * a[..., 1]
            t = self.tensors[name] = _backend.host_to_tensor(a, self.b.name)
        return t

    def program(self, i: int) -> Program:
        p = self.programs.get(i)
        if p is not None:
            return p
        d = self.doc["programs"][i]
        in_vars = [self.var(x["var"]) if "var" in x else ("static", self.value(x["static"])) for x in d["in_vars"]]
        consts = [(self.var(v), self.tensor(t)) for v, t in d["consts"]]
        eqns = []
        for name, ins, outs, params in d["eqns"]:
            eqns.append(
                Eqn(
                    _primitive(name),
                    [self.input(x) for x in ins],
                    [self.var(o) for o in outs],
                    {k: self.value(v) for k, v in params.items()},
                )
            )
        outs_ = [self.input(x) for x in d["outs"]]
        p = Program(in_vars, _tree_from_json(d["in_tree"]), eqns, outs_, _tree_from_json(d["out_tree"]), consts)
        p.kind = d.get("kind", "make_program")
        self.programs[i] = p
        return p

    def input(self, x: Any) -> Any:
        if isinstance(x, dict) and "var" in x:
            return self.var(x["var"])
        return self.value(x)

    def value(self, x: Any) -> Any:  # noqa: PLR0911 - one branch per tag
        if not isinstance(x, dict):
            return x
        ((tag, v),) = x.items()
        if tag == "float":
            return float(v)
        if tag == "complex":
            return complex(self.value(v[0]), self.value(v[1]))
        if tag == "tuple":
            return tuple(self.value(c) for c in v)
        if tag == "list":
            return [self.value(c) for c in v]
        if tag == "dict":
            return {k: self.value(c) for k, c in v}
        if tag == "slice":
            return slice(*(self.value(c) for c in v))
        if tag == "ellipsis":
            return Ellipsis
        if tag == "dtype":
            dt = D.by_name(v)
            if dt is None:
                raise ExportError(f"fl.export.load: unknown dtype {v!r} in the program; save it again.")
            return dt
        if tag == "program":
            return self.program(v)
        if tag == "tensor":
            return self.tensor(v)
        if tag == "index_array":
            from .._ops.indexing import _Arr

            return _Arr(int(v[0]), bool(v[1]), int(v[2]))
        if tag == "scan_split":
            from ..transforms.control_flow import _Split

            masks = self.value(v["masks"])
            return _Split(self.program(v["bwd"]), [self.tensor(t) for t in v["bwd_extra"]], v["n_res"], v["ne"], masks)
        raise ExportError(
            f"fl.export.load: the program holds a value tagged {tag!r}, which this functorch_lite ({_version()}) "
            "does not know; upgrade functorch_lite (pip install -U functorch_lite)."
        )


def _primitive(name: str) -> _engine.Primitive:
    prim = _engine.PRIMITIVES.get(name)
    if prim is None:  # nn and optim register their primitives when imported
        from .. import nn, optim  # noqa: F401

        prim = _engine.PRIMITIVES.get(name)
    if prim is None:
        raise ExportError(
            f"fl.export.load: the program uses primitive {name!r}, which this functorch_lite ({_version()}) does "
            "not have; upgrade functorch_lite (pip install -U functorch_lite)."
        )
    return prim


def _tree_from_json(j: Any) -> Any:
    if isinstance(j, dict) and "none_tree" in j:
        return None

    def dec(x: Any) -> Any:
        if x == "*":
            return 0
        if x is None:
            return None
        ((tag, v),) = x.items()
        if tag == "tuple":
            return tuple(dec(c) for c in v)
        if tag == "list":
            return [dec(c) for c in v]
        if tag == "dict":
            return {k: dec(c) for k, c in v}
        raise ExportError(f"fl.export.load: unknown tree node {tag!r} in the program; save it again.")

    return tu.tree_structure(dec(j))
