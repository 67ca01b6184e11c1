"""`DamageModel`: the expected loss increase of giving a kernel a config (pure arithmetic).

Used to steer, never to report: budget repair, the greedy (HAWQ-style) baseline and the
HiReLC agents' priors rank choices by damage per byte saved, so the quantization and the
pruning terms must be in the same units (loss increase) and right in scale, not just in order.

For kernel k:
- quantization (keep 1):   D_q(k, c);
- pruning to keep r:       D_p(k, r), the cost of removing the units that pruning removes;
- both:                    D(k, c) = r * D_q(k, c at keep 1) + D_p(k, r)
  (only the kept fraction of the weights is quantized).

Estimates (`hirelc.evaluate.calibrate.measure_damage_model`; model-free searches use only
these): with the diagonal Fisher F standing in for the Hessian (Optimal Brain Damage, LeCun
et al. 1990), D_q = 1/2 sum F (Q(w) - w)^2 over the weight and D_p = the sum of 1/2 sum F w^2
over the removed rows. On a well-fit model both are far below the real loss increase (its
gradients are tiny; 2 bits or half a layer is no small perturbation), and removing channels
also loses their biases and BatchNorm shifts, which OBD does not see. On cnn1d, even with the
per-sample Fisher (and channel removal scored by the activation Fisher, which sees BatchNorm),
the pruning estimates were 850-2,700x below the measured loss increase, the quantization ones
450-950x: a knapsack over them over-prunes (benchmarks/RESULTS.md, "Damage model").

So on a model (`hirelc.guidance.measure_damage`) the tables are `calibrated` to measured loss
increases (`hirelc.evaluate.loss_probe`): D_p is measured for every keep (the evaluator's own
removal), D_q for one quantizer per bitwidth, and every other quantizer of the kernel is placed
between those anchors by its Fisher estimate (`through_anchors`): the Fisher ranks one kernel's
quantizers well (Spearman 0.82-0.96 against measurement on cnn1d), not kernels against each other.

>>> model = DamageModel(quant={"fc": {(4, "int_sym", "per_channel", None): 0.02,
...                                   (2, "int_sym", "per_channel", None): 0.5}},
...                     prune={"fc": {1.0: 0.0, 0.5: 0.1}})
>>> from hirelc.plan import LayerConfig
>>> model.of("fc", LayerConfig(bits=4)), model.of("fc", LayerConfig(bits=2, keep_ratio=0.5))
(0.02, 0.35)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from hirelc.plan import LayerConfig

QuantKey = tuple[int, str, str, "int | None"]  # (bits, number_format, granularity, group_size)


def quant_key(cfg: LayerConfig) -> QuantKey:
    """The part of a config that determines its quantization error."""
    return (cfg.bits, cfg.number_format, cfg.granularity, cfg.group_size)


@dataclass(frozen=True)
class DamageModel:
    """quant: kernel -> QuantKey -> D_q at keep 1; prune: kernel -> keep ratio -> D_p."""

    quant: Mapping[str, Mapping[QuantKey, float]]
    prune: Mapping[str, Mapping[float, float]]

    def of(self, name: str, cfg: LayerConfig) -> float:
        """Expected damage of kernel `name` at `cfg` (see the module docstring)."""
        try:
            d_q = self.quant[name][quant_key(cfg)]
        except KeyError:
            raise ValueError(f"kernel {name!r}: no damage estimate for {cfg}; was the damage model "
                             "measured on this search space?") from None
        d_p = self.prune.get(name, {}).get(cfg.keep_ratio, 0.0 if cfg.keep_ratio == 1.0 else None)
        if d_p is None:
            raise ValueError(f"kernel {name!r}: no pruning damage estimate for keep_ratio {cfg.keep_ratio}")
        return cfg.keep_ratio * d_q + d_p

    def total(self, plan: Mapping[str, LayerConfig]) -> float:
        """Sum of the kernels' damages: the additive estimate of the plan's loss increase."""
        return sum(self.of(n, c) for n, c in plan.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "quant": {k: [[*key, v] for key, v in table.items()] for k, table in self.quant.items()},
            "prune": {k: [[r, v] for r, v in table.items()] for k, table in self.prune.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DamageModel":
        quant = {k: {(int(b), f, g, None if s is None else int(s)): float(v) for b, f, g, s, v in rows}
                 for k, rows in d["quant"].items()}
        prune = {k: {float(r): float(v) for r, v in rows} for k, rows in d["prune"].items()}
        return cls(quant, prune)


def through_anchors(estimates: Mapping[Hashable, float], measured: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Estimates mapped onto the measured scale: every key with a measured value (an anchor)
    takes it; every other key is interpolated between the two anchors whose estimates bracket
    its own, linearly in the measured value over log(estimate), and scaled in proportion to
    the nearest anchor beyond the anchors' range. An estimate <= 0 stays 0. Without usable
    anchors the estimates are returned as they are.

    >>> est = {"2b": 1.0, "3b": 0.1, "2b-pow2": 0.5, "3b-pow2": 0.01}
    >>> out = through_anchors(est, {"2b": 8.0, "3b": 2.0})
    >>> out["2b"], out["3b"], round(out["2b-pow2"], 3), round(out["3b-pow2"], 3)
    (8.0, 2.0, 6.194, 0.2)
    """
    points = sorted((estimates[k], m) for k, m in measured.items() if k in estimates and estimates[k] > 0)
    if not points:
        return dict(estimates)
    out = {}
    for key, e in estimates.items():
        if key in measured:
            out[key] = float(measured[key])
        elif e <= 0:
            out[key] = 0.0
        else:
            out[key] = _interpolate(points, e)
    return out


def _interpolate(points: list[tuple[float, float]], e: float) -> float:
    if e <= points[0][0]:
        return points[0][1] * e / points[0][0]
    if e >= points[-1][0]:
        return points[-1][1] * e / points[-1][0]
    for (e0, m0), (e1, m1) in zip(points, points[1:]):
        if e0 <= e <= e1:
            t = 0.0 if e1 == e0 else (math.log(e) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return m0 + t * (m1 - m0)
    raise AssertionError("unreachable: points are sorted and bracket e")


def calibrated(estimate: DamageModel, quant: Mapping[str, Mapping[QuantKey, float]],
               prune: Mapping[str, Mapping[float, float]]) -> DamageModel:
    """`estimate` put on the measured scale: per kernel, its quantization table passed
    `through_anchors` of the measured `quant` anchors (one config per bitwidth, say), and its
    pruning table replaced by the measured `prune` table where one is given.

    >>> k2, k4 = (2, "int_sym", "per_tensor", None), (4, "int_sym", "per_tensor", None)
    >>> est = DamageModel({"fc": {k2: 0.002, k4: 0.0001}}, {"fc": {1.0: 0.0, 0.5: 0.0003}})
    >>> m = calibrated(est, {"fc": {k2: 0.9}}, {"fc": {1.0: 0.0, 0.5: 1.5}})
    >>> round(m.of("fc", LayerConfig(bits=4, granularity="per_tensor")), 3), m.prune["fc"][0.5]
    (0.045, 1.5)
    """
    q = {n: through_anchors(table, quant.get(n, {})) for n, table in estimate.quant.items()}
    p = {n: dict(prune[n]) if n in prune else dict(table) for n, table in estimate.prune.items()}
    p |= {n: dict(t) for n, t in prune.items() if n not in p}
    return DamageModel(q, p)
