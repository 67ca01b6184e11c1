"""Static layer features of seed 000 §2.2: scaled into [0, 1], finite for hand-built specs."""

import numpy as np
import pytest

from hirelc.cost import E_MEM_OVER_E_MACC
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.releq.features import STATIC_FEATURES, static_features


def test_features_are_log_scaled_relative_to_the_largest_layer():
    small = LayerSpec("a", "linear", (10, 10), n_macs=100, weight_std=0.1, weight_min=-0.5, weight_max=0.5)
    big = LayerSpec("b", "linear", (100, 1000), n_macs=100_000, weight_std=0.05, weight_min=-0.2, weight_max=0.2)
    f = static_features([small, big])
    assert f.shape == (2, len(STATIC_FEATURES))
    col = {name: i for i, name in enumerate(STATIC_FEATURES)}
    assert f[1, col["log_params"]] == 1.0
    assert f[0, col["log_params"]] == pytest.approx(np.log1p(100) / np.log1p(100_000))
    costs = np.array([100 * E_MEM_OVER_E_MACC + 100, 100_000 * E_MEM_OVER_E_MACC + 100_000])
    assert f[:, col["cost_share"]] == pytest.approx(costs / costs.sum())
    assert f[:, col["weight_std"]] == pytest.approx([1.0, 0.5])
    assert f[:, col["weight_range"]] == pytest.approx([1.0, 0.4])


def test_hand_built_specs_without_statistics_give_finite_zeros():
    f = static_features([LayerSpec("a", "conv2d", (4, 1, 3, 3), n_macs=0)])
    assert np.isfinite(f).all() and f.min() >= 0.0 and f.max() <= 1.0
    assert f[0, STATIC_FEATURES.index("weight_std")] == 0.0
