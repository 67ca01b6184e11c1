import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hirelc import LayerConfig, LayerSpec, Plan
from hirelc.plan import GRANULARITIES, NUMBER_FORMATS


def _specs():
    return [
        LayerSpec("conv1", "conv2d", (20, 1, 5, 5), n_macs=288_000, prunable=True),
        LayerSpec("fc2", "linear", (10, 500), n_macs=5_000),
    ]


configs = st.builds(
    LayerConfig,
    bits=st.integers(4, 8),
    keep_ratio=st.floats(0.01, 1.0),
    number_format=st.sampled_from(NUMBER_FORMATS),
    granularity=st.sampled_from(GRANULARITIES),
    group_size=st.one_of(st.none(), st.integers(1, 128)),
)


@given(st.dictionaries(st.text(min_size=1, max_size=12), configs, max_size=6))
def test_json_round_trip_and_hash_is_stable(layers):
    plan = Plan(layers)
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.content_hash() == plan.content_hash()


def test_hash_ignores_key_order_but_not_values():
    a = Plan({"x": LayerConfig(4), "y": LayerConfig(2)})
    b = Plan({"y": LayerConfig(2), "x": LayerConfig(4)})
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != a.replace("x", bits=3).content_hash()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"bits": 0}, "bits must be in 1..8, got 0"),
        ({"bits": 9}, "bits must be in 1..8, got 9"),
        ({"bits": 4, "keep_ratio": 0.0}, "keep_ratio must be in (0, 1], got 0.0"),
        ({"bits": 4, "keep_ratio": 1.5}, "keep_ratio must be in (0, 1], got 1.5"),
        ({"bits": 4, "number_format": "int3"}, "unknown number_format 'int3'"),
        ({"bits": 4, "granularity": "per_row"}, "unknown granularity 'per_row'"),
        ({"bits": 3, "number_format": "float"}, "'float' needs 4..8 bits, got 3"),
    ],
)
def test_invalid_values_name_layer_and_value(kwargs, fragment):
    with pytest.raises(ValueError) as e:
        Plan.from_dict({"conv1": kwargs})
    assert "conv1" in str(e.value) and fragment in str(e.value)


def test_per_group_gets_default_group_size():
    assert LayerConfig(4, granularity="per_group").group_size == 32
    assert LayerConfig(4, granularity="per_channel", group_size=16).group_size is None


def test_uniform_prunes_only_prunable_layers():
    plan = Plan.uniform(_specs(), bits=2, keep_ratio=0.5)
    assert plan["conv1"].keep_ratio == 0.5 and plan["fc2"].keep_ratio == 1.0
    assert plan.bits() == [2, 2]


def test_validate_against_unknown_layer_and_unprunable():
    plan = Plan({"conv9": LayerConfig(4)})
    with pytest.raises(ValueError, match="'conv9'"):
        plan.validate_against(["conv1", "fc2"])
    with pytest.raises(ValueError, match="'fc2': keep_ratio 0.5"):
        Plan({"fc2": LayerConfig(4, 0.5)}).validate_against(["conv1", "fc2"], prunable=["conv1"])


def test_from_json_accepts_bit_shorthand_and_result_file():
    plan = Plan.from_json(json.dumps({"plan": {"conv1": 3, "fc2": {"bits": 5}}}))
    assert plan.bits() == [3, 5]
    with pytest.raises(ValueError, match="not valid JSON"):
        Plan.from_json("{oops")


def test_from_bits_checks_lengths():
    with pytest.raises(ValueError, match="2 layer names but 1 bitwidths"):
        Plan.from_bits(["a", "b"], [4])


def test_layerspec_defaults_and_validation():
    s = LayerSpec("fc1", "linear", (500, 800), n_macs=400_000)
    assert s.n_params == 400_000 and s.block == "fc1" and s.module == "fc1"
    assert LayerSpec.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown kind 'lstm'"):
        LayerSpec("x", "lstm", (4, 4), n_macs=0)
    with pytest.raises(ValueError, match="invalid weight_shape"):
        LayerSpec("x", "linear", (0, 4), n_macs=0)
