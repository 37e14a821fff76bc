"""Validation shared by configs and loaders.

**Config values.** `check_int` ("an integer >= m") and `check_number` ("a finite number in a
range") refuse booleans as numbers (`True` is an `int` in Python, but `batch_size=True` is a
mistake), and their messages name the field, so a config's `__post_init__` reads as a list of its
constraints.

**The loader principle.** Every loader in sparsetorch (plain and compiled checkpoints, suites,
caches) follows these three rules:

1. *Validate everything before acting.* A loader parses and checks everything it reads (headers,
   shapes, dtypes, index invariants, sizes, checksums) before it touches the model or allocates
   memory. Sizes are checked against the file's own byte count: a safetensors header is read with
   `sparsetorch._io.read_safetensors_header`, after which reading every tensor allocates at most
   the file's size. A model a header asks for is first built on the meta device within the file's
   own parameter count (`dry_build`), from a config checked key by key against the model's config
   fields (`check_config`), and compared with the file's shapes before it is built for real.
2. *Every change to a model is a transaction.* On any error, an interrupt included, the model is
   left exactly as it was: masks, patterns, weights and `state_dict`.
3. *Errors are our documented types* (`ValueError`, `FileNotFoundError`) with a message naming
   the file and the problem: never a raw parser error, a traceback from deep inside torch, or a
   half-changed model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import torch
from torch.nn.modules.module import register_module_parameter_registration_hook

__all__ = [
    "BudgetExceeded",
    "build_checked",
    "check_config",
    "check_int",
    "check_json_value",
    "check_number",
    "check_state_fits",
    "config_fields",
    "dry_build",
    "model_config_fields",
]

T = TypeVar("T")


def check_int(label: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """`int(value)` if it is an integer (a Python or numpy int, not a bool) in [minimum, maximum], else a
    ValueError naming `label`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{label} must be an integer {bounds}, got {value!r}")
    return int(value)


def check_number(
    label: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_closed: bool = False,
    high_closed: bool = True,
) -> float:
    """`value` as a float if it is a finite real (not a bool) within the bounds, else a ValueError.

    `low` is excluded unless `low_closed`, `high` included unless `high_closed=False`; None means
    unbounded on that side. `check_number("lr", lr, low=0)` accepts exactly the positive numbers.
    """
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_closed else value > low
    if ok and high is not None:
        ok = value <= high if high_closed else value < high
    if not ok:
        left = "(-inf" if low is None else f"{'[' if low_closed else '('}{low:g}"
        right = "inf)" if high is None else f"{high:g}{']' if high_closed else ')'}"
        raise ValueError(f"{label} must be a finite number in {left}, {right}, got {value!r}")
    return float(value)


# --- JSON values against type hints ---------------------------------------------------------------


def check_json_value(label: str, value: object, hint: object) -> None:
    """Raise a ValueError naming `label` unless the JSON `value` fits the type hint `hint`.

    Hints understood: `Any`, `bool`, `int` (not a bool), `float` (a finite int or float), `str`,
    `None`, unions, `Literal[...]`, `tuple[X, ...]` / `tuple[X, Y]` / `list[X]` (a JSON list) and
    `dict[str, X]`. Anything else (a class) cannot come from JSON and is refused.
    """
    if not _fits(value, hint):
        plain = isinstance(hint, type) and typing.get_origin(hint) is None
        name = hint.__name__ if plain else str(hint).replace("typing.", "")
        raise ValueError(f"{label} must be of type {name}, got {value!r}")


