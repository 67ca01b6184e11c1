"""DamageModel arithmetic and its calibration onto measured loss increases."""

import math

import pytest

from hirelc.methods.damage import DamageModel, calibrated, through_anchors
from hirelc.plan import LayerConfig

K2, K3, K4 = ((b, "int_sym", "per_channel", None) for b in (2, 3, 4))
P2 = (2, "pow2", "per_channel", None)


def test_anchors_keep_their_measured_values_and_others_are_interpolated_in_log_estimate():
    est = {K2: 1.0, K3: 0.01, P2: 0.1}  # P2's estimate is halfway between K3 and K2 in log
    out = through_anchors(est, {K2: 9.0, K3: 1.0})
    assert out[K2] == 9.0 and out[K3] == 1.0
    assert out[P2] == pytest.approx(5.0)


def test_outside_the_anchors_the_value_scales_with_the_estimate():
    out = through_anchors({K2: 4.0, K3: 1.0, K4: 0.1, P2: 8.0}, {K2: 2.0, K3: 1.0})
    assert out[K4] == pytest.approx(0.1) and out[P2] == pytest.approx(4.0)


def test_a_zero_estimate_stays_zero_and_no_anchor_leaves_the_estimates():
    assert through_anchors({K2: 1.0, K4: 0.0}, {K2: 3.0})[K4] == 0.0
    assert through_anchors({K2: 1.0, K4: 0.5}, {}) == {K2: 1.0, K4: 0.5}
    assert through_anchors({K2: 0.0}, {K2: 3.0}) == {K2: 0.0}  # an anchor with no estimate is no scale


def test_interpolation_is_monotone_when_the_anchors_are():
    est = {("k", i): 10 ** (-i / 4) for i in range(17)}
    out = through_anchors(est, {("k", 0): 5.0, ("k", 8): 0.5, ("k", 16): 0.01})
    values = [out[("k", i)] for i in range(17)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert all(math.isfinite(v) and v >= 0 for v in values)


def test_calibrated_replaces_the_pruning_table_and_rescales_quantization():
    est = DamageModel({"fc": {K2: 0.002, K4: 0.0001}, "head": {K2: 0.01}},
                      {"fc": {1.0: 0.0, 0.5: 0.0003}, "head": {1.0: 0.0}})
    m = calibrated(est, {"fc": {K2: 0.9}}, {"fc": {1.0: 0.0, 0.5: 1.5}})
    assert m.of("fc", LayerConfig(bits=2)) == 0.9
    assert m.of("fc", LayerConfig(bits=4)) == pytest.approx(0.9 * 0.0001 / 0.002)
    assert m.of("fc", LayerConfig(bits=2, keep_ratio=0.5)) == pytest.approx(0.5 * 0.9 + 1.5)
    assert m.of("head", LayerConfig(bits=2)) == 0.01  # no anchor measured: the estimate stays


def test_round_trip_through_dict():
    m = DamageModel({"fc": {K2: 0.5, P2: 0.25}}, {"fc": {1.0: 0.0, 0.5: 0.1}})
    assert DamageModel.from_dict(m.to_dict()) == m
