"""The top-level API: `import hirelc` stays light; `hirelc.search` serves both forms;
a user's own model and dataset (objects or import strings) go through the whole pipeline."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import hirelc
from hirelc import LayerSpec
from hirelc.cli import main


def test_import_is_light():
    code = "import sys, hirelc; print(sorted(m for m in ('stable_baselines3', 'safetensors', 'gymnasium', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_model_free_search_returns_plan_and_every_real_evaluation():
    layers = [LayerSpec("a", "linear", (8, 8), 64), LayerSpec("b", "linear", (4, 8), 32)]
    seen = []

    def accuracy(plan):
        seen.append(plan.bits())
        return 0.9 - 0.5 * (plan["a"].bits < 4)

    result = hirelc.search(layers=layers, evaluate=accuracy, method="uniform", bits=(2, 4, 8),
                           reference_accuracy=0.9, max_evaluations=5, seed=0)
    assert result.plan.bits() == [4, 4]
    assert [ev.plan.bits() for ev in result.history] == seen  # every real, uncached call, in order
    assert [ev.accuracy for ev in result.history] == [accuracy_of(b) for b in seen]


def accuracy_of(bits):
    return 0.9 - 0.5 * (bits[0] < 4)


def test_wrong_combinations_are_explained():
    with pytest.raises(ValueError, match="needs layers= and evaluate="):
        hirelc.search()
    with pytest.raises(ValueError, match="not both"):
        hirelc.search(layers=[], evaluate=lambda p: 1.0, model="lenet5", data="digits")
    with pytest.raises(ValueError, match="out="):
        hirelc.search(model="lenet5", data="digits")


USER_MODULE = textwrap.dedent("""
    import torch
    from torch import nn
    from sklearn.datasets import load_digits
    from torch.utils.data import TensorDataset

    def make_model(in_channels=1, num_classes=10, image_size=8):
        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(8 * image_size * image_size, num_classes))

    def make_data():
        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(d.target, dtype=torch.int64)
        return TensorDataset(x[:1000], y[:1000]), TensorDataset(x[1000:1400], y[1000:1400]), \\
            TensorDataset(x[1400:], y[1400:])
""")


@pytest.mark.slow
def test_user_model_and_data_as_import_strings_train_eval_export(tmp_path, monkeypatch, capsys):
    (tmp_path / "user_pkg.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--model", "user_pkg:make_model", "--data", "user_pkg:make_data", "--train-epochs", "2", "--quiet"]
    assert main(["train", *common]) == 0
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"0": {"bits": 4, "keep_ratio": 0.5}, "3": 4}))
    capsys.readouterr()
    assert main(["eval", *common, "--plan", str(plan), "--steps", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["val/accuracy"] <= 1.0
    packed = tmp_path / "user.hirelc"
    assert main(["export", *common, "--plan", str(plan), "--epochs", "1", "--out", str(packed)]) == 0
    loaded = hirelc.load_packed(packed, like=__import__("user_pkg").make_model())
    assert loaded[0].out_channels == 4  # half of the 8 channels were removed physically
    assert loaded(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.slow
def test_search_job_on_a_users_own_module_and_splits(tmp_path):
    from hirelc.data import load_dataset

    data = load_dataset("digits", seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = data.train.tensors
    for _ in range(60):  # the user's model arrives trained; hirelc does not retrain it
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    result = hirelc.search(model=model, data=data, out=tmp_path / "run", method="random", max_evaluations=3,
                           search_steps=2, final_epochs=1, progress=False)
    assert result["test/fp32_accuracy"] > 0.8
    assert result["search/evaluations"] == 3 and (tmp_path / "run" / "model.hirelc").exists()
    with pytest.warns(DeprecationWarning, match="is now 'test/accuracy'"):  # the old name still answers
        assert result["final_test_accuracy"] == result["test/accuracy"]


def test_datasplits_is_importable_from_hirelc_and_search_documents_every_option():
    import dataclasses

    from hirelc.data import DataSplits
    from hirelc.pipeline import JobConfig

    assert hirelc.DataSplits is DataSplits and "DataSplits" in hirelc.__all__
    doc = hirelc.search.__doc__
    for name in [f.name for f in dataclasses.fields(JobConfig) if f.name not in ("model", "data", "data_root")]:
        assert f"{name}=" in doc or f"{name}:" in doc, name
    for name in ("layers:", "evaluate:", "reference_accuracy:", "max_evaluations:", "journal:", "reward_params:",
                 "resume=", "force=", "progress=", "hirelc.Plan", "LayerConfig"):
        assert name in doc, name


def test_plain_dataset_tuples_become_splits_and_other_data_is_refused_clearly():
    from hirelc.api import _coerce_data

    ds = TensorDataset(torch.randn(12, 1, 8, 8), torch.arange(12) % 3)
    splits = _coerce_data([ds, ds, ds], seed=5)
    assert splits.num_classes == 3 and splits.in_channels == 1 and splits.image_size == 8 and splits.seed == 5
    with pytest.raises(TypeError, match=r"\(train, val, test\) tuple of torch datasets.*got tuple of length 2"):
        _coerce_data((ds, ds))


@pytest.mark.slow
def test_search_job_on_a_users_model_and_plain_torch_datasets(tmp_path):
    from hirelc.data import load_dataset

    data = load_dataset("digits", seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = data.train.tensors
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    plain = tuple(TensorDataset(*getattr(data, split).tensors) for split in ("train", "val", "test"))
    result = hirelc.search(model=model, data=plain, out=tmp_path / "run", method="random", max_evaluations=2,
                           search_steps=1, final_epochs=1, progress=False)
    assert result["data"] == "datasets" and result["split_sizes"] == data.sizes()
    assert result["test/fp32_accuracy"] > 0.8 and (tmp_path / "run" / "model.hirelc").exists()
