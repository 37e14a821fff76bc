"""Sparsey: a single-trial associative memory that maps similar inputs to similar sparse codes.

Paper `sparsey` (Rinkus & Leveille 2017, "Superposed Episodic and Semantic Memory via Sparse
Distributed Representation", arXiv 1710.07829); the code selection algorithm (CSA) follows Rinkus
(2010, "A cortical sparse distributed coding model linking mini- and macrocolumn-scale
functionality", Front. Neuroanat.) and Rinkus (2014, "Sparsey: event recognition via deep
hierarchical sparse distributed codes", Front. Comput. Neurosci., Table 1).

One coding field (a "mac") holds Q competitive modules (CMs) of K binary units; a code is exactly
one winner per CM, so every code is an SDR of Q active bits out of Q*K and code similarity is the
size of an intersection. Every unit receives binary weights from all n input bits. For a binary
input x with |x| active bits, the CSA computes, per input:

1. input summations u_i = sum_j w_ij x_j (the bottom-up "U" sum; the 2014 model also has lateral
   H and top-down D sums, which a single, non-hierarchical mac does not have);
2. normalized familiarity V_i = u_i / |x| in [0, 1] (the fraction of the input the unit has seen);
3. global familiarity G = (1/Q) sum_q max_{i in CM q} V_i;
4. expansivity eta = 1 + ((G - G-) / (1 - G-))^gamma * chi * K when G > G-, else eta = 1;
5. the V-to-mu map, a sigmoid bounded to [1, eta]:
   mu_i = (eta - 1) / (1 + sigma1 * exp(-sigma2 * (V_i - sigma3))) + 1;
6. rho_i = mu_i / sum_{k in CM q} mu_k, and one winner per CM is drawn from rho.

Familiarity-contingent noise: a novel input has G near 0, so eta = 1, mu = 1 everywhere and the
code is uniformly random (new codes overlap old ones only by chance, which maximizes capacity);
a familiar input has G near 1 and a large eta, so rho concentrates on the max-V unit of each CM
and the stored code comes back; in between, the share of each stored code that is reinstated
grows with the input's overlap with it, which is how similar inputs get similar codes.

Learning is single-trial and binary: once the code is chosen, w_ij <- 1 for every winner i and
every active input bit j. Retrieval (`retrieve`) takes the max-V unit of each CM, without noise and
without learning (SparseyCore's "ML" recognition mode); ties go to the lowest unit index.

Parameters (`SparseyConfig`) and where they come from:

- Q (`cms`), K (`units`): free; capacity grows with K (see below).
- G- (`g_floor`, default 0.1): the familiarity below which the choice is uniform; the reference
  ports use 0.1 (SparseyCore `lowerGCut`, Sparsey_Alt `Gmod`).
- gamma (`expansion_exponent`, 2) and chi (`expansion_factor`, 100), so that eta(G=1) = 1 + 100 K:
  the values of the SparseyCore port (dcc-sparsey `SigmoidConfig`).
- sigma1 (`sigmoid_scale`, 1), sigma2 (`sigmoid_steepness`, 25), sigma3 (`sigmoid_inflection`,
  0.8): Rinkus sets them per model (SparseyCore ratchets sigma3 from 0.5 to 0.9 as a mac fills).
  With ours, at G = 1, a unit that saw its whole input (V = 1) is ~ 13 times likelier to win than
  one that saw 70% of it and ~ 150 times likelier than one that saw 60%. sigma3 trades capacity
  for similarity embedding (Rinkus's storage/statistics trade-off): lower values give partly
  similar inputs more of each other's codes, but let units that accumulate many items win every
  later choice sooner (the runaway below); higher values store more items with codes closer to
  random.

Capacity. A unit's weights are the union of every input it won, so crosstalk grows with the
number of stored items; once novel inputs find units with V near 1, G is high for everything, the
choice turns deterministic, and the units with the most weights win every later input (codes
collapse). With 40-bit edge maps of Fashion-MNIST, a mac of Q=20, K=400 holds about 300 items
before this happens (the random-code control's G for novel inputs also rises, but its codes stay
spread). Sparsey avoids it by freezing saturated macs (critical periods) and spreading items over
a hierarchy of macs; here, stay within one mac's capacity and watch `familiarity(novel).g`.

Deviations, and why: one flat mac on the whole image, not the 2017 hierarchy of macs with local
receptive fields (the CSA, learning and superposition are the same per mac); binary weights set
once and never decayed (no permanence/"stiffness" tables, no critical-period freezing: we store
fewer items than the mac's capacity instead); no temporal (H) or top-down (D) inputs; sigma3 is
fixed rather than ratcheted. Inputs become fixed-size SDRs with `binarize_edges` (the `active`
pixels of largest gradient magnitude), in the spirit of Rinkus's edge-filtered, binarized inputs.

`familiarity_contingent=False` gives the random-code control: eta = 1 always, so every stored
code is uniform at random, whatever the input (the same memory, the same learning, no
similarity-to-code mapping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sparsetorch.sdr.sdr import SDR, check_count

__all__ = [
    "Familiarity",
    "SparseyConfig",
    "SparseyMac",
    "binarize_edges",
    "code_distribution",
    "expansivity",
    "global_familiarity",
    "similarity_preservation",
    "spearman",
    "v_to_mu",
]


@dataclass(frozen=True, kw_only=True)
class SparseyConfig:
    """A mac's sizes and its code-selection constants (see the module docstring for sources).

    Attributes:
        n_inputs: input bits n.
        cms: competitive modules Q (a code has exactly Q active units).
        units: units per CM, K.
        g_floor: G-, the familiarity at or below which the code choice is uniform.
        expansion_exponent: gamma in eta = 1 + ((G - G-)/(1 - G-))^gamma * chi * K.
        expansion_factor: chi in the same formula.
        sigmoid_scale: sigma1 of the V-to-mu sigmoid.
        sigmoid_steepness: sigma2.
        sigmoid_inflection: sigma3, the V at which mu is halfway between 1 and eta (sigma1 = 1).
        familiarity_contingent: False makes eta = 1 always: the random-code control.
    """

    n_inputs: int
    cms: int
    units: int
    g_floor: float = 0.1
    expansion_exponent: float = 2.0
    expansion_factor: float = 100.0
    sigmoid_scale: float = 1.0
    sigmoid_steepness: float = 25.0
    sigmoid_inflection: float = 0.8
    familiarity_contingent: bool = True

    def __post_init__(self) -> None:
        check_count("n_inputs", self.n_inputs, low=1)
        check_count("cms", self.cms, low=1)
        check_count("units", self.units, low=1)
        if not 0.0 <= self.g_floor < 1.0:
            raise ValueError(f"g_floor must lie in [0, 1), got {self.g_floor}")
        for name in ("expansion_exponent", "expansion_factor", "sigmoid_scale", "sigmoid_steepness"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not math.isfinite(self.sigmoid_inflection):
            raise ValueError(f"sigmoid_inflection must be finite, got {self.sigmoid_inflection}")

    @property
    def code_size(self) -> int:
        """Units in the coding field, Q * K."""
        return self.cms * self.units


class Familiarity(NamedTuple):
    """The CSA's first steps for a batch of inputs.

    Attributes:
        u: input summations, float (B, Q, K).
        v: normalized familiarity u / |x| in [0, 1], float (B, Q, K).
        g: global familiarity, mean over CMs of the max V, float (B,).
    """

    u: Tensor
    v: Tensor
    g: Tensor


# -- the code selection algorithm, as pure functions --------------------------------------------


def global_familiarity(v: Tensor) -> Tensor:
    """G = mean over CMs of the largest V in the CM: (*, Q, K) -> (*)."""
    return v.amax(dim=-1).mean(dim=-1)


def expansivity(g: Tensor, *, config: SparseyConfig) -> Tensor:
    """eta = 1 + ((G - G-) / (1 - G-))^gamma * chi * K for G > G-, else 1; shape of `g`.

    The random-code control (`familiarity_contingent=False`) returns 1 everywhere.
    """
    if not config.familiarity_contingent:
        return torch.ones_like(g)
    excess = ((g - config.g_floor) / (1.0 - config.g_floor)).clamp(min=0.0)
    return 1.0 + excess.pow(config.expansion_exponent) * config.expansion_factor * config.units


def v_to_mu(v: Tensor, eta: Tensor, *, config: SparseyConfig) -> Tensor:
    """mu = (eta - 1) / (1 + sigma1 exp(-sigma2 (V - sigma3))) + 1, in [1, eta].

    `v` is (B, Q, K) and `eta` is (B,): each input has its own eta.
    """
    rise = torch.sigmoid(
        config.sigmoid_steepness * (v - config.sigmoid_inflection) - math.log(config.sigmoid_scale)
    )  # 1 / (1 + sigma1 * exp(-sigma2 * (v - sigma3)))
    return (eta - 1.0)[:, None, None] * rise + 1.0


def code_distribution(v: Tensor, *, config: SparseyConfig) -> Tensor:
    """rho: the probability that each unit wins its CM, (B, Q, K) -> (B, Q, K), rows summing to 1."""
    mu = v_to_mu(v, expansivity(global_familiarity(v), config=config), config=config)
    return mu / mu.sum(dim=-1, keepdim=True)


# -- the coding field ----------------------------------------------------------------------------


class SparseyMac(nn.Module):
    """A Sparsey coding field of Q CMs x K units with binary input weights, learned in one trial.

    `weights` is a bool buffer (Q, K, n) that saves and loads with `state_dict`; it starts empty
    (all False). Inputs are `SDR`s or 0/1 tensors of shape (B, n) or (n,).

        mac = SparseyMac(SparseyConfig(n_inputs=784, cms=24, units=32))
        winners = mac.store(x, generator=g)  # (B, Q): one winner per CM, learned in one trial
        mac.retrieve(probe)  # (B, Q): the max-V winners, no noise, no learning
    """

    weights: Tensor
    stored: Tensor

    def __init__(self, config: SparseyConfig) -> None:
        super().__init__()
        if not isinstance(config, SparseyConfig):
            raise TypeError(f"config must be a SparseyConfig, got {type(config).__name__}")
        self.config = config
        self.register_buffer(
            "weights", torch.zeros(config.cms, config.units, config.n_inputs, dtype=torch.bool)
        )
        self.register_buffer("stored", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        c = self.config
        return f"n_inputs={c.n_inputs}, cms={c.cms}, units={c.units}, stored={int(self.stored)}"

    # -- inputs and codes --------------------------------------------------------------------

    def _inputs(self, x: SDR | Tensor) -> Tensor:
        """(B, n) bool from an SDR or a 0/1 tensor; a clear error for anything else."""
        dense = x.dense if isinstance(x, SDR) else SDR.from_dense(x).dense
        if dense.ndim == 1:
            dense = dense[None]
        if dense.ndim != 2:
            raise ValueError(f"inputs must have shape (B, n) or (n,), got {tuple(dense.shape)}")
        if dense.shape[-1] != self.config.n_inputs:
            raise ValueError(f"inputs have {dense.shape[-1]} bits, the mac expects n={self.config.n_inputs}")
        if dense.shape[0] and not bool(dense.any(-1).all()):
            raise ValueError("an input has no active bit; an empty input cannot be coded (|x| >= 1)")
        return dense.to(self.weights.device)

    def codes(self, winners: Tensor) -> SDR:
        """The SDR (B, Q*K) of winner indices (B, Q): unit k of CM q is bit q*K + k."""
        winners = torch.as_tensor(winners)
        if winners.ndim != 2 or winners.shape[-1] != self.config.cms:
            raise ValueError(f"winners must have shape (B, Q={self.config.cms}), got {tuple(winners.shape)}")
        if winners.numel() and (int(winners.min()) < 0 or int(winners.max()) >= self.config.units):
            raise ValueError(f"winner indices must lie in [0, K={self.config.units})")
        offsets = torch.arange(self.config.cms, device=winners.device) * self.config.units
        return SDR.from_indices(winners.long() + offsets, self.config.code_size)

    # -- the CSA ------------------------------------------------------------------------------

    def familiarity(self, x: SDR | Tensor) -> Familiarity:
        """Steps 1-3 of the CSA for a batch: u, V = u / |x| and G."""
        dense = self._inputs(x)
        xf = dense.to(torch.float32)
        w = self.weights.flatten(0, 1).to(torch.float32)  # (Q, K, n) -> (Q*K, n)
        u = (xf @ w.T).view(-1, self.config.cms, self.config.units)  # (B, Q*K) -> (B, Q, K)
        v = u / xf.sum(-1)[:, None, None]
        return Familiarity(u=u, v=v, g=global_familiarity(v))

    def probabilities(self, x: SDR | Tensor) -> Tensor:
        """rho (B, Q, K): each unit's chance of winning its CM under the CSA."""
        return code_distribution(self.familiarity(x).v, config=self.config)

    def select(self, x: SDR | Tensor, *, generator: torch.Generator) -> Tensor:
        """Draw one winner per CM from rho, without learning: (B, Q) long."""
        rho = self.probabilities(x)
        return self._sample(rho, generator)

    def _sample(self, rho: Tensor, generator: torch.Generator) -> Tensor:
        flat = rho.flatten(0, 1)  # (B, Q, K) -> (B*Q, K)
        draws = torch.multinomial(flat.to(generator.device), 1, generator=generator)
        return draws.view(rho.shape[0], self.config.cms).to(rho.device)

    @torch.no_grad()
    def store(self, x: SDR | Tensor, *, generator: torch.Generator) -> Tensor:
        """Store each input in turn: choose its code by the CSA, then learn it in one trial.

        Inputs are stored one after another (each sees the weights the previous ones left).

        Returns:
            winners (B, Q) long, the code of each input.
        """
        dense = self._inputs(x)
        winners = torch.empty(dense.shape[0], self.config.cms, dtype=torch.long, device=dense.device)
        cms = torch.arange(self.config.cms, device=dense.device)
        for b in range(dense.shape[0]):
            item = dense[b : b + 1]
            rho = code_distribution(self.familiarity(item).v, config=self.config)
            chosen = self._sample(rho, generator)[0]  # (Q,)
            # single-trial binary learning: every active input bit -> every winner, w <- 1
            self.weights[cms, chosen] |= item[0]
            winners[b] = chosen
            self.stored += 1
        return winners

    @torch.no_grad()
    def retrieve(self, x: SDR | Tensor) -> Tensor:
        """The max-V unit of each CM (ties to the lowest index), without noise or learning: (B, Q)."""
        return self.familiarity(x).v.argmax(dim=-1)


