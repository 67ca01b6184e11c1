"""hirelc.compress.apply: compressed, fine-tunable copies and their physical equivalents."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from hirelc.compress.apply import apply_plan, compact_latent_weights, compression_state, to_physical
from hirelc.compress.quantize import dequantize, fake_quantize, quantize
from hirelc.inventory import inspect
from hirelc.plan import LayerConfig, Plan
from inventory.toy_models import LeNet, MHAModel, ResNetish, TinyViT, randomize_batchnorm_

MODELS = {
    "lenet": (LeNet, (4, 1, 28, 28)),
    "resnet": (ResNetish, (4, 3, 8, 8)),
    "vit": (TinyViT, (4, 3, 8, 8)),
}


def _setup(key: str):
    make, shape = MODELS[key]
    model = randomize_batchnorm_(make()).eval()
    x = torch.randn(shape)
    return model, x, inspect(model, x)


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("ratio, bits, fmt, gran", [
    (0.25, 4, "int_sym", "per_channel"),
    (0.5, 2, "int_asym", "per_tensor"),
    (0.75, 8, "pow2", "per_group"),
])
def test_physically_pruned_model_equals_masked_model(key, ratio, bits, fmt, gran):
    model, x, inv = _setup(key)
    plan = Plan.uniform(inv, bits=bits, keep_ratio=ratio, number_format=fmt, granularity=gran, group_size=8)
    applied = apply_plan(model, plan, inventory=inv).eval()
    physical = to_physical(applied).eval()
    assert compression_state(applied).kept  # something was pruned
    assert not any(parametrize.is_parametrized(m) for m in physical.modules())
    assert sum(p.numel() for p in physical.parameters()) < sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(physical(x), applied(x), atol=1e-5, rtol=1e-5)
    assert applied(x).sub(model(x)).abs().max() > 0  # and compression did change the function


def test_quantization_runs_on_the_compacted_weight():
    model, x, inv = _setup("lenet")
    cfg = LayerConfig(bits=3, keep_ratio=0.5, granularity="per_tensor")
    applied = apply_plan(model, Plan({"conv1": cfg, "conv2": cfg}), inventory=inv)
    kept = compression_state(applied).kept
    rows, cols = kept["conv2"], kept["conv1"]
    latent = model.conv2.weight.detach()[rows][:, cols]
    expected = torch.zeros_like(model.conv2.weight)
    expected[rows.view(-1, 1), cols.view(1, -1)] = fake_quantize(latent, cfg)
    torch.testing.assert_close(applied.conv2.weight, expected, atol=0, rtol=0)
    assert torch.equal(applied.conv2.bias[[i for i in range(16) if i not in rows.tolist()]], torch.zeros(8))
    # export's view: quantize the compact latent weight, get exactly the weights in use
    compact = compact_latent_weights(applied)["conv2"]
    torch.testing.assert_close(dequantize(quantize(compact, cfg)), to_physical(applied).conv2.weight, atol=0, rtol=0)


def test_pruned_channels_are_zero_after_batchnorm():
    model, x, inv = _setup("resnet")
    applied = apply_plan(model, Plan.uniform(inv, bits=4, keep_ratio=0.5), inventory=inv).eval()
    seen = {}
    applied.block3.bn2.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    applied(x)
    kept = compression_state(applied).kept["block3.expand"]
    pruned = [c for c in range(24) if c not in kept.tolist()]
    assert torch.equal(seen["out"][:, pruned], torch.zeros_like(seen["out"][:, pruned]))
    assert seen["out"][:, kept].abs().sum() > 0


def test_plan_naming_unknown_or_unprunable_layers_is_refused():
    model, x, inv = _setup("lenet")
    with pytest.raises(ValueError, match="'conv9'"):
        apply_plan(model, Plan({"conv9": LayerConfig(4)}), inventory=inv)
    with pytest.raises(ValueError, match="'fc3'"):
        apply_plan(model, Plan({"fc3": LayerConfig(4, keep_ratio=0.5)}), x)
    with pytest.raises(ValueError, match="'conv1'.*example_input"):
        apply_plan(model, Plan({"conv1": LayerConfig(4, keep_ratio=0.5)}))
    with pytest.raises(ValueError, match="'nope'"):
        apply_plan(model, Plan({"nope": LayerConfig(4)}))


def test_apply_plan_leaves_the_original_untouched():
    model, x, inv = _setup("resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x)
    apply_plan(model, Plan.uniform(inv, bits=2, keep_ratio=0.5), x)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model(x), out)


def test_quantize_only_without_example_input_and_multihead_attention():
    model = MHAModel().eval()
    x = torch.randn(3, 5, 6)
    plan = Plan.from_bits(["embed", "attn.in_proj", "attn.out_proj", "fc"], [8, 4, 4, 8])
    applied = apply_plan(model, plan)
    assert compression_state(applied).inventory is None and compression_state(applied).kept == {}
    torch.testing.assert_close(applied.attn.in_proj_weight, fake_quantize(model.attn.in_proj_weight, LayerConfig(4)))
    torch.testing.assert_close(to_physical(applied)(x), applied(x), atol=1e-6, rtol=1e-6)
    applied.train()(x).sum().backward()  # training mode runs too
    assert applied.attn.parametrizations.in_proj_weight.original.grad is not None


def test_applied_model_fine_tunes_through_the_ste():
    torch.manual_seed(0)
    model, _, inv = _setup("lenet")
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    applied = apply_plan(model, Plan.uniform(inv, bits=4, keep_ratio=0.5), inventory=inv).train()
    opt = torch.optim.SGD(applied.parameters(), lr=0.2, momentum=0.9)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(applied(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1 and losses[-1] == min(losses)
    grad = applied.conv2.parametrizations.weight.original.grad
    kept = compression_state(applied).kept["conv2"]
    pruned = [r for r in range(16) if r not in kept.tolist()]
    assert grad[kept].abs().sum() > 0 and torch.equal(grad[pruned], torch.zeros_like(grad[pruned]))


def test_importance_mapping_chooses_the_kept_channels():
    model, x, inv = _setup("lenet")
    plan = Plan({"conv1": LayerConfig(8, keep_ratio=0.5)})
    scores = {"conv1": torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])}
    applied = apply_plan(model, plan, importance=scores, inventory=inv)
    assert compression_state(applied).kept["conv1"].tolist() == [3, 4, 5]
    assert torch.equal(applied.conv1.weight[:3], torch.zeros(3, 1, 5, 5))
    assert compression_state(to_physical(applied)).physical


@pytest.mark.parametrize("key", ["resnet", "vit"])
def test_canonical_keeps_give_the_same_compressed_model(key):
    """A shared channel group keeps the largest fraction any member asks for, so a member asking
    for less prunes nothing: `SizeModel.canonical` raises it to the deciding keep, and the
    model, the bytes and the search's candidate are those of the original plan."""
    from hirelc.methods.problem import SearchProblem
    from hirelc.methods.sizing import SizeModel
    from hirelc.methods.space import SearchSpace, SpaceConfig

    model, x, inv = _setup(key)
    layers = tuple(inv)
    shared = [s for s in layers if s.prune_group and sum(t.prune_group == s.prune_group for t in layers) > 1]
    assert shared, "the toy model has a channel group shared by several kernels"
    space = SearchSpace(layers, SpaceConfig(keep_ratios=(0.25, 0.5, 1.0)))
    plan = {s.name: LayerConfig(4, keep_ratio=0.5 if s.prunable else 1.0) for s in layers}
    plan[shared[0].name] = LayerConfig(4, keep_ratio=0.25)  # asks for less than its group keeps
    plan = Plan(plan)
    sizes = SizeModel(layers)
    canonical = Plan(sizes.canonical(plan))
    assert canonical[shared[0].name].keep_ratio == 0.5 and canonical != plan
    assert sizes.nbytes(canonical) == sizes.nbytes(plan)
    a, b = apply_plan(model, plan, inventory=inv).eval(), apply_plan(model, canonical, inventory=inv).eval()
    assert torch.equal(to_physical(a)(x), to_physical(b)(x))
    problem = SearchProblem(layers, (2, 4, 8), space=space)
    assert problem.candidate(plan).content_hash() == problem.candidate(canonical).content_hash()
    assert problem.candidate(plan) == canonical
