"""Readers for datasets in their standard on-disk formats. Nothing is downloaded.

Each reader takes the folder the user points at and returns `RawData` (uint8 images
(N, C, H, W), labels, and the official test split). A missing or malformed file raises a
`DatasetFormatError` naming the file and the layout that was expected.

| name        | folder content                                                                 |
|-------------|--------------------------------------------------------------------------------|
| mnist-idx   | train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,       |
|             | t10k-labels-idx1-ubyte (each plain or .gz; also in a `raw/` sub-folder)         |
| cifar10     | data_batch_1 .. data_batch_5, test_batch (the "python version" pickles)         |
| cifar100    | train, test (the "python version" pickles; fine labels)                        |
| svhn        | train_32x32.mat, test_32x32.mat (format 2, cropped digits)                      |
| imagefolder | one sub-folder per class of images, or train/ and test/ each holding those      |

CIFAR batches are Python pickles. They are read with a restricted unpickler that admits
only what the format needs (numpy arrays and dtypes, and latin-1 byte strings), so a
crafted file cannot run code: any other class or function it names is refused by name.

>>> from pathlib import Path
>>> read_mnist_idx(Path("/nonexistent"))
Traceback (most recent call last):
...
hirelc.data.formats.DatasetFormatError: mnist-idx: folder /nonexistent does not exist; ...
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hirelc.data.splits import RawData

IDX_LAYOUT = (
    "a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
    "and t10k-labels-idx1-ubyte (each plain or .gz)"
)
CIFAR10_LAYOUT = "a folder (e.g. cifar-10-batches-py) with data_batch_1 .. data_batch_5 and test_batch"
CIFAR100_LAYOUT = "a folder (e.g. cifar-100-python) with the pickles 'train' and 'test'"
SVHN_LAYOUT = "a folder with train_32x32.mat and test_32x32.mat (SVHN format 2)"
IMAGEFOLDER_LAYOUT = (
    "a folder with one sub-folder of images per class (root/<class>/<image>.png), or "
    "root/train/<class>/... and root/test/<class>/..."
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


class DatasetFormatError(ValueError):
    """A dataset file is missing or does not have the expected format."""


def _require_dir(root: Path | None, dataset: str, layout: str) -> Path:
    if root is None:
        raise DatasetFormatError(f"{dataset}: needs a folder: '{dataset}:/path/to/folder' ({layout})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetFormatError(f"{dataset}: folder {root} does not exist; expected {layout}")
    return root


def _find(
    root: Path, names: Sequence[str], dataset: str, layout: str, subdirs: Sequence[str] = ("",)
) -> Path:
    """The first existing file among `subdirs` x `names` under root, or a clear error."""
    for sub in subdirs:
        for name in names:
            path = root / sub / name
            if path.is_file():
                return path
    raise DatasetFormatError(f"{dataset}: no {names[0]} in {root}; expected {layout}")


# --- MNIST idx -------------------------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (plain or gzip); the format is described at yann.lecun.com/exdb/mnist.

    Header: two zero bytes, a dtype code, the number of dims, then each dim as a
    big-endian uint32; the data follow in C order.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DatasetFormatError(f"{path}: corrupt gzip file: {err}") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DatasetFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFormatError(
            f"{path}: IDX header says shape {dims} ({expected} bytes), file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _idx_names(stem: str) -> list[str]:
    # Official names use "-idx3-ubyte"; some mirrors (e.g. Kaggle) use ".idx3-ubyte".
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _read_idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(root, _idx_names(f"{prefix}-images-idx3-ubyte"), "mnist-idx", IDX_LAYOUT, ("", "raw"))
    labels_path = _find(root, _idx_names(f"{prefix}-labels-idx1-ubyte"), "mnist-idx", IDX_LAYOUT, ("", "raw"))
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DatasetFormatError(f"{images_path}: expected 3-D images (N, H, W), got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetFormatError(
            f"{labels_path}: expected {len(images)} labels for {images_path.name}, got shape {labels.shape}"
        )
    return images[:, None], labels.astype(np.int64)  # (N, 1, H, W)


def read_mnist_idx(root: Path | None, image_size: int | None = None) -> RawData:
    """MNIST-style idx files (MNIST, Fashion-MNIST, KMNIST): official 60k/10k train/test."""
    root = _require_dir(root, "mnist-idx", IDX_LAYOUT)
    train_x, train_y = _read_idx_pair(root, "train")
    test_x, test_y = _read_idx_pair(root, "t10k")
    return RawData(train_x, train_y, test_x, test_y, max_value=255.0)


# --- CIFAR python pickles --------------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1", errors)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric  # numpy >= 2; numpy.core is the old name of _core

    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # protocols 0-4
        found[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    return found


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numbers, strings, lists and dicts; refuses every other
    global by name, which is what a pickle needs to call code (`os.system`, `eval`, ...)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _numpy_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays, numbers "
                "and strings, and loading other objects could run code"
            )
        return allowed


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            obj = _DataOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle: {err}") from err
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    # The official files are Python 2 pickles with bytes keys; re-pickled copies use str.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DatasetFormatError(f"{path}: expected keys 'data' and {label_key!r}, found {sorted(batch)}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DatasetFormatError(
            f"{path}: expected 'data' of shape (N, 3072) and N labels, got {data.shape} and {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels  # rows are R, G, B planes of 32x32


def _label_names(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    names = _unpickle(path).get(key)
    return None if names is None else tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar10(root: Path | None, image_size: int | None = None) -> RawData:
    """CIFAR-10 python batches: 50k train (5 batches) / 10k official test."""
    root = _cifar_root(_require_dir(root, "cifar10", CIFAR10_LAYOUT), "cifar-10-batches-py")
    batches = [_find(root, [f"data_batch_{i}"], "cifar10", CIFAR10_LAYOUT) for i in range(1, 6)]
    parts = [_cifar_batch(path, "labels") for path in batches]
    test_x, test_y = _cifar_batch(_find(root, ["test_batch"], "cifar10", CIFAR10_LAYOUT), "labels")
    names = _label_names(root / "batches.meta", "label_names")
    return RawData(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_x, test_y,
        num_classes=10, class_names=names,
    )


def read_cifar100(root: Path | None, image_size: int | None = None) -> RawData:
    """CIFAR-100 python pickles (fine labels): 50k train / 10k official test."""
    root = _cifar_root(_require_dir(root, "cifar100", CIFAR100_LAYOUT), "cifar-100-python")
    train_x, train_y = _cifar_batch(_find(root, ["train"], "cifar100", CIFAR100_LAYOUT), "fine_labels")
    test_x, test_y = _cifar_batch(_find(root, ["test"], "cifar100", CIFAR100_LAYOUT), "fine_labels")
    names = _label_names(root / "meta", "fine_label_names")
    return RawData(train_x, train_y, test_x, test_y, num_classes=100, class_names=names)


def _cifar_root(root: Path, extracted: str) -> Path:
    # Accept the folder that holds the extracted archive as well as the archive folder itself.
    return root / extracted if (root / extracted).is_dir() else root


# --- SVHN .mat -------------------------------------------------------------------------


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as err:
        raise DatasetFormatError(f"{path}: not a readable MATLAB v5 .mat file: {err}") from err
    if "X" not in mat or "y" not in mat:
        raise DatasetFormatError(f"{path}: expected variables 'X' (32x32x3xN) and 'y' (Nx1)")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[2] not in (1, 3) or x.shape[3] != len(y):
        raise DatasetFormatError(f"{path}: expected X of shape (H, W, C, N) with N = {len(y)}, got {x.shape}")
    y[y == 10] = 0  # SVHN stores digit 0 as label 10
    if y.min() < 0 or y.max() > 9:
        raise DatasetFormatError(f"{path}: labels must be 1..10, got {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y  # (H, W, C, N) -> (N, C, H, W)


def read_svhn(root: Path | None, image_size: int | None = None) -> RawData:
    """SVHN cropped digits (format 2): 73,257 train / 26,032 official test. `extra` is not read."""
    root = _require_dir(root, "svhn", SVHN_LAYOUT)
    train_x, train_y = _read_svhn_mat(_find(root, ["train_32x32.mat"], "svhn", SVHN_LAYOUT))
    test_x, test_y = _read_svhn_mat(_find(root, ["test_32x32.mat"], "svhn", SVHN_LAYOUT))
    return RawData(train_x, train_y, test_x, test_y, num_classes=10, class_names=tuple("0123456789"))


# --- image folders ---------------------------------------------------------------------


def _class_folders(root: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetFormatError(
            f"imagefolder: {root} has no class sub-folders; expected {IMAGEFOLDER_LAYOUT}"
        )
    files = {}
    for folder in classes:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetFormatError(
                f"imagefolder: class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        files[folder.name] = images
    return files


def _load_images(paths: list[Path], mode: str, image_size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im = _to_8bit(im, mode)
                if image_size is not None and im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as err:
            raise DatasetFormatError(f"imagefolder: cannot read image {path}: {err}") from err
        _check_size(path, arrays[-1].shape[:2], paths[0], arrays[0].shape[:2])
    stacked = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    return stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)


def _to_8bit(im: Any, mode: str) -> Any:
    """`im` in mode "L" or "RGB"; 16-bit grayscale is rescaled (PIL's convert would clip it)."""
    from PIL import Image

    if mode == "L" and im.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(im, dtype=np.float64) / 257.0).round().astype(np.uint8))
    return im.convert(mode)