# -- inputs --------------------------------------------------------------------------------------


def binarize_edges(images: Tensor, *, active: int) -> SDR:
    """Fixed-size SDRs of grayscale images: the `active` pixels of largest gradient magnitude.

    The gradient is the central difference (x[i+1] - x[i-1]) along each axis; border pixels get 0.
    Ties go to the lower pixel index (a stable sort), so the result is deterministic.

    Args:
        images: float (B, H, W) or (B, 1, H, W).
        active: active bits per SDR, in [1, H*W].

    Returns:
        An `SDR` batch of shape (B, H*W), each with exactly `active` bits, row-major pixels.

    Raises:
        ValueError: wrong shape, non-finite pixels, or `active` outside [1, H*W].
    """
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(
            f"images must have shape (B, H, W) or (B, 1, H, W) with H, W >= 3, got {tuple(images.shape)}"
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite pixels")
    h, w = images.shape[-2:]
    active = check_count("active", active, low=1, high=h * w, high_name=f"H*W={h * w} pixels")
    images = images.to(torch.float32)
    magnitude = torch.zeros_like(images)
    gx = images[:, 1:-1, 2:] - images[:, 1:-1, :-2]  # (B, H-2, W-2)
    gy = images[:, 2:, 1:-1] - images[:, :-2, 1:-1]
    magnitude[:, 1:-1, 1:-1] = torch.sqrt(gx**2 + gy**2)
    order = torch.sort(magnitude.flatten(1), dim=-1, descending=True, stable=True).indices
    return SDR.from_indices(order[:, :active], h * w)


# -- measuring similarity preservation -----------------------------------------------------------


def _ranks(x: Tensor) -> Tensor:
    """Average ranks (ties share the mean rank), float64, for Spearman's rho."""
    x = x.double().flatten()
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    # group equal values: a new group starts where the sorted value changes
    starts = torch.ones_like(sorted_x, dtype=torch.bool)
    starts[1:] = sorted_x[1:] != sorted_x[:-1]
    group = torch.cumsum(starts.long(), 0) - 1
    positions = torch.arange(1, x.numel() + 1, dtype=torch.float64)
    sums = torch.zeros(int(group[-1]) + 1, dtype=torch.float64).index_add_(0, group, positions)
    counts = torch.zeros_like(sums).index_add_(0, group, torch.ones_like(positions))
    ranks = torch.empty_like(x)
    ranks[order] = (sums / counts)[group]
    return ranks


def _pearson(x: Tensor, y: Tensor) -> float:
    x = x.double() - x.double().mean()
    y = y.double() - y.double().mean()
    denom = float(x.norm() * y.norm())
    return float((x * y).sum()) / denom if denom > 0 else float("nan")


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman's rank correlation of two equally long 1-D tensors (NaN if either is constant)."""
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"need two tensors of the same length >= 2, got {x.numel()} and {y.numel()}")
    return _pearson(_ranks(x), _ranks(y))


