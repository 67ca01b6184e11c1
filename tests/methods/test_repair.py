"""Budget repair: always feasible when possible, idempotent, deterministic, Fisher-guided."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc.evaluate.calibrate import measure_damage_model
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.repair import InfeasibleTarget, Repairer, floor_plan, repair, top_plan
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig


def chain(widths, prunable=True):
    """A plain MLP a -> b -> c ...: each kernel's outputs feed the next one's columns."""
    names = [f"k{i}" for i in range(len(widths) - 1)]
    return tuple(
        LayerSpec(n, "linear", (widths[i + 1], widths[i]), widths[i] * widths[i + 1],
                  prunable=prunable and i < len(names) - 1,
                  consumers=(names[i + 1],) if i < len(names) - 1 else ())
        for i, n in enumerate(names)
    )


def setup(layers, config=SpaceConfig(), unit_bytes=None, fisher=None):
    space = SearchSpace(layers, config)
    sizes = SizeModel(layers, fixed_bytes=100, unit_bytes=unit_bytes or {})
    return space, sizes, measure_damage_model(space, fisher_trace=fisher)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.floats(4.0, 40.0), fill=st.booleans())
def test_repaired_plans_meet_the_budget_and_repairing_again_changes_nothing(seed, ratio, fill):
    layers = chain([48, 64, 40, 10])
    space, sizes, damage = setup(layers, unit_bytes={"k0": 4, "k1": 4})
    budget = int(sizes.fp32_bytes / ratio)
    if sizes.nbytes(floor_plan(space, sizes)) > budget:
        with pytest.raises(InfeasibleTarget, match="smallest achievable is"):
            Repairer(space, sizes, damage, budget)
        return
    plan = space.sample(np.random.default_rng(seed))
    fixed = repair(plan, space, sizes, damage, budget, fill=fill)
    assert sizes.nbytes(fixed) <= budget and space.contains(fixed)
    assert repair(fixed, space, sizes, damage, budget, fill=fill) == fixed
    assert repair(plan, space, sizes, damage, budget, fill=fill) == fixed  # deterministic


def test_a_plan_that_fits_is_returned_unchanged_without_fill():
    layers = chain([32, 32, 10])
    space, sizes, damage = setup(layers)
    plan = space.sample(np.random.default_rng(0))
    assert repair(plan, space, sizes, damage, sizes.nbytes(plan)) == plan


def test_fill_spends_slack_and_never_exceeds_it():
    layers = chain([32, 32, 10])
    space, sizes, damage = setup(layers)
    floor = floor_plan(space, sizes)
    budget = sizes.nbytes(floor) * 3
    filled = repair(floor, space, sizes, damage, budget, fill=True)
    assert sizes.nbytes(floor) < sizes.nbytes(filled) <= budget
    assert damage.total(filled) < damage.total(floor)


def test_infeasible_target_names_the_smallest_achievable_size():
    layers = chain([32, 32, 10])
    space, sizes, damage = setup(layers)
    smallest = sizes.nbytes(floor_plan(space, sizes))
    with pytest.raises(InfeasibleTarget, match=f"smallest achievable is {smallest:,} bytes"):
        Repairer(space, sizes, damage, smallest - 1)


def test_the_more_sensitive_kernel_keeps_more_bytes():
    layers = (LayerSpec("a", "linear", (64, 64), 4096), LayerSpec("b", "linear", (64, 64), 4096))
    config = SpaceConfig.bits_only((2, 3, 4, 5, 8))
    for hot, cold in (("a", "b"), ("b", "a")):
        space, sizes, damage = setup(layers, config, fisher={hot: 1000.0, cold: 1.0})
        plan = repair(top_plan(space, damage), space, sizes, damage, sizes.fp32_bytes // 6, fill=True)
        assert plan[hot].bits > plan[cold].bits


def test_repair_refuses_a_plan_outside_the_space():
    layers = chain([32, 32, 10])
    space, sizes, damage = setup(layers, SpaceConfig.bits_only((2, 4)))
    from hirelc.plan import Plan
    with pytest.raises(ValueError, match="not in the search space"):
        repair(Plan.from_bits(["k0", "k1"], [3, 4]), space, sizes, damage, 10**6)
