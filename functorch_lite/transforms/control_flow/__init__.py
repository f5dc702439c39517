"""Control flow primitives: ``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``.

Each is one primitive (``cond_p``, ``while_p``, ``scan_p``) whose bodies are closed
[`Program`][functorch_lite.transforms.Program]s: the user's function is traced once, on the operands'
shapes and dtypes, and every value it captures from outside (a parameter, a tracer of an
outer transform) becomes an explicit operand, so every transform sees it. The impl replays
the compiled bodies (one backend call per equation, no Tensors); the rules build new bodies
by transforming the old ones (``jvp``, ``vjp``, ``vmap`` of a program), so the primitives
compose with every transform to any order, eagerly and under ``jit``.

Reverse mode through ``scan``: when ``grad`` differentiates the loop directly, one step's vjp
is split by partial evaluation into a forward body (the step, also returning the values its
backward needs: its residuals, stacked per step) and a backward body, so ``grad`` costs one
forward and one backward scan. Otherwise (``checkpoint=``, a transform between) the rule
stores one carry per step and recomputes each step in the backward pass (what
``fl.checkpoint`` on the body would do). ``while_loop`` is differentiable in reverse mode
too: its forward pass counts its iterations (an extra hidden output), and the backward pass
is a scan of that length storing a carry per step, masked per element under ``vmap``.

The package: ``_common`` (closing bodies into cached programs, transforming them),
``_scan`` (the primitive and its rules), ``_scan_split`` (reverse mode by partial
evaluation), ``_scan_api`` (``fl.scan``, ``checkpoint=``, ``fl.map``), ``_cond`` (``cond``,
``switch``) and ``_while`` (``while_loop``, ``fori_loop``).
"""

from __future__ import annotations

from ._common import ControlPrimitive, close, signature
from ._cond import _int_dtype, cond, cond_p, switch
from ._scan import scan_p
from ._scan_api import map, scan
from ._scan_split import _Split
from ._while import fori_loop, while_loop, while_p

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map"]
# also the primitives and what the lowerings read: cond_p, scan_p, while_p, ControlPrimitive,
# close, signature, _Split (saved programs), _int_dtype (the xla compiler)
_INTERNAL = (ControlPrimitive, close, signature, cond_p, scan_p, while_p, _Split, _int_dtype)
