"""Dictionary learning on natural-image patches, whitening, and the V1-likeness of the atoms.

Paper `beyond-l1` (Rentzeperis et al. 2023); the codes come from `sparsetorch.sdr.coding`.

Dictionary learning (Olshausen & Field 1996, as in the paper): alternate codes of a random
minibatch (monotone FISTA from zero codes, a fixed number of iterations) with a dictionary step,
either projected gradient (D <- D + (1/L_D) (X - A D^T)^T A with L_D = ||A^T A||_2, then every atom
back to unit norm: the projection onto the unit sphere) or MOD (D <- X^T A (A^T A + eps I)^-1,
normalized). Atoms start as random training patches (`init="patches"`): from Gaussian noise, hard
and firm thresholding never select many atoms, which then never learn. With `density`, lambda is
recalibrated every few steps so that every penalty learns at the same code density. Atoms unused
in a batch can be re-drawn from that batch's residuals (`resample_dead`, off by default: it keeps
injecting noise-like atoms).

Whitening: per-patch mean removal, then ZCA with a damping term proportional to the largest
eigenvalue (`whiten`), which flattens the 1/f^2 power spectrum of natural images over the
strong directions and damps the weak, noisy ones (the role of Olshausen & Field's whitening and
low-pass filter; the paper's exact preprocessing may differ).

V1-likeness: `orientation_selectivity` measures how anisotropic each atom's power spectrum is,
and `render_dictionary` draws the atoms as an image grid (PNG bytes, via matplotlib).

Conventions: patches are rows, X (B, d); the dictionary is (d, m) with atoms as columns; a
p x p atom is a column of p*p pixels in row-major order.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from sparsetorch.sdr.coding import (
    Penalty,
    calibrate_lambda,
    check_penalty,
    check_positive,
    code_density,
    objective,
    sparse_code,
)

__all__ = [
    "DictionaryResult",
    "Whitening",
    "dictionary_grid",
    "learn_dictionary",
    "normalize_atoms",
    "orientation_selectivity",
    "random_dictionary",
    "render_dictionary",
    "whiten",
]


def normalize_atoms(dictionary: Tensor, *, fallback: Tensor | None = None) -> Tensor:
    """Every column scaled to unit norm; a zero column takes `fallback`'s column (or stays zero)."""
    norms = dictionary.norm(dim=0, keepdim=True)
    out = dictionary / norms.clamp(min=1e-12)
    if fallback is not None:
        out = torch.where(norms > 1e-12, out, fallback)
    return out


def random_dictionary(d: int, m: int, *, generator: torch.Generator) -> Tensor:
    """m unit-norm Gaussian atoms in R^d, shape (d, m) (float32)."""
    if d < 1 or m < 1:
        raise ValueError(f"need d >= 1 and m >= 1, got {d}, {m}")
    return normalize_atoms(torch.randn(d, m, generator=generator))


class Whitening(NamedTuple):
    """ZCA whitening fitted on patches: white = (x - x.mean(-1)) @ matrix."""

    matrix: Tensor
    white: Tensor


def whiten(patches: Tensor, *, epsilon: float = 0.1) -> Whitening:
    """Remove each patch's mean, then ZCA-whiten: W = U diag(1 / sqrt(s + epsilon s_max)) U^T.

    `epsilon` (relative to the largest eigenvalue) damps the weakest, noisiest directions, which
    acts as the low-pass half of Olshausen & Field's whitening filter. The output is scaled so that
    the mean squared pixel is 1.
    """
    if patches.ndim != 2 or patches.shape[0] < 2:
        raise ValueError(f"patches must be (N >= 2, d), got {tuple(patches.shape)}")
    centred = (patches - patches.mean(-1, keepdim=True)).double()
    cov = centred.T @ centred / centred.shape[0]
    s, u = torch.linalg.eigh(cov)
    s = s.clamp(min=0.0)
    gain = 1.0 / torch.sqrt(s + check_positive("epsilon", epsilon) * s.max())
    gain[s <= 1e-10 * s.max()] = 0.0  # the removed mean (and any other null direction) stays zero
    matrix = u @ torch.diag(gain) @ u.T
    white = centred @ matrix
    scale = torch.sqrt((white**2).mean())
    matrix = (matrix / scale).to(patches.dtype)
    return Whitening(matrix=matrix, white=(white / scale).to(patches.dtype))


class DictionaryResult(NamedTuple):
    """A learned dictionary (d, m), the lambda in use at the end, and per-step batch statistics."""

    dictionary: Tensor
    lam: float
    losses: Tensor
    densities: Tensor


