"""Cost models (hirelc.cost), checked against numbers computed by hand."""

import itertools

import pytest
import torch

from hirelc import LayerSpec
from hirelc.compress.quantize import quantize
from hirelc.cost import (
    avg_bits,
    bitops,
    compression_ratio,
    fp32_bits,
    has_zero_point,
    kept_count,
    kept_macs,
    kept_shapes,
    layer_storage_bits,
    n_scales,
    param_weighted_avg_bits,
    quantized_weight_bits,
    stripes_energy_reduction,
    stripes_speedup,
    total_storage_bits,
)
from hirelc.export.bitpack import pack_bits
from hirelc.plan import GRANULARITIES, NUMBER_FORMATS, LayerConfig, Plan


@pytest.fixture
def conv_fc():
    """conv c (8, 3, 3, 3) on a 10x10 output -> global pool -> fc f (10, 8)."""
    c = LayerSpec("c", "conv2d", (8, 3, 3, 3), n_macs=8 * 27 * 100, prunable=True, consumers=("f",))
    f = LayerSpec("f", "linear", (10, 8), n_macs=80)
    plan = Plan(
        {
            "c": LayerConfig(4, keep_ratio=0.5, number_format="int_asym"),
            "f": LayerConfig(2, granularity="per_tensor"),
        }
    )
    return [c, f], plan


def test_two_layer_example_by_hand(conv_fc):
    specs, plan = conv_fc
    # c keeps kept_count(8, 0.5) = 4 of 8 rows; f loses the matching 4 of 8 input columns
    assert kept_shapes(specs, plan) == {"c": (4, 27), "f": (10, 4)}
    # c: codes 4*27*4 = 432 bits (54 bytes), 4 float16 scales * 16 = 64, 4 zero points * 8 = 32
    # f: codes 10*4*2 = 80 bits (10 bytes), 1 scale * 16
    assert total_storage_bits(specs, plan) == 432 + 64 + 32 + 80 + 16 == 624
    fp32 = sum(fp32_bits(s) for s in specs)
    assert fp32 == 32 * (216 + 80) == 9472
    assert compression_ratio(fp32, 624) == pytest.approx(9472 / 624)
    # MACs scale with the kept part of the weight: c 21600 * 1/2, f 80 * 4/8
    assert kept_macs(specs, plan) == {"c": 10800.0, "f": 40.0}
    assert bitops(specs, plan) == 10800 * 4 * 8 + 40 * 2 * 8 == 346240
    assert bitops(specs, plan, act_bits=4) == 346240 / 2
    assert avg_bits(specs, plan) == 3.0
    assert param_weighted_avg_bits(specs, plan) == pytest.approx((108 * 4 + 40 * 2) / 148)
    # Stripes-style, baseline 8 bits unpruned: (21600 + 80) * 8 / (10800*4 + 40*2)
    assert stripes_speedup(specs, plan) == pytest.approx(173_440 / 43_280)
    # energy: base (216*120 + 21600)*8 + (80*120 + 80)*8 = 457600
    #         plan (108*120 + 10800)*4 + (40*120 + 40)*2 = 95040 + 9680 = 104720
    assert stripes_energy_reduction(specs, plan) == pytest.approx(457_600 / 104_720)


def test_hardware_models_are_one_at_baseline_and_scale_with_bits(conv_fc):
    specs, _ = conv_fc
    at8 = Plan.uniform(specs, bits=8)
    assert stripes_speedup(specs, at8) == 1.0 and stripes_energy_reduction(specs, at8) == 1.0
    at4 = Plan.uniform(specs, bits=4)
    assert stripes_speedup(specs, at4) == 2.0 and stripes_energy_reduction(specs, at4) == 2.0
    # layers missing from the plan run at the baseline bitwidth (here: nothing changes)
    assert stripes_speedup(specs, Plan()) == 1.0
    # an energy weighting of 0 leaves compute only, which is then the speedup
    half = Plan({"c": LayerConfig(2), "f": LayerConfig(8)})
    assert stripes_energy_reduction(specs, half, e_mem_over_e_macc=0.0) == pytest.approx(
        stripes_speedup(specs, half)
    )


def test_missing_layers_count_as_fp32_in_bits_and_storage(conv_fc):
    specs, _ = conv_fc
    plan = Plan({"c": LayerConfig(4)})
    assert avg_bits(specs, plan) == (4 + 32) / 2
    assert bitops(specs, plan) == (21600 * 4 + 80 * 32) * 8
    # c: 216*4 codes + 8 scales*16 ; f: 80 weights * 32
    assert total_storage_bits(specs, plan) == 864 + 128 + 2560


def test_kept_count_contract():
    assert [kept_count(10, r) for r in (1.0, 0.5, 0.25, 0.05, 0.04)] == [10, 5, 3, 1, 1]
    assert kept_count(3, 0.5) == 2  # 1.5 rounds half up
    assert kept_count(1, 0.01) == 1  # never zero
    for bad in [(0, 0.5), (4, 0.0), (4, 1.5), (2.0, 0.5)]:
        with pytest.raises(ValueError):
            kept_count(*bad)


