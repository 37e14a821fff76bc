"""The activations axis's registry: `ACTIVATIONS`, the activation-sparsity modules by name.

Each entry is an `nn.Module` class whose output is sparser than its input (winners, thresholds,
temporal deltas, routed chunks). A class states its paper key in `paper` ("" for a classic
baseline); `sparsetorch.discovery` lists the entries as kind "activation". The contract tests in
`tests/activations/test_activation_contract.py` are generated from this registry.
"""

from __future__ import annotations

from torch import nn

from sparsetorch.registry import Registry

__all__ = ["ACTIVATIONS"]

ACTIVATIONS: Registry[type[nn.Module]] = Registry("activation")
