"""`DamageModel`: the expected loss increase of giving a kernel a config (pure arithmetic).

Used to steer, never to report: budget repair, the greedy (HAWQ-style) baseline and the
HiReLC agents' priors rank choices by damage per byte saved.

With the diagonal empirical Fisher F standing in for the Hessian (Optimal Brain Damage,
LeCun et al. 1990), a weight perturbation d costs about 1/2 sum_i F_i d_i^2. For kernel k:

- quantization (keep 1):   D_q(k, c) = 1/2 * trace(F_k) * mse_k(c)
  where mse_k(c) is the mean squared quantization error of k's weight under config c
  (measured by quantizing the weight: `hirelc.evaluate.calibrate.measure_damage_model`),
  assuming F and the error are uncorrelated across weights;
- pruning to keep r:       D_p(k, r) = the sum of the smallest per-unit saliencies
  1/2 sum_rows F w^2 over the units removed (the rows that Fisher-importance pruning drops);
- both:                    D(k, c) = r * D_q(k, c at keep 1) + D_p(k, r)
  (only the kept fraction of the weights is quantized).

>>> model = DamageModel(quant={"fc": {(4, "int_sym", "per_channel", None): 0.02,
...                                   (2, "int_sym", "per_channel", None): 0.5}},
...                     prune={"fc": {1.0: 0.0, 0.5: 0.1}})
>>> from hirelc.plan import LayerConfig
>>> model.of("fc", LayerConfig(bits=4)), model.of("fc", LayerConfig(bits=2, keep_ratio=0.5))
(0.02, 0.35)
"""

from __future__ import annotations

from collections.abc import Mapping
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
