"""The method base class and the registries of methods, one per kind (core: imports no axis).

A method is a small lifecycle object configured by a frozen dataclass with the paper's defaults,
validated in `__post_init__`. Each kind of method (pruning, training, search ...) has its own typed
`Registry` in `REGISTRIES`; the axis subpackages fill them at import. Finding and creating methods
across every kind (`list_methods`, `create_method`) is `sparsetorch.discovery`'s job, which sits
above the axes; the names here are deprecated aliases of it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from sparsetorch._deprecation import moved
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


# Discovery moved to `sparsetorch.discovery` (above the axes); these names reach it for one release,
# looked up at run time: the core must not import the discovery layer, which imports every axis.
__getattr__ = moved(
    __name__,
    {
        "list_methods": "sparsetorch.discovery.list_methods",
        "create_method": "sparsetorch.discovery.create_method",
        "method_kind": "sparsetorch.discovery.method_kind",
        "_load_all": "sparsetorch.discovery.load_all",
    },
)
