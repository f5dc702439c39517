"""Lowering a [`Program`][functorch_lite.transforms.Program] to ONNX: one node pattern per primitive.

Each rule reads only what DESIGN.md allows a lowering to read: the primitive's name, its
params and the avals of its inputs and outputs. Python-scalar operands (weak values) take
the dtype of the op, as they do in eager code. ``RULES`` maps primitive names to rules and
``UNSUPPORTED`` says why the others have none; ``coverage()`` in the package turns both into
the table the docs publish.

This module holds the machinery (``rule``, ``Ctx``, ``Lowerer``); the rules live in one
module per family of primitives: ``_elementwise``, ``_arrays`` (reductions, linear algebra,
manipulation), ``_indexing`` and ``_calls`` (nn / optim primitives, custom calls, control flow).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._errors import ExportError
from ...transforms._program import Program, Var
from .._graph import Builder
from .._symbolic import Dim, Merged

__all__ = ["Lowerer", "RULES", "UNSUPPORTED", "ONNX_OPS"]

Rule = Callable[["Ctx"], list[str]]
RULES: dict[str, Rule] = {}
ONNX_OPS: dict[str, str] = {}  # primitive -> the ONNX operators its rule emits (for the coverage table)

UNSUPPORTED: dict[str, str] = {
    "conj": "complex dtypes: onnxruntime has no complex arithmetic",
    "real": "complex dtypes: onnxruntime has no complex arithmetic",
    "imag": "complex dtypes: onnxruntime has no complex arithmetic",
    "fft.c2c": "complex dtypes (ONNX DFT has no complex tensors)",
    "fft.r2c": "complex dtypes (ONNX DFT has no complex tensors)",
    "fft.c2r": "complex dtypes (ONNX DFT has no complex tensors)",
    "nextafter": "no ONNX operator reads or steps the float bit pattern",
    "cumulative_prod": "no ONNX operator (CumSum only)",
    "nonzero": "data-dependent output shape",
    "unique_all": "data-dependent output shape",
    "unique_counts": "data-dependent output shape",
    "unique_inverse": "data-dependent output shape",
    "unique_values": "data-dependent output shape",
    "searchsorted": "no ONNX operator",
    "linalg.inv": "no ONNX operator",
    "linalg.solve": "no ONNX operator",
    "linalg.cholesky": "no ONNX operator",
    "linalg.eigh": "no ONNX operator",
    "linalg.qr": "no ONNX operator",
    "linalg.svd": "no ONNX operator",
    "linalg.svdvals": "no ONNX operator",
    "linalg.slogdet": "no ONNX operator",
}


def rule(names: str | Sequence[str], ops: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for n in [names] if isinstance(names, str) else names:
            RULES[n] = fn
            ONNX_OPS[n] = ops
        return fn

    return deco


# ---------------------------------------------------------------------------------------
# The lowering context of one equation
# ---------------------------------------------------------------------------------------
class Ctx:
    """One equation being lowered: its operands (ONNX names or Python literals) and params."""

    def __init__(self, low: Lowerer, eqn: Any, ins: list[Any], raw: list[Any], params: dict[str, Any]) -> None:
        self.low = low
        self.b: Builder = low.b
        self.eqn = eqn
        self.ins = ins  # ONNX names for Var inputs, Python values (or Dims) otherwise
        self.raw = raw  # the eqn's inputs: Vars or literals
        self.params = params
        self.outs: list[Var] = eqn.outputs

    @property
    def name(self) -> str:
        return str(self.eqn.prim.name)

    def dt(self, i: int) -> str | None:
        v = self.raw[i]
        return v.dtype.name if isinstance(v, Var) else None

    def odt(self, j: int = 0) -> str:
        return str(self.outs[j].dtype.name)

    def shape(self, i: int) -> tuple[Any, ...]:
        v = self.raw[i]
        return self.low.m.shape_of(v)

    def rank(self, i: int) -> int:
        v = self.raw[i]
        return len(v.shape) if isinstance(v, Var) else 0

    def oshape(self, j: int = 0) -> tuple[Any, ...]:
        return self.low.m.shape_of(self.outs[j])

    def x(self, i: int, dtype: str | None = None) -> str:
        """Operand ``i`` as an ONNX name, cast to ``dtype`` when given."""
        v = self.raw[i]
        a = self.ins[i]
        if isinstance(v, Var):
            if dtype is not None and v.dtype.name != dtype:
                return self.b.op("Cast", [a], to=self.b.elem(dtype))
            return str(a)
        if dtype is None:
            dtype = "bool" if isinstance(a, bool) else "int64" if isinstance(a, int) else "float32"
        if isinstance(a, Dim):
            n = self.b.dim(a, f"an operand of {self.name}")
            return n if dtype == "int64" else self.b.op("Cast", [n], to=self.b.elem(dtype))
        if a is None:
            raise ExportError(f"onnx.export: {self.name}: operand {i} is None where a value is needed.")
        return self.b.const(a, dtype)

    def op(self, typ: str, inputs: Sequence[str], **attrs: Any) -> str:
        return str(self.b.op(typ, inputs, **attrs))

    def promoted(self, idx: Sequence[int]) -> str:
        """The dtype the operands ``idx`` compute in (Var dtypes promoted; literals are weak)."""
        dts = [self.raw[i].dtype for i in idx if isinstance(self.raw[i], Var)]
        if not dts:
            return self.odt()
        if len({d.name for d in dts}) == 1:
            return str(dts[0].name)
        from ..._ops.elementwise import result_type

        return str(result_type(*dts).name)


# ---------------------------------------------------------------------------------------
# Lowering programs
# ---------------------------------------------------------------------------------------
class Lowerer:
    def __init__(self, b: Builder, merged: Merged) -> None:
        self.b = b
        self.m = merged
        self._const_names: dict[int, str] = {}
        self._uniform: dict[int, Any] = {}

    def const_value(self, v: Var, c: Any) -> str:
        n = self._const_names.get(id(c))
        if n is not None and v.id not in self.m.const_fill:
            return n
        if v.id in self.m.const_fill:
            fill = self.m.const_fill[v.id]
            shape = self.b.shape_vec(self.m.shape_of(v), "a captured constant's shape")
            value = self.b.h.make_tensor("value", self.b.elem(v.dtype.name), [1], [fill])
            return str(self.b.op("ConstantOfShape", [shape], value=value))
        from ..._backend import tensor_to_host

        n = self.b.host(tensor_to_host(c))
        self._const_names[id(c)] = n
        return n

    def uniform_fill(self, v: Any) -> Any:
        """The one value every element of captured constant ``v`` holds, or None."""
        if not isinstance(v, Var):
            return None
        if v.id in self.m.const_fill:
            return self.m.const_fill[v.id]
        return self._uniform.get(v.id)

    def lower(self, prog: Program, in_names: Sequence[str]) -> list[Any]:
        """Emit ``prog``'s equations; return its outputs (ONNX names, or literals for literal outputs)."""
        env: dict[int, str] = {}
        in_vars = [v for v in prog.in_vars if isinstance(v, Var)]
        if len(in_vars) != len(in_names):
            raise ExportError(f"onnx.export: internal: {len(in_names)} names for {len(in_vars)} inputs.")
        for v, n in zip(in_vars, in_names, strict=True):
            env[v.id] = n
        for v, c in prog.consts:
            env[v.id] = self.const_value(v, c)
            if v.id not in self.m.const_fill and 0 < c.size <= 1 << 22:
                from ..._backend import tensor_to_host

                flat = tensor_to_host(c).reshape(-1)
                if (flat == flat[0]).all():
                    self._uniform[v.id] = flat[0].item()
        for e in prog.eqns:
            fn = RULES.get(e.prim.name)
            if fn is None:
                raise unsupported_error(e.prim.name)
            raw = self.m.inputs.get(id(e), e.inputs)
            params = self.m.params.get(id(e), e.params)
            ins = [env[x.id] if isinstance(x, Var) else x for x in raw]
            self.b.current = e.prim.name
            outs = fn(Ctx(self, e, ins, list(raw), params))
            if len(outs) != len(e.outputs):
                raise ExportError(f"onnx.export: internal: the {e.prim.name} rule gave {len(outs)} outputs.")
            for v, n in zip(e.outputs, outs, strict=True):
                env[v.id] = n
        return [env[o.id] if isinstance(o, Var) else o for o in prog.outs]

    def as_name(self, o: Any, dtype: str) -> str:
        """A program output as an ONNX name (a literal output becomes a constant)."""
        if isinstance(o, str):
            return o
        return self.b.const(o, dtype)


def unsupported_error(name: str, where: str = "") -> ExportError:
    why = UNSUPPORTED.get(name, "no lowering is registered for it")
    return ExportError(
        f"onnx.export: primitive {name!r}{where} cannot be expressed in ONNX ({why}); nothing was written. "
        "Compute it outside the exported function, or replace it with ops from the coverage table "
        "(docs: concepts/export)."
    )


def walk_primitives(prog: Program) -> list[str]:
    """Every primitive name in ``prog`` and in the programs its params hold."""
    out: list[str] = []
    for e in prog.eqns:
        out.append(e.prim.name)
        for v in e.params.values():
            for p in v if isinstance(v, (tuple, list)) else [v]:
                if isinstance(p, Program):
                    out.extend(walk_primitives(p))
    return out


# The rules, one module per family of primitives; importing them fills RULES and ONNX_OPS.
from . import _arrays, _calls, _elementwise, _indexing  # noqa: E402, F401
