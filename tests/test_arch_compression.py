"""Constructs of real model libraries, end to end: each hand-built model (tests/inventory/
arch_models.py) is pruned at keep 0.5 and quantized; the physically pruned model computes
what the masked one does, and the packed file loads back to what apply_plan computes."""

from __future__ import annotations

import copy

import pytest
import torch

from hirelc.compress.apply import apply_plan, to_physical
from hirelc.compress.prune import apply_masks_, kept_indices, prune_physically
from hirelc.export.packed import export_packed, load_packed, read_layout
from hirelc.inventory import inspect
from hirelc.plan import Plan
from inventory.arch_models import ARCH_MODELS, TiedHeadLM, TinyBert, randomize_norms_


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_norms_(ARCH_MODELS[name][0](), seed).eval()


def _example(name: str) -> torch.Tensor:
    torch.manual_seed(123)
    return ARCH_MODELS[name][1]()


@pytest.mark.parametrize("name", sorted(ARCH_MODELS))
def test_pruned_at_half_physical_equals_masked_and_packed_equals_apply_plan(name, tmp_path):
    model, x = _model(name), _example(name)
    inv = inspect(model, x)
    assert inv.prunable_names(), f"{name}: nothing prunable: {[(s.name, s.prune_reason) for s in inv]}"
    plan = Plan.uniform(inv, bits=4, keep_ratio=0.5)

    kept = kept_indices(model, inv.groups, plan)  # fp32: masked vs removed
    with torch.no_grad():
        masked = apply_masks_(copy.deepcopy(model), kept, inv.groups)(x)
        removed = prune_physically(model, kept, inv.groups)(x)
    torch.testing.assert_close(removed, masked, rtol=0, atol=1e-5)

    small = apply_plan(model, plan, inventory=inv)  # quantized too
    physical = to_physical(small)
    with torch.no_grad():
        expected = small(x)
        torch.testing.assert_close(physical(x), expected, rtol=0, atol=1e-5)
    assert sum(p.numel() for p in physical.parameters()) < sum(p.numel() for p in model.parameters())

    path = tmp_path / f"{name}.hlc"
    export_packed(small, None, path)
    loaded = load_packed(path, like=_model(name, seed=1))  # every weight from the file
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-5)


def test_tied_embedding_and_output_layer_are_one_compressed_tensor_stored_once(tmp_path):
    model, ids = _model("tiny_bert"), _example("tiny_bert")
    inv = inspect(model, ids)
    spec = inv.spec("word_embeddings")
    assert spec.kind == "embedding" and "decoder" not in inv.names()  # one kernel for both
    plan = Plan.uniform(inv, bits=3)
    small = apply_plan(model, plan, inventory=inv)
    emb, dec = small.word_embeddings.weight, small.decoder.weight
    assert torch.equal(emb, dec) and not torch.equal(emb, model.word_embeddings.weight)
    assert emb[0].unique().numel() <= 7  # 3-bit int_sym per token (row): 7 levels

    path = tmp_path / "bert.hlc"
    export_packed(small, None, path)
    layout = read_layout(path)
    assert layout.kernels["word_embeddings.weight"] == "word_embeddings"
    assert layout.shared == {"decoder.weight": "word_embeddings.weight"}  # stored once
    loaded = load_packed(path, like=TinyBert())
    assert loaded.decoder.weight is loaded.word_embeddings.weight
    assert torch.equal(loaded.word_embeddings.weight, emb.detach())
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), small(ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, group", [("width_vit", "blocks.0.attn.qkv"), ("torch_encoder", "encoder.self_attn.in_proj"),
                                         ("tiny_bert", "layers.0.attention.query")])
def test_kept_heads_other_than_the_first_ones_load_back_in_their_slots(name, group, tmp_path):
    model, x = _model(name), _example(name)
    inv = inspect(model, x)
    scores = {group: torch.tensor([0.0, 5.0, 1.0, 4.0])}  # keep heads 1 and 3
    small = apply_plan(model, Plan.uniform(inv, bits=8, keep_ratio=0.5), importance=scores, inventory=inv)
    path = tmp_path / "m.hlc"
    export_packed(small, None, path)
    loaded = load_packed(path, like=_model(name, seed=1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), small(x), rtol=0, atol=1e-5)


def test_a_non_kernel_holder_of_a_tied_weight_is_stored_once_and_loads_tied(tmp_path):
    model, ids = TiedHeadLM(), torch.randint(0, 20, (2, 5))
    small = apply_plan(model, Plan({"emb": Plan.uniform(inspect(model, ids), bits=3)["emb"]}))
    path = tmp_path / "lm.hlc"
    export_packed(small, None, path)
    assert read_layout(path).shared == {"head.table": "emb.weight"}
    loaded = load_packed(path, like=TiedHeadLM())
    assert loaded.head.table is loaded.emb.weight
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), small(ids), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ARCH_MODELS))
@pytest.mark.parametrize("keep", [0.5, 0.3])
def test_the_search_size_model_matches_the_packed_data_section_to_the_byte(name, keep):
    from hirelc.evaluate.calibrate import measure_size_model
    from hirelc.export.packed import storage_bytes_model

    model, x = _model(name), _example(name)
    inv = inspect(model, x)
    plan = Plan.uniform(inv, bits=3, keep_ratio=keep)
    assert measure_size_model(model, inv).nbytes(plan) == storage_bytes_model(model, plan, inventory=inv)
