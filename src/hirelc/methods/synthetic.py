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


@dataclass(frozen=True)
class JointSyntheticProblem:
    """A joint-space problem (bits x keep x format x granularity) with an analytic accuracy:

        accuracy = reference - sum_k s_k * (2^-(bits_k - 1) * f(format, granularity)
                                            + 4 * (1 - keep_k)^2)

    s_k: each kernel's sensitivity (one kernel is 10x more sensitive); f: 1 for int_sym per
    channel, 1.5 per tensor, 0.8 per group, 0.9 for float/int_asym (finer grids help).
    Meant for tests and demos of the joint search: smooth, with a clear best allocation
    under a size budget (spend bytes on the sensitive kernel).

    >>> p = joint_problem()
    >>> from hirelc.plan import LayerConfig, Plan
    >>> p.evaluate(Plan({s.name: LayerConfig(8) for s in p.layers})) > 0.94
    True
    """

    layers: tuple[LayerSpec, ...]
    sensitivity: tuple[float, ...]
    reference_accuracy: float = 0.95

    def evaluate(self, plan: Plan) -> float:
        loss = 0.0
        for spec, s in zip(self.layers, self.sensitivity):
            c = plan[spec.name]
            grain = {"per_tensor": 1.5, "per_channel": 1.0, "per_group": 0.8}[c.granularity]
            fmt = 1.0 if c.number_format in ("int_sym", "pow2") else 0.9
            loss += s * (2.0 ** -(c.bits - 1) * grain * fmt + 4 * (1 - c.keep_ratio) ** 2)
        return round(max(0.05, self.reference_accuracy - loss), 10)


def joint_problem() -> JointSyntheticProblem:
    """Four kernels of a small CNN-like chain; conv1 and fc1 prunable, conv2 sensitive."""
    layers = (
        LayerSpec("conv1", "conv2d", (32, 16, 3, 3), n_macs=144 * 32 * 64, weight_std=0.05, index=0,
                  prunable=True, consumers=("conv2",)),
        LayerSpec("conv2", "conv2d", (64, 32, 3, 3), n_macs=288 * 64 * 16, weight_std=0.03, index=1),
        LayerSpec("fc1", "linear", (128, 256), n_macs=32_768, weight_std=0.02, index=2, prunable=True,
                  consumers=("fc2",)),
        LayerSpec("fc2", "linear", (10, 128), n_macs=1_280, weight_std=0.04, index=3),
    )
    return JointSyntheticProblem(layers, sensitivity=(0.02, 0.2, 0.02, 0.02))
