"""ConvergenceMonitor: confident and unchanged greedy plan for `patience` episodes."""

import pytest

from hirelc.methods.releq.convergence import ConvergenceMonitor


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
