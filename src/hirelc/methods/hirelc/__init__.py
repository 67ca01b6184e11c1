"""HiReLC (seeds 001/002): hierarchical ensemble RL for joint pruning and quantization.

- `lla`: low-level agents, one masked PPO policy per block, choosing every kernel's
  (bits, format, keep, granularity) in an episode over the block's kernels;
- `hla`: the high-level ensemble (PPO, A2C, small PPO) voting each block's budget share,
  with the Fisher allocation as prior;
- `allocation`: block budgets and the plans they realise (repair onto the target);
- `proxy`, `surrogate`: the cheap rewards (calibrated logit-MSE proxy in cold start, then
  a bootstrap MLP ensemble with uncertainty);
- `search`: the active-learning loop as a `Proposer` run by the shared driver;
- `config`: `HiReLCConfig`, the options and ablation flags.

Model-free, on the four-layer synthetic problem (see `hirelc.methods.synthetic`):

>>> from hirelc.methods import search
>>> from hirelc.methods.space import SpaceConfig
>>> from hirelc.methods.target import Target
>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> syn = sensitive_layer_problem()
>>> result = search(list(syn.layers), syn.evaluate, method="hirelc", space=SpaceConfig(bits=(2, 4, 8)),
...                 target=Target(compression=8), reference_accuracy=0.95, max_evaluations=4, seed=0,
...                 evals_per_cycle=4, lla_steps=64, hla_steps=8, pool_size=8, surrogate_epochs=20)
>>> result.n_evaluations, result.target_met, len(result.options["hirelc"]["cycles"])
(4, True, 1)
"""

from hirelc.methods.hirelc.config import HiReLCConfig
from hirelc.methods.hirelc.search import HiReLCSearch

__all__ = ["HiReLCConfig", "HiReLCSearch"]