def _check_size(path: Path, hw: tuple[int, ...], first: Path, first_hw: tuple[int, ...]) -> None:
    hint = "; pass image_size to resize all images to one square size"
    if hw[0] != hw[1]:
        raise DatasetFormatError(f"imagefolder: {path} is {hw[1]}x{hw[0]}, not square{hint}")
    if hw != first_hw:
        raise DatasetFormatError(
            f"imagefolder: {path} is {hw[1]}x{hw[0]} but {first} is {first_hw[1]}x{first_hw[0]}{hint}"
        )


def _color_mode(paths: list[Path]) -> str:
    from PIL import Image

    # Image.open only reads the header, so finding the mode of every file is cheap.
    for path in paths:
        try:
            with Image.open(path) as im:
                if im.mode not in ("1", "L", "LA", "I;16", "I;16B", "I;16L"):
                    return "RGB"
        except OSError as err:
            raise DatasetFormatError(f"imagefolder: cannot read image {path}: {err}") from err
    return "L"


def _folder_arrays(
    files: dict[str, list[Path]], names: list[str], mode: str, image_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    paths = [p for name in files for p in files[name]]
    labels = np.array([names.index(name) for name in files for _ in files[name]], dtype=np.int64)
    return _load_images(paths, mode, image_size), labels


def read_image_folder(root: Path | None, image_size: int | None = None) -> RawData:
    """Images in class sub-folders (like torchvision's ImageFolder); grayscale stays 1 channel.

    If `root` holds `train/` and `test/`, those are the train and official test splits
    (test classes must be a subset of train classes); otherwise everything is split.
    """
    root = _require_dir(root, "imagefolder", IMAGEFOLDER_LAYOUT)
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_files = _class_folders(root / "train" if has_split else root)
    test_files = _class_folders(root / "test") if has_split else {}
    names = list(train_files)
    unknown = sorted(set(test_files) - set(names))
    if unknown:
        raise DatasetFormatError(
            f"imagefolder: {root / 'test'} has classes {unknown} missing from {root / 'train'}"
        )
    all_paths = [p for group in (train_files, test_files) for ps in group.values() for p in ps]
    mode = _color_mode(all_paths)
    train_x, train_y = _folder_arrays(train_files, names, mode, image_size)
    if not has_split:
        return RawData(train_x, train_y, num_classes=len(names), class_names=tuple(names))
    test_x, test_y = _folder_arrays(test_files, names, mode, image_size)
    if test_x.shape[1:] != train_x.shape[1:]:
        raise DatasetFormatError(
            f"imagefolder: test images are {test_x.shape[2]}x{test_x.shape[3]}, train images "
            f"{train_x.shape[2]}x{train_x.shape[3]}; pass image_size to resize them"
        )
    return RawData(train_x, train_y, test_x, test_y, num_classes=len(names), class_names=tuple(names))
