"""The UCI handwritten digits bundled with scikit-learn: 1,797 8x8 grayscale images, 10 classes.

Real handwriting but tiny images: meant for unit tests and smoke experiments. The train/test
split is stratified: within each class the examples are permuted with a seeded
`torch.Generator` and the first `round(n_class * test_fraction)` go to the test set.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._paths import DataNotFoundError, check_split

HOW = "`pip install 'sparsetorch[data]'` (or `pip install scikit-learn`)"


def _sklearn_datasets() -> ModuleType:
    try:
        import sklearn.datasets
    except ImportError as e:
        raise DataNotFoundError(
            f"scikit-learn (for the digits dataset) not found ({e}). To obtain it: {HOW}"
        ) from e
    return sklearn.datasets


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    bunch = _sklearn_datasets().load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # (1797, 8, 8), values 0..16 -> [0, 1]
    return images, bunch.target.astype(np.int64)


def load_digits(split: str = "train", *, test_fraction: float = 0.2, seed: int = 0) -> TensorDataset:
    """A stratified, seeded train or test split of scikit-learn's 8x8 digits.

    Args:
        split: "train" or "test"; the two are disjoint and together cover all 1,797 images.
        test_fraction: fraction of each class that goes to the test set, in (0, 1).
        seed: seed of the generator that permutes each class.

    Returns:
        A `TensorDataset` of x, float32 (N, 1, 8, 8) in [0, 1], and y, int64 labels in 0..9,
        in the original order of the examples.

    Raises:
        DataNotFoundError: scikit-learn is not installed.
        ValueError: bad split or test_fraction.
    """
    check_split(split, ("train", "test"))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    _sklearn_datasets()  # checked on every call, even when the arrays are already cached
    images, labels = _digits_arrays()
    y = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)
    in_test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        members = torch.nonzero(y == c).squeeze(1)
        chosen = members[torch.randperm(len(members), generator=generator)]
        in_test[chosen[: round(len(members) * test_fraction)]] = True
    keep = in_test if split == "test" else ~in_test
    x = torch.from_numpy(images)[keep].unsqueeze(1)  # (N, 1, 8, 8); boolean indexing copies
    return TensorDataset(x, y[keep].clone())
