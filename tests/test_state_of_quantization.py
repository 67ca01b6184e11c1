import pytest

from hirelc import LayerSpec
from hirelc.cost import state_of_quantization


def test_state_of_quantization_hand_computed():
    # seed 000 eq. 1 with E_mem/E_MAcc = 120:
    # layer a: cost = 10*120 + 1000 = 2200 ; layer b: cost = 100*120 + 50 = 12050
    # bits (2, 8), bits_max 8: (2200*2 + 12050*8) / ((2200 + 12050) * 8) = 100800 / 114000
    a = LayerSpec("a", "conv2d", (10, 1, 1, 1), n_macs=1000)
    b = LayerSpec("b", "linear", (10, 10), n_macs=50)
    got = state_of_quantization([a, b], {"a": 2, "b": 8}, bits_max=8)
    assert got == pytest.approx(100_800 / 114_000)


def test_all_at_max_is_one_and_missing_layers_count_at_max():
    a = LayerSpec("a", "linear", (4, 4), n_macs=16)
    assert state_of_quantization([a], {}, bits_max=8) == 1.0
    assert state_of_quantization([a], {"a": 4}, bits_max=8) == 0.5
    with pytest.raises(ValueError):
        state_of_quantization([a], {}, bits_max=0)
