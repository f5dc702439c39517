"""A griffe extension for the API reference: a module with ``__all__`` shows only what it exports.

The reference is built by inspection (``force_inspection``), and inspection sees every name a
module imports for its own use: ``functorch_lite.fft`` imports ``Tensor`` and ``DTypeError``,
and without this extension its page renders both classes again (as ``fft.Tensor``, with the
private base ``functorch_lite._errors.FunctorchLiteError``). Members that are aliases of
objects defined elsewhere and not listed in the module's ``__all__`` are dropped.
"""

from __future__ import annotations

from typing import Any

import griffe


class ExportsOnly(griffe.Extension):
    """Drop imported names that a module does not export from its members."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._prune(pkg)

    def _prune(self, mod: griffe.Module) -> None:
        exports = mod.exports
        for name, member in list(mod.members.items()):
            if member.is_alias:
                if exports is not None and name not in exports:
                    del mod.members[name]
            elif member.is_module:
                self._prune(member)  # type: ignore[arg-type]