def learn_dictionary(
    x: Tensor,
    *,
    atoms: int,
    penalty: Penalty,
    lam: float | None = None,
    density: float | None = None,
    steps: int = 200,
    batch_size: int = 256,
    code_iterations: int = 50,
    update: Literal["gradient", "mod"] = "gradient",
    recalibrate_every: int = 25,
    resample_dead: bool = False,
    init: Literal["random", "patches"] = "patches",
    generator: torch.Generator,
) -> DictionaryResult:
    """Alternate sparse codes of random minibatches with a dictionary step (unit-norm atoms).

    Give either `lam` (fixed) or `density` (lambda recalibrated every `recalibrate_every` steps so
    that codes keep that mean density: the sparsity-matched protocol).

    Args:
        x: training patches (N, d), e.g. whitened.
        atoms: m, the number of atoms.
        penalty: "l1", "l0" or "cel0".
        lam: a fixed lambda, or None with `density`.
        density: a target code density in (0, 1), or None with `lam`.
        steps: dictionary updates.
        batch_size: patches per step.
        code_iterations: monotone FISTA iterations per batch, from zero codes.
        update: "gradient" (projected gradient, step 1 / ||A A^T||_2) or "mod".
        recalibrate_every: steps between lambda recalibrations (with `density`).
        resample_dead: re-draw atoms unused in a batch from that batch's residuals.
        init: "patches" (random training patches, normalized) or "random" (unit Gaussian atoms;
            with l0 and CEL0 many of them are never selected and stay noise).
        generator: draws the initial atoms, the minibatches and resampled atoms.

    Returns:
        `DictionaryResult(dictionary (d, m), lam, losses (steps,), densities (steps,))`, where a
        loss is the batch's mean objective after coding, before the update.
    """
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must be (N >= 1, d), got {tuple(x.shape)}")
    penalty = check_penalty(penalty)
    if (lam is None) == (density is None):
        raise ValueError("give exactly one of lam and density")
    if atoms < 1 or steps < 0 or batch_size < 1 or code_iterations < 1:
        raise ValueError("atoms, batch_size and code_iterations must be >= 1 and steps >= 0")
    if update not in ("gradient", "mod"):
        raise ValueError(f"update must be 'gradient' or 'mod', got {update!r}")
    n = x.shape[0]
    dictionary = _initial_dictionary(x, atoms, init=init, generator=generator)
    losses, densities = [], []
    for step_index in range(steps):
        batch = x[torch.randint(0, n, (batch_size,), generator=generator)]
        if density is not None and step_index % recalibrate_every == 0:
            # the first search spans [1e-6, 10]; later ones a factor 4 around the current lambda
            bracket = {} if lam is None else {"low": lam / 4.0, "high": lam * 4.0, "rounds": 8}
            lam = calibrate_lambda(
                batch, dictionary, penalty=penalty, density=density, iterations=code_iterations, **bracket
            )
        assert lam is not None
        codes = sparse_code(
            batch, dictionary, penalty=penalty, lam=lam, iterations=code_iterations, accelerated=True
        ).codes
        losses.append(float(objective(batch, dictionary, codes, penalty=penalty, lam=lam).mean()))
        densities.append(code_density(codes))
        dictionary = _update_dictionary(
            dictionary, batch, codes, update=update, resample_dead=resample_dead, generator=generator
        )
    return DictionaryResult(
        dictionary=dictionary,
        lam=float(lam) if lam is not None else float("nan"),
        losses=torch.tensor(losses),
        densities=torch.tensor(densities),
    )


def _initial_dictionary(x: Tensor, atoms: int, *, init: str, generator: torch.Generator) -> Tensor:
    """Unit-norm starting atoms (d, m): random training patches, or Gaussian noise."""
    n, d = x.shape
    if init == "random":
        return random_dictionary(d, atoms, generator=generator).to(x.dtype)
    if init == "patches":
        noise = random_dictionary(d, atoms, generator=generator).to(x.dtype)
        picks = x[torch.randint(0, n, (atoms,), generator=generator)].T  # (d, m)
        return normalize_atoms(picks, fallback=noise)
    raise ValueError(f"init must be 'random' or 'patches', got {init!r}")


