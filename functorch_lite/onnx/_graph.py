"""The ONNX graph builder: unique names, constants as initializers, symbolic sizes at run time.

Only this package imports ``onnx`` (lazily, when an export runs). Constants go to the root
graph's initializers, which every subgraph (the bodies of ``If`` and ``Loop``) can read;
nodes go to the graph being built, so a control-flow body is built by pushing a frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._errors import ExportError
from ._symbolic import Dim

__all__ = ["Builder", "ELEM", "INT64_MAX", "INT64_MIN"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# functorch_lite dtype name -> onnx.TensorProto field name
ELEM = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FLOAT16",
    "bfloat16": "BFLOAT16",
    "float32": "FLOAT",
    "float64": "DOUBLE",
}


class _Frame:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.cache: dict[Any, str] = {}


class Builder:
    """Nodes, initializers and names for one exported model."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.h = onnx.helper
        self.opset = opset
        self.inits: list[Any] = []
        self._consts: dict[Any, str] = {}
        self._n = 0
        self._used: set[str] = set()
        self.frames = [_Frame()]
        self.symbols: dict[str, str] = {}  # symbol -> root-graph name of its 0-d int64 size
        self.symbol_order: list[str] = []
        self.current = "export"  # what is being lowered (for error messages)

    # -- names ----------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        while True:
            self._n += 1
            n = f"{hint}_{self._n}"
            if n not in self._used:
                self._used.add(n)
                return n

    def reserve(self, name: str) -> str:
        if name in self._used:
            raise ExportError(f"onnx.export: the name {name!r} is used twice; give each input and output its own name.")
        self._used.add(name)
        return name

    # -- nodes ----------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Any]:
        return self.frames[-1].nodes

    def op(
        self, typ: str, inputs: Sequence[str], n_out: int = 1, out: Sequence[str] | None = None, **attrs: Any
    ) -> Any:
        """Append a node; return its output name (or the list of names when ``n_out != 1``)."""
        outs = list(out) if out is not None else [self.fresh(typ.lower()) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.h.make_node(typ, list(inputs), outs, name=self.fresh("n_" + typ), **attrs))
        return outs[0] if n_out == 1 and out is None else outs

    def opn(self, typ: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
        """``op`` with ``n_out`` outputs, always as a list."""
        outs = [self.fresh(typ.lower()) for _ in range(n_out)]
        self.op(typ, inputs, out=outs, **attrs)
        return outs

    @contextmanager
    def frame(self) -> Iterator[_Frame]:
        f = _Frame()
        self.frames.append(f)
        try:
            yield f
        finally:
            self.frames.pop()

    def graph(self, frame: _Frame, name: str, inputs: Sequence[Any], outputs: Sequence[Any]) -> Any:
        return self.h.make_graph(frame.nodes, name, list(inputs), list(outputs))

    def value_info(self, name: str, dtype_name: str, shape: Sequence[Any] | None = None) -> Any:
        elem = self.elem(dtype_name)
        return self.h.make_tensor_value_info(name, elem, None if shape is None else list(shape))

    def elem(self, dtype_name: str) -> int:
        f = ELEM.get(dtype_name)
        if f is None:
            raise ExportError(
                f"onnx.export: {self.current}: dtype {dtype_name} has no ONNX equivalent that onnxruntime runs; "
                "cast to a real dtype (float32, int64, bool, ...) before exporting."
            )
        return int(getattr(self.onnx.TensorProto, f))

    # -- constants ------------------------------------------------------------------------------
    def const(self, value: Any, dtype_name: str) -> str:
        """A scalar (0-d) or nested-list constant of ``dtype_name``, shared by every use."""
        key = ("c", dtype_name, _key(value))
        n = self._consts.get(key)
        if n is None:
            dims, flat = _shape_flat(value)
            if dtype_name == "bool":
                flat = [bool(v) for v in flat]
            elif dtype_name.startswith(("int", "uint")):
                flat = [int(v) for v in flat]
            else:
                flat = [float(v) for v in flat]
            n = self.fresh("const")
            self.inits.append(self.h.make_tensor(n, self.elem(dtype_name), dims, flat))
            self._consts[key] = n
        return n

    def i64(self, values: Sequence[int]) -> str:
        return self.const([int(v) for v in values], "int64")

    def host(self, arr: Any, name: str | None = None) -> str:
        """An initializer holding a host (numpy) array."""
        from onnx import numpy_helper

        n = self.reserve(name) if name is not None else self.fresh("const")
        if str(arr.dtype) not in ELEM:
            self.elem(str(arr.dtype))
        self.inits.append(numpy_helper.from_array(arr, n))
        return n

    # -- symbolic sizes ------------------------------------------------------------------------
    def dim(self, d: Any, what: str) -> str:
        """A 0-d int64 tensor with the value of ``d`` (an int or a Dim), computed at run time."""
        if not isinstance(d, Dim):
            return self.const(int(d), "int64")
        if d.poly is None:
            raise ExportError(
                f"onnx.export: {what} is {d.value} here, and depends on the dynamic sizes "
                f"{list(d.symbols)} in a way that is not a polynomial of degree <= 2 with integer coefficients (the traces gave "
                f"{d.samples}): an integer division, a pooling size, or Python branching on a dynamic size. "
                "Export that axis with a fixed size (leave it out of dynamic_axes)."
            )
        key = ("dim", tuple(sorted(d.poly.items())), d.symbols)
        cache = self.frames[-1].cache
        if key in cache:
            return cache[key]
        lcd = 1
        for c in d.poly.values():
            lcd = lcd * c.denominator // math.gcd(lcd, c.denominator)
        total: str | None = None
        for exps, c in d.poly.items():
            coef = int(c * lcd)
            term: str | None = None
            for s, p in zip(d.symbols, exps, strict=True):
                for _ in range(p):
                    term = self.symbols[s] if term is None else self.op("Mul", [term, self.symbols[s]])
            if term is None:
                term = self.const(coef, "int64")
            elif coef != 1:
                term = self.op("Mul", [term, self.const(coef, "int64")])
            total = term if total is None else self.op("Add", [total, term])
        assert total is not None
        if lcd != 1:
            total = self.op("Div", [total, self.const(lcd, "int64")])
        cache[key] = total
        return total

    def shape_vec(self, entries: Sequence[Any], what: str) -> str:
        """A 1-D int64 tensor of ``entries`` (ints and Dims)."""
        if not any(isinstance(e, Dim) for e in entries):
            return self.i64([int(e) for e in entries])
        parts: list[str] = []
        run: list[int] = []
        for e in entries:
            if isinstance(e, Dim):
                if run:
                    parts.append(self.i64(run))
                    run = []
                parts.append(self.op("Unsqueeze", [self.dim(e, what), self.i64([0])]))
            else:
                run.append(int(e))
        if run:
            parts.append(self.i64(run))
        return parts[0] if len(parts) == 1 else self.op("Concat", parts, axis=0)

    def static(self, v: Any, what: str) -> Any:
        """``v`` with no Dim inside (ints, tuples, slices), or a typed error naming ``what``."""
        if isinstance(v, Dim):
            raise ExportError(
                f"onnx.export: {self.current}: {what} depends on a dynamic axis, which this lowering needs fixed. "
                "Export that axis with a fixed size (leave it out of dynamic_axes)."
            )
        if isinstance(v, tuple):
            return tuple(self.static(x, what) for x in v)
        if isinstance(v, list):
            return [self.static(x, what) for x in v]
        if isinstance(v, slice):
            return slice(self.static(v.start, what), self.static(v.stop, what), self.static(v.step, what))
        return v


def _key(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_key(x) for x in v)
    if isinstance(v, float):
        return ("f", repr(v))
    return (type(v).__name__, v)


def _shape_flat(v: Any) -> tuple[list[int], list[Any]]:
    if not isinstance(v, (list, tuple)):
        return [], [v]
    if len(v) == 0:
        return [0], []
    subs = [_shape_flat(x) for x in v]
    flat = [y for _, f in subs for y in f]
    return [len(v), *subs[0][0]], flat
