"""Plan -> metrics at a fidelity, cached (`Evaluator`), and Fisher sensitivity.

>>> import tempfile, torch
>>> from hirelc.data import load_dataset
>>> from hirelc.evaluate import Evaluator, Fidelity, fisher_sensitivity
>>> from hirelc.plan import Plan
>>> from hirelc.train import TrainRecipe, train_baseline
>>> data = load_dataset("digits", seed=0)  # sklearn's 8x8 digits: train 1,078 / val 360 / test 359
>>> _ = torch.manual_seed(0)
>>> mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
...                           torch.nn.Linear(32, 10))
>>> recipe = TrainRecipe(epochs=3, batch_size=256, lr=3e-2)  # 12 training steps
>>> model, _ = train_baseline(mlp, data, recipe, progress=False, cache=False)
>>> ev = Evaluator(model, data, cache_dir=tempfile.mkdtemp())
>>> plan = Plan.from_bits(["1", "3"], [4, 2])        # kernel name -> bits
>>> r = ev.evaluate(plan, Fidelity.short(20))        # 20 fine-tune steps, then measure on val
>>> r.status, r.fidelity.key(), r.finetune_steps, r.n_examples
('ok', 'short-20', 20, 360)
>>> r.accuracy > ev.evaluate(plan).accuracy          # fine-tuning recovers accuracy
True
>>> ev.evaluate(plan, Fidelity.short(20)).cached
True
>>> kernels = {"fc1": ("1", "weight"), "fc2": ("3", "weight")}
>>> fisher_sensitivity(model, data, kernels, n_batches=4).ranked()  # most sensitive first
['fc2', 'fc1']
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
