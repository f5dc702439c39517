"""functorch_lite.nn: a PyTorch-style Module API built on the transforms."""

from __future__ import annotations

from ._module import Module, Parameter

__all__ = ["Module", "Parameter"]
