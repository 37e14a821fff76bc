"""Random search over sparse sub-networks of an over-parameterized network, as a NAS baseline.

Paper key `random-search-nas`: Farahani 2024, "Random Search as a Baseline for Sparse Neural Network
Architecture Search" (arXiv 2403.08265).

Rule: draw `num_samples` configurations `c_1 .. c_N` from the space (node keep-masks of the parent
plus weight masks at exactly the target sparsity, see `sparsetorch.search.space`) with one seeded
generator. Each is a sub-network of the *same initialised parent*: copy the parent's initial
weights, attach `c_i`'s masks, train `proxy_steps` optimizer steps on the training split and score
it by its validation accuracy `a_i` (ties: lower validation loss). Return
`c* = argmax_i a_i` (the first on ties). The caller retrains `c*` fully from the parent's
initialisation and evaluates it on the held-out test set, which the search never sees.

Deviations: the abstract fixes neither the search budget nor the proxy; the defaults here
(16 samples, 100 proxy steps of batch 128, SGD lr 0.1 cosine) are ours. The space also samples the
weight mask inside the kept nodes, so that every configuration has an exact weight sparsity (the
library's definition), where the paper's configurations are node sets. `proxy_steps=0` scores the
untrained sub-networks (the "better initialised sub-network" reading of the abstract) by
validation accuracy at initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sparsetorch._checks import check_int, check_number
from sparsetorch.methods import MethodConfig
from sparsetorch.search.base import SEARCHES, SearchOutcome, SparseSearch, fresh_copy
from sparsetorch.search.space import SparseMLPSpace
from sparsetorch.search.train import Data, evaluate, train

__all__ = ["RandomSearch", "RandomSearchConfig"]


@dataclass(frozen=True)
class RandomSearchConfig(MethodConfig):
    """Random-search hyperparameters.

    Args:
        num_samples: configurations drawn and scored (N >= 1).
        proxy_steps: optimizer steps of proxy training per candidate (0: score at initialisation).
        batch_size, lr: the proxy training recipe (`sparsetorch.search.train.train`).
        seed: seeds the sampling generator and the proxy data order.
    """

    num_samples: int = 16
    proxy_steps: int = 100
    batch_size: int = 128
    lr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("num_samples", self.num_samples)
        check_int("proxy_steps", self.proxy_steps, minimum=0)
        check_int("batch_size", self.batch_size)
        check_number("lr", self.lr, low=0)
        check_int("seed", self.seed, minimum=0)


@SEARCHES.register("random-search")
class RandomSearch(SparseSearch):
    """Best of `num_samples` random configurations by proxy-trained validation accuracy."""

    name = "random-search"
    paper = "random-search-nas"
    Config = RandomSearchConfig

    def _search(self, space: SparseMLPSpace, parent: nn.Module, train_data: Data, val: Data) -> SearchOutcome:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        best, best_key, scores, losses, widths = None, None, [], [], []
        for _ in range(cfg.num_samples):
            config = space.sample(generator)
            model = config.apply(fresh_copy(parent))
            if cfg.proxy_steps:
                # Same data order for every candidate: scores differ by configuration only.
                train(
                    model,
                    train_data,
                    steps=cfg.proxy_steps,
                    batch_size=cfg.batch_size,
                    lr=cfg.lr,
                    seed=cfg.seed,
                )
            metrics = evaluate(model, val)
            scores.append(metrics["accuracy"])
            losses.append(metrics["loss"])
            widths.append(config.widths)
            key = (metrics["accuracy"], -metrics["loss"])
            if best_key is None or key > best_key:
                best, best_key = config, key
        assert best is not None and best_key is not None
        history = {"scores": scores, "losses": losses, "widths": widths}
        return SearchOutcome(config=best, score=best_key[0], history=history)
