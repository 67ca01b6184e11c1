"""hirelc: automatic mixed-precision quantization and structured pruning of PyTorch models.

>>> import os, tempfile, torch
>>> import hirelc
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
>>> example_input = torch.randn(8, 64)
>>> specs = hirelc.inspect(model, example_input)            # what can be compressed
>>> [(s.name, s.n_params, s.prunable) for s in specs]
[('0', 2048, True), ('2', 320, False)]
>>> plan = hirelc.Plan.uniform(specs, bits=4)                # or hirelc.search(...)
>>> small = hirelc.apply_plan(model, plan)                   # fine-tunable compressed copy
>>> path = os.path.join(tempfile.mkdtemp(), "model.hirelc")
>>> hirelc.export_packed(small, plan, path)                  # really smaller on disk: bytes
2020
>>> sum(p.numel() * 4 for p in model.parameters())           # the fp32 parameters, in bytes
9640
>>> again = hirelc.load_packed(path, like=model)
>>> torch.allclose(again(example_input), small(example_input), atol=1e-5)
True
"""

from hirelc import threads as _threads

_threads.configure()  # before anything imports torch: OpenMP reads its wait policy once

from hirelc.api import search  # noqa: E402
from hirelc.compress.apply import apply_plan  # noqa: E402
from hirelc.inventory import Inventory, inspect  # noqa: E402
from hirelc.inventory.spec import LayerSpec  # noqa: E402
from hirelc.plan import LayerConfig, Plan  # noqa: E402

__all__ = [
    "DataSplits",
    "Inventory",
    "LayerConfig",
    "LayerSpec",
    "Plan",
    "SpaceConfig",
    "Target",
    "apply_plan",
    "export_onnx",
    "export_packed",
    "inspect",
    "load_packed",
    "read_result",
    "search",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The packed format pulls in safetensors: import it on first use so `import hirelc`
    # stays light.
    if name in ("export_packed", "load_packed"):
        from hirelc.export import packed

        return getattr(packed, name)
    if name == "export_onnx":  # needs the optional onnx / onnxruntime (hirelc[onnx])
        from hirelc.export.onnx import export_onnx

        return export_onnx

    if name == "DataSplits":  # the dataset stack (scikit-learn) only when asked for
        from hirelc.data import DataSplits

        return DataSplits
    if name == "SpaceConfig":
        from hirelc.methods.space import SpaceConfig

        return SpaceConfig
    if name == "read_result":  # a run directory's result.json, any version (hirelc.result_file)
        from hirelc.result_file import read_result

        return read_result
    if name == "Target":
        from hirelc.methods.target import Target

        return Target
    raise AttributeError(f"module 'hirelc' has no attribute {name!r}")
