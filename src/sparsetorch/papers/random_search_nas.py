"""Reproduction of `random-search-nas`: random search over the node space of an over-parameterized
network finds sparse sub-networks that are neither better nor faster to train than random ones.

Claim (abstract of Farahani 2024): sub-networks found by Random Search on the node space of an
over-parameterized network "neither perform better nor converge more efficiently than their random
counterparts" at the same sparsity, while "a significant level of performance can still be
preserved even when the network is highly sparse". The abstract gives no number for either.

Setup: Fashion-MNIST; the parent is LeNet-300-100 over-parameterized (2x widths at `small`,
600-200); the space is `SparseMLPSpace` (hidden-unit keep fractions {1/4, 1/2, 3/4, 1} per layer,
the weight budget spread at equal density over the kept block, exactly the target sparsity over
all three weight matrices). One run at seed `s` (the parent's initialisation, the train/val split,
the test subsample, the searches, the random draws and the data order all follow `s`; every arm of
the run shares them, so the arms are paired), for each sparsity:

- search: `RandomSearch` draws `samples` configurations, proxy-trains each for `proxy_steps` steps
  and keeps the best by validation accuracy (a split of the training set; the test set is never
  seen by the search);
- initsearch: the same search scoring the *untrained* sub-networks (`proxy_steps=0`), our reading
  of the paper's "better initialized sparse sub-networks";
- random: `random` configurations drawn from the same space by another generator (their mean);
- dense: the parent itself.

Every arm starts from the same parent initialisation and is trained the same number of epochs with
the same recipe (`sparsetorch.search.train`); test accuracy after training, and the validation
accuracy after the first epoch (convergence).

Claim checks ("no better" is stated as "random is no worse than the search, within `MARGIN` = 1
point"; over seeds the bench judges it on the paired interval, so noisy or thin data fails it
instead of passing by default):

- `random_matches_search_s{p}`, `random_matches_initsearch_s{p}`: random test accuracy >= the
  search's - 0.01 (paper: "neither perform better ... than their random counterparts");
- `random_converges_as_fast_s{p}`: random first-epoch validation accuracy >= the search's - 0.01
  (paper: "nor converge more efficiently");
- `highly_sparse_keeps_90pct_of_dense`: at the highest sparsity, the search's test accuracy >= 0.9 x
  the dense parent's (paper: "a significant level of performance can still be preserved"; 90% is
  ours). It also guards the two checks above against passing on untrained, chance-level arms.

Sanity checks: every configuration at exactly its target sparsity (`sparsity_exact_s{p}`, error
<= 1e-4, by construction of the space) and the dense parent above chance (`dense_learns`).

Broken arms: `random-untrained` trains the random configurations at learning rate 0 (their training
discarded), so the search is better and faster and the `random_*` checks fail; `search-untrained`
does the same to the search's configuration, which then keeps nothing of the dense accuracy.

Scales: `tiny` (tests, a few seconds) uses a 784-64-32-10 parent, 2048 training images, 2 epochs
and sparsities 0.5 / 0.8, because at 90-98% sparsity such a small network does not leave chance
level in a few steps (every arm ties at ~8% and the comparison is empty); `small` and `full` use the
paper-like 90-98% (see `SCALES`). The paper's search budget, proxy and data are not in the
abstract: ours.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import torch

from sparsetorch.models import create_model
from sparsetorch.papers.base import BrokenArm, Result, check_scale

if TYPE_CHECKING:
    from sparsetorch.search.train import Data

__all__ = ["ARMS", "BROKEN_ARMS", "MARGIN", "SCALES", "fashion_splits", "reproduce"]

ARMS = ("search", "initsearch", "random")
MARGIN = 0.01  # "no better than random": random >= search - 1 point

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"train": 2048, "val": 256, "test": 500, "hidden": (64, 32), "epochs": 2, "samples": 3,
             "proxy_steps": 4, "random": 2, "sparsities": (0.5, 0.8)},
    "small": {"train": 20000, "val": 5000, "test": 10000, "hidden": (600, 200), "epochs": 3, "samples": 8,
              "proxy_steps": 100, "random": 4, "sparsities": (0.9, 0.98)},
    "full": {"train": 50000, "val": 10000, "test": 10000, "hidden": (1200, 400), "epochs": 20, "samples": 32,
             "proxy_steps": 400, "random": 16, "sparsities": (0.5, 0.8, 0.9, 0.95, 0.98)},
}  # fmt: skip

_CLAIMS = ("random_matches_search", "random_matches_initsearch", "random_converges_as_fast")


def _tag(sparsity: float) -> str:
    return f"s{round(100 * sparsity)}"


def _claim_names(sparsities: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(f"{c}_{_tag(p)}" for p in sparsities for c in _CLAIMS)


BROKEN_ARMS = {
    "random-untrained": BrokenArm(
        "the random configurations trained at learning rate 0 (their training discarded)",
        fails=_claim_names(tuple(sorted({p for cfg in SCALES.values() for p in cfg["sparsities"]}))),
    ),
    "search-untrained": BrokenArm(
        "the search's configuration trained at learning rate 0 (its training discarded)",
        fails=("highly_sparse_keeps_90pct_of_dense",),
    ),
}


def fashion_splits(*, train: int, val: int, test: int, seed: int = 0) -> tuple[Data, Data, Data]:
    """`(train, val, test)` Fashion-MNIST tensors: train and val are disjoint parts of the official
    training split (a seeded permutation), test is a seeded subsample of `test` images of the test
    split (all of it when `test` is 10,000)."""
    from sparsetorch.data import load_fashion_mnist
    from sparsetorch.search.train import split_validation

    x, y = load_fashion_mnist("train").tensors
    (tx, ty), (vx, vy) = split_validation((x, y), val_size=val, seed=seed)
    sx, sy = load_fashion_mnist("test").tensors
    pick = torch.randperm(len(sx), generator=torch.Generator().manual_seed(seed))[:test]
    return (tx[:train], ty[:train]), (vx, vy), (sx[pick], sy[pick])


def _retrain_arms(
    space: Any, cfg: dict[str, Any], seed: int, *, train: Data, run: dict[str, Any], broken: str | None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]], list[float]]:
    """One sparsity: both searches and the random draws, each retrained. Returns the runs per arm,
    the node fractions per arm and each configuration's sparsity error."""
    from sparsetorch.search import RandomSearch, retrain

    parent = create_model("lenet-300-100", seed=seed, **space.model_config())
    found = {}
    for arm, steps in (("search", cfg["proxy_steps"]), ("initsearch", 0)):
        search = RandomSearch(num_samples=cfg["samples"], proxy_steps=steps, seed=seed)
        found[arm] = search.run(space, parent, train=train, val=run["val"]).config
    draws = torch.Generator().manual_seed(10_000 + seed)
    arms: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
    nodes: dict[str, list[float]] = {a: [] for a in ARMS}
    errors = []
    for arm, configs in (
        ("search", [found["search"]]),
        ("initsearch", [found["initsearch"]]),
        ("random", [space.sample(draws) for _ in range(cfg["random"])]),
    ):
        lr = 0.0 if broken == f"{arm}-untrained" else 0.1  # a broken arm's training discarded
        for config in configs:
            arms[arm].append(retrain(config, parent, train, seed=seed, lr=lr, **run))
            nodes[arm].append(sum(config.widths) / sum(space.hidden))
            errors.append(abs(config.sparsity - space.sparsity))
    return arms, nodes, errors


