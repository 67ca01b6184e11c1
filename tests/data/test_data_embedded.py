"""Embedded datasets generated locally: mnist1d (1-D signals), and 1-D signals through the splits."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hirelc.data import DataSplits, RawData, load_dataset, make_splits, splits_from_datasets
from hirelc.data import embedded


@pytest.fixture(scope="module")
def mnist1d() -> DataSplits:
    return load_dataset("mnist1d", seed=0)


def test_mnist1d_is_signals_with_the_official_test_split(mnist1d: DataSplits) -> None:
    assert mnist1d.sizes() == {"train": 3000, "val": 1000, "test": 1000}
    assert mnist1d.input_shape == (1, 40) and mnist1d.spatial_dims == 1 and mnist1d.num_classes == 10
    assert str(mnist1d) == "mnist1d (split seed 0): train 3,000 / val 1,000 / test 1,000; 10 classes; 1x40"
    assert mnist1d.example_input(2).shape == (2, 1, 40)
    raw = embedded.read_mnist1d()
    assert torch.equal(mnist1d.test.tensors[1], torch.tensor(raw.test_labels))  # official split, in order
    # The package's generator with seed 42: the class counts of its 1,000 test signals.
    assert np.bincount(raw.test_labels).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    train = mnist1d.train.tensors[0]
    assert train.mean().item() == pytest.approx(0.0, abs=1e-5) and train.std().item() == pytest.approx(1.0, abs=1e-4)


def test_mnist1d_generation_is_seeded_offline_and_leaves_global_rngs_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("mnist1d must not touch the network")

    earlier = embedded._mnist1d_arrays()  # kept in memory by an earlier test, else generated now
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    embedded._mnist1d_arrays.cache_clear()  # the test's cache dir is empty: this generates
    random.seed(5)
    np.random.seed(5)
    before = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    generated = embedded._mnist1d_arrays()
    assert (random.random(), np.random.rand()) == before  # make_dataset reseeds; we restore
    assert all(np.array_equal(a, b) for a, b in zip(generated, earlier))  # same seed, same signals
    embedded._mnist1d_arrays.cache_clear()  # now read back from the .npz just written
    cached = embedded._mnist1d_arrays()
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(generated, cached))
    assert not cached[0].flags.writeable
    assert generated[0].shape == (4000, 1, 40) and generated[0].dtype == np.float32


def test_signals_are_split_normalised_and_resampled_per_channel() -> None:
    rng = np.random.default_rng(0)
    signals = rng.normal(3.0, 2.0, size=(50, 2, 10)) * np.array([1.0, 10.0])[None, :, None]
    raw = RawData(signals, np.arange(50) % 5, max_value=1.0)
    data = make_splits(raw, "sig", seed=0, val_fraction=0.2, test_fraction=0.2)
    assert data.sizes() == {"train": 32, "val": 8, "test": 10} and data.input_shape == (2, 10)
    train = data.train.tensors[0]  # (32, 2, 10)
    assert torch.allclose(train.mean(dim=(0, 2)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(train.std(dim=(0, 2)), torch.ones(2), atol=1e-5)
    short = make_splits(raw, "sig", seed=0, val_fraction=0.2, test_fraction=0.2, image_size=5)
    assert short.train.tensors[0].shape == (32, 2, 5) and short.describe().endswith("2x5")


def test_datasplits_and_user_datasets_accept_signals_and_reject_mixed_shapes() -> None:
    signals = TensorDataset(torch.zeros(4, 1, 6), torch.tensor([0, 1, 0, 1]))
    data = splits_from_datasets(signals, signals, signals, name="mine")
    assert data.input_shape == (1, 6) and data.example_input(3).shape == (3, 1, 6)
    images = TensorDataset(torch.zeros(4, 1, 6, 6), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="split 'val': images must be float32 \\(N, 1, 6\\)"):
        DataSplits(signals, images, signals, num_classes=2, in_channels=1, image_size=6, name="x", seed=0)
    with pytest.raises(ValueError, match="split 'train': images must be float32 \\(N, 1, 5\\)"):
        DataSplits(signals, signals, signals, num_classes=2, in_channels=1, image_size=5, name="x", seed=0)
