"""Readers of standard dataset files, on tiny files generated in tmp_path."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hirelc.data import DatasetFormatError, load_dataset
from hirelc.data.formats import read_idx

# --- helpers -----------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """Write an IDX file (uint8): magic 0x0000 0x08 ndim, big-endian uint32 dims, data."""
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def make_mnist_dir(root: Path, gz: bool = False, n_train: int = 40, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 6, 6)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 4,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 6, 6)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 4,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(root / name, array, gz)
    return arrays


def unnormalise(data, images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return images * std + mean


# --- MNIST idx ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_keeps_official_test_split(tmp_path: Path, gz: bool) -> None:
    arrays = make_mnist_dir(tmp_path, gz)
    data = load_dataset(f"mnist-idx:{tmp_path}", seed=0, val_fraction=0.25)
    assert data.sizes() == {"train": 30, "val": 10, "test": 12}
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 6, 4)
    test_images, test_labels = data.test.tensors
    assert test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    expected = torch.tensor(arrays["t10k-images-idx3-ubyte"], dtype=torch.float32)[:, None] / 255
    torch.testing.assert_close(unnormalise(data, test_images), expected, atol=1e-5, rtol=0)


def test_mnist_idx_plain_and_gz_give_identical_splits(tmp_path: Path) -> None:
    make_mnist_dir(tmp_path / "plain", gz=False)
    make_mnist_dir(tmp_path / "gz", gz=True)
    plain = load_dataset(f"mnist-idx:{tmp_path / 'plain'}", seed=3)
    packed = load_dataset(f"mnist-idx:{tmp_path / 'gz'}", seed=3)
    for split in ("train", "val", "test"):
        for a, b in zip(plain.split(split).tensors, packed.split(split).tensors):
            assert torch.equal(a, b)


def test_mnist_idx_accepts_dotted_names_in_raw_subfolder(tmp_path: Path) -> None:
    arrays = make_mnist_dir(tmp_path / "tmp")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        write_idx(raw / name.replace("-idx", ".idx"), array)
    data = load_dataset("mnist-idx", root=tmp_path / "MNIST")
    assert data.sizes()["test"] == 12


def test_idx_truncated_file_names_the_file(tmp_path: Path) -> None:
    make_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte.*IDX header says shape"):
        load_dataset(f"mnist-idx:{tmp_path}")


def test_idx_bad_magic_and_label_count(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DatasetFormatError, match="not an IDX file"):
        read_idx(bogus)
    make_mnist_dir(tmp_path / "d")
    write_idx(tmp_path / "d" / "t10k-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(DatasetFormatError, match="expected 12 labels"):
        load_dataset(f"mnist-idx:{tmp_path / 'd'}")


def test_idx_missing_file_and_folder_explain_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="does not exist; expected .*t10k-images-idx3-ubyte"):
        load_dataset(f"mnist-idx:{tmp_path / 'nowhere'}")
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DatasetFormatError, match="no t10k-images-idx3-ubyte in"):
        load_dataset(f"mnist-idx:{tmp_path}")


# --- CIFAR -------------------------------------------------------------------------------


def write_pickle(path: Path, obj: dict) -> None:
    # Official files are Python 2 pickles with bytes keys.
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=2))


def cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)


def make_cifar10(root: Path) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_pickle(root / f"data_batch_{i}", {"data": cifar_images(4, i), "labels": [0, 1, 2, 3]})
    test = cifar_images(6, 9)
    write_pickle(root / "test_batch", {"data": test, "labels": [0, 1, 2, 3, 4, 9]})
    write_pickle(root / "batches.meta", {"label_names": [f"c{i}".encode() for i in range(10)]})
    return test


def test_cifar10_batches_layout_and_labels(tmp_path: Path) -> None:
    test = make_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_dataset(f"cifar10:{tmp_path}", val_fraction=0.25)  # parent of the extracted folder
    assert data.sizes() == {"train": 15, "val": 5, "test": 6}
    assert (data.in_channels, data.image_size, data.num_classes) == (3, 32, 10)
    assert data.class_names == tuple(f"c{i}" for i in range(10))
    assert data.test.tensors[1].tolist() == [0, 1, 2, 3, 4, 9]
    # Each row is the R, G, B planes of a 32x32 image in row-major order.
    pixel = unnormalise(data, data.test.tensors[0][:1])[0, :, 1, 2] * 255  # (3,) at row 1, col 2
    expected = [test[0, c * 1024 + 1 * 32 + 2] for c in range(3)]
    assert pixel.round().tolist() == pytest.approx(expected)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    write_pickle(tmp_path / "train", {"data": cifar_images(10, 1), "fine_labels": list(range(90, 100)), "coarse_labels": [0] * 10})
    write_pickle(tmp_path / "test", {"data": cifar_images(3, 2), "fine_labels": [5, 50, 99], "coarse_labels": [0] * 3})
    data = load_dataset(f"cifar100:{tmp_path}", val_fraction=0.2)
    assert data.num_classes == 100
    assert data.test.tensors[1].tolist() == [5, 50, 99]
    assert sorted(data.train.tensors[1].tolist() + data.val.tensors[1].tolist()) == list(range(90, 100))


def test_cifar_malformed_pickle_names_file(tmp_path: Path) -> None:
    make_cifar10(tmp_path)
    write_pickle(tmp_path / "data_batch_3", {"images": cifar_images(4, 0), "labels": [0, 1, 2, 3]})
    with pytest.raises(DatasetFormatError, match="data_batch_3: expected keys 'data' and 'labels'"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(b"garbage")
    write_pickle(tmp_path / "data_batch_3", {"data": cifar_images(4, 0), "labels": [0, 1, 2, 3]})
    with pytest.raises(DatasetFormatError, match="test_batch: not a readable CIFAR pickle"):
        load_dataset(f"cifar10:{tmp_path}")


# --- SVHN --------------------------------------------------------------------------------


def make_svhn(root: Path, n_train: int = 20, n_test: int = 5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    out = {}
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x = rng.integers(0, 256, (8, 8, 3, n), dtype=np.uint8)  # (H, W, C, N), as in the real files
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # labels 1..10, 10 meaning digit 0
        savemat(root / name, {"X": x, "y": y})
        out[name] = (x, y)
    return out


def test_svhn_mat_transposes_and_maps_label_10_to_0(tmp_path: Path) -> None:
    files = make_svhn(tmp_path)
    data = load_dataset(f"svhn:{tmp_path}", val_fraction=0.25)
    assert data.sizes() == {"train": 15, "val": 5, "test": 5}
    assert (data.in_channels, data.image_size, data.num_classes) == (3, 8, 10)
    x, y = files["test_32x32.mat"]
    assert data.test.tensors[1].tolist() == [1, 2, 3, 4, 5]
    restored = unnormalise(data, data.test.tensors[0]) * 255  # (N, C, H, W)
    assert torch.allclose(restored.round(), torch.tensor(x.transpose(3, 2, 0, 1), dtype=torch.float32))
    all_labels = torch.cat([data.train.tensors[1], data.val.tensors[1]])
    assert all_labels.min() == 0 and all_labels.max() == 9 and (all_labels == 0).sum() == 2


def test_svhn_missing_variable(tmp_path: Path) -> None:
    from scipy.io import savemat

    make_svhn(tmp_path)
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((8, 8, 3, 2), np.uint8)})
    with pytest.raises(DatasetFormatError, match="train_32x32.mat: expected variables 'X'"):
        load_dataset(f"svhn:{tmp_path}")


# --- image folders -----------------------------------------------------------------------


def write_png(path: Path, size: tuple[int, int], mode: str, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, color).save(path)


def make_folder(root: Path, classes=("cat", "dog", "eel"), n: int = 5, mode: str = "L", size=(6, 6)) -> None:
    for c, name in enumerate(classes):
        for i in range(n):
            write_png(root / name / f"{i}.png", size, mode, 40 * c + i)


def test_image_folder_grayscale(tmp_path: Path) -> None:
    make_folder(tmp_path)
    data = load_dataset(f"imagefolder:{tmp_path}", val_fraction=0.25, test_fraction=0.2)
    assert data.sizes() == {"train": 9, "val": 3, "test": 3}
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 6, 3)
    assert data.class_names == ("cat", "dog", "eel")
    # Stratified: every class appears in every split (3 classes, 3 examples in val/test).
    for split in ("train", "val", "test"):
        assert sorted(set(data.split(split).tensors[1].tolist())) == [0, 1, 2]
    # Pixel values follow the class: 40 * class + index.
    images, labels = data.test.tensors
    values = unnormalise(data, images)[:, 0, 0, 0] * 255
    assert ((values.round() // 40) == labels).all()


def test_image_folder_rgb_and_resize(tmp_path: Path) -> None:
    make_folder(tmp_path, mode="RGB", size=(10, 10))
    write_png(tmp_path / "cat" / "big.png", (12, 12), "RGB", 3)
    with pytest.raises(DatasetFormatError, match="big.png is 12x12 but .* is 10x10; pass image_size"):
        load_dataset(f"imagefolder:{tmp_path}")
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=8)
    assert (data.in_channels, data.image_size) == (3, 8)


def test_image_folder_16_bit_grayscale_is_rescaled(tmp_path: Path) -> None:
    from PIL import Image

    for c, name in enumerate(("dark", "light")):
        for i in range(4):
            value = 1000 if c == 0 else 60000
            path = tmp_path / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4), value, dtype=np.uint16)).save(path)
    assert Image.open(tmp_path / "dark" / "0.png").mode.startswith("I;16")
    data = load_dataset(f"imagefolder:{tmp_path}", val_fraction=0.34, test_fraction=0.25)
    images, labels = data.train.tensors
    pixels = (unnormalise(data, images)[:, 0, 0, 0] * 255).round()
    assert pixels[labels == 0].unique().tolist() == [round(1000 / 257)]
    assert pixels[labels == 1].unique().tolist() == [round(60000 / 257)]  # not clipped to 255


def test_image_folder_train_test_layout(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", n=4)
    make_folder(tmp_path / "test", classes=("cat", "eel"), n=2)
    data = load_dataset(f"imagefolder:{tmp_path}", val_fraction=0.25)
    assert data.sizes() == {"train": 9, "val": 3, "test": 4}
    assert sorted(data.test.tensors[1].tolist()) == [0, 0, 2, 2]  # eel keeps train's index 2
    make_folder(tmp_path / "test", classes=("yak",), n=1)
    with pytest.raises(DatasetFormatError, match=r"classes \['yak'\] missing"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_image_folder_errors_name_the_culprit(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="class folder .*empty holds no images"):
        load_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "empty").rmdir()
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetFormatError, match="cannot read image .*broken.png"):
        load_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(DatasetFormatError, match="no class sub-folders"):
        load_dataset(f"imagefolder:{tmp_path / 'cat'}")


class _RunsCode:
    """What a hostile 'CIFAR batch' looks like: unpickling it calls os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_pickle_that_would_run_code_is_refused_by_name(tmp_path, protocol):
    make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = {b"data": cifar_images(4, 0), b"labels": [0, 1, 2, 3], b"x": _RunsCode(f"touch {marker}")}
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(DatasetFormatError, match=r"data_batch_2: .*refusing to load (posix|os)\.system"):
        load_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()


def test_cifar_pickle_of_builtins_eval_is_refused(tmp_path):
    make_cifar10(tmp_path)
    crafted = b"cbuiltins\neval\n(S'1+1'\ntR."  # protocol 0: GLOBAL builtins.eval, then call it
    (tmp_path / "test_batch").write_bytes(crafted)
    with pytest.raises(DatasetFormatError, match="refusing to load builtins.eval"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar_python3_pickles_of_arrays_still_load(tmp_path):
    make_cifar10(tmp_path)
    for protocol in (2, 5):  # protocol 2 stores bytes via _codecs.encode(..., "latin1")
        pickle.dump({"data": cifar_images(4, 1), "labels": np.array([5, 6, 7, 8])},
                    (tmp_path / "data_batch_5").open("wb"), protocol=protocol)
        data = load_dataset(f"cifar10:{tmp_path}", val_fraction=0.25)
        assert data.num_classes == 10 and len(data.train) + len(data.val) == 20
