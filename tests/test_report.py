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
    assert "MODELLED" in page and "98.10%" in page and "gap to the frontier 0.00 points" in page


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


def _search_result():
    return {
        "method": "releq", "model": "releq_lenet", "data": "mnist5k", "seed": 0,
        "layers": ["conv1", "conv2", "fc1"], "layer_params": [500, 25000, 400000], "bit_choices": [2, 3, 4, 8],
        "plan": {"conv1": {"bits": 8, "keep_ratio": 1.0}, "conv2": {"bits": 3, "keep_ratio": 0.5},
                 "fc1": {"bits": 2, "keep_ratio": 0.75}},
        "search": {"episodes": _episodes()},
    }


PARETO = {"layers": ["conv1", "conv2", "fc1"], "bits": [2, 8], "fidelity": "short-20",
          "points": [{"bits": [2, 2, 2], "weighted_bits": 2.0, "accuracy": 0.9},
                     {"bits": [8, 8, 8], "weighted_bits": 8.0, "accuracy": 0.95}],
          "frontier": [{"bits": [2, 2, 2], "weighted_bits": 2.0, "accuracy": 0.9},
                       {"bits": [8, 8, 8], "weighted_bits": 8.0, "accuracy": 0.95}],
          "placed": {"bits": [2, 2, 2], "weighted_bits": 2.0, "accuracy": 0.9, "gap": 0.0, "from": "runs/lenet"}}


def _title(page):
    return page.split("<title>")[1].split("</title>")[0]


def test_a_pareto_run_report_has_a_title_and_a_filled_table(tmp_path):
    (tmp_path / "pareto.json").write_text(json.dumps(PARETO))
    (tmp_path / "config.json").write_text(json.dumps({"model": "releq_lenet", "data": "mnist5k", "job": "pareto"}))
    page = write_report(tmp_path).read_text()
    assert _title(page) == "hirelc report: Pareto enumeration of releq_lenet / mnist5k"
    table = page.split("<table>")[1].split("</table>")[0]
    for text in ("configurations evaluated", "on the Pareto frontier", "short-20", "[8, 8, 8]: 95.00%",
                 "from runs/lenet: 0.00 points below the frontier"):
        assert text in table, text


def test_a_search_report_shows_the_pareto_view_that_placed_it(tmp_path):
    from hirelc.report.html import link_pareto

    run, enum = tmp_path / "run", tmp_path / "pareto"
    run.mkdir(), enum.mkdir()
    (run / "result.json").write_text(json.dumps(_search_result()))
    (enum / "pareto.json").write_text(json.dumps(PARETO))
    assert "fig_pareto.png" not in write_report(run).read_text()
    link_pareto(run, enum / "pareto.json")
    page = write_report(run).read_text()
    assert "fig_pareto.png" in page and (run / "fig_pareto.png").stat().st_size > 1000
    assert "Pareto enumeration" in page and _title(page) == "hirelc report: releq on releq_lenet / mnist5k"
    (enum / "pareto.json").unlink()  # an enumeration deleted since: the report still renders, without it
    assert "fig_pareto.png" not in write_report(run).read_text()


def test_every_figure_cites_the_paper_labels_its_axes_and_has_legends(tmp_path, monkeypatch):
    from hirelc.report import figures

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault(path.name, fig) and path)
    (tmp_path / "result.json").write_text(json.dumps(_search_result()))
    (tmp_path / "pareto.json").write_text(json.dumps(PARETO))
    page = write_report(tmp_path).read_text()
    assert set(drawn) == {"fig_action_probabilities.png", "fig_convergence.png", "fig_pareto.png", "fig_plan.png"}
    for name, fig in drawn.items():
        suptitle = fig._suptitle.get_text() if fig._suptitle else ""
        titles = suptitle + " ".join(ax.get_title() for ax in fig.axes)
        assert "seed 000" not in titles, name
        if name != "fig_plan.png":
            assert "ReLeQ paper, Fig." in titles, name
        legend_labels = {t.get_text() for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg
                         for t in leg.get_texts()}
        for ax in fig.axes:
            if not ax.lines and not ax.collections:
                continue  # an unused panel
            ylabels = [a.get_ylabel() for a in ax.get_shared_y_axes().get_siblings(ax)]  # shared: one label a row
            assert ax.get_xlabel() and any(ylabels), (name, ax.get_title())
            for line in ax.lines:
                if not line.get_label().startswith("_"):
                    assert line.get_label() in legend_labels, (name, line.get_label())
    assert "fig_plan.png" in page


def test_the_plan_figure_puts_bits_and_keep_ratio_against_layer_size(tmp_path, monkeypatch):
    from hirelc.report import figures

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig) and path)
    result = _search_result()
    figures.plot_plan(result["plan"], result["layer_params"], tmp_path / "p.png")
    bits_ax, keep_ax = drawn["fig"].axes
    assert list(bits_ax.lines[0].get_xdata()) == [500, 25000, 400000]
    assert list(bits_ax.lines[0].get_ydata()) == [8, 3, 2]
    assert list(keep_ax.lines[0].get_ydata()) == [1.0, 0.5, 0.75]
    assert bits_ax.get_xscale() == "log" and bits_ax.get_xlabel() == "layer size (parameters)"
    # an older result.json without layer sizes: layers in execution order instead
    figures.plot_plan(result["plan"], None, tmp_path / "q.png")
    assert drawn["fig"].axes[0].get_xlabel() == "layer size (parameters)"  # setdefault kept the first


def test_only_releq_reports_convergence_and_a_kept_finalist_is_shown():
    from hirelc.report.html import _page

    row = "<tr><th>converged at episode</th><td>not converged</td></tr>"
    assert row in _page({"method": "releq", "search/converged_at_episode": None}, None, [])
    hirelc = _page({"method": "hirelc", "search/converged_at_episode": None, "search/finalist_chosen_rank": 2}, None, [])
    assert "converged at episode" not in hirelc
    assert "<tr><th>kept finalist (its rank in the search; --finalists)</th><td>2</td></tr>" in hirelc
