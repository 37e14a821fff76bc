"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 28x28 grayscale clothing photos, 10 classes.

Read with numpy alone from the four IDX gzip files of the Debian package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/`). An IDX file is a 4-byte magic number (0, 0, dtype code
0x08 = uint8, number of dimensions), one big-endian uint32 per dimension, then the raw bytes.
Every file is checked (magic, shape, length) before use; the decoded arrays are cached in-process,
keyed by the file's path, mtime and size.
"""

from __future__ import annotations

import gzip
import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._paths import check_split, data_root, file_key, missing

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MEAN, STD = 0.2860, 0.3530  # pixel statistics of the training set, in [0, 1]
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW = (
    "run `make demo` or `apt-get install -y dataset-fashion-mnist`, "
    "or pass path=DIR / set SPARSETORCH_DATA=DIR (with the .gz files in DIR/fashion-mnist/)"
)
# split -> (images file, labels file, number of examples)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


def parse_idx(raw: bytes, *, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Decode an uncompressed uint8 IDX buffer that must hold an array of `shape`.

    Args:
        raw: the decompressed file content.
        shape: the expected shape; a file of any other shape is rejected.
        name: the file name used in error messages.

    Returns:
        A read-only uint8 array viewing `raw`.

    Raises:
        ValueError: wrong magic number, shape or length (a corrupt or truncated file).
    """
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(
            f"{name}: not a uint8 {ndim}-d IDX file (magic {raw[:4].hex() or 'missing'}, "
            f"expected 00000{0x800 + ndim:03x}); the file is corrupt or truncated"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    if dims != shape:
        raise ValueError(f"{name}: IDX shape {dims}, expected {shape}; the file is corrupt or not this split")
    if len(raw) != header + math.prod(shape):
        raise ValueError(
            f"{name}: {len(raw) - header} data bytes, expected {math.prod(shape)}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


@lru_cache(maxsize=8)
def _read_idx_gz(path: str, mtime_ns: int, size: int, shape: tuple[int, ...]) -> np.ndarray:
    # mtime_ns and size are part of the cache key only: a replaced file is read again.
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut file ends in EOFError
        raise ValueError(f"{path}: unreadable gzip ({e}); the file is truncated or corrupt") from e
    return parse_idx(raw, shape=shape, name=path)


def _find(path: str | Path | None, split: str) -> Path:
    if path is not None:  # an explicit path is authoritative: no silent fallback elsewhere
        tried = [Path(path).expanduser()]
    else:
        root = data_root()
        tried = ([root / "fashion-mnist"] if root else []) + [SYSTEM_DIR]
    images, labels, _ = _FILES[split]
    for folder in tried:
        if (folder / images).is_file() and (folder / labels).is_file():
            return folder
    raise missing(f"Fashion-MNIST {split} files {images} and {labels}", how=HOW, tried=tried)


def load_fashion_mnist(
    split: str = "train", *, path: str | Path | None = None, normalize: bool = True
) -> TensorDataset:
    """The Fashion-MNIST training (60,000) or test (10,000) set, 6,000 / 1,000 per class.

    Looks in `path` if given (only there), else in `$SPARSETORCH_DATA/fashion-mnist`, then in
    `/usr/share/datasets/fashion-mnist`. Class names are in `FASHION_MNIST_CLASSES`.

    Args:
        split: "train" or "test".
        path: a folder holding the four upstream `*-ubyte.gz` files.
        normalize: standardize pixels with the training mean 0.2860 and std 0.3530; otherwise
            pixels are in [0, 1].

    Returns:
        A `TensorDataset` of x, float32 of shape (N, 1, 28, 28), and y, int64 labels in 0..9.

    Raises:
        DataNotFoundError: the files are not found; the message says how to install them.
        ValueError: a file is corrupt or truncated (the message names it).
    """
    check_split(split, ("train", "test"))
    folder = _find(path, split)
    images_name, labels_name, n = _FILES[split]
    images = _read_idx_gz(*file_key(folder / images_name), (n, 28, 28))
    labels = _read_idx_gz(*file_key(folder / labels_name), (n,))
    if labels.max(initial=0) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{folder / labels_name}: label {labels.max()} out of range 0..9; the file is corrupt"
        )
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1).div_(255.0)  # (N, 1, 28, 28), a copy
    if normalize:
        x.sub_(MEAN).div_(STD)
    y = torch.from_numpy(labels.astype(np.int64))
    return TensorDataset(x, y)
