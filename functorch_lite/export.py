"""Saved programs: ``fl.export.save`` a staged function to one file, ``fl.export.load`` it anywhere.

A saved program is *data*: a [`Program`][functorch_lite.transforms.Program] (its typed
variables, equations as primitive names with their params, and pytree structures) written as
JSON, with its captured constants (weights) as tensors, in one **safetensors** file. The JSON
sits in the file's ``__metadata__`` under the key ``"functorch_lite.program"``; it names the
format (``"format": "functorch_lite.program"``, ``fl.export.FORMAT``) and its ``"version"``
(``fl.export.VERSION``, now 1): a file of another format or of a newer version is refused on
load with [`ExportError`][functorch_lite.ExportError].

Why one safetensors file: it is a single file to copy, upload or attach, like a checkpoint;
its header is plain JSON and its tensors raw little-endian bytes, so nothing is unpickled or
executed on load (primitives are looked up by name in the registry); and any safetensors tool
can list the weights. A program needs no code but functorch_lite's own: the file reloads in a
process that does not have the function that made it, and the loaded program is callable,
jittable and transformable (``fl.grad(loaded)``, ``fl.vmap``, ``fl.jvp``).

What cannot be saved raises [`ExportError`][functorch_lite.ExportError] before any file is
written: a custom_vjp / custom_jvp / checkpoint function inside the program (its rules are
Python functions), a param that is not data, or an input or output structure other than
tuples, lists, dicts and None. The backend is recorded by name; ``load(path, backend=...)``
rebuilds the program on another installed backend.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend
from . import _dtypes as D
from ._core import engine as _engine
from ._core import tree_util as tu
from ._core.tensor import Tensor
from ._errors import BackendMismatchError, ExportError
from .transforms._staging import Eqn, Program, Var, make_program

__all__ = ["save", "load", "SavedProgram", "FORMAT", "VERSION"]

FORMAT = "functorch_lite.program"
"""The ``"format"`` a saved program's JSON names."""
VERSION = 1
"""The newest format version this functorch_lite writes and reads."""

_META_KEY = "functorch_lite.program"
_WEAK = {"int": int, "float": float, "complex": complex}


# ---------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------
def save(obj: Any, path: str | os.PathLike[str], *example_args: Any) -> None:
    """Write a program to ``path`` as one safetensors file (JSON program + constant tensors), atomically.

    Args:
        obj: a [`Program`][functorch_lite.transforms.Program] (no example arguments needed), a
            [`jit`][functorch_lite.transforms.jit]-ed function, a plain function or an
            ``nn.Module``; the last three are staged for ``example_args``.
        path: the file to write; it is replaced only once the whole file is written.
        *example_args: positional arguments to stage ``obj`` for (Tensors, arrays,
            [`ShapeDtypeStruct`][functorch_lite.transforms.ShapeDtypeStruct]s, Python scalars).

    Raises:
        ExportError: the program holds something that is not data (a custom_vjp function, a
            Python object as a param), or ``path`` cannot be written; no file is left behind.

    Example:
        >>> import os, tempfile
        >>> import functorch_lite as fl
        >>> path = os.path.join(tempfile.mkdtemp(), "f.flprog")
        >>> fl.export.save(lambda x: fl.sum(fl.sin(x) ** 2), path, fl.ones((3,)))
        >>> g = fl.export.load(path)
        >>> round(float(g(fl.zeros((3,)))), 6), fl.grad(g)(fl.zeros((3,))).tolist()
        (0.0, [0.0, 0.0, 0.0])
    """
    program = _stage(obj, example_args)
    doc, arrays = _Encoder().document(program)
    try:
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # pragma: no cover - the encoder emits JSON types only
        raise ExportError(f"fl.export.save: the program did not encode to JSON ({exc}).") from None
    _write(Path(os.fspath(path)), arrays, {_META_KEY: text})


def _stage(obj: Any, args: tuple[Any, ...]) -> Program:
    from .transforms._jit import Jitted

    if isinstance(obj, Program):
        return obj
    if not callable(obj):
        raise ExportError(
            f"fl.export.save: expected a Program, a jitted function, a function or a Module; got "
            f"{type(obj).__name__}. Pass the function to save and example arguments to stage it for."
        )
    if not args:
        raise ExportError(
            f"fl.export.save: {_name(obj)} is a function, so it needs example arguments to be staged for: "
            "fl.export.save(f, path, *example_args) (Tensors or fl.ShapeDtypeStruct(shape, dtype)); or pass "
            "a Program made by fl.make_program(f)(*args)."
        )
    if isinstance(obj, Jitted) and obj._state_objs:
        raise ExportError(
            "fl.export.save: this jit threads module / optimizer state (inputs= / outputs=), which a saved "
            "program cannot update. Save a pure function instead, e.g. fl.export.save(model, path, x)."
        )
    from . import random as _random

    g = _random._GLOBAL
    key, seed = g.key, g.seed
    try:
        if isinstance(obj, Jitted):
            nums = tuple(i % len(args) for i in obj.static_argnums if -len(args) <= i < len(args))
            prog = make_program(obj.fun, static_argnums=nums)(*args).optimized()
            prog = _statics_as_leaves(prog, args, nums) if nums else prog
        else:
            prog = make_program(obj)(*args).optimized()
    finally:
        drew = g.key is not key or g.seed != seed
        g.key, g.seed = key, seed  # (the caller's random stream is left as it was)
    if drew:
        raise ExportError(
            f"fl.export.save: {_name(obj)} draws from the global random generator (nn.Dropout in training "
            "mode, a random op without a key), so a saved program would replay the one draw made while "
            "staging. Call model.eval() before saving, or pass a key (fl.random.key(seed)) as an argument "
            "and draw with it."
        )
    return prog


