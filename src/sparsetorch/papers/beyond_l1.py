"""Reproduction of `beyond-l1`: l0 and CEL0 sparse codes beat l1 at equal sparsity, with V1-like atoms.

Rentzeperis, Calatroni, Perrinet & Prandi (2023), "Beyond ell_1 sparse coding in V1". We learn one
dictionary per penalty (l1 soft, l0 hard and CEL0 firm thresholding; `sparsetorch.sdr.coding` and
`sparsetorch.sdr.dictionary`) on whitened 8x8 patches of the natural photos bundled with
scikit-image / scikit-learn (DATA.md), every penalty at the same code density during learning
(lambda recalibrated to `DENSITY`). Then, on held-out patches:

1. Equal sparsity: each dictionary codes the test patches over a sweep of lambda; the relative
   reconstruction error is interpolated at matched code densities. The paper: l0-based codes
   reconstruct "approximately five times better" than l1 at a fixed sparsity level.
2. Equal error: the code density each penalty needs to reach the same error; the paper: l1
   "produces a denser code".
3. Overcompleteness: an l1 dictionary with twice the atoms, compared with CEL0 at the same number
   of active coefficients per patch; the paper: l1 needs about ten times more units for the same
   error at the same sparsity. We test the weaker "more than twice".
4. V1-like receptive fields: the fraction of atoms whose power spectrum is more anisotropic than
   95% of random Gaussian atoms (`orientation_selectivity`), against the random training patches
   the atoms started from; the paper: for all penalties a subset of units become orientation
   selective. The atoms are rendered as image grids (`render_dictionary`, when matplotlib is
   installed; pass `figure_dir` to write the PNGs).

Claim checks, with the paper's number beside each (`paper=`):

- `l0_beats_l1_at_{3,5}pct`, `cel0_beats_l1_at_{3,5}pct`: l1's relative error / the l0 (CEL0)
  error at the same code density >= 1.25 (paper: "approximately five times better reconstruction");
- `l1_needs_a_denser_code`: the density l1 needs for CEL0's error / CEL0's density >= 1.25 (paper:
  l1 "produces a denser code", no number);
- `l1_with_2x_atoms_still_worse`: l1 with twice the atoms at the same active count / CEL0 error > 1
  (paper: l1 needs ten times more units);
- `all_penalties_give_oriented_atoms`: every penalty's oriented fraction >= 0.5 (paper: for all
  penalties a subset of units become orientation selective, no number);
- `learning_makes_atoms_more_oriented`: the mean oriented fraction >= the initial patches' + 0.05.

Deviation from the paper's ratios (issue 17): at the scales we can run on CPU the error ratios are
about 1.3-1.7x (`tiny`), not 5x, and we can only afford 2x atoms, not 10x; a check at the paper's
5x / 10x would fail at every scale for reasons of scale (50-3000 learning steps, 64-128 atoms, ZCA
patches), so the thresholds are 1.25x and "worse with 2x atoms", and each check shows the paper's
number beside ours. The ratios are reported as metrics.

Sanity check: CEL0's proximal operator matches brute-force scalar minimization
(`cel0_prox_matches_brute_force`, an implementation check).

Broken arms: `l1-for-all` learns and codes the l0 and CEL0 arms with l1 (the same seed), so the
error and density ratios are exactly 1 and l1 with 2x atoms beats the 1x "CEL0"; `random-atoms`
replaces every learned dictionary by unit-norm Gaussian atoms, which are no more oriented than
chance.

`seed` sets the patch sample, the train/test split and every dictionary's initialisation and
batches. Scales: `tiny` (a few seconds) learns 64-atom dictionaries in 50 steps; `small` (CPU
minutes) 128 atoms in 600 steps; `full` 128 atoms in 3000 steps on more patches. Deviations: ZCA
whitening of patches instead of the paper's preprocessing; three penalties instead of the paper's
wider l_q family; far fewer learning steps than the paper.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from sparsetorch.data import load_image_patches
from sparsetorch.papers.base import BrokenArm, Result, check_scale
from sparsetorch.sdr.coding import cel0_penalty, cel0_prox, density_at_error, error_at_density, sparsity_curve
from sparsetorch.sdr.dictionary import (
    learn_dictionary,
    normalize_atoms,
    orientation_selectivity,
    random_dictionary,
    render_dictionary,
    whiten,
)

SEED = 2023
PATCH = 8
DENSITY = 0.05  # code density held during learning
MATCHED_DENSITIES = (0.03, 0.05)  # where errors are compared
LAMBDA_FACTORS = (0.25, 0.45, 0.7, 1.0, 1.5, 2.5, 4.0)  # test sweep around the learned lambda
SETTINGS = {
    "tiny": {
        "per_image": 150,
        "test": 300,
        "atoms": 64,
        "steps": 50,
        "batch": 128,
        "iterations": 15,
        "eval": 50,
    },
    "small": {
        "per_image": 2000,
        "test": 2000,
        "atoms": 128,
        "steps": 600,
        "batch": 256,
        "iterations": 30,
        "eval": 100,
    },
    "full": {
        "per_image": 5000,
        "test": 5000,
        "atoms": 128,
        "steps": 3000,
        "batch": 256,
        "iterations": 50,
        "eval": 200,
    },
}


BROKEN_ARMS = {
    "l1-for-all": BrokenArm(
        "the l0 and CEL0 dictionaries learned and coded with the l1 penalty (same seed)",
        fails=(
            "l0_beats_l1_at_3pct",
            "l0_beats_l1_at_5pct",
            "cel0_beats_l1_at_3pct",
            "cel0_beats_l1_at_5pct",
            "l1_needs_a_denser_code",
            "l1_with_2x_atoms_still_worse",
        ),
    ),
    "random-atoms": BrokenArm(
        "every learned dictionary replaced by unit-norm Gaussian atoms",
        fails=("all_penalties_give_oriented_atoms", "learning_makes_atoms_more_oriented"),
    ),
}
FIVE_TIMES = "l0-based penalties: 'approximately five times better reconstruction' at a fixed sparsity level"
PAPER = {
    "l0_beats_l1_at_3pct": FIVE_TIMES,
    "l0_beats_l1_at_5pct": FIVE_TIMES,
    "cel0_beats_l1_at_3pct": FIVE_TIMES,
    "cel0_beats_l1_at_5pct": FIVE_TIMES,
    "l1_needs_a_denser_code": "l1 'produces a denser code' for the same reconstruction (no number)",
    "l1_with_2x_atoms_still_worse": "l1 needs 'ten times more units' than CEL0 for the same error at the same "
    "sparsity (we test 2x)",
    "all_penalties_give_oriented_atoms": "for all penalties a subset of units become orientation selective (no number)",
    "learning_makes_atoms_more_oriented": "V1-like oriented receptive fields emerge from learning (no number)",
}


def _prox_error() -> float:
    """Max distance between `cel0_prox` and a grid minimization of 1/2 (t - u)^2 + g phi(t)."""
    lam, step, norm = 0.3, 0.6, 1.1
    u = torch.linspace(-2.0, 2.0, 81, dtype=torch.float64)
    t = torch.linspace(-2.5, 2.5, 50001, dtype=torch.float64)  # spacing 1e-4
    values = 0.5 * (t[None, :] - u[:, None]) ** 2 + step * cel0_penalty(t, lam=lam, norms=norm)[None, :]
    brute = t[values.argmin(-1)]
    return float((cel0_prox(u, lam=lam, step=step, norms=norm) - brute).abs().max())


def _patches(setting: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Whitened training and test patches (whitening fitted on the training patches only)."""
    patches = load_image_patches(patch_size=PATCH, n_per_image=setting["per_image"], seed=seed)
    order = torch.randperm(patches.shape[0], generator=torch.Generator().manual_seed(seed))
    test, train = patches[order[: setting["test"]]], patches[order[setting["test"] :]]
    fitted = whiten(train, epsilon=0.1)
    test = (test - test.mean(-1, keepdim=True)) @ fitted.matrix
    return fitted.white, test


