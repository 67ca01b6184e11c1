"""Layer-specific, static state features of seed 000 §2.2 ("Layer index, Layer
Dimensions, Weight Statistics"), each scaled into [0, 1].

Sizes span orders of magnitude (a 500-weight conv next to a 400k-weight FC), so they are
log-scaled and divided by the network's largest: log(1 + x) / log(1 + max_l x).

>>> from hirelc.inventory.spec import LayerSpec
>>> f = static_features([LayerSpec("a", "linear", (10, 10), n_macs=100),
...                      LayerSpec("b", "linear", (10, 100), n_macs=1000)])
>>> f.shape, float(f.max()) <= 1.0
((2, 7), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hirelc.cost import E_MEM_OVER_E_MACC
from hirelc.inventory.spec import LayerSpec

STATIC_FEATURES = (
    "log_out_channels",  # weight rows: output channels / neurons
    "log_fan_in",  # weight columns: in_channels/groups x kernel size, or in_features
    "log_params",  # n_w of eq. 1
    "log_macs",  # n_MAcc of eq. 1
    "cost_share",  # this layer's weight in eq. 1: (n_w * E_mem/E_MAcc + n_MAcc) / sum over layers
    "weight_std",  # seed 000 §2.2: "weights statistics (e.g. standard deviation)"
    "weight_range",  # max - min: the range a uniform quantizer has to cover
)


def static_features(layers: Sequence[LayerSpec]) -> np.ndarray:
    """One row of `STATIC_FEATURES` per layer, every value in [0, 1]."""
    sizes = np.array(
        [
            [s.out_channels, math.prod(s.weight_shape[1:]), s.n_params, s.n_macs]
            for s in layers
        ],
        dtype=np.float64,
    )  # (L, 4)
    cost = sizes[:, 2] * E_MEM_OVER_E_MACC + sizes[:, 3]  # (L,) seed 000 eq. 1 per-layer cost
    stats = np.array([[s.weight_std, s.weight_max - s.weight_min] for s in layers], dtype=np.float64)
    columns = [_log_scaled(sizes[:, j]) for j in range(4)]
    columns.append(cost / cost.sum() if cost.sum() > 0 else np.zeros(len(layers)))
    columns += [_relative(np.abs(stats[:, 0])), _relative(np.abs(stats[:, 1]))]
    return np.clip(np.stack(columns, axis=1), 0.0, 1.0)  # (L, F)


def _log_scaled(x: np.ndarray) -> np.ndarray:
    top = math.log1p(float(x.max()))
    return np.log1p(x) / top if top > 0 else np.zeros_like(x)


def _relative(x: np.ndarray) -> np.ndarray:
    top = float(x.max())
    return x / top if top > 0 and math.isfinite(top) else np.zeros_like(x)
