"""Baseline training, the checkpoint cache, evaluation helpers, devices and the cache dir."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hirelc.data import DataSplits, load_dataset
from hirelc.paths import cache_dir
from hirelc.train import TrainInfo, TrainRecipe, augment, evaluate_accuracy, resolve_device, train_baseline

QUICK = TrainRecipe(epochs=2, batch_size=32, lr=3e-3, optimizer="adamw")


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits", seed=0)


@pytest.fixture
def tiny_mlp(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered, very fast model, so cache tests need not train a CNN several times."""
    from hirelc.zoo import register_model, registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model(recipe=QUICK)
    def tiny_mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> nn.Module:
        """Two-layer perceptron."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 32), nn.ReLU(), nn.Linear(32, num_classes))

    return "tiny_mlp"


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


# --- cache dir and devices ---------------------------------------------------------------


def test_cache_dir_honours_env_and_platform_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIRELC_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" and cache_dir().is_dir()
    assert cache_dir("checkpoints") == tmp_path / "mine" / "checkpoints" and cache_dir("checkpoints").is_dir()
    monkeypatch.delenv("HIRELC_CACHE_DIR")
    monkeypatch.setattr("platformdirs.user_cache_dir", lambda app: str(tmp_path / "platform" / app))
    assert cache_dir() == tmp_path / "platform" / "hirelc" and cache_dir().is_dir()


def test_cache_dir_error_names_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("HIRELC_CACHE_DIR", str(tmp_path / "file" / "sub"))
    with pytest.raises(OSError, match="cannot create the hirelc cache directory .*HIRELC_CACHE_DIR"):
        cache_dir()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


# --- evaluation and augmentation ---------------------------------------------------------


def test_evaluate_accuracy_counts_and_restores_mode() -> None:
    class Constant(nn.Module):  # always predicts class 1 with probability e/(e+1)
        def __init__(self) -> None:
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.0, 1.0]]).expand(len(x), 2) + self.dummy

    dataset = TensorDataset(torch.zeros(10, 1, 2, 2), torch.tensor([1, 1, 1, 0, 0, 1, 1, 0, 1, 1]))
    model = Constant().train()
    acc, loss = evaluate_accuracy(model, dataset, batch_size=3)
    p1 = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    assert acc == pytest.approx(0.7)
    assert loss == pytest.approx(-(0.7 * p1[1].log() + 0.3 * p1[0].log()).item(), rel=1e-5)
    assert model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate_accuracy(model, TensorDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long)))


def test_augment_shifts_are_translations() -> None:
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    out = augment(images, TrainRecipe(shift=2), torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    for b in range(2):
        crops = [padded[b, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[b], crop) for crop in crops)
    recipe = TrainRecipe(shift=2, rotate=10.0, scale=0.1, hflip=True)
    same = augment(images, recipe, torch.Generator().manual_seed(0))
    again = augment(images, recipe, torch.Generator().manual_seed(0))
    assert torch.equal(same, again) and same.shape == images.shape
    flipped = augment(images, TrainRecipe(hflip=True), torch.Generator().manual_seed(1))
    assert all(torch.equal(f, x) or torch.equal(f, x.flip(-1)) for f, x in zip(flipped, images))


def test_augment_rotation_keeps_the_centre_and_turns_the_image() -> None:
    images = torch.zeros(64, 1, 9, 9)
    images[:, :, 4, :] = 1.0  # a horizontal bar through the centre
    out = augment(images, TrainRecipe(rotate=90.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0, 4, 4], torch.ones(64), atol=1e-5)  # the centre pixel stays
    assert (out[:, 0, 4, :] - images[:, 0, 4, :]).abs().sum(dim=1).max() > 1.0  # some bars turned
    zoom = augment(images, TrainRecipe(scale=0.5), torch.Generator().manual_seed(0))
    assert torch.allclose(zoom[:, 0, 4, 4], torch.ones(64), atol=1e-5)


# --- training and the cache --------------------------------------------------------------


def test_train_baseline_learns_and_caches(digits: DataSplits) -> None:
    model, info = train_baseline("lenet5", digits, QUICK, seed=0, progress=False)
    assert not info.cached and not model.training
    assert info.test_accuracy > 0.6 and info.val_accuracy > 0.6  # chance is 0.1
    assert info.split_sizes == digits.sizes() and len(info.history) == 2 and info.train_time_s > 0
    assert evaluate_accuracy(model, digits.test)[0] == pytest.approx(info.test_accuracy)

    weights = Path(info.checkpoint)
    assert weights.parent == cache_dir("checkpoints") and weights.name.startswith("lenet5-digits-split0-seed0-")
    sidecar = json.loads(weights.with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == info.test_accuracy and sidecar["train_time_s"] == info.train_time_s
    assert sidecar["recipe"] == QUICK.to_dict() and sidecar["split_sizes"] == digits.sizes()

    start = time.perf_counter()
    again, cached = train_baseline("lenet5", digits, QUICK, seed=0, progress=False)
    assert cached.cached and time.perf_counter() - start < 2.0
    assert cached.test_accuracy == info.test_accuracy and cached.train_time_s == info.train_time_s
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_cache_key_changes_with_seed_recipe_and_split(digits: DataSplits, tiny_mlp: str) -> None:
    _, base = train_baseline(tiny_mlp, digits, seed=0, progress=False)
    assert base.recipe == QUICK  # the registered recipe is the default
    _, other_seed = train_baseline(tiny_mlp, digits, seed=1, progress=False)
    _, other_recipe = train_baseline(tiny_mlp, digits, QUICK.replace(lr=1e-3), seed=0, progress=False)
    _, other_split = train_baseline(tiny_mlp, load_dataset("digits", seed=1), progress=False)
    keys = {base.key, other_seed.key, other_recipe.key, other_split.key}
    assert len(keys) == 4 and not any(i.cached for i in (other_seed, other_recipe, other_split))
    assert len(list(cache_dir("checkpoints").glob("*.pt"))) == 4


def test_training_is_deterministic(digits: DataSplits, tiny_mlp: str) -> None:
    recipe = QUICK.replace(shift=1, hflip=True, label_smoothing=0.1, schedule="onecycle")
    _, first = train_baseline(tiny_mlp, digits, recipe, seed=3, progress=False, cache=False)
    _, second = train_baseline(tiny_mlp, digits, recipe, seed=3, progress=False, cache=False)
    untimed = [[{k: v for k, v in row.items() if k != "time_s"} for row in info.history] for info in (first, second)]
    assert untimed[0] == untimed[1]
    assert first.test_accuracy == second.test_accuracy
    assert not (cache_dir() / "checkpoints").exists()  # cache=False does not touch the cache


def test_corrupt_checkpoint_is_retrained_with_a_warning(digits: DataSplits, tiny_mlp: str) -> None:
    _, info = train_baseline(tiny_mlp, digits, progress=False)
    Path(info.checkpoint).write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="ignoring unreadable checkpoint"):
        _, again = train_baseline(tiny_mlp, digits, progress=False)
    assert not again.cached and again.test_accuracy == info.test_accuracy


def test_module_instances_are_keyed_by_initial_weights(digits: DataSplits) -> None:
    torch.manual_seed(0)
    net = TinyNet()
    initial = net.fc.weight.detach().clone()
    trained, info = train_baseline(net, digits, QUICK, progress=False)
    assert trained is net and not torch.equal(net.fc.weight, initial)  # trained in place
    assert info.model_name == "TinyNet" and info.recipe == QUICK and info.test_accuracy > 0.6
    torch.manual_seed(0)
    _, same_init = train_baseline(TinyNet(), digits, QUICK, progress=False)
    torch.manual_seed(1)
    _, other_init = train_baseline(TinyNet(), digits, QUICK, progress=False)
    assert same_init.cached and not other_init.cached


def test_import_string_models_train(digits: DataSplits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_train_mod.py").write_text(textwrap.dedent('''
        from torch import nn
        def make(in_channels, num_classes, image_size):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, num_classes))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        model, info = train_baseline("user_train_mod:make", digits, QUICK, progress=False)
    finally:
        sys.modules.pop("user_train_mod", None)
    assert isinstance(model[1], nn.Linear) and info.model_name == "user_train_mod:make"
    assert info.test_accuracy > 0.6


def test_progress_output(digits: DataSplits, capsys: pytest.CaptureFixture[str]) -> None:
    train_baseline(TinyNet(), digits, QUICK, progress=False, cache=False)
    assert capsys.readouterr() == ("", "")
    train_baseline(TinyNet(), digits, QUICK, progress=True, cache=False)
    err = capsys.readouterr().err
    assert "TinyNet on digits: epoch 1/2" in err and "epoch 2/2" in err and "val acc" in err


def test_bad_model_argument(digits: DataSplits) -> None:
    with pytest.raises(TypeError, match="model must be a registered name"):
        train_baseline(42, digits, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown model 'lenet6'"):
        train_baseline("lenet6", digits, progress=False)


def test_train_info_round_trip(digits: DataSplits) -> None:
    _, info = train_baseline(TinyNet(), digits, QUICK, progress=False, cache=False)
    again = TrainInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again == info
    assert info.summary().startswith("TinyNet on digits (train 1,078 / val 360 / test 359; split seed 0, seed 0): test acc ")


@pytest.mark.slow
def test_lenet5_default_recipe_on_mnist5k() -> None:
    data = load_dataset("mnist5k")
    _, info = train_baseline("lenet5", data, progress=False, cache=False)
    assert info.test_accuracy >= 0.96, info.summary()


def test_augmenting_signals_is_a_clear_error_and_plain_recipes_pass_them_through() -> None:
    signals = torch.randn(4, 1, 40)
    assert augment(signals, TrainRecipe(), torch.Generator()).equal(signals)
    with pytest.raises(ValueError, match="needs images \\(B, C, H, W\\), got \\(4, 1, 40\\)"):
        augment(signals, TrainRecipe(shift=2), torch.Generator())
