"""Reproduction of `sparsey`: single-trial storage in superposition, recall, and similar inputs -> similar codes.

Rinkus & Leveille (2017), "Superposed Episodic and Semantic Memory via Sparse Distributed
Representation". The claim we can measure with one Sparsey coding field (`sparsetorch.sdr.sparsey`):

1. Episodic memory: N Fashion-MNIST training items (40-bit edge maps, `binarize_edges`) are stored
   in superposition, each in a single trial. A stored item re-presented to the code selection
   algorithm (CSA) gets its code back; a noisy probe (20% of its bits moved elsewhere) retrieves
   its code by max-V recognition, identified as the stored code it overlaps most.
2. Similar inputs -> similar codes (SISC): probes that keep a fraction s of a stored item's bits
   (s = 1.0 ... 0.0, the rest moved at random) are coded by the CSA without learning. The code
   overlap with the item's stored code rises with s (Spearman's rho over all probes), and novel
   inputs (s = 0) get near-random codes. The random-code control (eta = 1: every code uniform at
   random) stores the same items the same way and must show no such relation.
3. The same over stored items: Pearson's r between input overlap and code overlap over all pairs,
   against the control.
4. Semantic side effect: a held-out test item's max-V code, matched to the most-overlapping stored
   code, predicts its class (reported against chance, the control and raw-pixel nearest neighbour).

Claim checks (the paper gives no number for one flat mac; the thresholds are ours and each check
names the paper's statement beside it): `stored_input_reinstates_its_code` (code overlap >= 0.9),
`noisy_probe_recalls_the_item` (>= 0.9 of 20%-noise probes), `similar_inputs_similar_codes`
(Spearman >= 0.5), `sisc_beats_random_codes` (>= the control + 0.4), `familiarity_tracks_similarity`
(Spearman >= 0.8), `pairwise_similarity_preserved` (Pearson >= the control + 2 noise SE) and
`label_retrieval_above_chance` (>= 0.25, chance 0.1). Sanity checks: one winner per CM (holds by
construction of the CSA) and `novel_inputs_near_random_codes` (a probe sharing no bit with an item
overlaps its code at chance level unless the codes collapse; a guard, not the claim).

Broken arms: `random-codes` runs the random-code control (eta = 1) in place of the CSA, so the
similarity checks compare the control with itself; `no-learning` assigns the CSA's codes without
learning any weight, so nothing can be recalled, familiarity is flat and labels are not retrieved.
`seed` sets the stored and held-out items (offset from 2017), the CSA's draws and the noise.

Not reproduced: the paper's hierarchy of macs and its MNIST/Weizmann accuracies (MNIST is not
available offline; see DATA.md). One flat mac holds a few hundred items of this kind (see the
capacity note in `sparsetorch.sdr.sparsey`); `small` also sweeps the number of stored items to
show where the mac's codes collapse, and sweeps sigma3 (Rinkus's capacity/similarity trade-off).
Scales: `tiny` (a few seconds) stores 150 items in a Q=16, K=100 mac; `small` 300 items in
Q=20, K=400 with more probes and both sweeps; `full` the same with all 10,000 test items.
"""

from __future__ import annotations

import math
import time

import torch

from sparsetorch.data import load_fashion_mnist
from sparsetorch.papers.base import BrokenArm, Result, check_scale
from sparsetorch.sdr.sdr import SDR
from sparsetorch.sdr.sparsey import (
    SparseyConfig,
    SparseyMac,
    binarize_edges,
    similarity_preservation,
    spearman,
)

SEED = 2017
ACTIVE = 40  # active bits per edge map (of 784)
PROBE_NOISE = 0.2  # fraction of a stored item's bits moved in the recall probes
LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0)  # fraction of an item's bits kept
SETTINGS = {
    "tiny": {
        "items": 150,
        "cms": 16,
        "units": 100,
        "probes": 100,
        "test": 200,
        "sweep": (),
        "inflections": (),
    },
    "small": {
        "items": 300,
        "cms": 20,
        "units": 400,
        "probes": 300,
        "test": 1000,
        "sweep": (100, 200, 400, 600),
        "inflections": (0.7, 0.9),
    },
    "full": {
        "items": 300,
        "cms": 20,
        "units": 400,
        "probes": 300,
        "test": 10000,
        "sweep": (100, 200, 400, 600, 1000),
        "inflections": (0.6, 0.7, 0.9, 0.95),
    },
}