def test_residual_group_keeps_the_largest_count_and_consumer_counts_it_once():
    a = LayerSpec("a", "conv2d", (8, 4, 1, 1), 0, prune_group="g", prunable=True, consumers=("d",))
    b = LayerSpec("b", "conv2d", (8, 8, 1, 1), 0, prune_group="g", prunable=True, consumers=("d",))
    d = LayerSpec("d", "conv2d", (6, 8, 3, 3), 0)
    plan = {"a": LayerConfig(4, keep_ratio=0.25), "b": LayerConfig(4, keep_ratio=0.5)}
    # group g: max(kept_count(8, .25) = 2, kept_count(8, .5) = 4) = 4 channels
    assert kept_shapes([a, b, d], plan) == {"a": (4, 4), "b": (4, 8), "d": (6, 36)}
    # a member not in the plan asks for everything: the group is not pruned
    assert kept_shapes([a, b, d], {"a": LayerConfig(4, keep_ratio=0.25)})["b"] == (8, 8)


def test_concat_consumer_and_depthwise_in_group():
    p1 = LayerSpec("p1", "conv2d", (4, 3, 1, 1), 0, prune_group="g1", consumers=("c",))
    p2 = LayerSpec("p2", "conv2d", (12, 3, 1, 1), 0, prune_group="g2", consumers=("c",))
    c = LayerSpec("c", "conv2d", (5, 16, 1, 1), 0)
    dw = LayerSpec("dw", "conv2d", (4, 1, 3, 3), 0, conv_groups=4, prune_group="g1")
    p1.consumers = ("c", "dw")
    half = LayerConfig(4, keep_ratio=0.5)
    shapes = kept_shapes([p1, p2, c, dw], {"p1": half, "dw": half})
    # concat: (2 of p1's 4 + 12 of p2's 12) of 16 input channels
    assert shapes["c"] == (5, 14)
    # depthwise: tied to p1's group, so its rows shrink and its 1x3x3 columns do not
    assert shapes["dw"] == (2, 9)


def test_attention_heads_are_the_pruning_unit():
    qkv = LayerSpec("qkv", "attn_qkv", (96, 32), 0, n_heads=4, prunable=True, consumers=("proj",))
    proj = LayerSpec("proj", "attn_proj", (32, 32), 0, n_heads=4)
    shapes = kept_shapes([qkv, proj], {"qkv": LayerConfig(4, keep_ratio=0.6)})
    # kept_count(4 heads, 0.6) = 2 heads of 8 dims: q, k, v rows 3*16, proj columns 16
    assert shapes == {"qkv": (48, 32), "proj": (32, 16)}
    assert layer_storage_bits(qkv, LayerConfig(4, keep_ratio=0.6)) == 48 * 32 * 4 + 48 * 16


def test_quantized_weight_bits_by_hand():
    # 5 x 7 weight, 3 bits -> 105 code bits -> 14 bytes = 112 bits; scales are float16
    assert quantized_weight_bits(5, 7, LayerConfig(3, granularity="per_tensor")) == 112 + 16
    assert quantized_weight_bits(5, 7, LayerConfig(3)) == 112 + 5 * 16
    # groups of 4 over 7 columns: 2 per row (the last one short)
    grouped = LayerConfig(3, number_format="int_asym", granularity="per_group", group_size=4)
    assert quantized_weight_bits(5, 7, grouped) == 112 + 10 * (16 + 8)
    # 1 bit is sign x scale in every format: no zero point even for int_asym
    assert quantized_weight_bits(5, 7, LayerConfig(1, number_format="int_asym")) == 40 + 5 * 16
    assert not has_zero_point(LayerConfig(1, number_format="int_asym"))


def configs():
    for fmt, gran, bits in itertools.product(NUMBER_FORMATS, GRANULARITIES, range(1, 9)):
        if fmt != "float" or bits >= 4:
            yield LayerConfig(bits, number_format=fmt, granularity=gran, group_size=5)


@pytest.mark.parametrize("cfg", list(configs()), ids=str)
def test_storage_model_matches_what_quantize_and_pack_produce(cfg):
    w = torch.randn(6, 2, 3, 2)  # 6 x 12
    q = quantize(w, cfg)
    # bits of what the quantizer hands over, at the dtypes it uses (float16 scales)
    stored = 8 * pack_bits(q.codes, cfg.bits).numel() + 8 * q.scale.numel() * q.scale.element_size()
    if q.zero_point is not None:
        stored += 8 * q.zero_point.numel() * q.zero_point.element_size()
    assert quantized_weight_bits(6, 12, cfg) == stored
    assert n_scales(w.shape, cfg) == q.scale.numel()
    assert has_zero_point(cfg) == (q.zero_point is not None)


def test_layer_storage_bits_fp32_and_explicit_kept_shape():
    spec = LayerSpec("fc", "linear", (10, 20), n_macs=200)
    assert layer_storage_bits(spec, None) == fp32_bits(spec) == 6400
    assert layer_storage_bits(spec, None, kept_rows=5, kept_cols=4) == 640
    assert layer_storage_bits(spec, LayerConfig(8), kept_rows=5, kept_cols=4) == 160 + 5 * 16


def test_errors():
    spec = LayerSpec("fc", "linear", (10, 20), n_macs=0)
    with pytest.raises(ValueError, match="positive"):
        compression_ratio(100, 0)
    with pytest.raises(ValueError, match="no MACs or weights"):
        stripes_speedup([spec], {})
    with pytest.raises(ValueError, match="at least one"):
        avg_bits([], {})


def test_an_embedding_keeps_its_token_rows_and_loses_columns_like_its_consumer():
    emb = LayerSpec("emb", "embedding", (100, 8), n_macs=0, prunable=True, prune_group="emb", consumers=("fc",))
    fc = LayerSpec("fc", "linear", (4, 8), n_macs=32)
    from hirelc.cost import prune_units

    assert prune_units(emb) == 8
    assert kept_shapes([emb, fc], {"emb": LayerConfig(4, keep_ratio=0.5)}) == {"emb": (100, 4), "fc": (4, 4)}