def _orientation_baseline(train: torch.Tensor, seed: int) -> tuple[float, float]:
    """The 95th percentile of random atoms' orientation selectivity (the cut), and the fraction of
    random training patches above it (atoms start as such patches: how oriented are they already?)."""
    null = orientation_selectivity(
        random_dictionary(PATCH * PATCH, 4000, generator=torch.Generator().manual_seed(seed)),
        patch_size=PATCH,
    )
    cut = float(null.quantile(0.95))
    sample = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:2000]]
    initial = orientation_selectivity(normalize_atoms(sample.T), patch_size=PATCH)
    return cut, float((initial > cut).float().mean())


def _figure_bytes(dictionary: torch.Tensor, *, title: str, path: Path | None) -> int:
    """Size of the rendered atom grid in PNG bytes; 0 without matplotlib (the optional `bench` extra)."""
    try:
        return len(render_dictionary(dictionary, patch_size=PATCH, title=title, path=path))
    except ImportError:
        return 0


def _learn_and_measure(
    train: torch.Tensor,
    test: torch.Tensor,
    setting: dict,
    *,
    name: str,
    penalty: str,
    factor: int,
    cut: float,
    title: str,
    figure_dir: str | Path | None,
    seed: int,
    random_atoms: bool,
) -> tuple[list, dict[str, float]]:
    """Learn one dictionary; its test sparsity curve and its metrics (lambda, losses, orientation)."""
    learned = learn_dictionary(
        train,
        atoms=factor * setting["atoms"],
        penalty=penalty,
        density=DENSITY / factor,  # the 2x dictionary keeps the same active count per patch
        steps=setting["steps"],
        batch_size=setting["batch"],
        code_iterations=setting["iterations"],
        generator=torch.Generator().manual_seed(seed),
    )
    dictionary = learned.dictionary
    if random_atoms:  # broken arm: the learned atoms discarded
        g = torch.Generator().manual_seed(seed + 1)
        dictionary = random_dictionary(dictionary.shape[0], dictionary.shape[1], generator=g)
    lams = [learned.lam * f for f in LAMBDA_FACTORS]
    curve = sparsity_curve(test, dictionary, penalty=penalty, lams=lams, iterations=setting["eval"])
    oriented = orientation_selectivity(dictionary, patch_size=PATCH)
    path = None if figure_dir is None else Path(figure_dir) / f"beyond_l1_{name}.png"
    return curve, {
        f"{name}_lambda": learned.lam,
        f"{name}_loss_first": float(learned.losses[:5].mean()),
        f"{name}_loss_last": float(learned.losses[-5:].mean()),
        f"{name}_oriented_fraction": float((oriented > cut).float().mean()),
        f"{name}_median_orientation_selectivity": float(oriented.median()),
        f"{name}_figure_png_bytes": _figure_bytes(dictionary, title=title, path=path),
    }


