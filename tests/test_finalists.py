"""Keeping one of the search's best plans after a final-length fine-tune on validation data."""

import json

from hirelc.cli import main
from hirelc.finalists import choose_among_finalists
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.api import search
from hirelc.methods.target import Target
from hirelc.pipeline import JobConfig

LAYERS = [LayerSpec("conv", "conv2d", (8, 1, 3, 3), n_macs=5000), LayerSpec("fc", "linear", (10, 200), n_macs=2000)]


def _found(target, accuracy):
    return search(LAYERS, accuracy, method="uniform", bits=(2, 4, 8), reference_accuracy=0.95,
                  max_evaluations=10, seed=0, target=target)


def test_a_size_target_keeps_the_most_accurate_finalist_after_the_long_fine_tune():
    found = _found(Target(size_bytes=10**6), lambda p: 0.5 + p["fc"].bits / 100)
    long = {2: 0.9, 4: 0.7, 8: 0.8}  # after the long fine-tune the ranking changes
    plan, val, keys = choose_among_finalists(found, 2, lambda p: long[p["fc"].bits], lambda _m: None)
    assert [r["val_accuracy_search"] for r in keys["search/finalists"]] == [0.58, 0.54]  # the search's 2 best
    assert plan.bits() == [8, 8] and val == 0.58 and keys["search/finalist_chosen_rank"] == 1
    plan, val, keys = choose_among_finalists(found, 3, lambda p: long[p["fc"].bits], lambda _m: None)
    assert plan.bits() == [2, 2] and val == 0.52 and keys["search/finalist_chosen_rank"] == 3


def test_under_a_max_accuracy_drop_the_smallest_finalist_within_the_drop_is_kept():
    found = _found(Target(max_accuracy_drop=10.0), lambda p: 0.95 - (8 - p["fc"].bits) / 100)
    assert found.plan.bits() == [2, 2]  # within 10 points at the search fidelity
    long = {2: 0.80, 4: 0.90, 8: 0.95}  # the long fine-tune shows 2 bits is 15 points down
    plan, _, keys = choose_among_finalists(found, 3, lambda p: long[p["fc"].bits], lambda _m: None)
    assert plan.bits() == [4, 4] and keys["search/finalist_chosen_rank"] == 2


def test_one_finalist_or_one_evaluation_measures_nothing():
    found = _found(Target(size_bytes=10**6), lambda p: 0.9)
    calls = []
    assert choose_among_finalists(found, 1, calls.append, print) == (found.plan, found.best_accuracy, {})
    assert calls == []


def test_a_job_with_finalists_records_them_and_keeps_the_chosen_plan(tmp_path):
    run = tmp_path / "r"
    assert main(["search", "--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--quiet",
                 "--method", "random", "--budget", "4", "--steps", "1", "--final-epochs", "1", "--finalists", "3",
                 "--target-compression", "8", "--out", str(run), "--no-report"]) == 0
    result = json.loads((run / "result.json").read_text())
    rows = result["search/finalists"]
    journal = {json.loads(x)["plan_hash"]: json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()}
    assert len(rows) == 3 and [r["val_accuracy_search"] for r in rows] == sorted(
        (r["accuracy"] for r in journal.values()), reverse=True)[:3]
    assert sum(r["chosen"] for r in rows) == 1
    chosen = next(i for i, r in enumerate(rows) if r["chosen"])  # the most accurate (ties: the smaller plan)
    assert rows[chosen]["val_accuracy_final_fidelity"] == max(r["val_accuracy_final_fidelity"] for r in rows)
    assert journal[rows[chosen]["plan_hash"]]["plan"] == result["plan"]
    assert result["val/accuracy"] == rows[chosen]["val_accuracy_search"]
    assert json.loads((run / "config.json").read_text())["finalists"] == 3
    assert "finalists" not in JobConfig(method="random").to_dict()  # default runs' config.json unchanged
