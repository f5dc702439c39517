"""Sorting functions of the standard: sort, argsort."""

from __future__ import annotations

__all__: list[str] = []
