"""Language-family experts: "forced expert" (hybrid-k) routing, Post-MoE, and a character-level model.

Paper `language-family-moe`: Wang et al. (2024), "Efficiently Democratizing Medical LLMs for 50
Languages via a Mixture of Language Family Experts". Language-specific (or language-family) experts
with cross-lingual routing; Post-MoE (sparse routing only in the later layers, dense below); family
experts let the model cover more languages without more parameters.

Forced-expert (hybrid-k) rule, for fp32 router logits `l_t` (E experts) and a given expert `f_t` of
token t (its language's or its family's expert):

- slots: `f_t` plus the top-(k-1) of the other experts by `l_t` (the free, cross-lingual slots);
- weights: softmax of `l_t` over the k chosen experts (`"topk_softmax"`), so the router learns how
  much to trust the forced expert;
- aux: balance loss, z-loss and entropy of `p = softmax(l)` with the balance counted over the free
  slots only (the forced slots follow the data's language mix, which no router can balance); `load`
  counts every slot.

The gate reads `f_t` from `expert_ids[:, 0]` (shape (T, 1) or (T, k)), the argument `MoE` already
forwards; it is causal-safe (a token's routing depends on itself and its given expert only).

`models.moe_variants.FamilyMoEGPT` is the tiny `MoEGPT` over word bytes with `forward(idx, experts)`: `experts` (B,) is
each word's forced expert id, broadcast to its tokens. `moe_layers=post_moe_layers(n, m)` gives
Post-MoE, `None` MoE in every layer.

Deviations: the paper's models are medical LLMs over 50 languages; here a character-level model
over the 14 Debian word lists (3 families) stands in, and experts are plain FFN experts (no upcycling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from sparsetorch._deprecation import moved
from sparsetorch.routing.gates import GATES, LinearGate, Routing, check_logits
from sparsetorch.routing.losses import expert_load, router_aux

__all__ = ["ForcedExpertGate", "family_ids", "forced_expert_gating"]


def forced_expert_gating(logits: Tensor, forced: Tensor, k: int, *, check_finite: bool = True) -> Routing:
    """Hybrid-k routing: each token's `forced` expert (T,) plus its top-(k-1) free experts."""
    check_logits(logits, k, finite=check_finite)
    num_tokens, num_experts = logits.shape
    if forced.shape != (num_tokens,):
        raise ValueError(f"forced experts must be ({num_tokens},), got {tuple(forced.shape)}")
    if num_tokens and (int(forced.min()) < 0 or int(forced.max()) >= num_experts):
        raise ValueError(f"forced experts must be in [0, {num_experts})")
    logits = logits.float()
    forced = forced.long()[:, None]  # (T, 1)
    probs = torch.softmax(logits, dim=-1)
    free = logits.scatter(1, forced, float("-inf"))
    free_idx = torch.topk(free, k - 1, dim=-1).indices  # (T, k - 1)
    indices = torch.cat([forced, free_idx], dim=1)  # (T, k), the forced slot first
    weights = torch.softmax(logits.gather(1, indices), dim=-1)
    aux = router_aux(logits, probs, free_idx) if k > 1 else router_aux(logits, probs, forced)
    aux["load"] = expert_load(indices, num_experts)
    return Routing(indices, weights, aux)


@GATES.register("forced-expert")
class ForcedExpertGate(LinearGate):
    """Forced expert + top-(k-1) free experts (see the module docstring); needs `expert_ids`."""

    causal_safe: ClassVar[bool] = True

    def forward(self, x: Tensor, *, expert_ids: Tensor | None = None, **_: Tensor | None) -> Routing:
        logits = self.logits(x)
        if expert_ids is None or expert_ids.dim() != 2 or expert_ids.shape[0] != x.shape[0]:
            got = None if expert_ids is None else tuple(expert_ids.shape)
            raise ValueError(f"the forced-expert gate needs expert_ids (tokens, >=1), got {got}")
        return forced_expert_gating(logits, expert_ids[:, 0], self.k, check_finite=False)


def family_ids(languages: Sequence[str]) -> Tensor:
    """Family index (in `data.FAMILIES`) of each language code, (len(languages),) int64."""
    from sparsetorch.data import FAMILIES, LANGUAGES

    return torch.tensor([FAMILIES.index(LANGUAGES[c].family) for c in languages], dtype=torch.int64)


# The tiny-GPT wiring moved to the models layer; the old name resolves for one release.
__getattr__ = moved(__name__, {"FamilyMoEGPT": "sparsetorch.models.moe_variants.FamilyMoEGPT"})
