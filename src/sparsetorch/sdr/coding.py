"""Sparse coding by proximal iteration with l1, l0 and CEL0 penalties.

Paper `beyond-l1` (Rentzeperis, Calatroni, Perrinet & Prandi 2023, "Beyond ell_1 sparse coding in
V1", PLoS Comput. Biol.). A patch x in R^d is coded over a dictionary D in R^(d x m) (atoms are
columns) by

    min_a  F(a) = 1/2 ||x - D a||^2 + Phi(a),

with Phi one of:

- l1: Phi(a) = lam ||a||_1, whose prox is soft thresholding
  prox_{g Phi}(u) = sign(u) max(|u| - g lam, 0);
- l0: Phi(a) = lam ||a||_0, whose prox is hard thresholding prox_{g Phi}(u) = u 1{|u| > sqrt(2 g lam)}
  (at |u| = sqrt(2 g lam) both 0 and u minimize; we return 0);
- CEL0, the continuous exact l0 penalty (Soubies, Blanc-Feraud & Aubert 2015, "A continuous exact
  l0 penalty (CEL0) for least squares regularized problem", SIAM J. Imaging Sci.):
  Phi(a) = sum_i phi_i(a_i), phi_i(t) = lam - (n_i^2 / 2) (|t| - sqrt(2 lam) / n_i)^2 1{|t| <= sqrt(2 lam) / n_i},
  with n_i = ||d_i||. phi_i is continuous, rises from 0 to lam at |t| = sqrt(2 lam) / n_i and
  equals lam beyond, so it lies below lam 1{t != 0}. The paper's exactness result: replacing
  lam ||a||_0 by it keeps the minimum value and the global minimizers of the l0 problem (the tests
  check both on small problems by enumerating supports).

The prox of g phi_i (derived here; valid for g n_i^2 < 1): minimize 1/2 (t - u)^2 + g phi_i(t).
For |t| >= sqrt(2 lam)/n_i the penalty is the constant g lam, so t = u when |u| >= sqrt(2 lam)/n_i.
Inside, the objective 1/2 (t - u)^2 + g lam - g n_i^2 / 2 (|t| - sqrt(2 lam)/n_i)^2 is strictly
convex on each sign when g n_i^2 < 1; setting its derivative to zero for t >= 0 gives
t (1 - g n_i^2) = |u| - g n_i sqrt(2 lam), clipped at 0. The two pieces meet continuously at
|u| = sqrt(2 lam)/n_i, so

    prox_{g phi_i}(u) = sign(u) min(|u|, (|u| - sqrt(2 lam) n_i g)_+ / (1 - n_i^2 g)),

a firm-thresholding rule: 0 below g n_i sqrt(2 lam), the identity above sqrt(2 lam)/n_i, linear in
between; for unit atoms it is the rule quoted in the `beyond-l1` paper. (The tests check it
against brute-force scalar minimization.)

Solvers: proximal gradient (ISTA) a <- prox_{g Phi}(a + g D^T (x - D a)) with g = 0.99 / ||D||_2^2
(g < 1/L makes every step a descent step, even for the non-convex penalties, since each step
minimizes a majorizer of F; and g n_i^2 <= g ||D||_2^2 < 1 as CEL0 needs), or its accelerated
form, the monotone FISTA of Beck & Teboulle (2009): the momentum point is kept only where it
lowers F, so F never increases. `calibrate_lambda` finds the lambda that gives a target code
density, and `sparsity_curve` / `error_at_density` / `density_at_error` compare penalties at equal
sparsity or equal error, which is the paper's protocol. Dictionary learning, whitening and the
receptive-field analysis live in `sparsetorch.sdr.dictionary`.

Deviation: the paper also tests other l_q (0 < q < 1) approximations; we implement the three
penalties named above.

Conventions: patches are rows, X (B, d); codes A (B, m); the reconstruction is A D^T.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor

__all__ = [
    "PENALTIES",
    "CodingResult",
    "Penalty",
    "calibrate_lambda",
    "cel0_penalty",
    "cel0_prox",
    "code_density",
    "density_at_error",
    "error_at_density",
    "hard_threshold",
    "lipschitz",
    "objective",
    "penalty_value",
    "prox",
    "reconstruction_error",
    "soft_threshold",
    "sparse_code",
    "sparsity_curve",
]

Penalty = Literal["l1", "l0", "cel0"]
PENALTIES: tuple[str, ...] = get_args(Penalty)


def check_penalty(penalty: str) -> str:
    """`penalty` if it is one of `PENALTIES`, else a ValueError listing them."""
    if penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}: use one of {', '.join(PENALTIES)}")
    return penalty


def check_positive(name: str, value: float) -> float:
    """`value` as a float if it is finite and > 0, else a ValueError naming `name`."""
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


# -- proximal operators -------------------------------------------------------------------------


def soft_threshold(u: Tensor, threshold: float | Tensor) -> Tensor:
    """sign(u) max(|u| - threshold, 0): the prox of threshold * |.|."""
    return torch.sign(u) * (u.abs() - threshold).clamp(min=0.0)


def hard_threshold(u: Tensor, threshold: float | Tensor) -> Tensor:
    """u 1{|u| > threshold}: the prox of (threshold^2 / 2) * 1{. != 0}."""
    return u * (u.abs() > threshold)


def cel0_prox(u: Tensor, *, lam: float, step: float, norms: Tensor | float = 1.0) -> Tensor:
    """prox of step * phi_CEL0 (see the module docstring), elementwise over the last axis.

    Args:
        u: points (..., m).
        lam: the l0 weight lambda > 0.
        step: the prox step g > 0, with g * norms^2 < 1.
        norms: atom norms n_i, a scalar or shape (m,).

    Raises:
        ValueError: lam or step not positive, or step * norms^2 >= 1 (the prox is then not the
            firm-thresholding rule and the problem is not strictly convex per coordinate).
    """
    lam, step = check_positive("lam", lam), check_positive("step", step)
    norms = torch.as_tensor(norms, dtype=u.dtype, device=u.device)
    if bool((step * norms**2 >= 1.0).any()):
        raise ValueError(
            f"CEL0 prox needs step * ||d_i||^2 < 1, got step={step}, max norm {float(norms.max())}"
        )
    root = math.sqrt(2.0 * lam)
    shrunk = (u.abs() - root * norms * step).clamp(min=0.0) / (1.0 - norms**2 * step)
    return torch.sign(u) * torch.minimum(u.abs(), shrunk)


def cel0_penalty(a: Tensor, *, lam: float, norms: Tensor | float = 1.0) -> Tensor:
    """phi_CEL0 elementwise: lam - n^2/2 (|a| - sqrt(2 lam)/n)^2 for |a| <= sqrt(2 lam)/n, else lam."""
    lam = check_positive("lam", lam)
    norms = torch.as_tensor(norms, dtype=a.dtype, device=a.device)
    knot = math.sqrt(2.0 * lam) / norms
    inside = lam - norms**2 / 2.0 * (a.abs() - knot) ** 2
    return torch.where(a.abs() <= knot, inside, torch.full_like(a, lam))


def prox(u: Tensor, *, penalty: Penalty, lam: float, step: float, norms: Tensor | float = 1.0) -> Tensor:
    """prox_{step * Phi}(u) for Phi = lam ||.||_1, lam ||.||_0 or CEL0 (last axis = atoms)."""
    penalty, lam, step = check_penalty(penalty), check_positive("lam", lam), check_positive("step", step)
    if penalty == "l1":
        return soft_threshold(u, step * lam)
    if penalty == "l0":
        return hard_threshold(u, math.sqrt(2.0 * step * lam))
    return cel0_prox(u, lam=lam, step=step, norms=norms)


def penalty_value(a: Tensor, *, penalty: Penalty, lam: float, norms: Tensor | float = 1.0) -> Tensor:
    """Phi(a) summed over the last axis: shape a.shape[:-1]."""
    penalty, lam = check_penalty(penalty), check_positive("lam", lam)
    if penalty == "l1":
        return lam * a.abs().sum(-1)
    if penalty == "l0":
        return lam * (a != 0).sum(-1).to(a.dtype)
    return cel0_penalty(a, lam=lam, norms=norms).sum(-1)


def objective(x: Tensor, dictionary: Tensor, codes: Tensor, *, penalty: Penalty, lam: float) -> Tensor:
    """F(a) = 1/2 ||x - D a||^2 + Phi(a) per patch: (B, d), (d, m), (B, m) -> (B,)."""
    residual = x - codes @ dictionary.T
    norms = dictionary.norm(dim=0)
    return 0.5 * (residual**2).sum(-1) + penalty_value(codes, penalty=penalty, lam=lam, norms=norms)


# -- sparse coding -------------------------------------------------------------------------------


class CodingResult(NamedTuple):
    """Codes (B, m) and the mean objective before the first and after every iteration."""

    codes: Tensor
    objective: Tensor


def _check_problem(x: Tensor, dictionary: Tensor) -> None:
    if x.ndim != 2 or dictionary.ndim != 2:
        raise ValueError(
            f"x must be (B, d) and the dictionary (d, m), got {tuple(x.shape)} and {tuple(dictionary.shape)}"
        )
    if x.shape[1] != dictionary.shape[0]:
        raise ValueError(f"patches have d={x.shape[1]} but atoms have d={dictionary.shape[0]}")
    if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(dictionary).all()):
        raise ValueError("x and the dictionary must be finite")


def lipschitz(dictionary: Tensor) -> float:
    """||D||_2^2, the Lipschitz constant of the gradient of 1/2 ||x - D a||^2."""
    return float(torch.linalg.matrix_norm(dictionary.double(), ord=2)) ** 2


def sparse_code(
    x: Tensor,
    dictionary: Tensor,
    *,
    penalty: Penalty,
    lam: float,
    iterations: int = 100,
    accelerated: bool = False,
    init: Tensor | None = None,
    track: bool = False,
) -> CodingResult:
    """Minimize F(a) = 1/2 ||x - D a||^2 + Phi(a) for each patch by proximal iteration.

    Args:
        x: patches (B, d).
        dictionary: atoms as columns (d, m); the step is 0.99 / ||D||_2^2.
        penalty: "l1", "l0" or "cel0".
        lam: the penalty weight lambda.
        iterations: proximal steps.
        accelerated: monotone FISTA instead of ISTA.
        init: starting codes (B, m); zeros by default.
        track: record the mean objective at every iteration (one extra product per step).

    Returns:
        `CodingResult(codes, objective)`; `objective` is empty unless `track`.

    Raises:
        ValueError: bad shapes, non-finite inputs, unknown penalty, lam <= 0, iterations < 0,
            or (CEL0) an atom of norm >= 1/sqrt(step).
    """
    _check_problem(x, dictionary)
    penalty, lam = check_penalty(penalty), check_positive("lam", lam)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    step = 0.99 / max(lipschitz(dictionary), 1e-12)
    norms = dictionary.norm(dim=0)
    gram = dictionary.T @ dictionary  # (m, m)
    drive = x @ dictionary  # (B, m), D^T x per patch
    a = torch.zeros(x.shape[0], dictionary.shape[1], dtype=x.dtype, device=x.device) if init is None else init
    if a.shape != (x.shape[0], dictionary.shape[1]):
        raise ValueError(f"init must have shape {(x.shape[0], dictionary.shape[1])}, got {tuple(a.shape)}")

    def f(codes: Tensor) -> Tensor:
        return objective(x, dictionary, codes, penalty=penalty, lam=lam)

    def step_from(point: Tensor) -> Tensor:  # prox-gradient step: gradient of the fit is G a - D^T x
        return prox(point - step * (point @ gram - drive), penalty=penalty, lam=lam, step=step, norms=norms)

    history = [f(a).mean()] if track else []
    if not accelerated:
        for _ in range(iterations):
            a = step_from(a)
            if track:
                history.append(f(a).mean())
        return CodingResult(a, torch.stack(history) if track else torch.empty(0))
    y, t, value = a, 1.0, f(a)
    for _ in range(iterations):
        z = step_from(y)
        z_value = f(z)
        better = (z_value <= value)[:, None]
        a_next = torch.where(better, z, a)  # monotone: keep the better of z and the last iterate
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = a_next + (t / t_next) * (z - a_next) + ((t - 1.0) / t_next) * (a_next - a)
        a, t, value = a_next, t_next, torch.minimum(z_value, value)
        if track:
            history.append(value.mean())
    return CodingResult(a, torch.stack(history) if track else torch.empty(0))


def code_density(codes: Tensor) -> float:
    """Mean fraction of nonzero coefficients (the code's density; sparsity is 1 - density)."""
    return float((codes != 0).to(torch.float64).mean())


def reconstruction_error(x: Tensor, dictionary: Tensor, codes: Tensor) -> float:
    """Relative squared error ||X - A D^T||^2 / ||X||^2 over the batch."""
    return float(((x - codes @ dictionary.T) ** 2).sum() / (x**2).sum().clamp(min=1e-30))


def calibrate_lambda(
    x: Tensor,
    dictionary: Tensor,
    *,
    penalty: Penalty,
    density: float,
    iterations: int = 50,
    low: float = 1e-6,
    high: float = 10.0,
    rounds: int = 20,
) -> float:
    """The lambda whose codes of `x` have mean density closest to `density` (log bisection).

    Density falls as lambda grows (for all three penalties), so bisection on log lambda applies.
    """
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must lie in (0, 1), got {density}")
    lo, hi = math.log(check_positive("low", low)), math.log(check_positive("high", high))
    for _ in range(rounds):
        mid = (lo + hi) / 2.0
        codes = sparse_code(x, dictionary, penalty=penalty, lam=math.exp(mid), iterations=iterations).codes
        if code_density(codes) > density:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2.0)


