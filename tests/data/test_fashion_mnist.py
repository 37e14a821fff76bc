"""Fashion-MNIST: the real files (marked `data`) and the IDX checks on synthetic files."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsetorch.data import FASHION_MNIST_CLASSES, DataNotFoundError, load_fashion_mnist
from sparsetorch.data.fashion_mnist import parse_idx

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory) -> Path:
    """A synthetic but well-formed test split: image k holds (k + pixel) % 256, label k % 10."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    images = ((np.arange(10000)[:, None] + np.arange(784)[None, :]) % 256).astype(np.uint8)
    labels = (np.arange(10000) % 10).astype(np.uint8)
    (folder / TEST_IMAGES).write_bytes(gzip.compress(idx_bytes(images.reshape(10000, 28, 28)), 1))
    (folder / TEST_LABELS).write_bytes(gzip.compress(idx_bytes(labels), 1))
    return folder


@pytest.mark.data
@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
def test_real_shapes_dtypes_and_balance(split, n):
    x, y = load_fashion_mnist(split).tensors
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y), torch.full((10,), n // 10))
    assert len(FASHION_MNIST_CLASSES) == 10


@pytest.mark.data
def test_real_normalization():
    raw = load_fashion_mnist("train", normalize=False).tensors[0]
    assert raw.min() >= 0 and raw.max() <= 1
    assert raw.mean().item() == pytest.approx(0.2860, abs=1e-3)
    assert raw.std().item() == pytest.approx(0.3530, abs=1e-3)
    x = load_fashion_mnist("train").tensors[0]
    assert abs(x.mean().item()) < 1e-3 and x.std().item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.data
def test_real_is_deterministic_and_returns_fresh_tensors():
    a, b = load_fashion_mnist("test"), load_fashion_mnist("test")
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    a.tensors[0].zero_()  # mutating one result must not leak into the cache
    assert torch.equal(load_fashion_mnist("test").tensors[0], b.tensors[0])


def test_reads_a_given_folder(fake_dir):
    x, y = load_fashion_mnist("test", path=fake_dir, normalize=False).tensors
    assert x.shape == (10000, 1, 28, 28) and y.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert torch.equal(x[3, 0, 0, :4] * 255, torch.tensor([3.0, 4.0, 5.0, 6.0]))
    z = load_fashion_mnist("test", path=fake_dir).tensors[0]
    assert torch.allclose(z, (x - 0.2860) / 0.3530, atol=1e-5)


def test_reads_the_environment_folder(fake_dir, monkeypatch):
    monkeypatch.setenv("SPARSETORCH_DATA", str(fake_dir.parent))
    renamed = fake_dir.parent / "fashion-mnist"
    if not renamed.exists():
        shutil.copytree(fake_dir, renamed)
    assert len(load_fashion_mnist("test")) == 10000


def test_missing_path_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_fashion_mnist("test", path=tmp_path / "nowhere")
    message = str(error.value)
    assert "nowhere" in message and TEST_IMAGES in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "SPARSETORCH_DATA" in message


def test_truncated_gzip_names_the_file(fake_dir, tmp_path):
    shutil.copytree(fake_dir, tmp_path, dirs_exist_ok=True)
    images = tmp_path / TEST_IMAGES
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(ValueError, match=TEST_IMAGES.replace(".", r"\.")):
        load_fashion_mnist("test", path=tmp_path)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (idx_bytes(np.zeros((10000, 28, 28), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((9999, 28, 28), np.uint8)), "shape"),
        (b"\x00\x00\x08\x01" + b"\x00" * 100, "magic"),
        (b"", "magic"),
    ],
)
def test_corrupt_idx_names_the_file(fake_dir, tmp_path, payload, problem):
    shutil.copytree(fake_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / TEST_IMAGES).write_bytes(gzip.compress(payload, 1))
    with pytest.raises(ValueError, match=TEST_IMAGES.replace(".", r"\.")) as error:
        load_fashion_mnist("test", path=tmp_path)
    assert problem in str(error.value)


def test_out_of_range_label(fake_dir, tmp_path):
    shutil.copytree(fake_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / TEST_LABELS).write_bytes(gzip.compress(idx_bytes(np.full(10000, 10, np.uint8))))
    with pytest.raises(ValueError, match="out of range"):
        load_fashion_mnist("test", path=tmp_path)


def test_parse_idx_round_trip():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(array), shape=(2, 3, 4), name="x"), array)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val")
