"""A synthetic bitwidth-search problem with a known answer, for tests, benchmarks and demos.

Four layers of comparable cost (so every layer's bitwidth matters to StateQ, seed 000
eq. 1); each layer has a bitwidth it needs, and every bit below it costs `penalty` of
absolute accuracy. One layer ("conv2") is *sensitive*: it needs 5 bits while the others
need 3. With the default penalty every missing bit costs more reward than the bits save,
so the best plan under the seed 000 §2.4 reward is exactly the needed bits, (3, 5, 3, 3)
(unique over {1..8}^4 and over {2, 3, 4, 5, 8}^4; checked by enumeration in the tests).

>>> problem = sensitive_layer_problem()
>>> problem.evaluate(problem.plan_for([3, 5, 3, 3])), problem.evaluate(problem.plan_for([3, 4, 3, 3]))
(0.95, 0.65)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hirelc.inventory.spec import LayerSpec
from hirelc.plan import Plan


@dataclass(frozen=True)
class SyntheticProblem:
    """Layers plus an analytic `plan -> accuracy` function with known per-layer needs."""

    layers: tuple[LayerSpec, ...]
    needed_bits: tuple[int, ...]
    reference_accuracy: float = 0.95
    penalty: float = 0.3  # absolute accuracy lost per bit below a layer's need
    floor: float = 0.05  # accuracy never drops below this (chance level)

    def evaluate(self, plan: Plan) -> float:
        """Accuracy of `plan`: reference minus `penalty` per missing bit, floored."""
        missing = sum(max(0, need - plan[s.name].bits) for s, need in zip(self.layers, self.needed_bits))
        return round(max(self.floor, self.reference_accuracy - self.penalty * missing), 10)

    def plan_for(self, bits: Sequence[int]) -> Plan:
        return Plan.from_bits([s.name for s in self.layers], bits)


def sensitive_layer_problem() -> SyntheticProblem:
    """The four-layer problem of the module docstring (a small CNN's shapes)."""
    layers = (
        LayerSpec("conv1", "conv2d", (64, 32, 3, 3), n_macs=18_432 * 64, weight_std=0.05, index=0),
        LayerSpec("conv2", "conv2d", (64, 64, 3, 3), n_macs=36_864 * 16, weight_std=0.03, index=1),
        LayerSpec("fc1", "linear", (256, 128), n_macs=32_768, weight_std=0.02, index=2),
        LayerSpec("fc2", "linear", (100, 256), n_macs=25_600, weight_std=0.04, index=3),
    )
    return SyntheticProblem(layers, needed_bits=(3, 5, 3, 3))