def similarity_preservation(inputs: SDR, codes: SDR) -> tuple[float, float]:
    """How well code overlap follows input overlap over all pairs of a batch of items.

    Input similarity is |x AND y| / sqrt(|x| |y|) (the overlap fraction for equal sizes); code
    similarity is |c_x AND c_y| / Q, the fraction of CMs with the same winner.

    Returns:
        (Pearson r, Spearman rho) over the B (B - 1) / 2 pairs.

    Raises:
        ValueError: batches of different sizes, or fewer than 3 items.
    """
    if inputs.dense.ndim != 2 or codes.dense.ndim != 2 or inputs.dense.shape[0] != codes.dense.shape[0]:
        raise ValueError("inputs and codes must be SDR batches (B, n) and (B, m) with the same B")
    if inputs.dense.shape[0] < 3:
        raise ValueError("need at least 3 items for a correlation over pairs")
    xf = inputs.dense.to(torch.float32)
    cf = codes.dense.to(torch.float32)
    size = xf.sum(-1)
    input_sim = (xf @ xf.T) / torch.sqrt(size[:, None] * size[None, :]).clamp(min=1.0)
    code_sim = (cf @ cf.T) / cf.sum(-1).max().clamp(min=1.0)
    i, j = torch.triu_indices(xf.shape[0], xf.shape[0], offset=1)
    a, b = input_sim[i, j], code_sim[i, j]
    return _pearson(a, b), spearman(a, b)
