"""Forward mode: the JVP trace (a tangent carried beside each primal) and the forward replay of a
recorded tape (linearize)."""

from __future__ import annotations

from typing import Any

from .._core.engine import Primitive, Trace, bind, eager
from .._core.tensor import Tensor, make_tracer
from ._fit import fit_tangent
from ._payloads import JVPPayload, Node

__all__ = ["JVPTrace", "forward_replay"]

_new = object.__new__


class JVPTrace(Trace):
    __slots__ = ()
    kind_name = "jvp"
    float_only = True

    def tracer(self, primal: Tensor, tangent: Tensor) -> Tensor:
        return make_tracer(JVPPayload(self, primal, tangent), primal._xp)

    def unpack(self, args: Any) -> tuple[list[Any], list[Any]]:
        primals = []
        tangents = []
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    primals.append(p.primal)
                    tangents.append(p.tangent)
                    continue
            primals.append(a)
            tangents.append(None)
        return primals, tangents

    def process(self, prim: Primitive, args: Any, params: dict[str, Any]) -> Any:
        primals = []
        tangents = []
        lower = False  # a primal is itself a tracer, or an argument belongs to another trace
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None:
                    if p.trace is self:
                        pr = p.primal
                        primals.append(pr)
                        tangents.append(p.tangent)
                        if pr._t is not None:
                            lower = True
                        continue
                    lower = True
            primals.append(a)
            tangents.append(None)
        out = bind(prim, primals, params) if lower else eager(prim, primals, params)
        if not prim.differentiable:
            return out
        rule = prim.jvp
        if rule is None:
            raise NotImplementedError(f"{prim.name}: no jvp rule; forward-mode differentiation of it is not supported.")
        t_out = rule(tangents, out, *primals, **params)
        if prim.multiple_results:
            return tuple(o if t is None else self.tracer(o, fit_tangent(t, o)) for o, t in zip(out, t_out, strict=True))
        if t_out is None:
            return out
        payload = _new(JVPPayload)
        payload.trace = self
        payload.primal = out
        payload.tangent = fit_tangent(t_out, out)
        t = _new(Tensor)
        t._a = None
        t._xp = out._xp
        t._t = payload
        return t

    def process_custom(self, call: Any, args: Any) -> Any:
        return call.jvp_process(self, args)


def forward_replay(tape: list[Node]) -> None:
    """Propagate tangents set on input nodes forward through ``tape`` (for linearize)."""
    for node in tape:
        tans = []  # type: ignore[var-annotated]
        any_t = False
        for par in node.parents:
            if par is None:
                tans.append(None)
                continue
            src = par.node
            t = src.tan[par.idx] if src.multi else src.tan
            tans.append(t)
            any_t = any_t or t is not None
        if not any_t:
            node.tan = [None] * len(node.out) if node.multi else None
            continue
        rule = node.prim.jvp
        t_out = rule(tans, node.out, *node.primals, **node.params)
        if node.multi:
            node.tan = [None if t is None else fit_tangent(t, o) for t, o in zip(t_out, node.out, strict=True)]
        else:
            node.tan = None if t_out is None else fit_tangent(t_out, node.out)