def _compare_curves(curves: dict, m: dict[str, float]) -> None:
    """Errors at matched densities and densities at the matched error, added to `m`."""
    for density in MATCHED_DENSITIES:
        tag = f"{round(density * 100)}pct"
        for name in ("l1", "l0", "cel0"):
            m[f"{name}_error_at_{tag}"] = error_at_density(curves[name], density)
        # same number of active coefficients per patch: half the density over twice the atoms
        m[f"l1_2x_error_at_{tag}_of_1x"] = error_at_density(curves["l1_2x"], density / 2)
        m[f"l1_over_l0_error_ratio_at_{tag}"] = m[f"l1_error_at_{tag}"] / m[f"l0_error_at_{tag}"]
        m[f"l1_over_cel0_error_ratio_at_{tag}"] = m[f"l1_error_at_{tag}"] / m[f"cel0_error_at_{tag}"]
        m[f"l1_2x_over_cel0_error_ratio_at_{tag}"] = (
            m[f"l1_2x_error_at_{tag}_of_1x"] / m[f"cel0_error_at_{tag}"]
        )
    # equal error: the CEL0 error at the learning density, reached by the others at which density?
    target = m[f"cel0_error_at_{round(DENSITY * 100)}pct"]
    m["matched_error"] = target
    for name in ("l1", "l0", "cel0"):
        m[f"{name}_density_at_matched_error"] = density_at_error(curves[name], target)
    m["l1_over_cel0_density_ratio"] = m["l1_density_at_matched_error"] / m["cel0_density_at_matched_error"]


def _checks(m: dict[str, float]) -> dict[str, tuple]:
    return {
        "l0_beats_l1_at_3pct": ("l1_over_l0_error_ratio_at_3pct", ">=", 1.25),
        "l0_beats_l1_at_5pct": ("l1_over_l0_error_ratio_at_5pct", ">=", 1.25),
        "cel0_beats_l1_at_3pct": ("l1_over_cel0_error_ratio_at_3pct", ">=", 1.25),
        "cel0_beats_l1_at_5pct": ("l1_over_cel0_error_ratio_at_5pct", ">=", 1.25),
        "l1_needs_a_denser_code": ("l1_over_cel0_density_ratio", ">=", 1.25),
        "l1_with_2x_atoms_still_worse": ("l1_2x_over_cel0_error_ratio_at_5pct", ">", 1.0),
        "all_penalties_give_oriented_atoms": ("min_oriented_fraction", ">=", 0.5),
        "learning_makes_atoms_more_oriented": (
            "mean_oriented_fraction",
            ">=",
            m["init_oriented_fraction"] + 0.05,
        ),
    }


