"""The ops layer: every primitive with its rules, and the array API namespace.

How the ops modules import each other (so that no import order matters and ruff may sort
them). The modules form three tiers: ``_base`` (no sibling imports); the helpers ``_rules``,
``_binary_dispatch`` and ``_operators`` (which import names from ``_base`` only); and the public
modules (``creation``, ``dtypes``, ``elementwise``, ``indexing``, ``manipulation``,
``reduction``, ``scatter``, ``searching``, ``linalg_core``, ...), which use one another's ops
in their rules. Imports at the top of a module only point down (``from ._base import x``,
``from ._rules import y``; ``scatter`` takes the key helpers of ``indexing``; ``fft``,
``linalg``, ``_special`` and ``_threefry``, which nothing imports at import time, take public
ops). Every other ops module a module needs, a sibling or one above it, is imported as a module
object in one block at the END of the module, after every definition, under the comment
"Sibling ops modules ...", and its functions are read at call time (``_manipulation.reshape(x)``,
or bound to a local at the top of a rule). Whatever a module is in the middle of, a module
object of a partially initialised sibling is all it takes, so any module may be imported
first, and no module can use a sibling while it is itself being imported (the name is bound
only at its end). A new sibling import goes in that block, not in the sorted one at the top.
"""

from __future__ import annotations

from . import creation, dtypes, elementwise, indexing, manipulation, reduction, scatter, searching  # noqa: F401
from ._base import asarray, get_default_dtype, set_default_dtype

__all__ = ["asarray", "get_default_dtype", "set_default_dtype"]
