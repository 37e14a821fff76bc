"""One typed registry per kind of thing (methods per axis, models, datasets, papers) and the axes.

`Axis` is the library's one taxonomy: the four axes along which a network skips work
(connections, activations, routes, time) plus the foundations they rest on and the execution
layer. Methods, papers, docs and folders are all filed under it.

A `Registry[T]` maps a name to a `T` (usually a class or a factory). Names are lower-case and
hyphenated (`"random-pruning"`, `"lenet-300-100"`). Getting an unknown name raises a `KeyError`
that suggests the closest registered names; listing filters with shell-style globs (`fnmatch`).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Axis(str, Enum):
    """Where a method's or paper's sparsity lives: the four axes, the foundations and execution."""

    CONNECTIONS = "connections"
    ACTIVATIONS = "activations"
    ROUTES = "routes"
    TIME = "time"
    FOUNDATIONS = "foundations"
    EXECUTION = "execution"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> Axis | None:
        # The two supporting groups that merged into "foundations"; accepted for one release.
        if value in _RETIRED_AXES:
            warnings.warn(
                f"axis {value!r} is now 'foundations'; the old name goes in the next release",
                DeprecationWarning,
                stacklevel=4,  # _missing_ <- Enum.__new__ <- EnumType.__call__ <- the caller
            )
            return cls.FOUNDATIONS
        return None


_RETIRED_AXES = ("representations", "architecture")

AXIS_DESCRIPTIONS: dict[Axis, str] = {
    Axis.CONNECTIONS: "which weights exist: pruning, sparse training, structured (N:M, group) sparsity, "
    "sparse architecture search",
    Axis.ACTIVATIONS: "which units fire: k-WTA, top-k, thresholding, temporal deltas, sparse MLP codes",
    Axis.ROUTES: "which experts, tokens, channels, keys, adapters or models are computed: MoE, token "
    "skipping, sparse attention, model routing",
    Axis.TIME: "which steps carry events: spiking neurons, spike-based learning, temporal dynamics",
    Axis.FOUNDATIONS: "what the axes rest on: sparse distributed representations, sparse coding, "
    "sparse-input topologies",
    Axis.EXECUTION: "turning sparsity into saved time, memory and energy: formats, kernels, hardware",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:-]*$")


class Registry(Generic[T]):
    """A named collection of `T`, filled with `register` and read with `get` / `list`.

    Args:
        kind: what the registry holds, used in error messages ("pruning method", "model").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; used directly or as a decorator.

        Raises:
            ValueError: the name is malformed or already registered.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"{self.kind} name {name!r} is invalid: use lower-case letters, digits, '-', '_', '.', ':'"
            )
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def add(item: T) -> T:
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The item registered as `name`.

        Raises:
            KeyError: no such name; the message suggests the closest registered names.
        """
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self._unknown(name)) from None

    def _unknown(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._items)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (registered: {known})"

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the glob `pattern`."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, item) pairs in name order."""
        for name in self.list():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} items)"
