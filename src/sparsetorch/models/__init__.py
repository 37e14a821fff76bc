"""Small reference models (LeNet, ResNet-20, a tiny GPT) and offline Hugging Face adapters.

Every model is registered in `MODELS` under a hyphenated name and built with `create_model`:

    >>> from sparsetorch.models import create_model
    >>> net = create_model("lenet-300-100", seed=0)

Conventions every model follows, so pruning and calibration code can treat them alike:

- `classifier_fqn`: the fully-qualified name of the final classifier / LM head (or `None`), and
  optionally `extra_exclude` (e.g. the BERT pooler): default pruning targets leave them dense
  (`sparsetorch.masks.head_fqns`).
- `sparsetorch_spec`: set by `create_model` to `{"name", "config"}`, so that a saved checkpoint can
  rebuild its model (`sparsetorch.load(path)`).
- `blocks_fqn` (sequence models only): the FQN of the `nn.ModuleList` of repeated blocks that a
  block-by-block calibrator walks.
- Pruning targets are `nn.Linear` / `nn.Conv2d` modules with meaningful names (`fc1`, `blocks.0.attn.q_proj`).

Reference models that must be trained before they are worth pruning come from
`sparsetorch.models.pretrained.pretrained(name)`, trained once by a seeded recipe and cached.
"""

from __future__ import annotations

from sparsetorch.models.registry import MODELS, ModelSpec, create_model, list_models

# isort: split
# The family modules register their specs in MODELS on import. The function `pretrained` is
# deliberately not re-exported here: it would shadow the `pretrained` submodule
# (`sparsetorch.models.pretrained.RECIPES`, monkeypatching); import it from that submodule.
from sparsetorch.models import gpt, hf, lenet, moe_gpt, moe_variants, pretrained, resnet  # noqa: F401
from sparsetorch.models.hf import embed, load_minilm
from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig, MoEGPTOutput
from sparsetorch.models.moe_variants import FamilyMoEGPT, graph_moe_gpt

__all__ = [
    "MODELS",
    "FamilyMoEGPT",
    "MoEGPT",
    "MoEGPTConfig",
    "MoEGPTOutput",
    "ModelSpec",
    "create_model",
    "embed",
    "graph_moe_gpt",
    "list_models",
    "load_minilm",
]
