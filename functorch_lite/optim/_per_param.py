"""Per-parameter state of the stateful transforms: zeros, step counts, copies, and the check that
every gradient has its state."""

from __future__ import annotations

from typing import NamedTuple

from .. import _namespace as ops
from ._base import Flat, PerParam, missing_state


def _zeros(params: Flat) -> PerParam:
    return PerParam({k: ops.zeros_like(v) for k, v in params.items()})


def _steps(params: Flat) -> PerParam:
    return PerParam({k: 0 for k in params})


def _copy(state: NamedTuple) -> list[PerParam]:
    return [PerParam(x) if isinstance(x, PerParam) else x for x in state]


def _check_keys(g: Flat, keys: PerParam, where: str) -> None:
    for k in g:
        if k not in keys:
            raise missing_state(k, keys, where)
