"""Natural-image patches from bundled photos: shapes, range, determinism, real crops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsetorch.data import IMAGE_NAMES, DataNotFoundError, load_image_patches


@pytest.mark.data
def test_shapes_dtype_range():
    patches = load_image_patches(n_per_image=50)
    assert patches.shape == (len(IMAGE_NAMES) * 50, 64) and patches.dtype == torch.float32
    assert patches.min() >= 0 and patches.max() <= 1 and patches.std() > 0.05
    assert load_image_patches(patch_size=12, n_per_image=7, images=["moon", "china"]).shape == (14, 144)


@pytest.mark.data
def test_same_seed_same_patches():
    a = load_image_patches(n_per_image=100, seed=3)
    assert torch.equal(a, load_image_patches(n_per_image=100, seed=3))
    assert not torch.equal(a, load_image_patches(n_per_image=100, seed=4))


@pytest.mark.data
def test_patches_are_crops_of_the_image():
    pil = pytest.importorskip("PIL.Image")
    skimage_data = pytest.importorskip("skimage.data")
    with pil.open(Path(skimage_data.__file__).parent / "camera.png") as image:
        camera = torch.from_numpy(np.asarray(image, dtype=np.float32)) / 255  # (512, 512)
    windows = camera.unfold(0, 8, 1).unfold(1, 8, 1).reshape(-1, 64)  # every 8x8 crop, row-major
    for patch in load_image_patches(n_per_image=5, images=["camera"], seed=1):
        assert (windows == patch).all(dim=1).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="images"):
        load_image_patches(images=["lena"])
    with pytest.raises(ValueError, match="patch_size"):
        load_image_patches(patch_size=0)


def test_missing_skimage_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(DataNotFoundError, match=r"pip install 'sparsetorch\[data\]'"):
        load_image_patches(images=["camera"], n_per_image=1)
