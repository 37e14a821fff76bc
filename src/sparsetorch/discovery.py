"""Plugin discovery: import every axis so its registries fill, then list, find and create methods.

This module sits above the axes (the models layer): it is the one place that imports all of them.
The core (`sparsetorch.methods`) only holds the `Method` base and the per-kind registries.

A *kind* is one registry of things a user can pick by name, filed under one `Axis`:

| kind | registry | axis |
|---|---|---|
| pruning, training, search | `PRUNERS`, `TRAINERS`, `SEARCHES` (`Method` subclasses) | connections |
| activation | `sparsetorch.activations.ACTIVATIONS` (modules) | activations |
| gate | `sparsetorch.routing.GATES` (routers) | routes |
| driver, transform | `DRIVERS`, `TRANSFORMS` below (functions, not `Method` objects) | connections |

    >>> from sparsetorch.discovery import create_method, list_methods
    >>> list_methods("rig*")
    ['rigl']
    >>> create_method("rigl", sparsity=0.9).config.sparsity
    0.9

A name registered in two kinds (`random` is a pruning method and a gate) resolves to the first
kind in `KINDS` order; `"gate:random"` names the other one. A seed paper's key resolves to its
method when exactly one registered entry claims the paper (`"random-search-nas"` ->
`random-search`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparsetorch.methods import REGISTRIES
from sparsetorch.registry import Axis, Registry

__all__ = [
    "DRIVERS",
    "KINDS",
    "TRANSFORMS",
    "Driver",
    "Entry",
    "create_method",
    "entries",
    "list_methods",
    "load_all",
    "method_kind",
    "registries",
]

# Every kind, in lookup order, with the axis it lies on.
KINDS: dict[str, Axis] = {
    "pruning": Axis.CONNECTIONS,
    "training": Axis.CONNECTIONS,
    "search": Axis.CONNECTIONS,
    "activation": Axis.ACTIVATIONS,
    "gate": Axis.ROUTES,
    "driver": Axis.CONNECTIONS,
    "transform": Axis.CONNECTIONS,
}

# Subpackages whose import fills a registry (their `__init__` imports every method file).
_AXES = (
    "sparsetorch.pruning",
    "sparsetorch.training",
    "sparsetorch.search",
    "sparsetorch.activations",
    "sparsetorch.routing",
)


@dataclass(frozen=True)
class Driver:
    """An entry point that is a function rather than a `Method` object.

    Args:
        target: `"module:attribute"` of the function.
        paper: the paper key it implements.
        summary: one line for `sparsetorch ls methods`.
    """

    target: str
    paper: str
    summary: str

    def load(self) -> Callable[..., Any]:
        """Import and return the function."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


# Drivers run a whole recipe around other methods; transforms rewrite a model before training.
DRIVERS: Registry[Driver] = Registry("driver")
TRANSFORMS: Registry[Driver] = Registry("transform")
DRIVERS.register(
    "sparse-model-soups",
    Driver(
        "sparsetorch.training.soups:sparse_model_soups",
        "sparse-model-soups",
        "IMP cycles whose retrained runs share one mask and are averaged into a soup",
    ),
)
TRANSFORMS.register(
    "sparse-ift",
    Driver(
        "sparsetorch.training.sparse_ift:sparse_wide",
        "sparse-ift",
        "Sparse Wide: widen the hidden layers by sqrt(1/(1-s)) and train sparse at the dense FLOPs",
    ),
)


@dataclass(frozen=True)
class Entry:
    """One registered name: what `sparsetorch ls methods` shows in a row.

    Attributes:
        name: the registered name.
        kind: its registry (see `KINDS`).
        axis: the axis of its kind.
        paper: the paper key the entry itself claims ("" for classic baselines).
        target: `"module:qualified name"` of the class or function.
    """

    name: str
    kind: str
    axis: Axis
    paper: str
    target: str


def load_all() -> None:
    """Import every axis subpackage, which fills the registries."""
    for module in _AXES:
        importlib.import_module(module)


def registries() -> dict[str, Registry]:
    """Every kind's registry, in `KINDS` order (then any other method kind), after `load_all`."""
    load_all()
    from sparsetorch.activations import ACTIVATIONS
    from sparsetorch.routing import GATES

    found: dict[str, Registry] = {**REGISTRIES, "activation": ACTIVATIONS, "gate": GATES}
    found.update(driver=DRIVERS, transform=TRANSFORMS)
    return {**{k: found[k] for k in KINDS if k in found}, **found}


def _entry(name: str, kind: str, item: Any) -> Entry:
    if isinstance(item, Driver):
        return Entry(name, kind, KINDS[kind], item.paper, item.target)
    target = f"{item.__module__}:{item.__qualname__}"
    return Entry(name, kind, KINDS.get(kind, Axis.CONNECTIONS), getattr(item, "paper", ""), target)


def entries(pattern: str = "*", *, kind: str | None = None) -> list[Entry]:
    """Every registered entry whose name matches the glob `pattern` (of one kind, if given).

    Raises:
        KeyError: unknown `kind`, with the known kinds listed.
    """
    found = registries()
    if kind is not None and kind not in found:
        raise KeyError(f"unknown method kind {kind!r} (known: {', '.join(found)})")
    kinds = [kind] if kind else list(found)
    return [_entry(n, k, item) for k in kinds for n, item in found[k].items() if n in found[k].list(pattern)]


def list_methods(pattern: str = "*", *, kind: str | None = None) -> list[str]:
    """Sorted names of registered entries matching the glob `pattern` (optionally of one kind)."""
    return sorted({e.name for e in entries(pattern, kind=kind)})


def _resolve(name: str) -> tuple[str, str]:
    """(kind, registered name) for `name`, `"kind:name"` or a paper key claimed by one entry."""
    found = registries()
    kind, sep, rest = name.partition(":")
    if sep and kind in found:
        found[kind].get(rest)  # KeyError with "did you mean"
        return kind, rest
    for k, registry in found.items():
        if name in registry:
            return k, name
    claimed = [e for e in entries() if e.paper == name]
    if len(claimed) == 1:
        return claimed[0].kind, claimed[0].name
    everything = Registry[object]("method")
    for registry in found.values():
        for n, item in registry.items():
            if n not in everything:
                everything.register(n, item)
    everything.get(name)  # raises with "did you mean"
    raise AssertionError("unreachable")


def method_kind(name: str) -> str:
    """The kind of the entry registered as `name` ("pruning", "gate" ...).

    Raises:
        KeyError: unknown name, with the closest names suggested.
    """
    return _resolve(name)[0]


def create_method(name: str, **config: Any) -> Any:
    """Instantiate the entry registered as `name` (or `"kind:name"`) with config overrides.

    Raises:
        KeyError: unknown name, with the closest names suggested.
        TypeError: `name` is a driver or transform (a function to call, not an object to create),
            or an option is unknown.
    """
    kind, registered = _resolve(name)
    item = registries()[kind].get(registered)
    if isinstance(item, Driver):
        raise TypeError(
            f"{name!r} is a {kind}, not a method object: call {item.target.replace(':', '.')}(...)"
        )
    return item(**config)