BROKEN_ARMS = {
    "random-codes": BrokenArm(
        "the random-code control (eta = 1) in place of the CSA",
        fails=(
            "stored_input_reinstates_its_code",
            "similar_inputs_similar_codes",
            "sisc_beats_random_codes",
            "pairwise_similarity_preserved",
        ),
    ),
    "no-learning": BrokenArm(
        "the CSA's codes assigned without learning any weight",
        fails=(
            "stored_input_reinstates_its_code",
            "noisy_probe_recalls_the_item",
            "familiarity_tracks_similarity",
            "label_retrieval_above_chance",
        ),
    ),
}
PAPER = {
    "stored_input_reinstates_its_code": "each item stored in a single trial; re-presenting it reactivates its code",
    "noisy_probe_recalls_the_item": "episodic recall of stored items from degraded inputs (no number for one mac)",
    "similar_inputs_similar_codes": "the CSA maps more similar inputs to more similar (more overlapping) codes",
    "sisc_beats_random_codes": "similarity preservation comes from the familiarity-contingent CSA, not chance",
    "familiarity_tracks_similarity": "the CSA's global familiarity G rises with similarity to stored inputs",
    "pairwise_similarity_preserved": "similarity of inputs is embedded in code overlap (semantic memory)",
    "label_retrieval_above_chance": "semantic memory as a side effect of episodic storage (MNIST/Weizmann "
    "accuracies of the hierarchy not reproduced)",
}


def _data(items: int, test: int, seed: int) -> tuple[SDR, torch.Tensor, SDR, torch.Tensor]:
    """Stored items from the training split and held-out items from the test split, as edge SDRs."""
    x_train, y_train = load_fashion_mnist("train", normalize=False).tensors
    x_test, y_test = load_fashion_mnist("test", normalize=False).tensors
    generator = torch.Generator().manual_seed(seed)
    stored = torch.randperm(x_train.shape[0], generator=generator)[:items]
    held_out = torch.randperm(x_test.shape[0], generator=generator)[:test]
    return (
        binarize_edges(x_train[stored], active=ACTIVE),
        y_train[stored],
        binarize_edges(x_test[held_out], active=ACTIVE),
        y_test[held_out],
    )


def _nearest(codes: SDR, stored: SDR) -> torch.Tensor:
    """Index of the stored code each code overlaps most (ties to the lowest index)."""
    return (codes.dense.to(torch.float32) @ stored.dense.to(torch.float32).T).argmax(-1)


