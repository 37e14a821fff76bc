"""What `compile` shares between its CPU and CUDA paths: the format each layer asks for, and the
in-place swap of one submodule for another.

Why a module of its own: `compile` (CPU) hands CUDA models to `cuda.compile`, and both read the
same `formats=` argument and swap layers the same way; kept here, neither imports the other's
internals.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from torch import nn


def format_for(formats: str | Mapping[str, str], fqn: str) -> str:
    """The format requested for parameter `fqn`: `formats` itself when it is one string, else the
    first `{glob: format}` entry whose glob matches the parameter or its module; `"auto"` if none."""
    if isinstance(formats, str):
        return formats
    for glob, spec in formats.items():
        if fnmatch.fnmatchcase(fqn, glob) or fnmatch.fnmatchcase(fqn.rpartition(".")[0], glob):
            return spec
    return "auto"


def set_submodule(model: nn.Module, fqn: str, new: nn.Module) -> None:
    """Replace the submodule at `fqn` (a module FQN, not empty) by `new`."""
    parent_fqn, _, child = fqn.rpartition(".")
    parent = model.get_submodule(parent_fqn) if parent_fqn else model
    setattr(parent, child, new)
