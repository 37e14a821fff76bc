"""What `compile` shares between its CPU and CUDA paths and the checkpoints: the format each layer
asks for, the in-place swap of one submodule for another, and the compiled layers of a model.

Why a module of its own: `compile` (CPU) hands CUDA models to `cuda.compile`, and both read the
same `formats=` argument and swap layers the same way; kept here, neither imports the other's
internals.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from torch import nn

from sparsetorch.kernels.module import SparseLinear


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


def sparse_layers(model: nn.Module) -> dict[str, SparseLinear]:
    """`{module fqn: SparseLinear}` of a compiled model."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SparseLinear)}
