"""The model registry: `ModelSpec`, `MODELS`, `create_model`, `list_models`.

Family modules (`gpt`, `lenet`, `resnet`, `hf`, `moe_gpt`) import it and register their specs; the
package `sparsetorch.models` imports them, so the registry is full once the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sparsetorch.registry import Registry

__all__ = ["MODELS", "ModelSpec", "create_model", "list_models"]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model family member.

    Attributes:
        name: registry name (`"lenet-300-100"`).
        factory: builds the model from keyword config overrides (`factory(**config) -> nn.Module`).
        summary: one line for listings.
        task: `"image-classification"`, `"causal-lm"` or `"sentence-embedding"`.
        input_kind: `"image"` (float tensor of `input_shape` per sample) or `"tokens"` (int64 ids).
        input_shape: shape of one example input without the batch dimension.
        vocab_size: token vocabulary for `"tokens"` inputs.
        paper: reference the architecture follows.
        loads_weights: the factory loads pretrained weights from an installed package instead of
            initialising randomly: `seed` has no effect and a missing package raises `DataNotFoundError`.
    """

    name: str
    factory: Callable[..., nn.Module]
    summary: str
    task: Literal["image-classification", "causal-lm", "sentence-embedding"]
    input_kind: Literal["image", "tokens"]
    input_shape: tuple[int, ...]
    vocab_size: int | None = None
    paper: str = ""
    loads_weights: bool = False

    def example_input(self, batch_size: int = 2, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random input batch of shape `(batch_size, *input_shape)` the model accepts."""
        shape = (batch_size, *self.input_shape)
        if self.input_kind == "tokens":
            assert self.vocab_size is not None
            return torch.randint(0, self.vocab_size, shape, generator=generator)
        return torch.randn(shape, generator=generator)


MODELS = Registry[ModelSpec]("model")


def create_model(name: str, *, seed: int | None = None, **config) -> nn.Module:
    """Build the registered model `name` with optional config overrides.

    Args:
        name: a registered model name (see `list_models()`).
        seed: when given, parameters are initialised from `torch.manual_seed(seed)` inside
            `torch.random.fork_rng`, so the same seed gives identical parameters and the caller's
            global RNG state is left untouched. Ignored by models that load pretrained weights.
        **config: fields of the family's config dataclass (e.g. `width=2.0`, `n_layer=2`).

    Raises:
        KeyError: unknown name (the message suggests close names).
    """
    spec = MODELS.get(name)
    if seed is None:
        model = spec.factory(**config)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.factory(**config)
    model.sparsetorch_spec = {"name": name, "config": config}
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching the glob `pattern`."""
    return MODELS.list(pattern)
