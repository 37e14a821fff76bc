"""The method base class and the registries of methods, one per kind.

A method is a small lifecycle object configured by a frozen dataclass with the paper's defaults,
validated in `__post_init__`. Each kind of method (one-shot pruning now; training, activation,
routing ... as they land) has its own typed `Registry`, listed here so that `create_method` and
`list_methods` see them all.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from sparsetorch.registry import Registry


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of every method's hyperparameters (frozen; subclasses validate in `__post_init__`)."""


class Method:
    """Base of every registered method: holds a validated config.

    Subclasses set `name`, `paper` (a key of `sparsetorch.papers`, or "" for classic baselines)
    and `Config`.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, config: MethodConfig | None = None, **overrides: Any) -> None:
        if config is None:
            fields = {f.name for f in dataclasses.fields(self.Config)}
            unknown = sorted(set(overrides) - fields)
            if unknown:
                raise TypeError(
                    f"{self.name}: unknown option(s) {unknown}; valid options: {sorted(fields) or 'none'}"
                )
            config = self.Config(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


# kind -> registry of Method subclasses. Subpackages register into their own registry.
REGISTRIES: dict[str, Registry[type[Method]]] = {}


def method_registry(kind: str) -> Registry[type[Method]]:
    """The registry of methods of `kind` (created on first use)."""
    if kind not in REGISTRIES:
        REGISTRIES[kind] = Registry(f"{kind} method")
    return REGISTRIES[kind]


def _load_all() -> None:
    # Importing the subpackages fills their registries.
    import sparsetorch.pruning
    import sparsetorch.search
    import sparsetorch.training  # noqa: F401


def list_methods(pattern: str = "*", *, kind: str | None = None) -> list[str]:
    """Sorted names of registered methods matching the glob `pattern` (optionally of one kind)."""
    _load_all()
    kinds = [kind] if kind else list(REGISTRIES)
    return sorted({n for k in kinds for n in method_registry(k).list(pattern)})


def method_kind(name: str) -> str:
    """The kind of the method registered as `name` ("pruning", ...).

    Raises:
        KeyError: unknown method, with the closest names suggested.
    """
    _load_all()
    for kind, registry in REGISTRIES.items():
        if name in registry:
            return kind
    everything = Registry[type[Method]]("method")
    for registry in REGISTRIES.values():
        for n, cls in registry.items():
            everything.register(n, cls)
    everything.get(name)  # raises with "did you mean"
    raise AssertionError("unreachable")


def create_method(name: str, **config: Any) -> Method:
    """Instantiate the method registered as `name` with config overrides (keyword arguments)."""
    kind = method_kind(name)
    return method_registry(kind).get(name)(**config)