def sparsity_curve(
    x: Tensor, dictionary: Tensor, *, penalty: Penalty, lams: list[float] | Tensor, iterations: int = 100
) -> list[tuple[float, float, float]]:
    """(lambda, density, relative error) for each lambda, coding `x` with monotone FISTA."""
    curve = []
    for lam in [float(v) for v in lams]:
        codes = sparse_code(
            x, dictionary, penalty=penalty, lam=lam, iterations=iterations, accelerated=True
        ).codes
        curve.append((lam, code_density(codes), reconstruction_error(x, dictionary, codes)))
    return curve


def density_at_error(curve: list[tuple[float, float, float]], error: float) -> float:
    """Code density that reaches relative error `error`, interpolated in (log error, log density); NaN outside."""
    points = sorted((e, d) for _, d, e in curve if d > 0 and e > 0)
    for (e0, d0), (e1, d1) in itertools.pairwise(points):
        if e0 <= error <= e1:
            if e1 == e0:
                return min(d0, d1)
            w = (math.log(error) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp((1 - w) * math.log(d0) + w * math.log(d1))
    return float("nan")


def error_at_density(curve: list[tuple[float, float, float]], density: float) -> float:
    """Relative error at `density`, linearly interpolated in (log density, log error); NaN outside."""
    points = sorted((d, e) for _, d, e in curve if d > 0 and e > 0)
    for (d0, e0), (d1, e1) in itertools.pairwise(points):
        if d0 <= density <= d1:
            if d1 == d0:
                return min(e0, e1)
            w = (math.log(density) - math.log(d0)) / (math.log(d1) - math.log(d0))
            return math.exp((1 - w) * math.log(e0) + w * math.log(e1))
    return float("nan")
