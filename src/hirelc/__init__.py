"""hirelc: automatic mixed-precision quantization and structured pruning of PyTorch models.

>>> import hirelc
>>> specs = hirelc.inspect(model, example_input)            # what can be compressed
>>> plan = hirelc.Plan.uniform(specs, bits=4)                # or hirelc.search(...)
>>> small = hirelc.apply_plan(model, plan)                   # fine-tunable compressed copy
>>> hirelc.export_packed(small, plan, "model.hirelc")        # really smaller on disk
>>> again = hirelc.load_packed("model.hirelc", like=model)
"""

from hirelc.api import search
from hirelc.compress.apply import apply_plan
from hirelc.inventory import Inventory, inspect
from hirelc.inventory.spec import LayerSpec
from hirelc.plan import LayerConfig, Plan

__all__ = [
    "Inventory",
    "LayerConfig",
    "LayerSpec",
    "Plan",
    "apply_plan",
    "export_packed",
    "inspect",
    "load_packed",
    "search",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The packed format pulls in safetensors: import it on first use so `import hirelc`
    # stays light.
    if name in ("export_packed", "load_packed"):
        from hirelc.export import packed

        return getattr(packed, name)
    if name == "search":
        from hirelc.methods.front import search

        return search
    raise AttributeError(f"module 'hirelc' has no attribute {name!r}")
