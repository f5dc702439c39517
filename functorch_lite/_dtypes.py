"""functorch_lite's own dtypes and the array API standard's promotion table.

Every backend maps its native dtypes onto these objects, so ``t.dtype ==
fl.float32`` holds whatever array library holds the data.
"""

from __future__ import annotations

import builtins

__all__ = [
    "DType",
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "ALL_DTYPES",
    "promote",
    "by_name",
]


class DType:
    """A data type of the array API standard (``fl.float32``, ``fl.int64``, ...).

    Compares equal to itself and to any backend's dtype of the same name
    (``fl.float32 == numpy.float32`` is True).

    Example:
        >>> import functorch_lite as fl
        >>> fl.float32.name, fl.float32.bits, fl.asarray(1.0).dtype == fl.float32
        ('float32', 32, True)
    """

    __slots__ = ("name", "kind", "bits", "_rank")

    def __init__(self, name: str, kind: str, bits: int, rank: int) -> None:
        self.name = name
        self.kind = kind  # 'b' bool, 'i' signed, 'u' unsigned, 'f' real float, 'c' complex
        self.bits = bits
        self._rank = rank

    @property
    def itemsize(self) -> int:
        return max(self.bits // 8, 1)

    def __repr__(self) -> str:
        return f"functorch_lite.{self.name}"

    __str__ = __repr__

    def __eq__(self, other: object) -> builtins.bool:
        if other.__class__ is DType:
            return self is other
        return _native_name(other) == self.name

    def __ne__(self, other: object) -> builtins.bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> str:
        return self.name if self.name != "bool" else "bool_"


def _native_name(obj: object) -> str | None:
    if isinstance(obj, str):
        return obj
    if obj is builtins.bool:
        return "bool"
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    name = getattr(obj, "__name__", None)
    if isinstance(name, str):
        return "bool" if name == "bool_" else name
    text = str(obj)
    return text.rsplit(".", 1)[-1] if text else None


bool_ = DType("bool", "b", 8, 0)
int8 = DType("int8", "i", 8, 1)
int16 = DType("int16", "i", 16, 2)
int32 = DType("int32", "i", 32, 3)
int64 = DType("int64", "i", 64, 4)
uint8 = DType("uint8", "u", 8, 1)
uint16 = DType("uint16", "u", 16, 2)
uint32 = DType("uint32", "u", 32, 3)
uint64 = DType("uint64", "u", 64, 4)
float32 = DType("float32", "f", 32, 1)
float64 = DType("float64", "f", 64, 2)
complex64 = DType("complex64", "c", 64, 1)
complex128 = DType("complex128", "c", 128, 2)

ALL_DTYPES: tuple[DType, ...] = (
    bool_,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
    float32,
    float64,
    complex64,
    complex128,
)
_BY_NAME = {d.name: d for d in ALL_DTYPES}


def by_name(name: str) -> DType | None:
    """The DType called ``name`` (``"float32"``), or None."""
    return _BY_NAME.get(name)


_SIGNED = (int8, int16, int32, int64)
_UNSIGNED = (uint8, uint16, uint32, uint64)
_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _promote_ints(a: DType, b: DType) -> DType:
    if a.kind == b.kind:
        return a if a._rank >= b._rank else b
    u, s = (a, b) if a.kind == "u" else (b, a)
    if u is uint64:
        return float64  # no signed type holds both (numpy's answer)
    need = u._rank + 1  # a signed type one size up holds every value of u
    return _SIGNED[max(need, s._rank) - 1]


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    ka, kb = _KIND_ORDER[a.kind], _KIND_ORDER[b.kind]
    if ka != kb:  # mixed kinds (beyond the standard): the higher kind wins, as in torch and JAX
        hi, lo = (a, b) if ka > kb else (b, a)
        if hi.kind == "c" and lo.kind == "f" and lo is float64:
            return complex128
        return hi
    if a.kind in "iu":
        return _promote_ints(a, b)
    if a.kind == "c" or a.kind == "f":
        return a if a._rank >= b._rank else b
    return a  # both bool


_TABLE: dict[tuple[DType, DType], DType] = {(a, b): _promote_pair(a, b) for a in ALL_DTYPES for b in ALL_DTYPES}


def promote(a: DType, b: DType) -> DType:
    """The result dtype of an operation on arrays of dtypes ``a`` and ``b``."""
    return _TABLE[(a, b)]
