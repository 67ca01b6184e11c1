"""SearchSpace / SpaceConfig: which configs each kernel may take, size, sampling, JSON."""

import numpy as np
import pytest

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.space import SearchSpace, SpaceConfig, parse_granularity, valid_format
from hirelc.plan import LayerConfig, Plan

CONV = LayerSpec("conv", "conv2d", (16, 8, 3, 3), 1000, prunable=True)  # 72 columns per row
FC = LayerSpec("fc", "linear", (10, 16), 160)  # not prunable, 16 columns


def test_minifloat_needs_four_bits_and_one_bit_has_one_format():
    space = SearchSpace([CONV], SpaceConfig(bits=(1, 3, 4)))
    assert space.format_choices(1) == ("int_sym",)
    assert "float" not in space.format_choices(3) and "float" in space.format_choices(4)
    assert not any(c.number_format == "float" and c.bits < 4 for c in space.kernel_configs("conv"))


def test_pow2_at_two_bits_is_int_sym_and_is_dropped_only_when_int_sym_is_offered():
    assert not valid_format(2, "pow2", ("int_sym", "pow2"))
    assert valid_format(2, "pow2", ("pow2",))
    assert valid_format(3, "pow2", ("int_sym", "pow2"))


def test_keep_ratios_only_on_prunable_kernels_and_groups_only_on_long_rows():
    space = SearchSpace([CONV, FC], SpaceConfig())
    assert space.keep_choices("conv") == (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)
    assert space.keep_choices("fc") == (1.0,)
    assert "per_group:32" in space.granularity_choices("conv")
    assert space.granularity_choices("fc") == ("per_tensor", "per_channel")  # 16 columns <= 32


def test_size_counts_every_valid_plan_and_enumerate_agrees():
    space = SearchSpace([CONV, FC], SpaceConfig(bits=(2, 4), keep_ratios=(1, 0.5), formats=("int_sym", "float"),
                                                granularities=("per_channel",)))
    # conv: bits 2 -> int_sym; bits 4 -> int_sym, float: 3 pairs x 2 keeps; fc: 3 pairs x 1 keep
    assert space.size() == 6 * 3
    plans = list(space.enumerate())
    assert len(plans) == 18 and len({p.content_hash() for p in plans}) == 18
    assert all(space.contains(p) for p in plans)


def test_samples_stay_in_the_space_and_repeat_with_the_seed():
    space = SearchSpace([CONV, FC], SpaceConfig())
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    b = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a == b and all(space.contains(p) for p in a)


def test_bits_only_sampling_is_the_historical_random_stream():
    layers = [LayerSpec(f"l{i}", "linear", (4, 4), 16) for i in range(4)]
    space = SearchSpace(layers, SpaceConfig.bits_only((2, 3, 4, 5, 8)))
    rng_new, rng_old = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(20):
        old = [int(b) for b in rng_old.choice((2, 3, 4, 5, 8), size=4)]
        assert space.sample(rng_new).bits() == old


def test_contains_and_check_name_the_kernel_outside_the_space():
    space = SearchSpace([CONV, FC], SpaceConfig.bits_only((2, 4)))
    plan = Plan({"conv": LayerConfig(4), "fc": LayerConfig(3)})
    assert not space.contains(plan)
    with pytest.raises(ValueError, match="kernel 'fc'"):
        space.check(plan)
    with pytest.raises(ValueError, match="missing"):
        space.check(Plan({"conv": LayerConfig(4)}))


def test_json_round_trip_and_cli_parsing():
    cfg = SpaceConfig.parse(bits="8,2,4", keep="0.5,1", formats="int_sym,pow2", granularity="per_group(16),per_tensor")
    assert cfg.bits == (2, 4, 8) and cfg.keep_ratios == (1.0, 0.5)
    assert cfg.granularities == ("per_group:16", "per_tensor")
    assert SpaceConfig.from_dict(cfg.to_dict()) == cfg
    space = SearchSpace([CONV, FC], cfg)
    assert SearchSpace.from_dict(space.to_dict(), [CONV, FC]) == space
    assert space.to_dict()["choices_per_kernel"] == {n: len(space.kernel_configs(n)) for n in ("conv", "fc")}


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": "2,x"}, "--bits must be comma-separated integers"),
    ({"keep": "1,0"}, "keep_ratios must be in \\(0, 1\\]"),
    ({"formats": "int8"}, "formats must be a non-empty subset"),
    ({"granularity": "per_row"}, "unknown granularity 'per_row'"),
    ({"granularity": "per_group:x"}, "group size must be an integer"),
    ({"bits": "2,3", "formats": "float"}, "no valid \\(bits, format\\) pair"),
])
def test_bad_space_options_are_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpaceConfig.parse(**kwargs)


def test_parse_granularity_rejects_a_size_on_other_granularities():
    assert parse_granularity("per_group") == ("per_group", 32)
    with pytest.raises(ValueError, match="only per_group"):
        parse_granularity("per_channel:8")


def test_uniform_plan_falls_back_to_per_channel_on_short_rows_and_prunes_only_prunable():
    space = SearchSpace([CONV, FC], SpaceConfig())
    plan = space.uniform_plan(4, 0.5, "int_sym", "per_group:32")
    assert plan["conv"] == LayerConfig(4, 0.5, "int_sym", "per_group", 32)
    assert plan["fc"] == LayerConfig(4, 1.0, "int_sym", "per_channel")
    assert space.uniform_plan(2, 1.0, "float", "per_channel") is None