def _compare_arms(tag: str, arms: dict, nodes: dict, errors: list[float], m: dict, checks: dict) -> None:
    """One sparsity's metrics and its claim checks, added to `m` and `checks`."""
    for arm in ARMS:
        m[f"{arm}_{tag}_accuracy"] = statistics.fmean(r["test_accuracy"] for r in arms[arm])
        m[f"{arm}_{tag}_early_val"] = statistics.fmean(r["val_curve"][0] for r in arms[arm])
        m[f"{arm}_{tag}_node_fraction"] = statistics.fmean(nodes[arm])
    m[f"random_{tag}_accuracy_min"] = min(r["test_accuracy"] for r in arms["random"])
    m[f"random_{tag}_accuracy_max"] = max(r["test_accuracy"] for r in arms["random"])
    m[f"max_sparsity_error_{tag}"] = max(errors)
    for arm in ("search", "initsearch"):
        m[f"{arm}_minus_random_{tag}_points"] = 100 * (
            m[f"{arm}_{tag}_accuracy"] - m[f"random_{tag}_accuracy"]
        )
        checks[f"random_matches_{arm}_{tag}"] = (
            f"random_{tag}_accuracy",
            ">=",
            m[f"{arm}_{tag}_accuracy"] - MARGIN,
        )
    checks[f"random_converges_as_fast_{tag}"] = (
        f"random_{tag}_early_val",
        ">=",
        m[f"search_{tag}_early_val"] - MARGIN,
    )


