"""Variants of the MoE tiny GPT for two routing papers: graph-of-tokens gates and forced experts.

- `graph_moe_gpt` (paper `graph-of-tokens-moe`): a `MoEGPT` whose MoE blocks are `GraphMoEBlock`s,
  which hand a `GraphGate` the sequence layout and, for `attention-aware`, the block's own attention
  matrix (`routing.graph_of_tokens` has the rule);
- `FamilyMoEGPT` (paper `language-family-moe`): a `MoEGPT` whose MoE layers get each sequence's
  forced expert, `forward(idx (B, S), experts (B,))` (`routing.language_family` has the rule).

They live with the models because they subclass one; the gates they feed stay on the routing axis.
"""

from __future__ import annotations

from torch import Tensor

from sparsetorch.models.moe_gpt import MoEBlock, MoEGPT, MoEGPTConfig, MoEGPTOutput
from sparsetorch.routing.graph_of_tokens import AttentionAwareGate, attention_with_weights, sequence_moe

__all__ = ["FamilyMoEGPT", "GraphMoEBlock", "graph_moe_gpt"]


class GraphMoEBlock(MoEBlock):
    """A `MoEBlock` whose MoE sees the sequence layout and, for `attention-aware`, the block's own
    attention matrix: `x = x + attn(ln1 x); y, aux = sequence_moe(moe, ln2 x, A); x = x + y`."""

    def __init__(self, block: MoEBlock) -> None:
        super().__init__(block, block.moe)

    def forward(
        self, x: Tensor, *, token_ids: Tensor | None = None, expert_ids: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if expert_ids is not None:
            raise ValueError("GraphMoEBlock: graph gates do not take forced expert_ids")
        h = self.ln1(x)
        if isinstance(self.moe.gate, AttentionAwareGate):
            a, attention = attention_with_weights(self.attn, h)
        else:
            a, attention = self.attn(h), None
        x = x + a
        y, aux = sequence_moe(self.moe, self.ln2(x), attention=attention, token_ids=token_ids)
        return x + y, aux


def graph_moe_gpt(config: MoEGPTConfig | None = None) -> MoEGPT:
    """A `MoEGPT` whose MoE blocks are `GraphMoEBlock`s (per-sequence graphs, attention passed on).

    For gates other than the graph gates the model computes exactly what `MoEGPT(config)` does.
    """
    model = MoEGPT(config)
    for i, block in enumerate(model.blocks):
        if isinstance(block, MoEBlock):
            model.blocks[i] = GraphMoEBlock(block)
    return model


class FamilyMoEGPT(MoEGPT):
    """`MoEGPT` whose MoE layers get each sequence's forced expert: `forward(idx (B, S), experts (B,))`."""

    def forward(self, idx: Tensor, experts: Tensor | None = None) -> MoEGPTOutput:  # type: ignore[override]
        if experts is None:
            return super().forward(idx)
        if idx.dim() != 2 or experts.shape != idx.shape[:1]:
            raise ValueError(
                f"expected idx (B, S) and experts (B,), got {tuple(idx.shape)}, {tuple(experts.shape)}"
            )
        expert_ids = experts.long()[:, None, None].expand(-1, idx.shape[1], 1)  # (B, S, 1)
        return super().forward(idx, expert_ids=expert_ids)
