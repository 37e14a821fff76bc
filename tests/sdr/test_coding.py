"""Sparse coding with l1 / l0 / CEL0 proximal iteration, CEL0's properties, and dictionary learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sparsetorch.sdr.coding import (
    calibrate_lambda,
    cel0_penalty,
    cel0_prox,
    code_density,
    density_at_error,
    error_at_density,
    hard_threshold,
    lipschitz,
    objective,
    penalty_value,
    prox,
    reconstruction_error,
    soft_threshold,
    sparse_code,
)
from sparsetorch.sdr.dictionary import (
    dictionary_grid,
    learn_dictionary,
    normalize_atoms,
    orientation_selectivity,
    random_dictionary,
    render_dictionary,
    whiten,
)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def problem(d: int = 16, m: int = 32, b: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    dictionary = random_dictionary(d, m, generator=g(seed)).double()
    truth = torch.randn(b, m, generator=g(seed + 1)).double() * (
        torch.rand(b, m, generator=g(seed + 2)) < 0.15
    )
    x = truth @ dictionary.T + 0.05 * torch.randn(b, d, generator=g(seed + 3)).double()
    return x, dictionary


# -- proximal operators against brute-force scalar minimization -------------------------------------

U = torch.linspace(-3.0, 3.0, 121, dtype=torch.float64)
T = torch.arange(-40000, 40001, dtype=torch.float64) / 10000  # spacing 1e-4, with an exact 0


def brute_prox(scalar_penalty) -> torch.Tensor:
    values = 0.5 * (T[None, :] - U[:, None]) ** 2 + scalar_penalty(T)[None, :]
    return T[values.argmin(-1)]


@pytest.mark.parametrize(("lam", "step"), [(0.5, 1.0), (0.2, 0.7), (1.3, 0.3)])
def test_soft_threshold_is_the_l1_prox(lam, step):
    brute = brute_prox(lambda t: step * lam * t.abs())
    assert torch.allclose(prox(U, penalty="l1", lam=lam, step=step), brute, atol=2e-4)


@pytest.mark.parametrize(("lam", "step"), [(0.5, 1.0), (0.2, 0.7), (1.3, 0.3)])
def test_hard_threshold_is_the_l0_prox(lam, step):
    ours = prox(U, penalty="l0", lam=lam, step=step)
    brute = brute_prox(lambda t: step * lam * (t != 0).double())
    threshold = math.sqrt(2 * step * lam)
    away = (U.abs() - threshold).abs() > 1e-3  # at the threshold both 0 and u are minimizers
    assert torch.allclose(ours[away], brute[away], atol=2e-4)


@pytest.mark.parametrize(
    ("lam", "step", "norm"), [(0.5, 0.9, 1.0), (0.2, 0.5, 1.2), (1.3, 0.3, 0.7), (0.05, 0.99, 1.0)]
)
def test_cel0_prox_matches_brute_force(lam, step, norm):
    ours = cel0_prox(U, lam=lam, step=step, norms=norm)
    brute = brute_prox(lambda t: step * cel0_penalty(t, lam=lam, norms=norm))
    assert torch.allclose(ours, brute, atol=2e-4)
    assert torch.equal(prox(U, penalty="cel0", lam=lam, step=step, norms=norm), ours)


def test_cel0_prox_is_firm_thresholding():
    lam, step = 0.5, 0.5
    low, high = step * math.sqrt(2 * lam), math.sqrt(2 * lam)  # zero below, identity above
    out = cel0_prox(U, lam=lam, step=step)
    assert bool((out[U.abs() <= low] == 0).all())
    assert torch.equal(out[U.abs() >= high], U[U.abs() >= high])
    assert bool((out.diff() >= 0).all())  # monotone
    assert float(out.diff().abs().max()) < 0.2  # continuous: no jump between neighbouring u (spacing 0.05)
    jump = hard_threshold(U, math.sqrt(2 * step * lam)).diff().abs().max()
    assert float(jump) > 0.5  # unlike hard thresholding, which jumps by its threshold (0.71)


def test_soft_and_hard_threshold_by_hand():
    u = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5])
    assert soft_threshold(u, 1.0).tolist() == [-1.0, 0.0, 0.0, 0.0, 0.5]
    assert hard_threshold(u, 1.0).tolist() == [-2.0, 0.0, 0.0, 0.0, 1.5]


# -- CEL0: continuity and exactness (Soubies et al. 2015) -------------------------------------------


def test_cel0_penalty_is_continuous_below_l0_and_equal_beyond_the_knot():
    lam, norm = 0.8, 1.3
    knot = math.sqrt(2 * lam) / norm
    t = torch.arange(-3000, 3001, dtype=torch.float64) / 1000
    phi = cel0_penalty(t, lam=lam, norms=norm)
    assert float(phi[t == 0]) == 0.0
    assert bool((phi <= lam * (t != 0) + 1e-12).all())
    assert torch.allclose(phi[t.abs() >= knot], torch.full_like(phi[t.abs() >= knot], lam))
    assert float(phi.diff().abs().max()) < 2e-3  # continuous on a grid of spacing 1e-3
    eps = 1e-9
    near = cel0_penalty(torch.tensor([knot - eps, knot + eps], dtype=torch.float64), lam=lam, norms=norm)
    assert near.tolist() == pytest.approx([lam, lam], abs=1e-8)


def test_cel0_is_the_convex_envelope_of_l0_in_one_dimension():
    # F0(t) = 1/2 (a t - y)^2 + lam 1{t != 0}; CEL0 replaces it by its lower convex envelope
    a, y, lam = 1.4, 1.1, 0.45
    t = torch.arange(-1000, 3001, dtype=torch.float64) / 1000  # includes t = 0 exactly
    fit = 0.5 * (a * t - y) ** 2
    f_l0 = fit + lam * (t != 0)
    f_cel0 = fit + cel0_penalty(t, lam=lam, norms=a)
    # lower convex hull of the l0 objective's graph (monotone chain), evaluated on the grid
    hull: list[tuple[float, float]] = []
    for point in zip(t.tolist(), f_l0.tolist(), strict=True):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    hx = torch.tensor([p[0] for p in hull], dtype=torch.float64)
    hy = torch.tensor([p[1] for p in hull], dtype=torch.float64)
    idx = torch.searchsorted(hx, t).clamp(1, len(hx) - 1)
    w = (t - hx[idx - 1]) / (hx[idx] - hx[idx - 1])
    envelope = hy[idx - 1] + w * (hy[idx] - hy[idx - 1])
    assert torch.allclose(f_cel0, envelope, atol=1e-6)
    assert not torch.allclose(f_l0, envelope, atol=1e-2)  # l0 itself is not convex


def l0_global_minimum(x: torch.Tensor, dictionary: torch.Tensor, lam: float) -> tuple[float, torch.Tensor]:
    """Brute force over all supports of min 1/2 ||x - D a||^2 + lam ||a||_0 for one signal."""
    m = dictionary.shape[1]
    best, best_a = 0.5 * float(x @ x), torch.zeros(m, dtype=x.dtype)
    for k in range(1, m + 1):
        for support in itertools.combinations(range(m), k):
            sub = dictionary[:, list(support)]
            coef = torch.linalg.lstsq(sub, x[:, None]).solution[:, 0]
            value = 0.5 * float(((x - sub @ coef) ** 2).sum()) + lam * k
            if value < best - 1e-12:
                a = torch.zeros(m, dtype=x.dtype)
                a[list(support)] = coef
                best, best_a = value, a
    return best, best_a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cel0_keeps_the_l0_minimum_and_minimizers(seed):
    dictionary = torch.randn(4, 6, generator=g(seed)).double() * (
        0.6 + torch.rand(6, generator=g(seed + 9)).double()
    )
    x = torch.randn(4, generator=g(seed + 1)).double() * 2.0
    lam = 0.3
    best, best_a = l0_global_minimum(x, dictionary, lam)
    cel0 = float(objective(x[None], dictionary, best_a[None], penalty="cel0", lam=lam)[0])
    l0 = float(objective(x[None], dictionary, best_a[None], penalty="l0", lam=lam)[0])
    assert l0 == pytest.approx(best, abs=1e-9)
    assert cel0 == pytest.approx(best, abs=1e-9)  # an l0 global minimizer has the same CEL0 value
    # and nothing goes lower under CEL0: random points and CEL0 proximal descents from many starts
    starts = torch.randn(200, 6, generator=g(seed + 2)).double() * 2
    values = objective(x.expand(200, 4), dictionary, starts, penalty="cel0", lam=lam)
    assert float(values.min()) >= best - 1e-9
    found = sparse_code(x.expand(200, 4), dictionary, penalty="cel0", lam=lam, iterations=3000, init=starts)
    reached = objective(x.expand(200, 4), dictionary, found.codes, penalty="cel0", lam=lam)
    assert float(reached.min()) >= best - 1e-7
    assert float(reached.min()) == pytest.approx(best, abs=1e-5)  # the global minimum is reached


# -- solvers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", ["l1", "l0", "cel0"])
@pytest.mark.parametrize("accelerated", [False, True])
def test_the_objective_never_increases(penalty, accelerated):
    x, dictionary = problem()
    result = sparse_code(
        x, dictionary, penalty=penalty, lam=0.1, iterations=150, accelerated=accelerated, track=True
    )
    history = result.objective
    assert history.shape == (151,)
    assert bool((history.diff() <= 1e-12 * history[:-1].abs()).all())
    assert history[-1] < 0.5 * history[0]


def test_fista_reaches_the_lasso_optimum():
    x, dictionary = problem()
    lam = 0.05
    a = sparse_code(x, dictionary, penalty="l1", lam=lam, iterations=3000, accelerated=True).codes
    # optimality: D^T (x - D a) = lam sign(a) on the support, |.| <= lam off it
    corr = (x - a @ dictionary.T) @ dictionary
    on = a != 0
    assert torch.allclose(corr[on], lam * torch.sign(a[on]), atol=1e-5)
    assert bool((corr[~on].abs() <= lam + 1e-5).all())


def test_penalty_values_and_lipschitz():
    a = torch.tensor([[0.0, 2.0, -0.1]], dtype=torch.float64)
    assert penalty_value(a, penalty="l1", lam=0.5).item() == pytest.approx(1.05)
    assert penalty_value(a, penalty="l0", lam=0.5).item() == pytest.approx(1.0)
    expected = 0.5 + (0.5 - 0.5 * (0.1 - 1.0) ** 2)  # lam = 0.5: knot at 1.0
    assert penalty_value(a, penalty="cel0", lam=0.5).item() == pytest.approx(expected)
    _, dictionary = problem()
    assert lipschitz(dictionary) == pytest.approx(float(torch.linalg.svdvals(dictionary)[0]) ** 2)


def test_calibrate_lambda_hits_the_target_density():
    x, dictionary = problem(b=200)
    for penalty in ("l1", "l0", "cel0"):
        lam = calibrate_lambda(x, dictionary, penalty=penalty, density=0.1, iterations=60)
        codes = sparse_code(x, dictionary, penalty=penalty, lam=lam, iterations=60).codes
        assert abs(code_density(codes) - 0.1) < 0.02


def test_interpolation_on_a_curve():
    curve = [(1.0, 0.01, 0.5), (0.5, 0.04, 0.2), (0.1, 0.16, 0.05)]
    assert error_at_density(curve, 0.02) == pytest.approx(math.sqrt(0.5 * 0.2))  # halfway in log-log
    assert density_at_error(curve, 0.1) == pytest.approx(0.08)
    assert math.isnan(error_at_density(curve, 0.5)) and math.isnan(density_at_error(curve, 0.9))
    x, dictionary = problem()
    assert reconstruction_error(x, dictionary, torch.zeros(20, 32, dtype=torch.float64)) == pytest.approx(1.0)


def test_bad_input_is_refused():
    x, dictionary = problem()
    with pytest.raises(ValueError, match="penalty"):
        sparse_code(x, dictionary, penalty="l2", lam=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        sparse_code(x, dictionary, penalty="l1", lam=0.0)
    with pytest.raises(ValueError, match="d="):
        sparse_code(x[:, :5], dictionary, penalty="l1", lam=0.1)
    with pytest.raises(ValueError, match="finite"):
        sparse_code(x * float("nan"), dictionary, penalty="l1", lam=0.1)
    with pytest.raises(ValueError, match="init"):
        sparse_code(x, dictionary, penalty="l1", lam=0.1, init=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="step"):
        cel0_prox(U, lam=0.5, step=1.0)
    with pytest.raises(ValueError, match="density"):
        calibrate_lambda(x, dictionary, penalty="l1", density=1.5)


# -- dictionary learning and receptive fields ------------------------------------------------------


def test_learned_dictionaries_have_unit_atoms_lower_loss_and_are_deterministic():
    x, _ = problem(b=400)
    x = x.float()
    for update in ("gradient", "mod"):
        a = learn_dictionary(
            x,
            atoms=24,
            penalty="cel0",
            density=0.15,
            steps=40,
            batch_size=64,
            code_iterations=20,
            update=update,
            generator=g(1),
        )
        b = learn_dictionary(
            x,
            atoms=24,
            penalty="cel0",
            density=0.15,
            steps=40,
            batch_size=64,
            code_iterations=20,
            update=update,
            generator=g(1),
        )
        assert torch.equal(a.dictionary, b.dictionary) and a.lam == b.lam
        assert torch.allclose(a.dictionary.norm(dim=0), torch.ones(24), atol=1e-5)
        assert a.losses[-10:].mean() < a.losses[:3].mean()
        assert a.densities[-10:].mean() == pytest.approx(0.15, abs=0.05)
    fixed = learn_dictionary(
        x, atoms=24, penalty="l1", lam=0.2, steps=5, batch_size=32, generator=g(2), init="random"
    )
    assert fixed.lam == 0.2 and fixed.losses.shape == (5,)
    with pytest.raises(ValueError, match="exactly one"):
        learn_dictionary(x, atoms=24, penalty="l1", steps=5, generator=g())
    with pytest.raises(ValueError, match="update"):
        learn_dictionary(x, atoms=24, penalty="l1", lam=0.1, steps=5, update="svd", generator=g())  # type: ignore[arg-type]


def test_orientation_selectivity_separates_gratings_from_blobs():
    p = 8
    yy, xx = torch.meshgrid(
        torch.arange(p, dtype=torch.float64), torch.arange(p, dtype=torch.float64), indexing="ij"
    )
    atoms = [torch.cos(2 * math.pi * (kx * xx + ky * yy) / p) for kx, ky in ((2, 0), (0, 3), (2, 2))]
    atoms.append(torch.exp(-((xx - 3.5) ** 2 + (yy - 3.5) ** 2) / 4.0))  # an isotropic blob
    dictionary = torch.stack([a.flatten() for a in atoms], dim=1)
    r = orientation_selectivity(dictionary, patch_size=p)
    assert torch.allclose(r[:3], torch.ones(3), atol=1e-5) and r[3] < 0.1
    noise = orientation_selectivity(random_dictionary(64, 500, generator=g()), patch_size=p)
    assert float(noise.median()) < 0.3


def test_whitening_flattens_the_spectrum():
    data = torch.randn(5000, 16, generator=g()) @ torch.randn(16, 16, generator=g(1))
    fitted = whiten(data, epsilon=1e-9)
    assert torch.allclose(fitted.white.mean(-1), torch.zeros(5000), atol=1e-5)  # patch means removed
    assert float((fitted.white**2).mean()) == pytest.approx(1.0, rel=1e-4)
    eig = torch.linalg.eigvalsh(fitted.white.double().T @ fitted.white.double() / 5000)
    assert float(eig[0]) < 1e-6  # the removed mean direction
    assert float(eig[1:].max() / eig[1:].min()) < 1.01  # every other direction equal


def test_render_dictionary_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    dictionary = normalize_atoms(torch.randn(36, 10, generator=g()))
    grid = dictionary_grid(dictionary, patch_size=6, columns=4)
    assert grid.shape == (3 * 7 + 1, 4 * 7 + 1)
    assert float(grid.nan_to_num(0).abs().max()) == pytest.approx(1.0)
    data = render_dictionary(dictionary, patch_size=6, path=tmp_path / "atoms.png", title="test")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "atoms.png").read_bytes() == data
    with pytest.raises(ValueError, match="6x6"):
        dictionary_grid(dictionary[:30], patch_size=6)