def _note(scale: str, setting: dict, train: torch.Tensor, test: torch.Tensor, m: dict[str, float]) -> str:
    cut = m["orientation_null_q95"]
    note = (
        f"{scale}: {train.shape[0]} training / {test.shape[0]} test whitened {PATCH}x{PATCH} patches of 12 photos; "
        f"{setting['atoms']} atoms, {setting['steps']} steps at code density {DENSITY}. Relative error at 5% density: "
        f"l1 {m['l1_error_at_5pct']:.3f}, l0 {m['l0_error_at_5pct']:.3f}, CEL0 {m['cel0_error_at_5pct']:.3f} "
        f"(l1/l0 {m['l1_over_l0_error_ratio_at_5pct']:.2f}x, l1/CEL0 {m['l1_over_cel0_error_ratio_at_5pct']:.2f}x; "
        f"the paper reports ~5x for l0-based codes); l1 with twice the atoms at the same active count: "
        f"{m['l1_2x_error_at_5pct_of_1x']:.3f}. To match CEL0's error l1 needs density "
        f"{m['l1_density_at_matched_error']:.3f} vs {m['cel0_density_at_matched_error']:.3f}. Oriented atoms "
        f"(spectral anisotropy above the 95th percentile of random atoms, {cut:.2f}): l1 "
        f"{m['l1_oriented_fraction']:.2f}, l0 {m['l0_oriented_fraction']:.2f}, CEL0 {m['cel0_oriented_fraction']:.2f}, "
        f"initial patches {m['init_oriented_fraction']:.2f}."
    )
    if any(math.isnan(v) for v in m.values()):
        note += " Some interpolations fell outside the lambda sweep (NaN): those checks fail."
    return note


def reproduce(
    scale: str = "tiny",
    *,
    seed: int = 0,
    broken: str | None = None,
    figure_dir: str | Path | None = None,
) -> Result:
    """Learn l1, l0 and CEL0 dictionaries on natural-image patches and compare them at equal sparsity.

    Args:
        scale: "tiny", "small" or "full".
        seed: sets the patches, the split and the dictionaries' initialisation (offset from 2023).
        broken: one of `BROKEN_ARMS`, or None for the reproduction itself.
        figure_dir: if given, the dictionaries are written there as `beyond_l1_<penalty>.png`.
    """
    setting = SETTINGS[check_scale(scale)]
    if broken is not None and broken not in BROKEN_ARMS:
        raise ValueError(f"unknown broken arm {broken!r} (have: {', '.join(BROKEN_ARMS)})")
    seed = SEED + seed
    train, test = _patches(setting, seed)
    m: dict[str, float] = {
        "atoms": setting["atoms"],
        "steps": setting["steps"],
        "train_patches": train.shape[0],
    }
    m["orientation_null_q95"], m["init_oriented_fraction"] = _orientation_baseline(train, seed)
    cut = m["orientation_null_q95"]
    curves = {}
    runs = [("l1", "l1", 1), ("l0", "l0", 1), ("cel0", "cel0", 1), ("l1_2x", "l1", 2)]
    if broken == "l1-for-all":
        runs = [(name, "l1", factor) for name, _, factor in runs]
    for name, penalty, factor in runs:
        title = f"{name}: {factor * setting['atoms']} atoms, {scale}"
        curves[name], measured = _learn_and_measure(
            train,
            test,
            setting,
            name=name,
            penalty=penalty,
            factor=factor,
            cut=cut,
            title=title,
            figure_dir=figure_dir,
            seed=seed,
            random_atoms=broken == "random-atoms",
        )
        m.update(measured)
    _compare_curves(curves, m)
    m["cel0_prox_max_error"] = _prox_error()
    fractions = [m[f"{name}_oriented_fraction"] for name in ("l1", "l0", "cel0")]
    m["min_oriented_fraction"] = min(fractions)
    m["mean_oriented_fraction"] = sum(fractions) / len(fractions)
    note = _note(scale, setting, train, test, m) + f" Seed {seed - SEED}."
    if broken is not None:
        note += f" BROKEN ARM {broken}: {BROKEN_ARMS[broken].description}."
    sanity = {"cel0_prox_matches_brute_force": ("cel0_prox_max_error", "<=", 2e-4)}
    return Result.from_comparisons(m, checks=_checks(m), sanity=sanity, paper=PAPER, note=note)
