"""Reproduction of `random-search-nas`: random search over the node space of an over-parameterized
network finds sparse sub-networks that are neither better nor faster to train than random ones.

Claim (abstract of Farahani 2024): sub-networks found by Random Search on the node space of an
over-parameterized network "neither perform better nor converge more efficiently than their random
counterparts" at the same sparsity, while "a significant level of performance can still be
preserved even when the network is highly sparse".

Setup: Fashion-MNIST; the parent is LeNet-300-100 over-parameterized (2x widths at `small`,
600-200); the space is `SparseMLPSpace` (hidden-unit keep fractions {1/4, 1/2, 3/4, 1} per layer,
the weight budget spread at equal density over the kept block, exactly the target sparsity over
all three weight matrices). For each seed `s` and sparsity:

- search: `RandomSearch` draws `samples` configurations, proxy-trains each for `proxy_steps` steps
  and keeps the best by validation accuracy (a split of the training set; the test set is never
  seen by the search);
- initsearch: the same search scoring the *untrained* sub-networks (`proxy_steps=0`), our reading
  of the paper's "better initialized sparse sub-networks";
- random: `random` configurations drawn from the same space by another generator;
- dense: the parent itself (once per seed).

Every arm starts from the same parent initialisation (seed `s`) and is trained the same number of
epochs with the same recipe (`sparsetorch.search.train`); test accuracy after training, and the
validation accuracy after the first epoch (convergence).

Checks, per sparsity `p` (`se` is the standard error of the difference of the two means, the
search over seeds and the random draws over seeds x draws; with one seed only the random spread
counts):

- `search_not_better_s{p}`, `initsearch_not_better_s{p}`: the search's test accuracy <= random
  mean + 2 se;
- `search_not_faster_s{p}`: search first-epoch validation accuracy <= random's + 2 se;
- `highly_sparse_keeps_90pct_of_dense`: at the highest sparsity, the search's test accuracy
  >= 0.9 x the dense parent's.

The differences `{search,initsearch}_minus_random_s{p}_points` are reported as metrics: a positive
value that stays within 2 se is the paper's "no better than random".
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from sparsetorch.models import create_model
from sparsetorch.papers.base import Result, check_scale

if TYPE_CHECKING:
    from sparsetorch.search.train import Data

__all__ = ["ARMS", "SCALES", "fashion_splits", "reproduce"]

ARMS = ("search", "initsearch", "random")

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"train": 1024, "val": 256, "test": 500, "hidden": (64, 32), "epochs": 1, "samples": 3,
             "proxy_steps": 4, "random": 2, "seeds": (0,), "sparsities": (0.9, 0.98)},
    "small": {"train": 20000, "val": 5000, "test": 10000, "hidden": (600, 200), "epochs": 3, "samples": 8,
              "proxy_steps": 100, "random": 4, "seeds": (0, 1, 2), "sparsities": (0.9, 0.98)},
    "full": {"train": 50000, "val": 10000, "test": 10000, "hidden": (1200, 400), "epochs": 20, "samples": 32,
             "proxy_steps": 400, "random": 16, "seeds": (0, 1, 2, 3, 4), "sparsities": (0.5, 0.8, 0.9, 0.95, 0.98)},
}  # fmt: skip


def fashion_splits(*, train: int, val: int, test: int) -> tuple[Data, Data, Data]:
    """`(train, val, test)` Fashion-MNIST tensors: train and val are disjoint parts of the official
    training split (a fixed seed-0 permutation), test is the first `test` images of the test split."""
    from sparsetorch.data import load_fashion_mnist
    from sparsetorch.search.train import split_validation

    x, y = load_fashion_mnist("train").tensors
    (tx, ty), (vx, vy) = split_validation((x, y), val_size=val, seed=0)
    sx, sy = load_fashion_mnist("test").tensors
    return (tx[:train], ty[:train]), (vx, vy), (sx[:test], sy[:test])


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _se(a: Sequence[float], b: Sequence[float]) -> float:
    """Standard error of mean(a) - mean(b) (a sample of one contributes no variance)."""
    return math.sqrt(sum(_mean_std(v)[1] ** 2 / len(v) for v in (a, b)))


def _final(runs: list[dict[str, Any]]) -> list[float]:
    return [r["test_accuracy"] for r in runs]


def _early(runs: list[dict[str, Any]]) -> list[float]:
    """Validation accuracy after the first epoch: the convergence measure."""
    return [r["val_curve"][0] for r in runs]


def _tag(sparsity: float) -> str:
    return f"s{round(100 * sparsity)}"


def _retrain_seed(
    space: Any, cfg: dict[str, Any], seed: int, *, train: Data, run: dict[str, Any], arms: dict, nodes: dict
) -> list[float]:
    """Seed `seed` at one sparsity: both searches and the random draws, each retrained; appends the
    runs to `arms` and node fractions to `nodes`, returns each configuration's sparsity error."""
    from sparsetorch.search import RandomSearch, retrain

    parent = create_model("lenet-300-100", seed=seed, **space.model_config())
    found = {}
    for arm, steps in (("search", cfg["proxy_steps"]), ("initsearch", 0)):
        search = RandomSearch(num_samples=cfg["samples"], proxy_steps=steps, seed=seed)
        found[arm] = search.run(space, parent, train=train, val=run["val"]).config
    draws = torch.Generator().manual_seed(10_000 + seed)
    errors = []
    for arm, configs in (
        ("search", [found["search"]]),
        ("initsearch", [found["initsearch"]]),
        ("random", [space.sample(draws) for _ in range(cfg["random"])]),
    ):
        for config in configs:
            arms[arm].append(retrain(config, parent, train, seed=seed, **run))
            nodes[arm].append(sum(config.widths) / sum(space.hidden))
            errors.append(abs(config.sparsity - space.sparsity))
    return errors


