"""`DataSplits` (train / val / test tensors) and the one place that builds them from raw images.

Every dataset, whatever its file format, goes through `make_splits`: the official test split
is kept as test when the source has one (else a stratified `test_fraction` is held out), a
stratified `val_fraction` of the remaining training pool becomes validation, images are
scaled to [0, 1] and normalised per channel with the *training* split's mean and std.
Everything is deterministic given the seed.

Examples are images (N, C, H, W) or 1-D signals (N, C, L), e.g. `mnist1d`'s (N, 1, 40); for
signals `image_size` is the signal length and everything else works the same way.

>>> import numpy as np
>>> raw = RawData(images=np.zeros((50, 1, 8, 8), np.uint8), labels=np.arange(50) % 5)
>>> make_splits(raw, name="toy", seed=0, val_fraction=0.2, test_fraction=0.2).sizes()
{'train': 32, 'val': 8, 'test': 10}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

SPLITS = ("train", "val", "test")


@dataclass
class RawData:
    """Images (or 1-D signals) as read from a source, before splitting and normalisation.

    images: (N, C, H, W) images or (N, C, L) signals, values in [0, max_value] (signals that
    are already standardised use max_value=1); labels: (N,) integers in
    [0, num_classes). `test_images`/`test_labels` hold the source's official test split,
    when it has one.
    """

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    max_value: float = 255.0
    num_classes: int | None = None  # None -> max label + 1
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_images_labels(self.images, self.labels, "images")
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("RawData: give both test_images and test_labels, or neither")
        if self.test_images is not None:
            _check_images_labels(self.test_images, self.test_labels, "test_images")
            if self.test_images.shape[1:] != self.images.shape[1:]:
                raise ValueError(
                    f"RawData: test images are {self.test_images.shape[1:]}, "
                    f"training images {self.images.shape[1:]} (C, H, W or C, L must match)"
                )
        if self.num_classes is None:
            self.num_classes = int(max(self.labels.max(), _max_or(self.test_labels, 0))) + 1


def _max_or(array: np.ndarray | None, default: int) -> int:
    return default if array is None or array.size == 0 else int(array.max())


def _check_images_labels(images: np.ndarray, labels: np.ndarray | None, what: str) -> None:
    if images.ndim not in (3, 4):
        raise ValueError(
            f"RawData: {what} must be images (N, C, H, W) or signals (N, C, L), got shape {images.shape}"
        )
    if labels is None or labels.ndim != 1 or len(labels) != len(images):
        got = None if labels is None else labels.shape
        raise ValueError(f"RawData: {len(images)} {what} need {len(images)} labels (N,), got {got}")
    if len(images) and labels.min() < 0:
        raise ValueError(f"RawData: labels must be >= 0, got {labels.min()}")


@dataclass
class DataSplits:
    """Train / validation / test splits of one dataset, ready for a model.

    Each split is a `TensorDataset(images, labels)`: images float32 (N, C, H, W) with
    H = W = `image_size`, or 1-D signals (N, C, L) with L = `image_size`; normalised per
    channel with the training split's `mean`/`std`; labels int64 (N,). The search sees
    `val` only; final numbers are reported on `test`.

    >>> from hirelc.data import load_dataset
    >>> data = load_dataset("digits", seed=0)
    >>> data.in_channels, data.image_size, data.num_classes
    (1, 8, 10)
    >>> images, labels = next(iter(data.loader("train", batch_size=32)))
    >>> tuple(images.shape)
    (32, 1, 8, 8)
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    in_channels: int
    image_size: int
    name: str
    seed: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_names: tuple[str, ...] | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for split in SPLITS:
            self._check_split(split)

    def _check_split(self, split: str) -> None:
        dataset = getattr(self, split)
        where = f"DataSplits {self.name!r}, split {split!r}"
        if not isinstance(dataset, TensorDataset) or len(dataset.tensors) != 2:
            raise TypeError(f"{where}: expected TensorDataset(images, labels), got {type(dataset).__name__}")
        images, labels = dataset.tensors
        expected = self.input_shape if images.dim() == len(self.input_shape) + 1 else None
        if images.dtype != torch.float32 or expected is None or tuple(images.shape[1:]) != expected:
            shape = self.input_shape
            raise ValueError(
                f"{where}: images must be float32 (N, {', '.join(map(str, shape))}), "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if labels.dtype != torch.int64 or labels.dim() != 1:
            raise ValueError(f"{where}: labels must be int64 (N,), got {labels.dtype} {tuple(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{where}: labels must be in [0, {self.num_classes}), "
                f"got [{int(labels.min())}, {int(labels.max())}]"
            )

    @property
    def spatial_dims(self) -> int:
        """2 for images (N, C, H, W), 1 for signals (N, C, L); read from the training split."""
        return 1 if self.train.tensors[0].dim() == 3 else 2

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: (C, image_size, image_size), or (C, L) for signals.

        >>> from hirelc.data import load_dataset
        >>> load_dataset("digits").input_shape
        (1, 8, 8)
        """
        return (self.in_channels,) + (self.image_size,) * self.spatial_dims

    def sizes(self) -> dict[str, int]:
        """Number of examples per split, e.g. {'train': 3000, 'val': 1000, 'test': 1000}."""
        return {split: len(getattr(self, split)) for split in SPLITS}

    def describe(self) -> str:
        """One line with the name, split seed, split sizes and image shape.

        >>> from hirelc.data import load_dataset
        >>> load_dataset("mnist5k").describe()
        'mnist5k (split seed 0): train 3,000 / val 1,000 / test 1,000; 10 classes; 1x28x28'
        """
        sizes = " / ".join(f"{split} {n:,}" for split, n in self.sizes().items())
        shape = "x".join(map(str, self.input_shape))
        return f"{self.name} (split seed {self.seed}): {sizes}; {self.num_classes} classes; {shape}"

    def __str__(self) -> str:
        return self.describe()

    def split(self, split: str) -> TensorDataset:
        """The dataset of one split by name ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    def loader(
        self,
        split: str,
        batch_size: int = 256,
        shuffle: bool | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ) -> DataLoader:
        """A DataLoader over one split; shuffles the training split by default, from `seed`.

        Batches are gathered with one tensor index per batch (not one per example), which
        is what makes small-model epochs on a CPU fast.
        """
        shuffle = split == "train" if shuffle is None else shuffle
        return batch_loader(self.split(split), batch_size, shuffle, seed, drop_last)

    def example_input(self, n: int = 1) -> torch.Tensor:
        """The first `n` validation examples, (n, *input_shape): handy for `hirelc.inspect`."""
        return self.val.tensors[0][:n].clone()

    def fingerprint(self) -> str:
        """A content hash of all three splits (images, labels, order); used in cache keys."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            for split in SPLITS:
                for tensor in self.split(split).tensors:
                    digest.update(f"{split}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
                    digest.update(tensor.contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def batch_loader(
    dataset: TensorDataset, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """DataLoader yielding (images, labels) batches of a TensorDataset, `seed`-deterministic."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    # batch_size=None + a BatchSampler as sampler: the dataset is indexed with a list of
    # indices once per batch, so TensorDataset returns whole batches without collation.
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last), batch_size=None)


