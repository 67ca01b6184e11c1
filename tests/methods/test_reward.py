"""Seed 000 §2.4 reward, checked against values computed by hand."""

import pytest

from hirelc.methods.releq.reward import (
    RewardParams,
    difference_reward,
    make_reward,
    ratio_reward,
    shaped_reward,
)


@pytest.mark.parametrize(
    "state_acc, state_q, expected",
    [
        # 1 - 0.25^0.2 = 1 - 0.757858 = 0.242142; StateAcc = 1 -> discount 1^0.4 = 1
        (1.0, 0.25, 0.242142),
        # discount 0.5^(0.4/0.5) = 0.5^0.8 = 0.574349 -> 0.242142 * 0.574349
        (0.5, 0.25, 0.139074),
        # exactly at th = 0.4 is still accepted: 0.4^(0.4/0.4) = 0.4 -> 0.242142 * 0.4
        (0.4, 0.25, 0.096857),
        # above the reference: 1.2^(1/3) = 1.062659 -> 0.242142 * 1.062659
        (1.2, 0.25, 0.257314),
        # nothing quantized (StateQ = 1): no reward whatever the accuracy
        (1.0, 1.0, 0.0),
        # 1 - 0.5^0.2 = 1 - 0.870551
        (1.0, 0.5, 0.129449),
    ],
)
def test_shaped_reward_hand_computed(state_acc, state_q, expected):
    assert shaped_reward(state_acc, state_q) == pytest.approx(expected, abs=1e-6)


def test_below_threshold_is_minus_one_whatever_the_quantization():
    assert shaped_reward(0.39999, 0.25) == -1.0
    assert shaped_reward(0.0, 0.01) == -1.0
    assert shaped_reward(0.5, 0.25, th=0.6) == -1.0  # th is a parameter


def test_reward_grows_as_bits_shrink_and_as_accuracy_grows():
    assert shaped_reward(0.9, 0.3) > shaped_reward(0.9, 0.6)
    assert shaped_reward(0.95, 0.3) > shaped_reward(0.8, 0.3)


def test_ablation_rewards_and_factory():
    assert ratio_reward(0.9, 0.5) == pytest.approx(1.8)
    assert difference_reward(0.9, 0.5) == pytest.approx(0.4)
    assert make_reward("ratio")(0.9, 0.5) == pytest.approx(1.8)
    assert make_reward("difference")(0.9, 0.5) == pytest.approx(0.4)
    custom = make_reward("shaped", RewardParams(a=1.0, b=0.0, th=0.1))
    assert custom(0.5, 0.25) == pytest.approx(0.75)  # 1 - 0.25^1, discount 0.5^0 = 1
    with pytest.raises(ValueError, match="unknown reward"):
        make_reward("product")


@pytest.mark.parametrize("kwargs", [{"a": 0}, {"b": -1}, {"th": 0}, {"th": 1.5}])
def test_reward_params_validated(kwargs):
    with pytest.raises(ValueError):
        RewardParams(**kwargs)
