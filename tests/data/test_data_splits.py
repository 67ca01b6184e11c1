"""Deterministic, stratified, normalised splits (DataSplits / make_splits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hirelc.data import DataSplits, RawData, load_dataset, make_splits, stratified_split


@pytest.fixture(scope="module")
def mnist() -> DataSplits:
    return load_dataset("mnist5k", seed=0)


def test_mnist5k_default_split_is_stratified(mnist: DataSplits) -> None:
    assert mnist.sizes() == {"train": 3000, "val": 1000, "test": 1000}
    assert (mnist.in_channels, mnist.image_size, mnist.num_classes) == (1, 28, 10)
    for split, per_class in (("train", 300), ("val", 100), ("test", 100)):
        labels = mnist.split(split).tensors[1]
        assert labels.dtype == torch.int64
        assert torch.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_splits_are_disjoint_and_cover_everything() -> None:
    labels = np.repeat(np.arange(5), 20)
    kept, held = stratified_split(labels, 0.3, seed=4)
    assert len(held) == 30 and len(kept) == 70
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))
    assert np.bincount(labels[held]).tolist() == [6] * 5


def test_mnist5k_splits_share_no_image(mnist: DataSplits) -> None:
    rows = {split: {t.numpy().tobytes() for t in mnist.split(split).tensors[0]} for split in ("train", "val", "test")}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_same_seed_same_split_other_seed_other_split(mnist: DataSplits) -> None:
    again = load_dataset("mnist5k", seed=0)
    other = load_dataset("mnist5k", seed=1)
    assert torch.equal(again.val.tensors[0], mnist.val.tensors[0])
    assert torch.equal(again.test.tensors[1], mnist.test.tensors[1])
    assert again.fingerprint() == mnist.fingerprint()
    assert not torch.equal(other.val.tensors[0], mnist.val.tensors[0])
    assert other.fingerprint() != mnist.fingerprint()


def test_normalised_with_training_statistics(mnist: DataSplits) -> None:
    train = mnist.train.tensors[0]
    assert train.dtype == torch.float32
    assert train.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert train.std().item() == pytest.approx(1.0, abs=1e-3)
    assert 0.10 < mnist.mean[0] < 0.16 and 0.28 < mnist.std[0] < 0.34  # MNIST's well-known 0.13 / 0.31


def test_describe_prints_sizes(mnist: DataSplits) -> None:
    assert str(mnist) == "mnist5k (split seed 0): train 3,000 / val 1,000 / test 1,000; 10 classes; 1x28x28"


def test_loader_is_seeded_and_batched(mnist: DataSplits) -> None:
    first = [y for _, y in mnist.loader("train", 500, seed=7)]
    second = [y for _, y in mnist.loader("train", 500, seed=7)]
    third = [y for _, y in mnist.loader("train", 500, seed=8)]
    assert len(first) == 6 and all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], third[0])
    images, labels = next(iter(mnist.loader("test", 64)))
    assert images.shape == (64, 1, 28, 28) and torch.equal(labels, mnist.test.tensors[1][:64])  # not shuffled
    assert len(list(mnist.loader("val", 300, drop_last=True))) == 3
    with pytest.raises(ValueError, match="unknown split"):
        mnist.loader("training", 32)


def test_digits_and_resizing() -> None:
    digits = load_dataset("digits")
    assert (digits.in_channels, digits.image_size) == (1, 8)
    assert sum(digits.sizes().values()) == 1797
    big = load_dataset("digits", image_size=16)
    assert big.train.tensors[0].shape[1:] == (1, 16, 16)
    assert torch.equal(big.train.tensors[1], digits.train.tensors[1])


def test_fractions_are_validated() -> None:
    with pytest.raises(ValueError, match="val_fraction must be a number in \\(0, 1\\)"):
        load_dataset("digits", val_fraction=1.5)
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("digits", test_fraction=0)
    raw = RawData(np.zeros((3, 1, 2, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="leaves an empty split"):
        make_splits(raw, "tiny", seed=0, val_fraction=0.1, test_fraction=0.1)


def test_non_square_images_need_image_size() -> None:
    raw = RawData(np.zeros((20, 3, 4, 6)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="images are 6x4; pass image_size"):
        make_splits(raw, "wide", seed=0, val_fraction=0.2, test_fraction=0.2)
    assert make_splits(raw, "wide", 0, 0.2, 0.2, image_size=5).train.tensors[0].shape[1:] == (3, 5, 5)


def test_official_test_split_rejects_test_fraction() -> None:
    raw = RawData(np.zeros((10, 1, 2, 2)), np.arange(10) % 2, np.zeros((4, 1, 2, 2)), np.arange(4) % 2)
    with pytest.raises(ValueError, match="official test split"):
        make_splits(raw, "x", seed=0, val_fraction=0.2, test_fraction=0.2)


def test_unstratifiable_labels_fall_back_to_plain_split() -> None:
    labels = np.array([0] * 9 + [1])  # class 1 has a single example
    kept, held = stratified_split(labels, 0.2, seed=0)
    assert len(held) == 2 and len(set(kept) | set(held)) == 10


def test_rawdata_and_datasplits_validate_shapes() -> None:
    with pytest.raises(ValueError, match="must be images \\(N, C, H, W\\) or signals \\(N, C, L\\)"):
        RawData(np.zeros((4, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match="need 4 labels"):
        RawData(np.zeros((4, 1, 2, 2)), np.zeros(3, int))
    good = TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    bad = TensorDataset(torch.zeros(2, 1, 4, 4), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="labels must be in \\[0, 3\\)"):
        DataSplits(good, good, bad, num_classes=3, in_channels=1, image_size=4, name="x", seed=0)
    with pytest.raises(ValueError, match="images must be float32 \\(N, 3, 4, 4\\)"):
        DataSplits(good, good, good, num_classes=3, in_channels=3, image_size=4, name="x", seed=0)


def test_cached_raw_arrays_are_not_mutated() -> None:
    from hirelc.data.embedded import read_mnist5k

    before = read_mnist5k().images.copy()
    load_dataset("mnist5k", seed=2)
    assert np.array_equal(read_mnist5k().images, before)
    assert before.max() == 255
