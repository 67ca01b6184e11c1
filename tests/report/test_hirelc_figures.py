"""HiReLC figures are drawn from result.json, and only for HiReLC runs."""

from hirelc.report.hirelc_figures import hirelc_figures

PLAN = {"fc1": {"bits": 4, "keep_ratio": 0.5, "number_format": "int_sym", "granularity": "per_channel",
                "group_size": None},
        "fc2": {"bits": 8, "keep_ratio": 1.0, "number_format": "float", "granularity": "per_group", "group_size": 32}}
CYCLES = [
    {"hla": {"vote": [0.7, 0.3]}},
    {"hla": {"vote": [0.6, 0.4]}, "surrogate": {"pairs": [[0.9, 0.85], [0.8, 0.7], [0.7, 0.75]], "rho_unseen": 0.5},
     "rho_cv": {"rho": 0.7, "folds": 5, "n": 20}},
]


def test_a_hirelc_run_gets_three_figures(tmp_path):
    result = {"plan": PLAN, "search": {"options": {"hirelc": {"cycles": CYCLES, "blocks": [["fc1"], ["fc2"]]}}}}
    drawn = hirelc_figures(result, tmp_path)
    assert [p.name for _, p in drawn] == ["fig_hirelc_surrogate.png", "fig_hirelc_decisions.png",
                                          "fig_hirelc_budgets.png"]
    assert all(p.stat().st_size > 1000 for _, p in drawn)


def test_other_methods_and_empty_cycles_draw_nothing(tmp_path):
    assert hirelc_figures({"plan": PLAN, "search": {"options": {}}}, tmp_path) == []
    empty = hirelc_figures({"plan": {}, "search": {"options": {"hirelc": {"cycles": [], "blocks": []}}}}, tmp_path)
    assert [p for _, p in empty] == [None, None, None] and not list(tmp_path.iterdir())
