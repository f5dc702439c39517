"""``python -m functorch_lite`` and the ``functorch-lite`` console script.

Example:
    >>> from functorch_lite.__main__ import main
    >>> callable(main)
    True
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