def _note(scale: str, cfg: dict[str, Any], train: Data, val: Data, test: Data, seed: int) -> str:
    h1, h2 = cfg["hidden"]
    return (
        f"{scale}, seed {seed}: Fashion-MNIST ({len(train[0])} train / {len(val[0])} val / {len(test[0])} "
        f"test), parent MLP 784-{h1}-{h2}-10, sparsities {list(cfg['sparsities'])} over all weights, node keep "
        f"fractions {{1/4, 1/2, 3/4, 1}} per hidden layer, budget at equal density in the kept block; random "
        f"search: best of {cfg['samples']} by validation accuracy after {cfg['proxy_steps']} proxy steps "
        "(search) or at initialisation (initsearch); "
        f"{cfg['random']} random configurations; every arm {cfg['epochs']} epoch(s) from the parent's "
        "initialisation, SGD lr 0.1 cosine, momentum 0.9, wd 5e-4, batch 128. 'No better than random' is "
        f"random >= search - {MARGIN:g}. The paper's search budget, proxy and data are not in the abstract: ours."
    )


def reproduce(
    scale: str,
    *,
    seed: int = 0,
    broken: str | None = None,
    data: tuple[Data, Data, Data] | None = None,
) -> Result:
    """Search, retrain and compare at `scale` with `seed` (see the module docstring).

    Args:
        broken: one of `BROKEN_ARMS`, or None for the reproduction itself.
        data: optional `(train, val, test)` tensors replacing the Fashion-MNIST splits of `scale`.
    """
    from sparsetorch.search import SparseMLPSpace, retrain

    cfg = SCALES[check_scale(scale)]
    if broken is not None and broken not in BROKEN_ARMS:
        raise ValueError(f"unknown broken arm {broken!r} (have: {', '.join(BROKEN_ARMS)})")
    train, val, test = (
        data
        if data is not None
        else fashion_splits(train=cfg["train"], val=cfg["val"], test=cfg["test"], seed=seed)
    )
    began = time.perf_counter()
    m: dict[str, float] = {}
    checks: dict[str, tuple[Any, str, Any]] = {}
    sanity: dict[str, tuple[Any, str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: one intra-op thread is fastest on a shared machine
    try:
        run = {"epochs": cfg["epochs"], "val": val, "test": test}
        parent = create_model(
            "lenet-300-100", seed=seed, **SparseMLPSpace(hidden=cfg["hidden"]).model_config()
        )
        m["dense_accuracy"] = retrain(None, parent, train, seed=seed, **run)["test_accuracy"]
        for sparsity in cfg["sparsities"]:
            space = SparseMLPSpace(sparsity=sparsity, hidden=cfg["hidden"])
            arms, nodes, errors = _retrain_arms(space, cfg, seed, train=train, run=run, broken=broken)
            tag = _tag(sparsity)
            _compare_arms(tag, arms, nodes, errors, m, checks)
            sanity[f"sparsity_exact_{tag}"] = (f"max_sparsity_error_{tag}", "<=", 1e-4)
        top = _tag(max(cfg["sparsities"]))
        checks["highly_sparse_keeps_90pct_of_dense"] = (
            f"search_{top}_accuracy",
            ">=",
            0.9 * m["dense_accuracy"],
        )
        sanity["dense_learns"] = ("dense_accuracy", ">=", 0.2)
    finally:
        torch.set_num_threads(threads)
    m["seconds"] = time.perf_counter() - began
    paper = {
        name: "sub-networks found by random search 'neither perform better ... than their random "
        "counterparts' (abstract; no number)"
        for name in checks
        if name.startswith("random_matches")
    }
    paper |= {
        name: "'nor converge more efficiently than their random counterparts' (abstract; no number)"
        for name in checks
        if name.startswith("random_converges")
    }
    paper["highly_sparse_keeps_90pct_of_dense"] = (
        "'a significant level of performance can still be preserved even when the network is highly sparse' "
        "(abstract; no number, 90% of dense is ours)"
    )
    note = _note(scale, cfg, train, val, test, seed)
    if data is not None:
        note += " Data: caller-supplied tensors."
    if broken is not None:
        note += f" BROKEN ARM {broken}: {BROKEN_ARMS[broken].description}."
    return Result.from_comparisons(m, checks=checks, sanity=sanity, paper=paper, note=note)
