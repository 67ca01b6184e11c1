"""Targets and the one selection rule."""

import pytest

from hirelc.methods.ledger import Evaluation
from hirelc.methods.target import AccuracyDropObjective, SizeObjective, Target, parse_size
from hirelc.plan import Plan


def ev(index, bits, accuracy):
    return Evaluation(index, Plan.from_bits(["fc"], [bits]), accuracy)


def size_by_bits(plan):
    return 100 * plan.bits()[0]


def test_sizes_and_ratios_parse_with_units():
    assert parse_size("64KB") == 65536 and parse_size("1MB") == 1 << 20 and parse_size("1000") == 1000
    assert Target.parse(compression="16x").compression == 16.0
    assert Target.parse(compression=12).max_bytes(1200) == 100
    assert Target.parse(size="2KiB").max_bytes(10**9) == 2048


@pytest.mark.parametrize("kwargs, message", [
    ({"compression": "lots"}, "not a number"),
    ({"compression": 0.5}, "must be > 1"),
    ({"size": "64 parsecs"}, "is not a size"),
    ({"size": "0"}, "at least 1 byte"),
    ({"max_accuracy_drop": -1}, "0 <= P < 100"),
])
def test_bad_targets_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Target.parse(**kwargs)


def test_only_one_target_at_a_time():
    with pytest.raises(ValueError, match="give one target"):
        Target(compression=4, size_bytes=100)


def test_size_objective_prefers_feasible_then_accurate_then_small_then_early():
    obj = SizeObjective(max_bytes=400, size_of=size_by_bits)
    candidates = [ev(0, 8, 0.99), ev(1, 4, 0.90), ev(2, 3, 0.90), ev(3, 2, 0.95), ev(4, 2, 0.95)]
    ranked = sorted(candidates, key=obj.selection_key, reverse=True)
    assert [e.index for e in ranked] == [3, 4, 2, 1, 0]  # 8 bits is over budget: last despite 0.99
    assert obj.score(candidates[0]) < 0 < obj.score(candidates[1])


def test_accuracy_drop_objective_picks_the_smallest_plan_within_the_drop():
    obj = AccuracyDropObjective(reference=0.98, max_drop_points=1.0, size_of=size_by_bits, fp32_bytes=3200)
    within = [ev(0, 8, 0.98), ev(1, 4, 0.975), ev(2, 2, 0.96)]
    assert [obj.feasible(e) for e in within] == [True, True, False]
    assert max(within, key=obj.selection_key).index == 1
    assert obj.score(within[1]) > obj.score(within[0]) > 1 > obj.score(within[2])
    # when nothing is feasible the most accurate plan wins
    assert max([ev(0, 2, 0.5), ev(1, 4, 0.7)], key=obj.selection_key).index == 1


def test_round_trip_and_description():
    t = Target.parse(size="64KB")
    assert Target.from_dict(t.to_dict()) == t and t.kind == "size_bytes"
    assert Target().describe().startswith("none")
