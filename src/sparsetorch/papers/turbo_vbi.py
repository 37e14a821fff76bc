"""Reproduction of `turbo-vbi`: compression rate, structure and accuracy of Turbo-VBI pruning on
Fashion-MNIST, against gradual magnitude pruning (GMP) at the same sparsity.

The paper claims that its three-layer hierarchical prior, solved by Turbo-VBI, prunes networks into
a more regular structure (whole neurons removed, the surviving weights of a neuron clustered) while
reaching an even better compression rate and accuracy than the baselines. Here: LeNet-300-100 on
Fashion-MNIST, the two hidden layers pruned (the classifier stays dense), the `fashion_runs` recipe
(SGD lr 0.1 cosine, momentum 0.9, wd 5e-4, batch 128; equal epochs for every arm). Arms per seed:

- `dense`: no pruning;
- `turbo`: `turbo-vbi` at a preset 90% sparsity (10x on the targets, each layer at 90%), GMP's
  cubic schedule with masks ranked by the posterior support;
- `gmp`: magnitude on the same schedule and budgets;
- `iid`: `turbo-vbi` with the Markov support prior replaced by independent Bernoulli supports
  (the ablation that isolates the structured prior);
- `posterior`: `turbo-vbi` with no preset target (sparsity 0: the prior shrinks, no mask), then
  every weight whose posterior q(s = 1) is below 1/2 is set to zero: the data-driven compression.

Structure metrics on the pruned hidden layers: `removed_neurons` (hidden units with all incoming
or all outgoing weights zero, of 400; a unit with no inputs emits only its bias, a constant the
next layer absorbs) and `weights_per_run` (non-zeros per maximal run of consecutive non-zero
weights along a neuron's fan-in: higher is more clustered). Compression = dense / non-zero
parameters, over the targets and over the whole model (biases and classifier included).

Checks: at 10x, Turbo-VBI removes more neurons and has longer weight runs than GMP, is within one
point of dense, and is at least as accurate as GMP (the paper's "even better"); the Markov prior
removes more neurons than the iid ablation; pruning where the posterior says zero costs at most
one point against dense.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.papers.base import Result, check_scale
from sparsetorch.papers.fashion_runs import SCALES, fashion_data

SPARSITY = 0.9  # 10x on the targets
ARMS = ("dense", "turbo", "gmp", "iid", "posterior")
BATCH = 128

__all__ = ["ARMS", "SCALES", "SPARSITY", "removed_neurons", "reproduce", "weights_per_run"]


def removed_neurons(layers: list[Tensor]) -> int:
    """Hidden units of a chain of Linear weights (`[out, in]`, input to output) with all incoming
    weights (their row in layer l) or all outgoing weights (their column in layer l + 1) zero."""
    removed = 0
    for inner, outer in itertools.pairwise(layers):
        dead = ~(inner != 0).any(dim=1) | ~(outer != 0).any(dim=0)
        removed += int(dead.sum())
    return removed


def weights_per_run(weights: list[Tensor]) -> float:
    """Non-zero weights per maximal run of consecutive non-zeros along each row (the fan-in)."""
    nonzeros = runs = 0
    for w in weights:
        nz = (w.reshape(w.shape[0], -1) != 0).int()  # [neurons, fan-in]
        runs += int(nz[:, 0].sum()) + int((nz[:, 1:] - nz[:, :-1] == 1).sum())  # run starts
        nonzeros += int(nz.sum())
    return nonzeros / runs if runs else 0.0


def _method(arm: str, seed: int, *, examples: int, update_every: int) -> Any:
    import sparsetorch.training.turbo_vbi  # noqa: F401  (registers "turbo-vbi")
    from sparsetorch.training import TRAINERS

    if arm == "dense":
        return None
    if arm == "gmp":
        return TRAINERS.get("gmp")(sparsity=SPARSITY, update_every=update_every, seed=seed)
    options = {"num_examples": examples, "update_every": update_every, "seed": seed}
    if arm == "iid":
        options["structured"] = False
    return TRAINERS.get("turbo-vbi")(sparsity=0.0 if arm == "posterior" else SPARSITY, **options)


def _run(arm: str, seed: int, data: tuple, test: tuple, epochs: int, update_every: int) -> dict[str, float]:
    from sparsetorch.models import create_model
    from sparsetorch.training import evaluate, fit

    model = create_model("lenet-300-100", seed=seed)
    method = _method(arm, seed, examples=len(data[0]), update_every=update_every)
    out = fit(model, method, data, epochs=epochs, test=test, seed=seed, progress=False)
    accuracy = out["test_accuracy"]
    extra: dict[str, float] = {}
    if method is not None:
        if arm == "posterior":  # the posterior's own verdict on the final weights
            method.refresh()
            extra["unpruned_accuracy"] = accuracy
        method.finish()
        if arm == "posterior":
            with torch.no_grad():
                for f, post in method.posteriors.items():
                    model.get_parameter(f).mul_((post.support >= 0).to(torch.float32))
            accuracy = evaluate(model, test)["accuracy"]
    return {"accuracy": accuracy, **_structure(model), **extra}


def _structure(model: nn.Module) -> dict[str, float]:
    hidden = [model.fc1.weight.detach(), model.fc2.weight.detach()]
    targets = sum(w.numel() for w in hidden)
    target_nonzeros = sum(int((w != 0).sum()) for w in hidden)
    total = sum(p.numel() for p in model.parameters())
    nonzeros = total - (targets - target_nonzeros)
    return {
        "sparsity": 1 - target_nonzeros / targets,
        "compression": targets / target_nonzeros,
        "model_compression": total / nonzeros,
        "removed_neurons": removed_neurons([*hidden, model.fc3.weight.detach()]),
        "weights_per_run": weights_per_run(hidden),
    }


def reproduce(scale: str, *, progress: Callable[[str], None] | None = None) -> Result:
    """Train the five arms at every seed of `scale` and compare them (see the module docstring)."""
    cfg = SCALES[check_scale(scale)]
    data, test = fashion_data(scale)
    steps = math.ceil(len(data[0]) / BATCH) * cfg["epochs"]
    update_every = max(4, steps // 20)  # about 15 mask updates before `end` (0.75 of training)
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one intra-op thread is faster on a shared machine
    try:
        for seed in cfg["seeds"]:
            for arm in ARMS:
                runs[arm].append(_run(arm, seed, data, test, cfg["epochs"], update_every))
                if progress is not None:
                    progress(f"seed {seed} {arm}: {runs[arm][-1]}")
    finally:
        torch.set_num_threads(threads)

    metrics: dict[str, float] = {"epochs": cfg["epochs"], "update_every": update_every}
    for arm, results in runs.items():
        for key in results[0]:
            values = [r[key] for r in results]
            metrics[f"{arm}_{key}_mean"] = statistics.fmean(values)
            if key == "accuracy":
                metrics[f"{arm}_accuracy_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    metrics["turbo_drop_points"] = 100 * (metrics["dense_accuracy_mean"] - metrics["turbo_accuracy_mean"])
    metrics["turbo_minus_gmp_points"] = 100 * (metrics["turbo_accuracy_mean"] - metrics["gmp_accuracy_mean"])
    metrics["posterior_drop_points"] = 100 * (
        metrics["dense_accuracy_mean"] - metrics["posterior_accuracy_mean"]
    )
    checks = {
        "turbo_removes_more_neurons_than_gmp": (
            "turbo_removed_neurons_mean",
            ">",
            "gmp_removed_neurons_mean",
        ),
        "turbo_longer_weight_runs_than_gmp": ("turbo_weights_per_run_mean", ">", "gmp_weights_per_run_mean"),
        "turbo_within_1_point_of_dense_at_10x": ("turbo_drop_points", "<=", 1.0),
        "turbo_accuracy_at_least_gmp": ("turbo_minus_gmp_points", ">=", 0.0),
        "markov_prior_removes_more_neurons_than_iid": (
            "turbo_removed_neurons_mean",
            ">",
            "iid_removed_neurons_mean",
        ),
        "posterior_pruning_within_1_point_of_dense": ("posterior_drop_points", "<=", 1.0),
    }
    n_train, n_test = len(data[0]), len(test[0])
    note = (
        f"{scale}: Fashion-MNIST ({n_train} train / {n_test} test), LeNet-300-100, {cfg['epochs']} "
        f"epoch(s), seeds {list(cfg['seeds'])}; fc1 and fc2 pruned, {SPARSITY:.0%} per layer for the "
        f"turbo / gmp / iid arms (cubic schedule to 0.75 of training, masks every {update_every} steps); "
        "posterior = prune q(s=1) < 1/2 after training with no preset target; removed_neurons of 400 "
        "hidden units; accuracies are means over seeds. Turbo-VBI hyperparameters are this library's "
        "(the paper's were not available): see sparsetorch.training.turbo_vbi"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
