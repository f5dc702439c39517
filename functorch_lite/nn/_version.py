"""The structure version of module trees: one token that every structural change moves.

Every change that can alter what a module tree flattens to (a parameter, buffer name or child
module registered, replaced or removed; a parameter frozen or unfrozen) moves ``_VERSION`` to a
fresh, never reused token, which invalidates every cached ``_Layout`` (``nn/_layout.py``) at once.
"""

from __future__ import annotations

import itertools

__all__ = ["structure_changed"]

_VERSION = [0]
_TOKENS = itertools.count(1)
_SWAPPED = [0]  # how many value swaps (nn/_transforms._Swap) are in progress


def structure_changed() -> None:
    """Invalidate every cached module layout (called by each structural change)."""
    _VERSION[0] = next(_TOKENS)
