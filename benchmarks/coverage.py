"""Coverage: the share of each model's parameters the search can reach (issue "Any architecture").

    python benchmarks/coverage.py                  # every zoo model + the hand-built models

For every zoo model (`hirelc list-models`; 1x28x28 inputs, 10 classes, random initialisation:
coverage does not depend on the weights) and every hand-built model of
tests/inventory/arch_models.py (equivalents of what model libraries build: a ViT whose
attention reshapes by the input width, an EfficientNet-style block with SE and fused
BatchNorm + activation, a BERT-style encoder that torch.fx cannot trace with tied word
embeddings, a cat of branches, a grouped conv, nn.TransformerEncoderLayer, an EmbeddingBag),
`hirelc.inspect(model, example)` is run and its `Inventory.coverage` printed as a share of
all parameter values (tied tensors once):

    kernels   compressible kernel weights (quantized; embeddings included)
    prunable  kernel weights that structured pruning shrinks: rows (output channels, heads,
              an embedding's columns) or input columns
    rows      of which the kernels whose own output channels / heads are removed
    fp32      biases, norm layers, bare vectors (cls token, position embedding), by design
    unsup     matrix-shaped weights of modules hirelc does not know

then a plan at keep 0.5 (4-bit) is applied, physically pruned, exported and loaded; the
columns "phys=mask" and "load=apply" are max |diff| of the outputs (must be <= 1e-5) on
the example batch. Exits 1 when a check fails. One torch thread; time is indicative only.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hirelc.compress.apply import apply_plan, to_physical  # noqa: E402
from hirelc.export.packed import export_packed, load_packed  # noqa: E402
from hirelc.inventory import inspect  # noqa: E402
from hirelc.plan import Plan  # noqa: E402
from hirelc.zoo import create_model, list_models  # noqa: E402
from inventory.arch_models import ARCH_MODELS, randomize_norms_  # noqa: E402


def _models():
    for name in list_models():
        make = lambda name=name: create_model(name, in_channels=1, num_classes=10, image_size=28)  # noqa: E731
        yield f"zoo:{name}", make, torch.randn(2, 1, 28, 28)
    for name, (factory, example) in ARCH_MODELS.items():
        torch.manual_seed(123)
        yield f"hand:{name}", factory, example()


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _round_trip(make, x: torch.Tensor, inv) -> tuple[float, float]:
    torch.manual_seed(0)
    model = randomize_norms_(make()).eval()
    small = apply_plan(model, Plan.uniform(inv, bits=4, keep_ratio=0.5), inventory=inv)
    with torch.no_grad():
        expected = small(x)
        phys = _diff(to_physical(small)(x), expected)
        with tempfile.TemporaryDirectory() as d:
            export_packed(small, None, Path(d) / "m.hlc")
            torch.manual_seed(1)
            loaded = _diff(load_packed(Path(d) / "m.hlc", like=make()).eval()(x), expected)
    return phys, loaded


def main() -> int:
    torch.set_num_threads(1)
    print("| model | params | kernels | prunable | rows | fp32 by design | unsupported | embeddings quantized "
          "| traced | phys=mask | load=apply | inspect s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for name, make, x in _models():
        torch.manual_seed(0)
        model = randomize_norms_(make()).eval()
        t0 = time.perf_counter()
        inv = inspect(model, x)
        seconds = time.perf_counter() - t0
        c = inv.coverage
        emb = [s.name for s in inv if s.kind == "embedding"]
        phys, loaded = _round_trip(make, x, inv)
        failed |= phys > 1e-5 or loaded > 1e-5
        pct = lambda f: f"{100 * c.share(f):.1f} %"  # noqa: E731
        print(f"| {name} | {c.total:,} | {pct('kernels')} | {pct('prunable')} | {pct('prunable_rows')} "
              f"| {pct('fp32_by_design')} | {pct('unsupported')} | {', '.join(emb) or '-'} "
              f"| {'yes' if not inv.trace_error else 'no (per-module)'} | {phys:.1e} | {loaded:.1e} | {seconds:.2f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
