import pytest
from hypothesis import given
from hypothesis import strategies as st

from hirelc import LayerSpec
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.pareto import ParetoPoint, enumerate_space, frontier_gap, pareto_frontier
from hirelc.methods.problem import SearchProblem

points = st.lists(
    st.builds(ParetoPoint, st.just((1,)), st.floats(1, 8), st.floats(0, 1)), min_size=1, max_size=30
)


@given(points)
def test_frontier_points_are_not_dominated_and_others_are(pts):
    frontier = pareto_frontier(pts)

    def dominates(a, b):
        return (
            a.weighted_bits <= b.weighted_bits
            and a.accuracy >= b.accuracy
            and (a.weighted_bits < b.weighted_bits or a.accuracy > b.accuracy)
        )

    for f in frontier:
        assert not any(dominates(p, f) for p in pts)
        assert frontier_gap(f, frontier) == 0.0
    for p in pts:
        if p not in frontier:
            assert frontier_gap(p, frontier) > 0 or any(
                f.weighted_bits <= p.weighted_bits and f.accuracy >= p.accuracy for f in frontier
            )


def test_gap_is_measured_against_points_with_no_more_bits():
    frontier = [ParetoPoint((2,), 2.0, 0.90), ParetoPoint((4,), 4.0, 0.97)]
    assert frontier_gap(ParetoPoint((3,), 3.0, 0.85), frontier) == pytest.approx(0.05)
    assert frontier_gap(ParetoPoint((1,), 1.0, 0.10), frontier) == 0.0  # nothing cheaper


def _problem():
    layers = [LayerSpec("a", "linear", (4, 4), 16), LayerSpec("b", "linear", (2, 4), 8)]
    return SearchProblem(layers, (2, 8), reference_accuracy=0.9)


def test_enumeration_evaluates_every_configuration_once():
    calls = []

    def accuracy(plan):
        calls.append(plan.bits())
        return 0.5 + 0.05 * sum(plan.bits()) / 8

    pts = enumerate_space(_problem(), EvaluationLedger(accuracy, max_evaluations=4))
    assert sorted(calls) == [[2, 2], [2, 8], [8, 2], [8, 8]]
    assert {p.bits for p in pts} == {(2, 2), (2, 8), (8, 2), (8, 8)}
    # parameter-weighted: layer a has 16 weights, b has 8
    assert next(p for p in pts if p.bits == (2, 8)).weighted_bits == pytest.approx((16 * 2 + 8 * 8) / 24)


def test_enumeration_refuses_large_spaces_unless_forced():
    with pytest.raises(ValueError, match="above the limit of 3; pass force=True"):
        enumerate_space(_problem(), EvaluationLedger(lambda p: 0.5, 10), limit=3)
    assert len(enumerate_space(_problem(), EvaluationLedger(lambda p: 0.5, 10), limit=3, force=True)) == 4


def test_frontier_points_one_ulp_apart_both_have_zero_gap():
    # found by hypothesis: weighted bits 1.0 and 1.0000000000000002
    pts = [ParetoPoint((1,), 1.0, 0.5), ParetoPoint((2,), 1.0000000000000002, 0.9)]
    frontier = pareto_frontier(pts)
    assert [frontier_gap(f, frontier) for f in frontier] == [0.0, 0.0]