def _statics_as_leaves(prog: Program, args: tuple[Any, ...], nums: tuple[int, ...]) -> Program:
    """``make_program(static_argnums=)`` leaves a None where a static argument was; make each leaf
    of it a static input instead, so the loaded program is called like the function."""
    old = iter(prog.in_vars)
    in_vars: list[Any] = []
    for i, a in enumerate(args):
        leaves = tu.tree_leaves(a)
        in_vars += [("static", x) for x in leaves] if i in nums else [next(old) for _ in leaves]
    _, in_tree = tu.tree_flatten((tuple(args), {}))
    return Program(in_vars, in_tree, prog.eqns, prog.outs, prog.out_tree, prog.consts, prog.kind)


def _name(f: Any) -> str:
    return repr(getattr(f, "__name__", type(f).__name__))


class _Encoder:
    """Program -> (a JSON-ready dict, {tensor name: host array}); raises ExportError on what is not data."""

    def __init__(self) -> None:
        self.vars: list[Any] = []
        self.var_ids: dict[int, int] = {}
        self.programs: list[Any] = []
        self.program_ids: dict[int, int] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.tensor_ids: dict[int, str] = {}
        self.complex: list[str] = []
        self.backend: str | None = None
        self.where = "the program"

    def document(self, program: Program) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
                f"{self.backend!r}; a saved program has one backend. Move the value with fl.asarray first."
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
                a = np.stack([a.real, a.imag], axis=-1)
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
            if e.prim.name == "custom_call" or e.prim.name not in _engine.PRIMITIVES:
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
        if isinstance(v, np.generic) and v.dtype.kind in "biufc":
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
        from ._ops.indexing import _Arr
        from .transforms.control_flow import _Split

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
    from . import __version__

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


