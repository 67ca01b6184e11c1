"""Dataset registry: names, specs, user factories, errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hirelc.data import DataSplits, RawData, list_datasets, load_dataset, register_dataset
from hirelc.data import registry


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throw-away importable module `user_data_mod` with dataset factories."""
    (tmp_path / "user_data_mod.py").write_text(textwrap.dedent('''
        import torch
        from torch.utils.data import Dataset, TensorDataset
        from hirelc.data import load_dataset

        class Pairs(Dataset):
            def __init__(self, n, seed):
                g = torch.Generator().manual_seed(seed)
                self.x = torch.rand(n, 3, 5, 5, generator=g)
                self.y = torch.arange(n) % 4
            def __len__(self):
                return len(self.x)
            def __getitem__(self, i):
                return self.x[i].numpy(), int(self.y[i])

        def triple(seed):
            return Pairs(12, seed), Pairs(4, seed + 1), Pairs(4, seed + 2)

        def splits(seed, val_fraction=0.5, **unused):
            assert "test_fraction" not in unused  # unset options are not passed
            return load_dataset("digits", seed=seed, val_fraction=val_fraction)

        def wrong():
            return 42

        NOT_CALLABLE = 3
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_data_mod"
    sys.modules.pop("user_data_mod", None)


def test_list_datasets_describes_every_entry() -> None:
    datasets = list_datasets()
    assert {"mnist5k", "digits", "mnist-idx", "cifar10", "cifar100", "svhn", "imagefolder"} <= set(datasets)
    assert all(text and "\n" not in text for text in datasets.values())
    assert "cifar10:/path/to/folder" in datasets["cifar10"]


def test_unknown_and_misused_names_explain_the_syntax(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist6k'; registered: .*mnist5k.*NAME:PATH"):
        load_dataset("mnist6k")
    with pytest.raises(ValueError, match="reads local files: use 'svhn:/path/to/folder'"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="embedded and takes no path"):
        load_dataset(f"digits:{tmp_path}")
    with pytest.raises(ValueError, match="disagree"):
        load_dataset(f"svhn:{tmp_path}", root=tmp_path / "other")
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        load_dataset("digits", seed=-1)


def test_user_factory_returning_datasets(user_module: str) -> None:
    data = load_dataset(f"{user_module}:triple", seed=5)
    assert data.sizes() == {"train": 12, "val": 4, "test": 4}
    assert (data.in_channels, data.image_size, data.num_classes, data.seed) == (3, 5, 4, 5)
    assert data.name == f"{user_module}:triple"
    other = load_dataset(f"{user_module}:triple", seed=6)
    assert other.fingerprint() != data.fingerprint()  # the seed reached the factory


def test_user_factory_returning_datasplits(user_module: str) -> None:
    data = load_dataset(f"{user_module}:splits", seed=2)
    assert isinstance(data, DataSplits) and data.seed == 2
    assert data.sizes()["val"] == data.sizes()["train"]  # the factory's default fraction
    smaller = load_dataset(f"{user_module}:splits", val_fraction=0.25)
    assert smaller.sizes()["val"] < smaller.sizes()["train"]


def test_user_factory_errors(user_module: str) -> None:
    with pytest.raises(TypeError, match="must return DataSplits or \\(train, val, test\\), got int"):
        load_dataset(f"{user_module}:wrong")
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        load_dataset(f"{user_module}:missing")
    with pytest.raises(TypeError, match="not a callable"):
        load_dataset(f"{user_module}:NOT_CALLABLE")
    with pytest.raises(ImportError, match="module 'no_such_pkg.data' not found"):
        load_dataset("no_such_pkg.data:make")


def test_register_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))

    def stripes(root=None, image_size=None) -> RawData:
        images = np.zeros((30, 1, 4, 4), np.uint8)
        images[:, :, ::2] = 255
        return RawData(images, np.arange(30) % 3, max_value=255.0)

    register_dataset("stripes", stripes, "striped squares", val_fraction=0.2, test_fraction=0.2)
    assert list_datasets()["stripes"] == "striped squares"
    assert load_dataset("stripes").sizes() == {"train": 19, "val": 5, "test": 6}
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("stripes", lambda root=None, image_size=None: stripes(), "again")
    with pytest.raises(ValueError, match="without ':'"):
        register_dataset("a:b", stripes, "bad name")