def _compare_arms(tag: str, arms: dict, nodes: dict, errors: list[float], m: dict, checks: dict) -> None:
    """One sparsity's metrics and its not-better / not-faster checks, added to `m` and `checks`."""
    for arm in ARMS:
        m[f"{arm}_{tag}_accuracy_mean"], m[f"{arm}_{tag}_accuracy_std"] = _mean_std(_final(arms[arm]))
        m[f"{arm}_{tag}_early_val_mean"] = statistics.fmean(_early(arms[arm]))
        m[f"{arm}_{tag}_node_fraction_mean"] = statistics.fmean(nodes[arm])
    m[f"random_{tag}_accuracy_min"] = min(r["test_accuracy"] for r in arms["random"])
    m[f"random_{tag}_accuracy_max"] = max(r["test_accuracy"] for r in arms["random"])
    m[f"max_sparsity_error_{tag}"] = max(errors)
    for arm in ("search", "initsearch"):
        m[f"{arm}_minus_random_{tag}_points"] = 100 * (
            m[f"{arm}_{tag}_accuracy_mean"] - m[f"random_{tag}_accuracy_mean"]
        )
        se = _se(_final(arms[arm]), _final(arms["random"]))
        checks[f"{arm}_not_better_{tag}"] = (
            f"{arm}_{tag}_accuracy_mean",
            "<=",
            m[f"random_{tag}_accuracy_mean"] + 2 * se,
        )
    se_early = _se(_early(arms["search"]), _early(arms["random"]))
    checks[f"search_not_faster_{tag}"] = (
        f"search_{tag}_early_val_mean",
        "<=",
        m[f"random_{tag}_early_val_mean"] + 2 * se_early,
    )


def _note(scale: str, cfg: dict[str, Any], train: Data, val: Data, test: Data) -> str:
    h1, h2 = cfg["hidden"]
    return (
        f"{scale}: Fashion-MNIST ({len(train[0])} train / {len(val[0])} val / {len(test[0])} test), parent "
        f"MLP 784-{h1}-{h2}-10, sparsities {list(cfg['sparsities'])} over all weights, node keep fractions "
        f"{{1/4, 1/2, 3/4, 1}} per hidden layer, budget at equal density in the kept block; random search: "
        f"best of {cfg['samples']} by validation accuracy after {cfg['proxy_steps']} proxy steps "
        "(search) or at initialisation (initsearch); "
        f"{cfg['random']} random configurations per seed; every arm {cfg['epochs']} epoch(s) from the "
        f"parent's initialisation, SGD lr 0.1 cosine, momentum 0.9, wd 5e-4, batch 128; seeds "
        f"{list(cfg['seeds'])}. The paper's search budget, proxy and data are not in the abstract: ours."
    )


def reproduce(scale: str, *, data: tuple[Data, Data, Data] | None = None) -> Result:
    """Search, retrain and compare at `scale` (see the module docstring).

    Args:
        data: optional `(train, val, test)` tensors replacing the Fashion-MNIST splits of `scale`.
    """
    from sparsetorch.search import SparseMLPSpace, retrain

    cfg = SCALES[check_scale(scale)]
    train, val, test = (
        data if data is not None else fashion_splits(train=cfg["train"], val=cfg["val"], test=cfg["test"])
    )
    began = time.perf_counter()
    m: dict[str, float] = {}
    checks: dict[str, tuple[Any, str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: one intra-op thread is fastest on a shared machine
    try:
        run = {"epochs": cfg["epochs"], "val": val, "test": test}
        dense = [
            retrain(
                None,
                create_model("lenet-300-100", seed=s, **SparseMLPSpace(hidden=cfg["hidden"]).model_config()),
                train,
                seed=s,
                **run,
            )
            for s in cfg["seeds"]
        ]
        m["dense_accuracy_mean"], m["dense_accuracy_std"] = _mean_std(_final(dense))
        for sparsity in cfg["sparsities"]:
            space = SparseMLPSpace(sparsity=sparsity, hidden=cfg["hidden"])
            arms: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
            nodes: dict[str, list[float]] = {a: [] for a in ARMS}
            errors: list[float] = []
            for s in cfg["seeds"]:
                errors += _retrain_seed(space, cfg, s, train=train, run=run, arms=arms, nodes=nodes)
            _compare_arms(_tag(sparsity), arms, nodes, errors, m, checks)
        top = _tag(max(cfg["sparsities"]))
        checks["highly_sparse_keeps_90pct_of_dense"] = (
            f"search_{top}_accuracy_mean",
            ">=",
            0.9 * m["dense_accuracy_mean"],
        )
    finally:
        torch.set_num_threads(threads)
    m["seconds"] = time.perf_counter() - began
    note = _note(scale, cfg, train, val, test)
    if data is not None:
        note += " Data: caller-supplied tensors."
    return Result.from_comparisons(m, checks=checks, note=note)
