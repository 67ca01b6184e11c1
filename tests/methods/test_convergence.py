"""ConvergenceMonitor: confident and unchanged greedy plan for `patience` episodes; StallMonitor."""

import pytest

from hirelc.methods.releq.convergence import ConvergenceMonitor, StallMonitor


def test_converges_after_patience_confident_unchanged_episodes():
    m = ConvergenceMonitor(patience=3, min_prob=0.9)
    assert [m.update([4, 2], [0.95, 0.99]) for _ in range(3)] == [False, False, True]


def test_a_changed_plan_restarts_the_count_and_doubt_resets_it():
    m = ConvergenceMonitor(patience=2, min_prob=0.9)
    assert not m.update([4, 2], [0.95, 0.95])
    assert not m.update([4, 3], [0.95, 0.95])  # greedy plan changed: streak 1
    assert m.update([4, 3], [0.95, 0.95])
    m = ConvergenceMonitor(patience=2, min_prob=0.9)
    m.update([4, 2], [0.95, 0.95])
    assert not m.update([4, 2], [0.95, 0.5])  # one unsure layer: streak 0
    assert not m.update([4, 2], [0.95, 0.95])
    assert m.update([4, 2], [0.95, 0.95])


@pytest.mark.parametrize("kwargs", [{"patience": 0, "min_prob": 0.9}, {"patience": 2, "min_prob": 0.0}])
def test_monitor_is_validated(kwargs):
    with pytest.raises(ValueError):
        ConvergenceMonitor(**kwargs)


def test_stall_counts_from_the_last_better_plan_or_greedy_change():
    stall = StallMonitor(patience=3)
    assert not stall.update(0, [2, 2], improved=True)
    assert not stall.update(2, [2, 2], improved=False)
    assert not stall.update(3, [2, 3], improved=False)  # the policy changed its mind: restart
    assert not stall.update(5, [2, 3], improved=False)
    assert not stall.update(6, [2, 3], improved=True)  # a better plan: restart
    assert not stall.update(8, [2, 3], improved=False)
    assert stall.update(9, [2, 3], improved=False)


@pytest.mark.parametrize("patience", [0, -1, 2.5, True])
def test_stall_patience_is_validated(patience):
    with pytest.raises(ValueError, match="stall patience"):
        StallMonitor(patience)
