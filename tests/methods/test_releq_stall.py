from hirelc.inventory.spec import LayerSpec
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.releq.runner import run_releq


def test_search_stops_when_no_better_plan_appears():
    # Accuracy does not depend on the plan: the all-2-bit plan (lowest StateQ) is the best
    # there is, and once evaluated nothing can beat it; the search must stop by itself.
    layers = [LayerSpec("a", "linear", (8, 8), 64), LayerSpec("b", "linear", (4, 8), 32)]
    problem = SearchProblem(layers, (2, 8), reference_accuracy=0.9)
    ledger = EvaluationLedger(lambda plan: 0.9, max_evaluations=50)
    out = run_releq(problem, ledger, seed=0, stall_patience=6, convergence_prob=1.0, max_episodes=500)
    assert out.stop_reason == "stalled"  # convergence_prob=1.0 cannot be reached
    assert len(out.episodes) < 200
    assert out.options["stall_patience"] == 6
