"""The ops layer: every primitive with its rules, and the array API namespace."""

from __future__ import annotations

from ._base import asarray, get_default_dtype, set_default_dtype
from . import elementwise, manipulation, dtypes, searching, reduction, creation, indexing, scatter  # noqa: F401

__all__ = ["asarray", "get_default_dtype", "set_default_dtype"]
