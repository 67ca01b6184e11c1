"""ReLeQ reward functions, seed 000 §2.4 ("Asymmetric Reward Formulation for Accuracy").

Pure functions of the two network-specific state variables of §2.2:

- StateAcc (eq. 2): current accuracy / full-precision accuracy,
- StateQ   (eq. 1): `hirelc.cost.state_of_quantization` of the current bitwidths.

The proposed formulation (Fig. 1b(i)) is asymmetric: accuracy matters more than bits.
The two alternatives the paper ablates against are direct division (Fig. 1b(ii)) and
direct subtraction (Fig. 1b(iii)).

>>> round(shaped_reward(state_acc=1.0, state_q=0.25), 6)
0.242142
>>> shaped_reward(state_acc=0.3, state_q=0.25)
-1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

RewardFn = Callable[[float, float], float]  # (state_acc, state_q) -> reward


@dataclass(frozen=True)
class RewardParams:
    """Shaping constants of seed 000 §2.4; "a = 0.2, b = 0.4, th = 0.4 provide reasonable
    convergence times and accuracy-quantization trade-off; thus, we fixed them"."""

    a: float = 0.2
    b: float = 0.4
    th: float = 0.4

    def __post_init__(self) -> None:
        if not (self.a > 0 and math.isfinite(self.a)):
            raise ValueError(f"reward exponent a must be a positive number, got {self.a!r}")
        if not (self.b >= 0 and math.isfinite(self.b)):
            raise ValueError(f"reward exponent b must be a non-negative number, got {self.b!r}")
        if not 0 < self.th <= 1:
            raise ValueError(f"accuracy threshold th must be in (0, 1], got {self.th!r}")


def shaped_reward(
    state_acc: float, state_q: float, a: float = 0.2, b: float = 0.4, th: float = 0.4
) -> float:
    """The proposed ReLeQ reward, seed 000 §2.4 (Fig. 1b(i)):

        reward = 1 - StateQ^a
        if StateAcc < th: reward = -1
        else:             reward = reward * StateAcc^(b / StateAcc)

    `th` is the relative accuracy "below which the accuracy loss may not be recoverable";
    exactly `th` is still acceptable (the paper's test is a strict `<`).

    >>> shaped_reward(1.0, 1.0)  # nothing quantized below the top bitwidth: no reward
    0.0
    """
    if state_acc < th:
        return -1.0
    reward = 1.0 - state_q**a
    acc_discount = state_acc ** (b / state_acc)
    return reward * acc_discount


def ratio_reward(state_acc: float, state_q: float) -> float:
    """Ablation, seed 000 Fig. 1b(ii): StateAcc / StateQ.

    >>> ratio_reward(0.9, 0.5)
    1.8
    """
    return state_acc / state_q


def difference_reward(state_acc: float, state_q: float) -> float:
    """Ablation, seed 000 Fig. 1b(iii): StateAcc - StateQ.

    >>> difference_reward(0.9, 0.5)
    0.4
    """
    return state_acc - state_q


REWARD_KINDS = ("shaped", "ratio", "difference")


def make_reward(kind: str = "shaped", params: RewardParams | None = None) -> RewardFn:
    """The reward function named `kind` ("shaped", "ratio" or "difference").

    >>> make_reward("difference")(1.0, 0.25)
    0.75
    """
    if kind == "shaped":
        p = params or RewardParams()
        return lambda acc, q: shaped_reward(acc, q, p.a, p.b, p.th)
    if kind == "ratio":
        return ratio_reward
    if kind == "difference":
        return difference_reward
    raise ValueError(f"unknown reward {kind!r}; expected one of {REWARD_KINDS}")
