"""sparsetorch: sparse neural computation for PyTorch.

The public face: `prune`, `report`, `compile` / `decompile` (sparse execution), `create_method`,
`list_methods`, masks (`attach`, `masks`, `squash`, `save`, `load`), patterns (`select`,
`parse_pattern`), `create_model`.
"""

from sparsetorch.accounting import SparsityReport, report
from sparsetorch.kernels import compile, decompile
from sparsetorch.masks import attach, load, masks, resolve_targets, save, squash
from sparsetorch.methods import create_method, list_methods
from sparsetorch.patterns import NM, Block, Channel, Unstructured, parse_pattern, select
from sparsetorch.pruning import PruneReport, prune
from sparsetorch.training import SparseTrainingMethod, evaluate, fit

__version__ = "0.1.0"


def create_model(name: str, **config):
    """Build a registered reference model (see `sparsetorch.models`)."""
    from sparsetorch.models import create_model as _create

    return _create(name, **config)


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
