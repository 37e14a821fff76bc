"""Grayscale natural-image patches from the photos bundled with scikit-image and scikit-learn.

For sparse coding, dictionary learning and sparse autoencoders. Only image files shipped inside
the installed packages are read (straight from disk with Pillow; `skimage.data` fetchers are not
called, so nothing can be downloaded). Colour photos become gray as the mean of R, G and B;
pixels are in [0, 1]. Patch corners are drawn uniformly by one seeded `torch.Generator`, image
by image in the order given. Licences: the scikit-image photos are CC0 or public domain; china
and flower (scikit-learn) are CC-BY 2.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ._paths import DataNotFoundError

# name -> (package, file inside the package's image folder)
_FILES = {
    "camera": ("skimage", "camera.png"),
    "astronaut": ("skimage", "astronaut.png"),
    "coffee": ("skimage", "coffee.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "moon": ("skimage", "moon.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
}
IMAGE_NAMES = tuple(_FILES)
HOW = "`pip install 'sparsetorch[data]'` (scikit-image, scikit-learn and pillow)"


def _image_folder(package: str) -> Path:
    try:
        if package == "skimage":
            import skimage.data as module
        else:
            import sklearn.datasets.images as module
        import PIL.Image  # noqa: F401  (needed to decode the files)
    except ImportError as e:
        raise DataNotFoundError(
            f"{package} or pillow (bundled images) not found ({e}). To obtain it: {HOW}"
        ) from e
    return Path(module.__file__).parent


@lru_cache(maxsize=len(_FILES))
def _gray(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image if image.mode == "L" else image.convert("RGB"))
    gray = pixels.astype(np.float32) / 255.0
    gray = gray.mean(axis=-1) if gray.ndim == 3 else gray  # (H, W)
    gray.flags.writeable = False
    return gray


def load_image_patches(
    *,
    patch_size: int = 8,
    n_per_image: int = 5000,
    seed: int = 0,
    images: Sequence[str] | None = None,
) -> torch.Tensor:
    """Random square patches of bundled natural photos, flattened row by row.

    Args:
        patch_size: side of each patch in pixels.
        n_per_image: patches drawn from each image (with replacement of positions).
        seed: seed of the generator that draws patch corners.
        images: names from `IMAGE_NAMES` (default: all 12, in that order).

    Returns:
        float32 (len(images) * n_per_image, patch_size * patch_size), in [0, 1], grouped by
        image in the order of `images`. Not centred: subtract per-patch means for sparse coding.

    Raises:
        DataNotFoundError: scikit-image, scikit-learn or pillow (or an image file) is missing.
        ValueError: unknown image name, or bad `patch_size` / `n_per_image`.
    """
    names = IMAGE_NAMES if images is None else tuple(images)
    unknown = [n for n in names if n not in _FILES]
    if unknown or not names:
        raise ValueError(f"images must be names from {', '.join(IMAGE_NAMES)}; got {list(names)}")
    if patch_size < 1 or n_per_image < 1:
        raise ValueError(f"patch_size and n_per_image must be positive; got {patch_size}, {n_per_image}")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(patch_size)
    patches = []
    for name in names:
        package, file = _FILES[name]
        path = _image_folder(package) / file
        if not path.is_file():
            raise DataNotFoundError(f"bundled image {path} not found. To obtain it: reinstall with {HOW}")
        gray = _gray(str(path))  # (H, W), read-only and cached
        height, width = gray.shape
        if patch_size > min(height, width):
            raise ValueError(f"patch_size {patch_size} exceeds image {name!r} of shape {(height, width)}")
        top = torch.randint(0, height - patch_size + 1, (n_per_image,), generator=generator)
        left = torch.randint(0, width - patch_size + 1, (n_per_image,), generator=generator)
        rows = (top[:, None] + offsets)[:, :, None].numpy()  # (n, p, 1)
        cols = (left[:, None] + offsets)[:, None, :].numpy()  # (n, 1, p)
        patches.append(torch.from_numpy(gray[rows, cols].reshape(n_per_image, -1)))  # (n, p, p) -> (n, p*p)
    return torch.cat(patches)
