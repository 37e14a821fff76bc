"""The architecture-search base: the `SEARCHES` registry, the search method class and its outcome.

A search method is configured by a frozen dataclass (the `Method` convention) and used as::

    space = SparseMLPSpace(sparsity=0.9)
    parent = sparsetorch.create_model("lenet-300-100", seed=0, **space.model_config())
    outcome = SEARCHES.get("random-search")(seed=0).run(space, parent, train=train, val=val)
    outcome.config.apply(parent)                        # the found sub-network, at exactly 90%

`run` sees training and validation data only: choosing a configuration never touches the test
set, which the caller keeps for the final, fully trained comparison. The parent is not modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sparsetorch.masks import get_masks
from sparsetorch.methods import Method, method_registry
from sparsetorch.search.space import SparseConfig, SparseMLPSpace
from sparsetorch.search.train import Data, check_data

__all__ = ["SEARCHES", "SearchOutcome", "SparseSearch"]

SEARCHES = method_registry("search")  # listed by `sparsetorch ls methods` with the other kinds


@dataclass(frozen=True, eq=False)
class SearchOutcome:
    """What a search found.

    Attributes:
        config: the chosen configuration (exactly at the space's sparsity).
        score: its validation accuracy as the search measured it.
        history: method-specific records (candidate scores, architecture probabilities ...).
    """

    config: SparseConfig
    score: float
    history: dict[str, Any] = field(default_factory=dict)


class SparseSearch(Method):
    """Base of the search methods: `run(space, parent, *, train, val) -> SearchOutcome`."""

    def run(self, space: SparseMLPSpace, parent: nn.Module, *, train: Data, val: Data) -> SearchOutcome:
        """Search `space` for a sub-network of `parent` using `train` and `val` only.

        Raises:
            ValueError: a parent that already carries masks or does not match the space, bad
                data, or `val` that is the same tensor as `train`.
        """
        train, val = self.check_inputs(space, parent, train, val)
        return self._search(space, parent, train, val)

    def _search(self, space: SparseMLPSpace, parent: nn.Module, train: Data, val: Data) -> SearchOutcome:
        raise NotImplementedError

    def check_inputs(
        self, space: SparseMLPSpace, parent: nn.Module, train: Data, val: Data
    ) -> tuple[Data, Data]:
        if not isinstance(space, SparseMLPSpace):
            raise ValueError(f"{self.name}: space must be a SparseMLPSpace, got {type(space).__name__}")
        train, val = check_data(train, "train"), check_data(val, "val")
        if train[0] is val[0] or train[0].data_ptr() == val[0].data_ptr():
            raise ValueError(f"{self.name}: val must be a split disjoint from train, got the same tensor")
        if get_masks(parent):
            raise ValueError(f"{self.name}: the parent already carries masks; pass the unmasked parent")
        shapes = {f: tuple(w.shape) for f, w in parent.state_dict().items() if f in space.shapes}
        if shapes != space.shapes:
            raise ValueError(
                f"{self.name}: the parent's weights {shapes} do not match the space {space.shapes}"
            )
        return train, val


def fresh_copy(parent: nn.Module) -> nn.Module:
    """An independent copy of `parent` with the same initial weights."""
    return copy.deepcopy(parent)
