import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hirelc.evaluate import Sensitivity, fisher_sensitivity, kernels_from_specs
from hirelc.evaluate import sensitivity as sensitivity_module
from hirelc.inventory.spec import LayerSpec
from hirelc.rundir import RunDir

KERNELS = {"conv1": ("conv1", "weight"), "fc1": ("fc1", "weight"), "fc2": ("fc2", "weight")}
BLOCKS = {"conv1": "features", "fc1": "head", "fc2": "head"}


def test_scores_are_normalised_and_shaped(model, digits):
    s = fisher_sensitivity(model, digits, KERNELS, n_batches=4, batch_size=32, blocks=BLOCKS)
    assert list(s.per_kernel) == list(KERNELS)
    assert sum(s.per_kernel.values()) == pytest.approx(1.0)
    assert all(v > 0 for v in s.per_kernel.values())
    assert s.per_block == pytest.approx(
        {"features": s.per_kernel["conv1"], "head": s.per_kernel["fc1"] + s.per_kernel["fc2"]}
    )
    assert [len(s.per_channel[k]) for k in KERNELS] == [8, 32, 10]  # one score per output row
    assert [len(s.per_channel_saliency[k]) for k in KERNELS] == [8, 32, 10]
    for k in KERNELS:
        assert sum(s.per_channel[k]) == pytest.approx(s.raw_per_kernel[k], rel=1e-5)
    assert (s.n_batches, s.batch_size, s.seed) == (4, 32, 0)


def test_matches_a_hand_computed_fisher(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Tanh(), nn.Linear(5, 10))
    kernels = {"a": ("1", "weight"), "b": ("3", "weight")}
    s = fisher_sensitivity(model, digits, kernels, n_batches=3, batch_size=16, seed=7)

    squares = [torch.zeros(5, 64), torch.zeros(10, 5)]
    for i, (x, y) in enumerate(digits.loader("train", batch_size=16, shuffle=True, seed=7)):
        if i == 3:
            break
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        squares[0] += model[1].weight.grad ** 2
        squares[1] += model[3].weight.grad ** 2
    fisher = [sq / 3 for sq in squares]
    total = sum(float(f.sum()) for f in fisher)
    assert s.raw_per_kernel["a"] == pytest.approx(float(fisher[0].sum()), rel=1e-5)
    assert s.per_kernel["b"] == pytest.approx(float(fisher[1].sum()) / total, rel=1e-5)
    assert s.per_channel["b"] == pytest.approx(fisher[1].sum(dim=1).tolist(), rel=1e-5)
    saliency = (0.5 * fisher[0] * model[1].weight.detach() ** 2).sum(dim=1)
    assert s.per_channel_saliency["a"] == pytest.approx(saliency.tolist(), rel=1e-5)


def test_frozen_kernels_are_scored_and_stay_frozen(model, digits):
    model.requires_grad_(False)
    s = fisher_sensitivity(model, digits, KERNELS, n_batches=1, batch_size=16)
    assert all(v > 0 for v in s.per_kernel.values())
    assert not any(p.requires_grad for p in model.parameters())


def test_leaves_grads_and_mode_alone_and_is_deterministic(model, digits):
    model.train()
    model.fc1.weight.grad = torch.ones_like(model.fc1.weight)
    a = fisher_sensitivity(model, digits, KERNELS, n_batches=2, batch_size=16, seed=3)
    b = fisher_sensitivity(model, digits, KERNELS, n_batches=2, batch_size=16, seed=3)
    c = fisher_sensitivity(model, digits, KERNELS, n_batches=2, batch_size=16, seed=4)
    assert model.training and torch.equal(model.fc1.weight.grad, torch.ones_like(model.fc1.weight))
    assert model.conv1.weight.grad is None
    assert a == b and a.per_kernel != c.per_kernel


def test_json_round_trip(model, digits):
    s = fisher_sensitivity(model, digits, KERNELS, n_batches=1, batch_size=8)
    assert Sensitivity.from_json(s.to_json()) == s
    assert s.ranked()[0] == max(s.per_kernel, key=s.per_kernel.get)


