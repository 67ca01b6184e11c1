"""Plan -> metrics at a fidelity, cached (`Evaluator`), and Fisher sensitivity.

>>> from hirelc.evaluate import Evaluator, Fidelity
>>> ev = Evaluator(model, data, cache_dir="cache/")
>>> ev.evaluate(plan, Fidelity.short(100)).accuracy
0.97
"""

from hirelc.evaluate.adapters import as_evaluate_fn, check_accuracy
from hirelc.evaluate.compressor import PlanCompressor
from hirelc.evaluate.evaluator import EvalResult, Evaluator, Metrics
from hirelc.evaluate.fidelity import Fidelity
from hirelc.evaluate.sensitivity import Sensitivity, fisher_sensitivity, kernels_from_specs

__all__ = [
    "EvalResult",
    "Evaluator",
    "Fidelity",
    "Metrics",
    "PlanCompressor",
    "Sensitivity",
    "as_evaluate_fn",
    "check_accuracy",
    "fisher_sensitivity",
    "kernels_from_specs",
]
