"""The joint search generalised the problem; bits-only searches must not have changed.

The expected values were produced by the code before the joint search space existed (main
f63d037): the same seed gives the same evaluations in the same order, the same plan and the
same stop. A hash of the ordered plan hashes pins the whole trajectory.
"""

import hashlib
import json

import pytest

from hirelc.methods import search
from hirelc.methods.synthetic import sensitive_layer_problem


def trajectory(method, seed, budget, **options):
    p = sensitive_layer_problem()
    r = search(list(p.layers), p.evaluate, method=method, bits=(2, 3, 4, 5, 8), reference_accuracy=p.reference_accuracy,
               max_evaluations=budget, seed=seed, **options)
    digest = hashlib.sha256(json.dumps([ev.plan_hash for ev in r.history]).encode()).hexdigest()[:12]
    return r.plan.bits(), r.n_evaluations, r.stop_reason, len(r.episodes), digest


@pytest.mark.slow
@pytest.mark.parametrize("seed, options, expected", [
    (0, {}, ([3, 5, 3, 4], 40, "budget", 40, "4a15bf3b319f")),
    (0, {"action_space": "restricted"}, ([4, 5, 2, 3], 40, "budget", 42, "ba5ec34552e1")),
    (1, {}, ([4, 5, 4, 3], 40, "budget", 44, "8026eeb67815")),
])
def test_releq_trajectories_are_those_of_the_bits_only_code(seed, options, expected):
    assert trajectory("releq", seed, 40, **options) == expected


def test_random_and_uniform_trajectories_are_those_of_the_bits_only_code():
    assert trajectory("random", 4, 30)[:3] + trajectory("random", 4, 30)[4:] == ([4, 5, 3, 3], 30, "budget",
                                                                                   "3bcea1f1a3b0")
    assert trajectory("uniform", 4, 30)[4] == "acc36b559a5e"
