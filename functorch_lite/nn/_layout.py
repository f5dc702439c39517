"""``_Layout``: a module tree flattened once, cached on the root until the next structural change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core.tensor import Tensor
from ._version import _VERSION

if TYPE_CHECKING:
    from ._module import Module

__all__: list[str] = []


class _Layout:
    """A module tree flattened: what ``nn.value_and_grad`` and the optimizers read every step.

    Valid while ``_VERSION`` is unchanged: it holds the registered Tensor *objects* and the
    registry dicts, never values that change without a structural change (buffer values are
    read live through ``snap``).
    """

    __slots__ = ("version", "root_id", "params", "trainable", "slots", "snap", "by_obj", "buffer_slots", "plans")

    def __init__(self, root: Module) -> None:
        self.version = _VERSION[0]
        self.root_id = id(root)
        self.params: dict[str, Tensor] = dict(root.named_parameters())
        self.trainable: dict[str, Tensor] = dict(root.named_trainable_parameters())
        slots: dict[str, tuple[Module, str, str]] = {}  # dotted name -> (owner, kind, local), first name wins
        snap: list[tuple[dict[str, Any], str]] = []  # every slot of every module once: (registry, local)
        by_obj: dict[int, list[tuple[Module, str, str]]] = {}  # id(Tensor) -> every slot holding it
        where: dict[tuple[int, str, str], int] = {}
        seen: set[int] = set()
        for prefix, owner in root.named_modules(remove_duplicate=False):
            first = id(owner) not in seen
            seen.add(id(owner))
            for kind in ("_parameters", "_buffers"):
                reg = owner.__dict__[kind]
                for local, v in reg.items():
                    slots.setdefault(f"{prefix}.{local}" if prefix else local, (owner, kind, local))
                    if not first:
                        continue
                    where[(id(owner), kind, local)] = len(snap)
                    snap.append((reg, local))
                    if v is not None:
                        by_obj.setdefault(id(v), []).append((owner, kind, local))
        self.slots = slots
        self.snap = snap
        self.by_obj = by_obj
        # (dotted name, registry, local name, index in snap) of every buffer slot
        self.buffer_slots = [
            (name, owner.__dict__[kind], local, where[(id(owner), kind, local)])
            for name, (owner, kind, local) in slots.items()
            if kind == "_buffers"
        ]
        self.plans: dict[tuple[str, ...], list[tuple[dict[str, Any], str, str]]] = {}

    def plan(self, names: tuple[str, ...]) -> list[tuple[dict[str, Any], str, str]]:
        """(registry, local name, given name) for each slot that the values ``names`` go into
        (tied slots, which hold one Tensor object, all get its value)."""
        plan = self.plans.get(names)
        if plan is None:
            plan = []
            for name in names:
                owner, kind, local = self.slots[name]
                orig = owner.__dict__[kind][local]
                targets = (
                    self.by_obj.get(id(orig), [(owner, kind, local)]) if orig is not None else [(owner, kind, local)]
                )
                plan.extend((o.__dict__[k], lo, name) for o, k, lo in targets)
            self.plans[names] = plan
        return plan