def _measure(
    mac: SparseyMac,
    *,
    items: SDR,
    labels: torch.Tensor,
    test: SDR,
    test_labels: torch.Tensor,
    probes: int,
    seed: int,
    learn: bool = True,
) -> dict[str, float]:
    """Store `items` in `mac` and measure recall, similarity preservation and label retrieval
    (`learn=False`: the broken arm that assigns the CSA's codes without learning)."""
    n = items.dense.shape[0]
    start = time.perf_counter()
    store = mac.store if learn else mac.select
    winners = store(items, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    codes = mac.codes(winners)
    generator = torch.Generator().manual_seed(seed + 1)
    m: dict[str, float] = {
        "store_items_per_s": n / max(seconds, 1e-9),
        "one_winner_per_cm": float((codes.active == mac.config.cms).float().mean()),
        "novel_familiarity": float(mac.familiarity(test).g.mean()),
    }
    # episodic recall: max-V retrieval of exact and noisy probes
    m["exact_retrieval_overlap"] = float((mac.retrieve(items) == winners).float().mean())
    noisy = items.add_noise(round(PROBE_NOISE * ACTIVE), generator=generator)
    retrieved = mac.retrieve(noisy)
    m["noisy_retrieval_overlap"] = float((retrieved == winners).float().mean())
    m["noisy_item_recall"] = float((_nearest(mac.codes(retrieved), codes) == torch.arange(n)).float().mean())
    # SISC: CSA codes (no learning) of probes at graded similarity to stored items
    chosen = torch.arange(min(probes, n))
    level_column, overlap_column, familiarity_column = [], [], []
    for level in LEVELS:
        probe = items[chosen].add_noise(round((1.0 - level) * ACTIVE), generator=generator)
        overlap = (mac.select(probe, generator=generator) == winners[chosen]).float().mean(-1)
        level_column.append(torch.full_like(overlap, level))
        overlap_column.append(overlap)
        familiarity_column.append(mac.familiarity(probe).g)
        m[f"code_overlap_at_{round(level * 100)}pct"] = float(overlap.mean())
    levels, overlaps = torch.cat(level_column), torch.cat(overlap_column)
    m["sisc_spearman"] = spearman(levels, overlaps)
    m["familiarity_spearman"] = spearman(levels, torch.cat(familiarity_column))
    m["pairs_pearson"], m["pairs_spearman"] = similarity_preservation(items, codes)
    # semantic side effect: class of the nearest stored code of a held-out item's max-V code
    nearest = _nearest(mac.codes(mac.retrieve(test)), codes)
    m["label_accuracy"] = float((labels[nearest] == test_labels).float().mean())
    return m


def _compare(a: float, b: float, trials: int) -> str:
    """'better than', 'worse than' or 'about the same as', at two binomial standard errors."""
    margin = 2.0 * math.sqrt(0.25 / trials) * math.sqrt(2.0)
    return "better than" if a > b + margin else "worse than" if a < b - margin else "about the same as"


def _config(setting: dict, *, control: bool, inflection: float | None = None) -> SparseyConfig:
    extra = {} if inflection is None else {"sigmoid_inflection": inflection}
    return SparseyConfig(
        n_inputs=784,
        cms=setting["cms"],
        units=setting["units"],
        familiarity_contingent=not control,
        **extra,
    )


def _capacity(metrics: dict[str, float], setting: dict, items: SDR, test: SDR, seed: int) -> None:
    """Noisy-probe item recall and novel-input familiarity as the number of stored items grows."""
    for size in setting["sweep"]:
        for name, control in (("csa", False), ("control", True)):
            mac = SparseyMac(_config(setting, control=control))
            winners = mac.store(items[:size], generator=torch.Generator().manual_seed(seed))
            noisy = items[:size].add_noise(
                round(PROBE_NOISE * ACTIVE), generator=torch.Generator().manual_seed(seed + 2)
            )
            hits = _nearest(mac.codes(mac.retrieve(noisy)), mac.codes(winners)) == torch.arange(size)
            metrics[f"sweep_{size}_{name}_noisy_item_recall"] = float(hits.float().mean())
            metrics[f"sweep_{size}_{name}_novel_familiarity"] = float(mac.familiarity(test).g.mean())


def _tradeoff(metrics: dict[str, float], setting: dict, items: SDR, test: SDR, seed: int) -> None:
    """Rinkus's capacity/similarity trade-off: pairwise similarity embedding and recall vs sigma3."""
    n = setting["items"]
    for inflection in setting["inflections"]:
        mac = SparseyMac(_config(setting, control=False, inflection=inflection))
        winners = mac.store(items[:n], generator=torch.Generator().manual_seed(seed))
        tag = f"inflection_{round(inflection * 100)}"
        metrics[f"{tag}_pairs_pearson"] = similarity_preservation(items[:n], mac.codes(winners))[0]
        noisy = items[:n].add_noise(
            round(PROBE_NOISE * ACTIVE), generator=torch.Generator().manual_seed(seed + 2)
        )
        hits = _nearest(mac.codes(mac.retrieve(noisy)), mac.codes(winners)) == torch.arange(n)
        metrics[f"{tag}_noisy_item_recall"] = float(hits.float().mean())
        metrics[f"{tag}_novel_familiarity"] = float(mac.familiarity(test).g.mean())


def reproduce(scale: str = "tiny", *, seed: int = 0, broken: str | None = None) -> Result:
    """Store Fashion-MNIST edge maps in a Sparsey mac and in the random-code control; measure.

    Args:
        seed: sets the items, the CSA's draws and the probes' noise (offset from 2017).
        broken: one of `BROKEN_ARMS`, or None for the reproduction itself.
    """
    setting = SETTINGS[check_scale(scale)]
    if broken is not None and broken not in BROKEN_ARMS:
        raise ValueError(f"unknown broken arm {broken!r} (have: {', '.join(BROKEN_ARMS)})")
    seed = SEED + seed
    items, labels, test, test_labels = _data(
        max(setting["items"], *setting["sweep"], 0), setting["test"], seed
    )
    n = setting["items"]
    metrics: dict[str, float] = {"items": n, "cms": setting["cms"], "units": setting["units"]}
    for name, control in (("csa", False), ("control", True)):
        if name == "csa" and broken == "random-codes":
            control = True
        found = _measure(
            SparseyMac(_config(setting, control=control)),
            items=items[:n],
            labels=labels[:n],
            test=test,
            test_labels=test_labels,
            probes=setting["probes"],
            seed=seed,
            learn=not (name == "csa" and broken == "no-learning"),
        )
        metrics.update({f"{name}_{k}": v for k, v in found.items()})
    raw = (test.dense.float() @ items[:n].dense.float().T).argmax(-1)
    metrics["raw_pixel_nn_label_accuracy"] = float((labels[:n][raw] == test_labels).float().mean())
    metrics["chance_code_overlap"] = 1.0 / setting["units"]
    # two standard errors of a correlation over the n (n - 1) / 2 pairs, if there were none
    metrics["pairs_noise_margin"] = 2.0 / math.sqrt(n * (n - 1) / 2)
    _capacity(metrics, setting, items, test, seed)
    _tradeoff(metrics, setting, items, test, seed)
    m = metrics
    sanity = {
        "one_winner_per_cm": ("csa_one_winner_per_cm", ">=", 1.0),
        "novel_inputs_near_random_codes": ("csa_code_overlap_at_0pct", "<=", 0.1),
    }
    checks = {
        "stored_input_reinstates_its_code": ("csa_code_overlap_at_100pct", ">=", 0.9),
        "noisy_probe_recalls_the_item": ("csa_noisy_item_recall", ">=", 0.9),
        "similar_inputs_similar_codes": ("csa_sisc_spearman", ">=", 0.5),
        "sisc_beats_random_codes": ("csa_sisc_spearman", ">=", m["control_sisc_spearman"] + 0.4),
        "familiarity_tracks_similarity": ("csa_familiarity_spearman", ">=", 0.8),
        "pairwise_similarity_preserved": (
            "csa_pairs_pearson",
            ">=",
            m["control_pairs_pearson"] + m["pairs_noise_margin"],
        ),
        "label_retrieval_above_chance": ("csa_label_accuracy", ">=", 0.25),
    }
    note = (
        f"{scale}: {n} Fashion-MNIST training items as {ACTIVE}-bit edge maps stored in one mac of "
        f"Q={setting['cms']} x K={setting['units']} (single trial each, in superposition); "
        f"{len(test_labels)} test items for labels. Code overlap with the stored code vs fraction of bits kept "
        + ", ".join(f"{lv:.1f}: {m[f'csa_code_overlap_at_{round(lv * 100)}pct']:.2f}" for lv in LEVELS)
        + f" (random-code control at 1.0: {m['control_code_overlap_at_100pct']:.2f}). Label accuracy CSA "
        f"{m['csa_label_accuracy']:.3f}, control {m['control_label_accuracy']:.3f}, raw-pixel nearest neighbour "
        f"{m['raw_pixel_nn_label_accuracy']:.3f}: label retrieval through CSA codes is "
        + _compare(m["csa_label_accuracy"], m["control_label_accuracy"], len(test_labels))
        + " through random codes here. One flat mac, no hierarchy; the paper's MNIST and Weizmann accuracies are "
        "not reproduced."
    )
    note += f" Seed {seed - SEED}."
    if broken is not None:
        note += f" BROKEN ARM {broken}: {BROKEN_ARMS[broken].description}."
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=PAPER, note=note)
