"""hirelc: automatic mixed-precision quantization and structured pruning of PyTorch models.

>>> import hirelc
>>> plan = hirelc.Plan.uniform(hirelc.inspect(model, example_input), bits=4)
>>> small = hirelc.apply_plan(model, plan)
"""

from hirelc.inventory.spec import LayerSpec
from hirelc.plan import LayerConfig, Plan

__all__ = ["LayerSpec", "LayerConfig", "Plan"]
__version__ = "0.1.0"