def _fits(value: object, hint: object) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if hint in (None, type(None)):
        return value is None
    if hint in (bool, str):
        return isinstance(value, hint)
    if hint in (int, float) and not isinstance(value, bool):
        allowed = int if hint is int else int | float
        return isinstance(value, allowed) and math.isfinite(value)
    if origin in (tuple, list) and isinstance(value, list | tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return all(_fits(v, args[0] if args else Any) for v in value)
    if origin is dict and isinstance(value, dict):
        key, item = args or (str, Any)
        return all(_fits(k, key) and _fits(v, item) for k, v in value.items())
    return False


def config_fields(config: object) -> dict[str, object]:
    """`{key: type hint}` a config dataclass instance accepts; a field holding a nested config
    dataclass contributes that config's fields instead (as flat factories accept them). {} for None."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return {}
    try:
        hints = typing.get_type_hints(type(config))
    except (NameError, TypeError):  # an annotation that cannot be resolved: accept any JSON value
        hints = {}
    out: dict[str, object] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name, None)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(config_fields(value))
        elif field.init:
            out[field.name] = hints.get(field.name, Any)
    return out


def model_config_fields(model: object) -> dict[str, object]:
    """The config keys a model's factory accepts: the fields of the config dataclasses the model
    keeps as attributes (`config`, `moe_config`, ...; see `config_fields`)."""
    out: dict[str, object] = {}
    for value in vars(model).values():
        out.update(config_fields(value))
    return out


def check_config(label: str, config: object, fields: dict[str, object]) -> dict[str, Any]:
    """`config` if it is a JSON object with known keys only, each value of its field's type."""
    if not isinstance(config, dict):
        raise ValueError(f"{label} must be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"{label} has unknown key(s) {unknown}; the model accepts {sorted(fields)}")
    for key, value in config.items():
        check_json_value(f"{label}: {key!r}", value, fields[key])
    return config


# --- building a model within a file's budget ------------------------------------------------------


class BudgetExceeded(ValueError):
    """A model being built registers more parameters than a file can account for."""


@contextmanager
def parameter_budget(*, parameters: int, label: str, values: int | None = None) -> Iterator[None]:
    """Raise `BudgetExceeded` as soon as this thread registers more than `parameters` parameters or
    `values` parameter elements (so a config that asks for a million layers stops at the first few,
    not after building them)."""
    owner, count = threading.get_ident(), [0, 0]

    def hook(module: torch.nn.Module, name: str, param: torch.Tensor | None) -> None:
        if param is not None and threading.get_ident() == owner:
            count[0], count[1] = count[0] + 1, count[1] + param.numel()
            if count[0] > parameters or (values is not None and count[1] > values):
                raise BudgetExceeded(f"{label} needs more parameters than the file can hold")

    handle = register_module_parameter_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def dry_build(make: Callable[[], T], *, parameters: int, label: str) -> T:
    """`make()` on the meta device (no memory allocated) within a parameter budget (see
    `parameter_budget`), so that a header's model can be checked against the file's shapes first."""
    with parameter_budget(parameters=parameters, label=label), torch.device("meta"):
        return make()


def build_checked(
    build: Callable[..., torch.nn.Module],
    name: str,
    config_json: str,
    *,
    shapes: dict[str, tuple[int, ...]],
    where: str,
) -> torch.nn.Module:
    """`build(name, **config)` for a model a file's header names, checked before it is built for real.

    The config (JSON) is checked key by key against the model's config fields (`model_config_fields`
    of the default model, built on the meta device), the model is built on the meta device within the file's
    parameter count (`dry_build`), and its `state_dict` must have exactly the file's tensor names
    and `shapes`. A model that cannot be built on the meta device (one that loads pretrained
    weights) is rebuilt for real only with its default config, stopped as soon as its parameters
    outgrow twice the file's values (so at most one parameter is allocated beyond that).

    Raises:
        ValueError: no or an unknown model name, a corrupt or unknown config, a model that does not
            match the file's tensors.
    """
    if not name:
        raise ValueError(f"{where} names no registered model: pass model=...")
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} has a corrupt 'model_config' header: {err}") from err
    meta_error: RuntimeError | None = None
    try:  # the default model, for its config fields: registry code at its registered size
        default = dry_build(lambda: build(name), parameters=2**31, label=where)
    except KeyError as err:
        raise ValueError(f"{where} names model {name!r}, which is not registered: {err}") from err
    except RuntimeError as err:  # what `from_pretrained` (or copying a meta tensor) raises on meta
        default, meta_error = None, err
    label = f"{where}: 'model_config' of {name!r}"
    # Slack for models that build a layer and then replace it; the shapes are compared exactly.
    budget = 4 * len(shapes) + 64
    if default is None:  # e.g. a model that loads pretrained weights: built for real, values bounded
        if config != {}:
            raise ValueError(
                f"{label} cannot be checked before building ({name!r} does not build on the meta "
                f"device: {meta_error}), so only its default config is rebuilt from a header: build "
                "the model yourself and pass it as model="
            )
        values = 2 * sum(math.prod(s) for s in shapes.values()) + 2**16
        with parameter_budget(parameters=budget, values=values, label=label):
            model = build(name)
        return _same_shapes(model, shapes, where=where)
    check_config(label, config, model_config_fields(default))
    try:
        skeleton = dry_build(lambda: build(name, **config), parameters=budget, label=label)
    except BudgetExceeded:
        raise
    except Exception as err:  # whatever a bad config makes the factory raise, named as the header's fault
        raise ValueError(f"{label} does not build the model: {err}") from err
    _same_shapes(skeleton, shapes, where=where)
    return build(name, **config)


def _same_shapes(
    model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], *, where: str
) -> torch.nn.Module:
    """`model` if its state_dict has exactly the file's tensor names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected != shapes:
        key = next(k for k in sorted(set(expected) | set(shapes)) if expected.get(k) != shapes.get(k))
        raise ValueError(
            f"{where}: its model and 'model_config' do not match its tensors: {key!r} is "
            f"{shapes.get(key, 'absent')} in the file, {expected.get(key, 'absent')} in the model"
        )
    return model


def check_state_fits(
    found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *, owner: str, where: str
) -> None:
    """A file's tensors have exactly the names and shapes a model expects, and its dtypes (a float
    tensor may load into a float of another precision).

    Raises:
        ValueError: missing or unexpected names, or a shape or dtype mismatch.
    """
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where} does not fit {owner}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in found.items():
        want = expected[key]
        if value.shape != want.shape:
            raise ValueError(
                f"{where}: {key!r} has shape {tuple(value.shape)}, model expects {tuple(want.shape)}"
            )
        if value.dtype != want.dtype and not (value.is_floating_point() and want.is_floating_point()):
            raise ValueError(f"{where}: {key!r} is {value.dtype}, model expects {want.dtype}")
