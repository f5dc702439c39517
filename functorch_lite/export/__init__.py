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
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _backend
from .._core import tree_util as tu
from .._core.tensor import Tensor
from .._errors import BackendMismatchError, ExportError
from .._files import write_atomic
from ..transforms._make_program import make_program
from ..transforms._program import Program
from ._codec import _META_KEY, FORMAT, VERSION, _Decoder, _Encoder, _name, _version

__all__ = ["save", "load", "SavedProgram", "FORMAT", "VERSION"]


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
    from ..transforms._jit import Jitted

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
    from .. import random as _random

    g = _random._GLOBAL
    key, seed = g.key, g.seed
    depth = g.stage(key)  # (draws while staging stay in this thread: see random._Global)
    try:
        if isinstance(obj, Jitted):
            nums = tuple(i % len(args) for i in obj.static_argnums if -len(args) <= i < len(args))
            prog = make_program(obj.fun, static_argnums=nums)(*args).optimized()
            prog = _statics_as_leaves(prog, args, nums) if nums else prog
        else:
            prog = make_program(obj)(*args).optimized()
    finally:
        drew = g.key is not key or g.seed != seed
        g.unstage(depth)
        g.seed = seed  # (the caller's random stream is left as it was)
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


def _write(target: Path, arrays: dict[str, Any], meta: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    write_atomic(target, lambda tmp: save_file(arrays, tmp, metadata=meta), "fl.export.save", ExportError)


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
            return _backend.host_to_tensor(b.to_numpy(x), self.backend)
        return x


def _first_backend() -> str:
    names = _backend.available_backends()
    return "numpy" if "numpy" in names or not names else names[0]


def _read(p: str) -> tuple[dict[str, Any], Callable[[str], Any]]:
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
