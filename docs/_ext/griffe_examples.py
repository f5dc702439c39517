"""A griffe extension for the API reference: render ``Example:`` sections as examples.

functorch_lite's docstrings are Google style with a singular ``Example:`` heading. griffe's
Google parser only knows the plural ``Examples:`` as a section of doctest examples (the
singular one becomes an admonition whose ``>>>`` lines render as nested quotes), so this
extension renames the heading before the docstring is parsed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is not None and "Example:" in doc.value:
            doc.value = _HEADING.sub(r"\1Examples:", doc.value)