def make_splits(
    raw: RawData,
    name: str,
    seed: int,
    val_fraction: float,
    test_fraction: float | None,
    image_size: int | None = None,
) -> DataSplits:
    """Split, scale, resize and normalise `raw` into `DataSplits` (see the module docstring).

    `test_fraction` must be None when `raw` has an official test split.
    """
    _check_fraction("val_fraction", val_fraction)
    height, width = raw.images.shape[-2:] if raw.images.ndim == 4 else (1, 1)  # signals need no squaring
    if height != width and image_size is None:
        raise ValueError(
            f"dataset {name!r}: images are {width}x{height}; pass image_size to make them square"
        )
    labels = raw.labels.astype(np.int64)
    if raw.test_images is not None:
        if test_fraction is not None:
            raise ValueError(
                f"dataset {name!r} has an official test split; test_fraction applies only to "
                "sources without one (leave it unset)"
            )
        pool, test_x, test_y = np.arange(len(labels)), raw.test_images, raw.test_labels.astype(np.int64)
    else:
        _check_fraction("test_fraction", test_fraction)
        pool, test_idx = stratified_split(labels, test_fraction, seed, name, "test")
        test_x, test_y = raw.images[test_idx], labels[test_idx]
    train_idx, val_idx = stratified_split(labels[pool], val_fraction, seed, name, "val")
    train_idx, val_idx = pool[train_idx], pool[val_idx]
    tensors = {
        "train": _to_tensor(raw.images[train_idx], raw.max_value, image_size),
        "val": _to_tensor(raw.images[val_idx], raw.max_value, image_size),
        "test": _to_tensor(test_x, raw.max_value, image_size),
    }
    mean, std = _channel_stats(tensors["train"])
    per_channel = (1, -1) + (1,) * (tensors["train"].dim() - 2)  # (1, C, 1, 1) or (1, C, 1)
    for images in tensors.values():
        images.sub_(mean.view(per_channel)).div_(std.view(per_channel))
    ys = {"train": labels[train_idx], "val": labels[val_idx], "test": test_y}
    datasets = {s: TensorDataset(tensors[s], torch.from_numpy(np.ascontiguousarray(ys[s]))) for s in SPLITS}
    first = tensors["train"]
    return DataSplits(
        **datasets, num_classes=int(raw.num_classes), in_channels=first.shape[1], image_size=first.shape[2],
        name=name, seed=seed, mean=tuple(mean.tolist()), std=tuple(std.tolist()), class_names=raw.class_names,
    )


