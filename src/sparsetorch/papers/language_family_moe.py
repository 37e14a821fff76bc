"""Reproduction of `language-family-moe`: Post-MoE vs MoE everywhere vs dense, and family experts for
languages held out of training.

Claim: sparse routing only in the later layers (Post-MoE) generalizes across languages at least as well
as MoE in every layer, and language-family experts carry over to languages not seen in training.
Measured with a character-level model over the Debian word lists (`sparsetorch.data.load_wordlists`):
each word is a sequence `[0] + utf-8 bytes + [0]` and the model predicts the next byte; the metric is
**next-character accuracy** (teacher-forced, over the word's bytes and its end marker), per language.
12 languages are trained on; `nb` (Germanic) and `ca` (Romance) are held out of training.

Models (same width, depth, seed and batches):
- `dense`: the plain tiny GPT;
- `all_moe`: MoE FFNs in every layer; `post_moe`: MoE only in the last half of the layers;
- MoE layers have 8 experts, k = 2, "forced expert" (hybrid-k) routing: experts 0-2 are the three
  family experts, each word's tokens are sent to its family's expert plus the top-1 of the other 7
  (cross-lingual routing). Balance loss 1e-2 on the free slots, z-loss 1e-3.

Held-out languages: Post-MoE's accuracy on `nb` and `ca` with their own family expert forced, against
the mean over the two wrong family experts.

Checks: Post-MoE mean accuracy over the trained languages >= MoE-everywhere's and >= dense's; on the
held-out languages the right family expert beats the wrong ones.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
import torch.nn.functional as F

from sparsetorch.papers.base import Result, check_scale

__all__ = ["HELD_OUT", "SCALES", "reproduce"]

HELD_OUT = ("nb", "ca")
MAX_LEN = 15  # bytes per word kept; sequences are MAX_LEN + 2 tokens

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "n_layer": 2, "n_head": 2, "words": 200, "test": 40, "batch": 32, "steps": 40},
    "small": {"d_model": 64, "n_layer": 4, "n_head": 4, "words": 3000, "test": 300, "batch": 64, "steps": 700},
    "full": {"d_model": 128, "n_layer": 4, "n_head": 4, "words": 20000, "test": 1000, "batch": 128, "steps": 3000},
}  # fmt: skip


def _sequences(words: tuple[str, ...]) -> torch.Tensor:
    from sparsetorch.data import encode_words

    codes = encode_words(words, max_len=MAX_LEN)  # (N, MAX_LEN), 0-padded
    return F.pad(codes, (1, 1))  # (N, MAX_LEN + 2): BOS 0, bytes, at least one end 0


def _targets_mask(seq: torch.Tensor) -> torch.Tensor:
    """Bool (N, L - 1): targets that are word bytes or the first end marker."""
    target = seq[:, 1:]
    ended_before = torch.cumsum((target == 0).long(), dim=1) - (target == 0).long()  # zeros strictly before
    return ended_before == 0


def _model(kind: str, cfg: dict[str, Any]) -> torch.nn.Module:
    from sparsetorch.models.gpt import GPT, GPTConfig
    from sparsetorch.models.moe_gpt import MoEGPTConfig, post_moe_layers
    from sparsetorch.models.moe_variants import FamilyMoEGPT

    gpt = GPTConfig(
        d_model=cfg["d_model"], n_layer=cfg["n_layer"], n_head=cfg["n_head"], block_size=MAX_LEN + 1
    )
    if kind == "dense":
        torch.manual_seed(0)
        return GPT(gpt)
    layers = None if kind == "all_moe" else post_moe_layers(gpt.n_layer, max(1, gpt.n_layer // 2))
    return FamilyMoEGPT(
        MoEGPTConfig(gpt=gpt, num_experts=8, k=2, gate="forced-expert", moe_layers=layers, seed=0)
    )


def _forward(
    model: torch.nn.Module, idx: torch.Tensor, experts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    from sparsetorch.models.moe_variants import FamilyMoEGPT

    if isinstance(model, FamilyMoEGPT):
        out = model(idx, experts)
        return out.logits, out.aux_loss
    return model(idx), torch.zeros(())


def _train(model: torch.nn.Module, seq: torch.Tensor, fam: torch.Tensor, cfg: dict[str, Any]) -> None:
    """AdamW 3e-3 (weight decay 0.01), linear warmup over 10% of the steps, clip 1, on the substrate."""
    from sparsetorch.training.loop import Loss, random_batches, train_steps

    mask = _targets_mask(seq)
    steps = cfg["steps"]

    def loss_fn(model: torch.nn.Module, pick: torch.Tensor) -> Loss:
        s, m = seq[pick], mask[pick]
        logits, aux_loss = _forward(model, s[:, :-1], fam[pick])
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), s[:, 1:].reshape(-1), reduction="none")
        return Loss((ce * m.reshape(-1)).sum() / m.sum() + aux_loss)

    model.train()
    train_steps(
        model,
        torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01),
        random_batches(len(seq), cfg["batch"], torch.Generator().manual_seed(0)),
        loss_fn,
        steps=steps,
        lr_at=lambda step: 3e-3 * min(1.0, (step + 1) / max(1, steps // 10)),
        grad_clip=1.0,
    )
    model.eval()


@torch.no_grad()
def _accuracy(model: torch.nn.Module, seq: torch.Tensor, experts: torch.Tensor) -> float:
    logits, _ = _forward(model, seq[:, :-1], experts)
    mask = _targets_mask(seq)
    right = (logits.argmax(-1) == seq[:, 1:]) & mask
    return float(right.sum()) / max(int(mask.sum()), 1)


def reproduce(scale: str) -> Result:
    """Train dense, MoE-everywhere and Post-MoE models at `scale` and compare (see the module docstring).

    Raises:
        DataNotFoundError: the word lists are not installed.
    """
    from sparsetorch.data import LANGUAGES, load_wordlists
    from sparsetorch.routing.language_family import family_ids

    check_scale(scale)
    cfg = SCALES[scale]
    data = load_wordlists(words_per_language=cfg["words"] + cfg["test"], seed=0)
    seq_all = _sequences(data.words)
    fam_of = family_ids(data.languages)
    gen = torch.Generator().manual_seed(1)
    train_rows, test_rows = [], {}
    for li, code in enumerate(data.languages):
        rows = torch.nonzero(data.language == li).flatten()
        rows = rows[torch.randperm(len(rows), generator=gen)]
        test_rows[code] = rows[: cfg["test"]]
        if code not in HELD_OUT:
            train_rows.append(rows[cfg["test"] :])
    train = torch.cat(train_rows)
    trained = [c for c in data.languages if c not in HELD_OUT]
    m: dict[str, float] = {}
    models = {}
    with torch.random.fork_rng(devices=[]):
        for kind in ("dense", "all_moe", "post_moe"):
            model = _model(kind, cfg)
            _train(model, seq_all[train], data.family[train], cfg)
            models[kind] = model
            accs = []
            for code in trained:
                rows = test_rows[code]
                acc = _accuracy(model, seq_all[rows], data.family[rows])
                m[f"{kind}_acc_{code}"] = acc
                accs.append(acc)
            m[f"{kind}_mean_acc"] = statistics.fmean(accs)
            m[f"{kind}_min_acc"] = min(accs)
    right, wrong = [], []
    for code in HELD_OUT:
        rows = test_rows[code]
        own = int(fam_of[data.languages.index(code)])
        per_family = []
        for f in range(3):
            per_family.append(_accuracy(models["post_moe"], seq_all[rows], torch.full((len(rows),), f)))
        m[f"heldout_{code}_own_family_acc"] = per_family[own]
        m[f"heldout_{code}_other_family_acc"] = statistics.fmean(
            a for f, a in enumerate(per_family) if f != own
        )
        m[f"heldout_{code}_dense_acc"] = _accuracy(models["dense"], seq_all[rows], torch.zeros(len(rows)))
        right.append(per_family[own])
        wrong.append(m[f"heldout_{code}_other_family_acc"])
    m["heldout_own_family_acc"] = statistics.fmean(right)
    m["heldout_other_family_acc"] = statistics.fmean(wrong)
    checks = {
        "post_moe_ge_all_moe": ("post_moe_mean_acc", ">=", "all_moe_mean_acc"),
        "post_moe_ge_dense": ("post_moe_mean_acc", ">=", "dense_mean_acc"),
        "family_expert_transfers_to_heldout": ("heldout_own_family_acc", ">", "heldout_other_family_acc"),
    }
    families = sorted({LANGUAGES[c].family for c in HELD_OUT})
    note = (
        f"{scale}: character-level GPT d={cfg['d_model']}, {cfg['n_layer']} layers over words of "
        f"{len(trained)} trained languages ({cfg['words']} words each, {cfg['test']} test words per language), "
        f"{cfg['steps']} steps of {cfg['batch']} words; metric: next-character accuracy (teacher-forced). "
        f"MoE: 8 experts, forced family expert + top-1 free (hybrid k=2). Held out of training: "
        f"{', '.join(HELD_OUT)} ({', '.join(families)})."
    )
    return Result.from_comparisons(m, checks=checks, note=note)
