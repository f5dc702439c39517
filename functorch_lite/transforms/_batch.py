"""vmap's trace: batched values with a batch axis, processed by each primitive's batch rule."""

from __future__ import annotations

from typing import Any

from .._core.engine import Payload, Primitive, Trace
from .._core.tensor import Tensor, make_tracer
from .._errors import TransformError

__all__ = ["BatchTrace", "BatchPayload"]


class BatchPayload(Payload):
    __slots__ = ("val", "bdim")

    def __init__(self, trace: Trace, val: Tensor, bdim: int) -> None:
        self.trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.val.shape
        d = self.bdim
        return s[:d] + s[d + 1 :]

    @property
    def dtype(self) -> Any:
        return self.val.dtype

    @property
    def device(self) -> Any:
        return self.val.device

    def concrete(self, t: Tensor) -> Tensor:
        raise TransformError(
            f"A batched Tensor inside {self.trace!r} has one value per batch element, so it cannot "
            "become a single Python value (bool(), float(), int(), .item(), .tolist(), numpy). "
            "Use fl.where instead of if/else on values, or move the conversion outside vmap."
        )

    def __repr__(self) -> str:
        return f"vmap tracer of {self.trace!r} (batch axis {self.bdim})"


class BatchTrace(Trace):
    __slots__ = ("axis_size", "randomness", "index_offset")
    kind_name = "vmap"

    def __init__(self, level: int, axis_size: int, randomness: str = "error", index_offset: int = 0) -> None:
        super().__init__(level)
        self.axis_size = axis_size
        self.randomness = randomness
        self.index_offset = index_offset  # first batch index of this chunk (randomness="different")

    def tracer(self, val: Tensor, bdim: int) -> Tensor:
        return make_tracer(BatchPayload(self, val, bdim), val._xp)

    def unpack(self, args: Any) -> tuple[list[Any], list[Any]]:
        vals = []
        dims = []
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    vals.append(p.val)
                    dims.append(p.bdim)
                    continue
            vals.append(a)
            dims.append(None)
        return vals, dims

    def process(self, prim: Primitive, args: Any, params: dict[str, Any]) -> Any:
        vals, dims = self.unpack(args)
        rule = prim.batch
        if rule is None:
            raise NotImplementedError(f"{prim.name}: no batch rule, so it cannot run under vmap.")
        out, od = rule(self.axis_size, vals, dims, **params)
        if prim.multiple_results:
            if not isinstance(od, (list, tuple)):
                od = [od] * len(out)
            return tuple(o if d is None else self.tracer(o, d) for o, d in zip(out, od, strict=True))
        if od is None:
            return out
        return self.tracer(out, od)

    def process_custom(self, call: Any, args: Any) -> Any:
        return call.batch_process(self, args)
