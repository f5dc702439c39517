"""What the AD tracers carry: a primal and its tangent (forward mode), or a tape node (reverse mode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.engine import Payload, Trace
from .._core.tensor import Tensor

__all__ = ["PrimalPayload", "JVPPayload", "Node", "VJPPayload"]


class PrimalPayload(Payload):
    """A payload whose value is its ``primal`` (forward and reverse mode)."""

    __slots__ = ()
    primal: Any
    carries_derivative = True  # exporting the primal (numpy, DLPack) would drop the derivative

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> Any:
        return self.primal.dtype

    @property
    def device(self) -> Any:
        return self.primal.device

    def concrete(self, t: Tensor) -> Tensor:
        return self.primal


class JVPPayload(PrimalPayload):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace: Trace, primal: Tensor, tangent: Tensor) -> None:
        self.trace = trace
        self.primal = primal
        self.tangent = tangent

    def __repr__(self) -> str:
        return f"JVP tracer of {self.trace!r}"


class Node(PrimalPayload):
    """One recorded op: its rule carrier, params, parents and residuals.

    A single-output node is also the payload of its output tracer (one object
    instead of two); multi-output nodes hand out one VJPPayload per output.
    """

    __slots__ = ("primal", "idx", "prim", "params", "parents", "primals", "out", "ct", "tan", "multi", "raw")

    def __init__(
        self,
        trace: Any,
        prim: Any,
        params: Any,
        parents: Sequence[Any],
        primals: Sequence[Any],
        out: Any,
        multi: bool,
        raw: bool = False,
    ) -> None:
        self.trace = trace
        self.primal = out
        self.idx = -1
        self.prim = prim
        self.params = params
        self.parents: Sequence[Any] = parents
        self.primals: Sequence[Any] = primals
        self.out = out
        self.ct: Any = None
        self.tan: Any = None
        self.multi = multi
        # True when every residual is concrete (recorded eagerly): backward may then run the
        # primitive's array-level rule (``Primitive.avjp``) on a concrete cotangent.
        self.raw = raw

    def __repr__(self) -> str:
        return f"VJP tracer of {self.trace!r}"

    @property
    def node(self) -> Node:
        # (a property, not a slot holding self: a self-reference would put every node in a
        # reference cycle, freed only by the cyclic garbage collector)
        return self


class VJPPayload(PrimalPayload):
    __slots__ = ("primal", "node", "idx")

    def __init__(self, trace: Trace, primal: Tensor, node: Node, idx: int) -> None:
        self.trace = trace
        self.primal = primal
        self.node = node
        self.idx = idx

    def __repr__(self) -> str:
        return f"VJP tracer of {self.trace!r}"
