"""sparsetorch: sparse neural computation for PyTorch.

The public face: `prune`, `report`, `compile` / `decompile` (sparse execution), `create_method`,
`list_methods`, masks (`attach`, `get_masks`, `squash`, `save`, `load`), patterns (`select`,
`parse_pattern`), `create_model`.

`sparsetorch.masks` is the masks module (`import sparsetorch.masks as M; M.attach(...)`); calling
it, `sparsetorch.masks(model)`, still returns the masks for one release with a `DeprecationWarning`.
"""

from __future__ import annotations

import os

from torch import nn

from sparsetorch import masks
from sparsetorch.accounting import SparsityReport, report
from sparsetorch.discovery import create_method, list_methods
from sparsetorch.kernels import compile, decompile
from sparsetorch.masks import attach, get_masks, resolve_targets, save, squash
from sparsetorch.patterns import NM, Block, Channel, Unstructured, parse_pattern, select
from sparsetorch.pruning import PruneReport, prune
from sparsetorch.training import SparseTrainingMethod, evaluate, fit

__version__ = "0.1.0"


def create_model(name: str, **config):
    """Build a registered reference model (see `sparsetorch.models`)."""
    from sparsetorch.models import create_model as _create

    return _create(name, **config)


def load(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """Load a checkpoint written by `save` into `model`, attaching its masks (`masks.load`).

    With `model=None` the model is rebuilt from the checkpoint's header when it names a registered
    model (`create_model`); its `model_config` is checked against the model's config fields and
    against the file's tensors (on the meta device) before anything is allocated. A bad file leaves
    `model` exactly as it was.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt, truncated or foreign file, a header or mask that does not check, or a
            file that does not fit `model` (the message names the file and the problem).
    """
    from sparsetorch.models import create_model as _create

    return masks.load(path, model, build=_create)


__all__ = [
    "NM",
    "Block",
    "Channel",
    "PruneReport",
    "SparseTrainingMethod",
    "SparsityReport",
    "Unstructured",
    "attach",
    "compile",
    "create_method",
    "create_model",
    "decompile",
    "evaluate",
    "fit",
    "get_masks",
    "list_methods",
    "load",
    "masks",
    "parse_pattern",
    "prune",
    "report",
    "resolve_targets",
    "save",
    "select",
    "squash",
]