def _check_fraction(what: str, value: float | None) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not 0.0 < value < 1.0:  # type: ignore[operator]
        raise ValueError(f"{what} must be a number in (0, 1), got {value!r}")


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, name: str = "", what: str = "held-out"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held) with round(len * fraction) held out, class-stratified when possible.

    Stratification needs >= 2 examples per class and at least one example per class on
    each side; tiny or very unbalanced datasets fall back to a plain seeded shuffle split.

    >>> kept, held = stratified_split(np.arange(100) % 4, 0.25, seed=0)
    >>> len(kept), len(held), np.bincount((np.arange(100) % 4)[held]).tolist()
    (75, 25, [7, 6, 6, 6])
    """
    from sklearn.model_selection import train_test_split  # lazy: sklearn takes ~1 s to import

    n = len(labels)
    n_held = int(round(n * fraction))
    if n_held < 1 or n - n_held < 1:
        raise ValueError(
            f"dataset {name!r}: {what} fraction {fraction} of {n} examples leaves an empty split; "
            "use a larger dataset or another fraction"
        )
    counts = np.bincount(labels)
    n_classes = int((counts > 0).sum())
    stratify = labels if counts[counts > 0].min() >= 2 and min(n_held, n - n_held) >= n_classes else None
    kept, held = train_test_split(np.arange(n), test_size=n_held, random_state=seed, stratify=stratify)
    return kept, held


def _to_tensor(images: np.ndarray, max_value: float, image_size: int | None) -> torch.Tensor:
    # torch.tensor copies: the raw arrays may be shared (cached) and must not be normalised in place.
    x = torch.tensor(np.asarray(images), dtype=torch.float32).div_(float(max_value))  # (N, C, H, W) | (N, C, L)
    size = (image_size,) * (x.dim() - 2) if image_size is not None else None
    if size is not None and tuple(x.shape[2:]) != size and len(x):
        if x.dim() == 3:  # signals: linear resampling to image_size samples
            return F.interpolate(x, size=size, mode="linear", align_corners=False)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = (0, *range(2, images.dim()))  # all but the channel axis
    mean = images.mean(dim=dims)  # (C,)
    std = images.std(dim=dims)
    # A constant channel would divide by zero; leave its scale alone instead.
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))