def test_cached_in_run_dir(model, digits, tmp_path, monkeypatch):
    run = RunDir(tmp_path).create({"x": 1})
    first = fisher_sensitivity(model, digits, KERNELS, n_batches=2, batch_size=16, run_dir=run)
    assert run.sensitivity_path.exists()

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed although sensitivity.json matches")

    monkeypatch.setattr(sensitivity_module, "_mean_squared_grads", must_not_run)
    assert fisher_sensitivity(model, digits, KERNELS, n_batches=2, batch_size=16, run_dir=tmp_path) == first
    monkeypatch.undo()

    # other arguments or other weights: recomputed and the file replaced
    other = fisher_sensitivity(model, digits, KERNELS, n_batches=3, batch_size=16, run_dir=run)
    assert other.n_batches == 3 and other.fingerprint != first.fingerprint
    with torch.no_grad():
        model.fc2.weight.mul_(2)
    changed = fisher_sensitivity(model, digits, KERNELS, n_batches=3, batch_size=16, run_dir=run)
    assert changed.fingerprint != other.fingerprint
    assert Sensitivity.from_json(run.sensitivity_path.read_text()) == changed


def test_corrupt_cache_file_is_recomputed(model, digits, tmp_path):
    (tmp_path / "sensitivity.json").write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring unreadable"):
        s = fisher_sensitivity(model, digits, KERNELS, n_batches=1, batch_size=8, run_dir=tmp_path)
    assert Sensitivity.from_json((tmp_path / "sensitivity.json").read_text()) == s


def test_unused_kernel_gets_zero_and_a_warning(digits):
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)
            self.spare = nn.Linear(3, 3)  # never called in forward

        def forward(self, x):
            return self.fc(x.flatten(1))

    model = WithSpare()
    kernels = {"used": ("fc", "weight"), "spare": ("spare", "weight")}
    with pytest.warns(UserWarning, match=r"\['spare'\] got zero gradient"):
        s = fisher_sensitivity(model, digits, kernels, n_batches=1, batch_size=8)
    assert s.per_kernel == {"used": 1.0, "spare": 0.0}


def test_multihead_attention_in_proj(digits):
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8 * 8, 10)

        def forward(self, x):
            t = x.flatten(2).transpose(1, 2).reshape(x.shape[0], 8, 8)  # (B, 8 tokens, 8)
            return self.head(self.attn(t, t, t)[0].flatten(1))

    kernels = {"attn.in_proj": ("attn", "in_proj_weight"), "attn.out_proj": ("attn.out_proj", "weight")}
    s = fisher_sensitivity(Attn(), digits, kernels, n_batches=1, batch_size=8)
    assert len(s.per_channel["attn.in_proj"]) == 24  # 3 * D rows of the fused q/k/v projection


def test_kernels_from_specs():
    specs = [
        LayerSpec("blocks.0.attn.in_proj", "mha_in_proj", (24, 8), 10, module="blocks.0.attn",
                  param="in_proj_weight", block="blocks.0"),
        LayerSpec("fc", "linear", (10, 8), 80),
    ]
    kernels, blocks = kernels_from_specs(specs)
    assert kernels == {"blocks.0.attn.in_proj": ("blocks.0.attn", "in_proj_weight"), "fc": ("fc", "weight")}
    assert blocks == {"blocks.0.attn.in_proj": "blocks.0", "fc": "fc"}


@pytest.mark.parametrize(
    "kernels, kwargs, match",
    [
        ({}, {}, "at least one kernel"),
        ({"x": ("nope", "weight")}, {}, "has no module 'nope'"),
        ({"x": ("bn1", "running_mean")}, {}, "not a floating-point parameter"),
        ({"x": "fc1"}, {}, r"expected \(module path, parameter name\)"),
        (KERNELS, {"n_batches": 0}, "n_batches must be a positive integer"),
    ],
)
def test_bad_arguments(model, digits, kernels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fisher_sensitivity(model, digits, kernels, **kwargs)


def test_wired_to_inspect_on_a_zoo_vit(digits):
    from hirelc.inventory import inspect
    from hirelc.zoo import create_model

    model = create_model("vit_tiny", in_channels=1, num_classes=10, image_size=8)
    specs = inspect(model, digits.example_input(2))
    kernels, blocks = kernels_from_specs(specs)
    s = fisher_sensitivity(model, digits, kernels, n_batches=1, batch_size=8, blocks=blocks)
    assert set(s.per_block) == {spec.block for spec in specs}
    assert sum(s.per_block.values()) == pytest.approx(1.0)
    assert all(len(s.per_channel[spec.name]) == spec.out_channels for spec in specs)
