"""Architecture search for sparse networks: search spaces of sparse sub-networks and search methods.

    >>> import sparsetorch as st
    >>> from sparsetorch.search import SEARCHES, SparseMLPSpace
    >>> space = SparseMLPSpace(sparsity=0.9)                 # 2x LeNet-300-100, exactly 90% zeros
    >>> search = SEARCHES.get("random-search")(num_samples=8, seed=0)
    >>> parent = st.create_model("lenet-300-100", seed=0, **space.model_config())
    >>> outcome = search.run(space, parent, train=train, val=val)  # doctest: +SKIP

Methods (registered in `SEARCHES`):

- `random-search` (paper `random-search-nas`, which `sparsetorch.create_method` also accepts as
  its name): best of N random configurations by proxy-trained validation accuracy;
- `dass` (paper `dass`): DARTS-style differentiable search over sparse operations of different
  sparsity levels, discretized to exactly the budget.
"""

from __future__ import annotations

from sparsetorch.search.base import SEARCHES, SearchOutcome, SparseSearch
from sparsetorch.search.dass import Dass, DassConfig
from sparsetorch.search.random_search import RandomSearch, RandomSearchConfig
from sparsetorch.search.space import SPLITS, SparseConfig, SparseMLPSpace, split_budget
from sparsetorch.search.train import evaluate, retrain, split_validation, train

__all__ = [
    "SEARCHES",
    "SPLITS",
    "Dass",
    "DassConfig",
    "RandomSearch",
    "RandomSearchConfig",
    "SearchOutcome",
    "SparseConfig",
    "SparseMLPSpace",
    "SparseSearch",
    "evaluate",
    "retrain",
    "split_budget",
    "split_validation",
    "train",
]