def _update_dictionary(
    dictionary: Tensor,
    batch: Tensor,
    codes: Tensor,
    *,
    update: str,
    resample_dead: bool,
    generator: torch.Generator,
) -> Tensor:
    """One dictionary step on a coded batch (B, d) / codes (B, m), atoms renormalized; atoms no
    code used are re-drawn from the batch's residuals when `resample_dead`."""
    residual = batch - codes @ dictionary.T  # (B, d)
    gram = codes.T @ codes  # (m, m)
    if update in ("gradient", "diagonal"):
        rate = 1.0 / max(float(torch.linalg.matrix_norm(gram.double(), ord=2)), 1e-12)
        new = dictionary + rate * (residual.T @ codes)
    else:
        atoms = dictionary.shape[1]
        ridge = 1e-6 * float(gram.diagonal().mean().clamp(min=1e-12)) * torch.eye(atoms, dtype=batch.dtype)
        new = torch.linalg.solve(gram + ridge, (batch.T @ codes).T).T  # X^T A (A^T A + eps I)^-1
    dictionary = normalize_atoms(new, fallback=dictionary)
    if resample_dead:
        dead = (codes != 0).sum(0) == 0  # (m,)
        if bool(dead.any()):
            picks = torch.randint(0, batch.shape[0], (int(dead.sum()),), generator=generator)
            dictionary[:, dead] = normalize_atoms(residual[picks].T, fallback=dictionary[:, dead])
    return dictionary


# -- V1-like receptive fields ---------------------------------------------------------------------


def _atoms_as_images(dictionary: Tensor, patch_size: int) -> Tensor:
    if dictionary.ndim != 2 or dictionary.shape[0] != patch_size * patch_size:
        raise ValueError(
            f"a dictionary of {patch_size}x{patch_size} atoms must be ({patch_size**2}, m), got {tuple(dictionary.shape)}"
        )
    return dictionary.T.reshape(-1, patch_size, patch_size)  # (d, m) -> (m, p, p), row-major pixels


def orientation_selectivity(dictionary: Tensor, *, patch_size: int) -> Tensor:
    """How oriented each atom is: the anisotropy of its power spectrum, in [0, 1], shape (m,).

    With P(k) the atom's power at spatial frequency k != 0 and theta(k) its angle,
    R = |sum_k P(k) exp(2 i theta(k))| / sum_k P(k): the resultant length of the doubled
    orientation angles (doubling makes theta and theta + pi the same orientation). A grating or a
    Gabor concentrates its power on one orientation (R near 1); an isotropic blob or white noise
    spreads it (R near 0).
    """
    images = _atoms_as_images(dictionary, patch_size).double()
    power = torch.fft.fft2(images).abs() ** 2  # (m, p, p)
    freq = torch.fft.fftfreq(patch_size, dtype=torch.float64)
    fy, fx = torch.meshgrid(freq, freq, indexing="ij")
    angle = torch.atan2(fy, fx)
    weight = torch.ones_like(angle)
    weight[0, 0] = 0.0  # the DC term has no orientation
    p = power * weight
    resultant = torch.complex(
        (p * torch.cos(2 * angle)).sum((-2, -1)), (p * torch.sin(2 * angle)).sum((-2, -1))
    ).abs()
    return (resultant / p.sum((-2, -1)).clamp(min=1e-30)).to(torch.float32)


def dictionary_grid(
    dictionary: Tensor, *, patch_size: int, columns: int | None = None, border: int = 1
) -> Tensor:
    """All atoms tiled in a grid (rows of `columns` atoms), each scaled to [-1, 1]; NaN borders.

    Returns:
        float (rows * (p + border) + border, columns * (p + border) + border).
    """
    images = _atoms_as_images(dictionary, patch_size).to(torch.float32)
    m = images.shape[0]
    columns = columns or math.ceil(math.sqrt(m))
    rows = math.ceil(m / columns)
    cell = patch_size + border
    grid = torch.full((rows * cell + border, columns * cell + border), float("nan"))
    scale = images.flatten(1).abs().amax(-1).clamp(min=1e-12)
    for i in range(m):
        r, c = divmod(i, columns)
        top, left = border + r * cell, border + c * cell
        grid[top : top + patch_size, left : left + patch_size] = images[i] / scale[i]
    return grid


def render_dictionary(
    dictionary: Tensor,
    *,
    patch_size: int,
    path: str | Path | None = None,
    title: str | None = None,
    columns: int | None = None,
) -> bytes:
    """The atoms as a gray image grid (PNG bytes; written to `path` too if given). Needs matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = dictionary_grid(dictionary, patch_size=patch_size, columns=columns).numpy()
    height, width = grid.shape
    figure = Figure(figsize=(max(2.0, width / 12), max(2.0, height / 12 + (0.4 if title else 0.0))), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 0.92 if title else 1))
    axes.imshow(grid, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
