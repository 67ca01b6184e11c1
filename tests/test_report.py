import json

import pytest

from hirelc.report import write_report


def _episodes(n=12, layers=3, actions=4):
    eps = []
    for i in range(n):
        p = [[(a + 1 + i * (a == 0)) for a in range(actions)] for _ in range(layers)]
        p = [[v / sum(row) for v in row] for row in p]
        eps.append({"index": i, "reward": 0.1 * i, "state_acc": 0.9, "state_q": 1 - 0.05 * i,
                    "bits": [8] * layers, "action_probs": p})
    return eps


def test_report_draws_all_figures_and_labels_modelled_numbers(tmp_path):
    result = {
        "method": "releq", "model": "releq_lenet", "data": "mnist5k", "seed": 0,
        "final_test_accuracy": 0.981, "modelled_speedup_vs_8bit": 2.5,
        "layers": ["conv1", "conv2", "fc1"], "bit_choices": [2, 3, 4, 8],
        "search": {"episodes": _episodes()},
    }
    (tmp_path / "result.json").write_text(json.dumps(result))
    pareto = {"points": [{"bits": [2], "weighted_bits": 2.0, "accuracy": 0.9},
                         {"bits": [8], "weighted_bits": 8.0, "accuracy": 0.95}],
              "frontier": [{"bits": [2], "weighted_bits": 2.0, "accuracy": 0.9},
                           {"bits": [8], "weighted_bits": 8.0, "accuracy": 0.95}],
              "placed": {"bits": [2], "weighted_bits": 2.0, "accuracy": 0.9, "gap": 0.0}}
    (tmp_path / "pareto.json").write_text(json.dumps(pareto))
    page = write_report(tmp_path).read_text()
    for png in ("fig_action_probabilities.png", "fig_convergence.png", "fig_pareto.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert png in page
    assert "MODELLED" in page and "0.981" in page and "gap to the frontier 0.00 points" in page


def test_baseline_runs_have_no_probability_figure(tmp_path):
    eps = [dict(e, action_probs=[]) for e in _episodes(3)]
    (tmp_path / "result.json").write_text(json.dumps({"method": "random", "search": {"episodes": eps}}))
    page = write_report(tmp_path).read_text()
    assert "fig_convergence.png" in page and "fig_action_probabilities.png" not in page


def test_report_on_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither result.json nor pareto.json"):
        write_report(tmp_path)
    (tmp_path / "result.json").write_text("{torn")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_report(tmp_path)


def test_action_labels_that_do_not_match_the_probabilities_fall_back_to_indices(tmp_path):
    # A restricted-action run has 3 actions whatever the bit set; a label list of the wrong
    # length must not crash the report.
    result = {"method": "releq", "layers": ["a", "b", "c"], "search": {"actions": ["2", "4", "8", "5"],
                                                                       "episodes": _episodes(4, actions=3)}}
    (tmp_path / "result.json").write_text(json.dumps(result))
    assert "fig_action_probabilities.png" in write_report(tmp_path).read_text()