def _write(target: Path, arrays: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    from .nn._state import _new_temp_file

    directory = target.parent if str(target.parent) else Path(".")
    try:
        tmp, mode = _new_temp_file(target, directory)
    except OSError as exc:
        raise ExportError(
            f"fl.export.save: cannot write {str(target)!r} ({exc.strerror or exc}); check that the directory "
            "exists and is writable, or pick another path."
        ) from None
    try:
        save_file(arrays, tmp, metadata=meta)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise ExportError(
                f"fl.export.save: cannot write {str(target)!r} ({exc.strerror or exc}); nothing was written. Check "
                "that the path is not a directory and that the disk has room, or pick another path."
            ) from None
        raise


# ---------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str], *, backend: str | None = None) -> SavedProgram:
    """Read a program written by [`save`][functorch_lite.export.save]; nothing in the file is executed.

    Args:
        path: the file.
        backend: the backend to rebuild the program on; default: the one it was saved from.

    Returns:
        A [`SavedProgram`][functorch_lite.export.SavedProgram] (a ``Program``): call it like the
        saved function (with Tensors or arrays), or transform it (``fl.jit``, ``fl.grad``, ``fl.vmap``, ``fl.jvp``).

    Raises:
        ExportError: the file is missing, not a saved program (a checkpoint, an ONNX model), of a
            newer format version, or its backend is not installed (pass ``backend=``).

    Example:
        >>> import os, tempfile
        >>> import functorch_lite as fl
        >>> path = os.path.join(tempfile.mkdtemp(), "mlp.flprog")
        >>> w = fl.ones((3, 2))
        >>> fl.export.save(lambda x: fl.tanh(x @ w), path, fl.ones((4, 3)))
        >>> f = fl.export.load(path)
        >>> f(fl.zeros((4, 3))).shape, fl.jit(f)(fl.zeros((4, 3))).shape
        ((4, 2), (4, 2))
    """
    p = os.fspath(path)
    doc, reader = _read(p)
    name = backend if backend is not None else doc.get("backend", "numpy")
    try:
        b = _backend.get_backend(name)
    except Exception as exc:  # noqa: BLE001 - BackendError: unknown or not installed
        raise ExportError(
            f"fl.export.load: {p!r} was saved on backend {name!r}, which cannot be used here ({exc}). Pass "
            f"backend= to rebuild it on an installed one: fl.export.load(path, backend={_first_backend()!r})."
        ) from None
    try:
        prog = _Decoder(doc, reader, b).program(doc["main"])
    except ExportError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ExportError(
            f"fl.export.load: {p!r} names format {FORMAT!r} version {doc.get('version')} but its program is "
            f"malformed ({type(exc).__name__}: {exc}); save it again."
        ) from None
    saved = SavedProgram(prog.in_vars, prog.in_tree, prog.eqns, prog.outs, prog.out_tree, prog.consts, prog.kind)
    saved.backend = b.name
    return saved


class SavedProgram(Program):
    """A [`Program`][functorch_lite.transforms.Program] read by [`load`][functorch_lite.export.load].

    It runs on one backend (``backend``): input arrays of another library (a numpy array for
    a program on torch) are copied onto it; a Tensor of another backend is refused with a fix.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import functorch_lite as fl
        >>> path = os.path.join(tempfile.mkdtemp(), "double.flprog")
        >>> fl.export.save(lambda x: x * 2.0, path, fl.ones((2,)))
        >>> f = fl.export.load(path)
        >>> f.backend == fl.default_backend_name(), f(np.ones(2, dtype=np.float32)).tolist()
        (True, [2.0, 2.0])
    """

    backend: str  # the backend's name (set by load)

    def flat_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        args, kwargs = tu.tree_map(self._onto, (tuple(args), dict(kwargs)))
        return super().flat_inputs(args, kwargs)

    def _onto(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            name = _backend.backend_of_namespace(x._xp).name
            if name != self.backend:
                raise BackendMismatchError(
                    f"loaded program: an input is a Tensor on backend {name!r}, but the program runs on "
                    f"{self.backend!r}. Move it with fl.to_backend(x, {self.backend!r}), or load the program "
                    f"with fl.export.load(path, backend={name!r})."
                )
            return x
        b = _backend.backend_of(x)
        if b is not None and b.name != self.backend:  # a raw array of another library: copy it over
            return _backend.host_to_tensor(np.asarray(b.to_numpy(x)), self.backend)
        return x


def _first_backend() -> str:
    names = _backend.available_backends()
    return "numpy" if "numpy" in names or not names else names[0]


def _read(p: str) -> tuple[dict[str, Any], Callable[[str], np.ndarray]]:
    from safetensors import safe_open

    if not os.path.isfile(p):
        raise ExportError(f"fl.export.load: no file at {p!r}; check the path (fl.export.save writes one file).")
    not_ours = (
        f"fl.export.load: {p!r} is not a saved functorch_lite program (written by fl.export.save)"
        "; {what}. Load checkpoints with fl.nn.load and ONNX models with onnxruntime."
    )
    try:
        f = safe_open(p, framework="numpy")
        meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not safetensors at all: a random or foreign file
        raise ExportError(not_ours.format(what="it is not even a safetensors file")) from None
    text = meta.get(_META_KEY)
    if text is None:
        raise ExportError(not_ours.format(what="it is a safetensors file without a program (a checkpoint?)"))
    try:
        doc = json.loads(text)
    except ValueError:
        raise ExportError(not_ours.format(what="its program metadata is not JSON")) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else None
        raise ExportError(not_ours.format(what=f"its metadata names format {fmt!r}, not {FORMAT!r}"))
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"fl.export.load: {p!r} names no valid format version (got {version!r}); save it again.")
    if version > VERSION:
        raise ExportError(
            f"fl.export.load: {p!r} is format version {version}, written by a newer functorch_lite "
            f"({doc.get('functorch_lite', '?')}); this functorch_lite ({_version()}) reads versions up to "
            f"{VERSION}. Upgrade functorch_lite (pip install -U functorch_lite), or save the program again "
            "with this version."
        )
    return doc, f.get_tensor


class _Decoder:
    def __init__(self, doc: dict[str, Any], get_tensor: Callable[[str], np.ndarray], backend: Any) -> None:
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
            from ._ops.indexing import _Arr

            return _Arr(int(v[0]), bool(v[1]), int(v[2]))
        if tag == "scan_split":
            from .transforms.control_flow import _Split

            masks = self.value(v["masks"])
            return _Split(self.program(v["bwd"]), [self.tensor(t) for t in v["bwd_extra"]], v["n_res"], v["ne"], masks)
        raise ExportError(
            f"fl.export.load: the program holds a value tagged {tag!r}, which this functorch_lite ({_version()}) "
            "does not know; upgrade functorch_lite (pip install -U functorch_lite)."
        )


def _primitive(name: str) -> _engine.Primitive:
    prim = _engine.PRIMITIVES.get(name)
    if prim is None:  # nn and optim register their primitives when imported
        from . import nn, optim  # noqa: F401

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
