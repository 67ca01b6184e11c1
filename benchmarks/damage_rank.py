"""How well does the damage model rank real accuracy? Spearman between -DamageModel.total(plan)
and the measured validation accuracy (search fidelity) of enumerated / journaled cnn1d plans.

    python benchmarks/damage_rank.py [--journals DIR ...] [--greedy]

Ground truth: benchmarks/landscapes/cnn1d_mnist1d_joint.json (512 plans, bits {2,4} x keep
{1,.5}) and, if given, the journal.jsonl of earlier cnn1d joint runs (60 candidates each, full
joint space). Both were pruned with the OBD Fisher importance of the time, so every damage model
here removes units in that order (the landscape's stored saliency; the journal run's
sensitivity.json) to score what was really evaluated. Models:

- obd (old): batch-gradient Fisher: 1/2 tr(F) mse + OBD rows (the landscape's stored Fisher);
- measured anchors (new): `hirelc.guidance.measure_damage`: every keep and one quantizer per
  bitwidth measured (loss increase on 4 calibration batches), other quantizers placed between
  them by their Fisher estimate;
- measured everything: every quantizer config and keep measured on 16 calibration batches (a
  reference: too many forward passes for larger models).
The activation-Fisher models (per-sample Fisher; channel masks at the consumers' inputs) were
measured with this script at commit 7dcd60c (benchmarks/RESULTS.md, "Damage model").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _within(damages: list[float], accs: list[float], keys: list) -> tuple[float, int]:
    """Mean Spearman within groups of plans of equal key (groups of >= 5), weighted by group size."""
    groups: dict = defaultdict(list)
    for i, s in enumerate(keys):
        groups[s].append(i)
    total, n = 0.0, 0
    for idx in groups.values():
        if len(idx) >= 5 and len({accs[i] for i in idx}) > 1:
            total += len(idx) * spearman([-damages[i] for i in idx], [accs[i] for i in idx])
            n += len(idx)
    return (total / n if n else float("nan")), n


def _setup():
    import torch

    from hirelc.data import load_dataset
    from hirelc.inventory import inspect
    from hirelc.pipeline import JobConfig, load_baseline

    torch.set_num_threads(1)
    data = load_dataset("mnist1d", seed=0)
    model, _ = load_baseline(JobConfig(method="random", model="cnn1d", data="mnist1d"), data, progress=False)
    return model, data, inspect(model, data.example_input())


def _models(model, data, inventory, space, raw_trace, row_saliency, sens):
    """name -> DamageModel over `space`, pruning in the OBD order of `row_saliency`."""
    from hirelc.evaluate.calibrate import kernel_weights, measure_damage_model
    from hirelc.guidance import measure_damage
    from hirelc.methods.space import SearchSpace

    specs = list(inventory)
    sp = SearchSpace(tuple(specs), space)
    order = _obd_importance(inventory.groups, row_saliency)
    return {
        "obd (old)": measure_damage_model(sp, kernel_weights(model, specs), raw_trace, unit_saliency=row_saliency),
        "measured anchors (new)": measure_damage(model, data, inventory, sp, sens, order),
        "measured everything": _measured(model, data, inventory, sp, order),
    }


def _measured(model, data, inventory, sp, order):
    """Exploration: the loss increase measured directly on the calibration batches, per kernel
    alone (quantized under each config; its group pruned at each keep)."""
    import copy

    import torch
    import torch.nn.functional as F

    from hirelc.compress.prune import apply_masks_, kernel_tensors, kept_indices
    from hirelc.compress.quantize import dequantize, quantize
    from hirelc.evaluate.sensitivity import _calibration_batches
    from hirelc.methods.damage import DamageModel, quant_key
    from hirelc.plan import LayerConfig, Plan

    batches = list(_calibration_batches(data, 64, 0, 16))

    def loss(m) -> float:
        m.eval()
        with torch.no_grad():
            return sum(float(F.cross_entropy(m(x), y, reduction="sum")) for x, y in batches) / sum(len(y) for _, y in batches)

    base = loss(model)
    quant, prune = {}, {}
    for s in sp.layers:
        quant[s.name] = {}
        mod, attr, _ = kernel_tensors(model, s.name)
        w0 = getattr(mod, attr).detach().clone()
        for key in sorted({quant_key(c) for c in sp.kernel_configs(s.name)}, key=str):
            cfg = LayerConfig(key[0], 1.0, key[1], key[2], key[3])
            with torch.no_grad():
                getattr(mod, attr).copy_(dequantize(quantize(w0, cfg)).reshape(w0.shape))
            quant[s.name][key] = loss(model) - base
        with torch.no_grad():
            getattr(mod, attr).copy_(w0)
        if s.prunable:
            n = sum(1 for t in sp.layers if (t.prune_group or t.name) == (s.prune_group or s.name))
            prune[s.name] = {}
            for r in sp.keep_choices(s.name):
                kept = kept_indices(model, inventory.groups, Plan({s.name: LayerConfig(8, keep_ratio=r)}), dict(order))
                prune[s.name][float(r)] = (loss(apply_masks_(copy.deepcopy(model), kept, inventory.groups)) - base) / n
    return DamageModel(quant, prune)


def _sensitivity(model, data, inventory):
    from hirelc.evaluate.sensitivity import fisher_sensitivity, kernels_from_specs

    kernels, blocks = kernels_from_specs(list(inventory))
    return fisher_sensitivity(model, data, kernels, blocks=blocks)


def _obd_importance(groups, row_saliency):
    import torch

    out = {}
    for gid, g in groups.items():
        if g.prunable and not g.embeddings:
            score = torch.zeros(g.size, dtype=torch.float64)
            for p in g.producers:
                score += torch.as_tensor(row_saliency[p], dtype=torch.float64).reshape(g.row_chunks, g.size, g.unit).sum(dim=(0, 2))
            out[gid] = score.float()
    return out


def landscape(model, data, inventory) -> None:
    from hirelc.methods.space import SpaceConfig
    from hirelc.plan import Plan

    ls = json.loads((HERE / "landscapes" / "cnn1d_mnist1d_joint.json").read_text())
    models = _models(model, data, inventory, SpaceConfig.from_dict(ls["space"]), ls["fisher_raw_per_kernel"],
                     ls["fisher_per_channel_saliency"], _sensitivity(model, data, inventory))
    rows = [(Plan.from_dict(p), acc, size) for p, acc, size in ls["rows"]]
    budget = ls["size_model"]["fp32_bytes"] / 12 if "fp32_bytes" in ls["size_model"] else None
    print("landscape cnn1d_joint: Spearman(-damage, val accuracy)")
    print("| model | all 512 | meets 12x | same bits, keep varies | same keep, bits vary |")
    print("|---|---|---|---|---|")
    for name, dm in models.items():
        dmg = [dm.total(p) for p, _, _ in rows]
        accs = [a for _, a, _ in rows]
        sizes = [s for _, _, s in rows]
        feas = [i for i, s in enumerate(sizes) if budget is None or s <= budget]
        by_bits, _ = _within(dmg, accs, [tuple(p.bits()) for p, _, _ in rows])
        by_keep, _ = _within(dmg, accs, [tuple(c.keep_ratio for c in p.layers.values()) for p, _, _ in rows])
        print(f"| {name} | {spearman([-d for d in dmg], accs):.3f} | "
              f"{spearman([-dmg[i] for i in feas], [accs[i] for i in feas]):.3f} ({len(feas)}) | {by_bits:.3f} | {by_keep:.3f} |")


def greedy(model, data, inventory, seeds=(0, 1, 2)) -> None:
    """The greedy baseline's plan (repair of the least-damage plan, fill) of the full joint
    space at 16x under each damage model, evaluated at the search fidelity (20 fine-tune
    steps, validation split) with fine-tune seeds `seeds`, without the evaluation cache."""
    from hirelc.evaluate.calibrate import measure_size_model
    from hirelc.evaluate.evaluator import Evaluator
    from hirelc.evaluate.fidelity import Fidelity
    from hirelc.methods.repair import repair, top_plan
    from hirelc.methods.space import SearchSpace, SpaceConfig
    from hirelc.methods.target import Target

    sens = _sensitivity(model, data, inventory)
    space = SpaceConfig()
    sp = SearchSpace(tuple(inventory), space)
    sizes = measure_size_model(model, inventory)
    budget = Target(compression=16).max_bytes(sizes.fp32_bytes)
    importance = _obd_importance(inventory.groups, sens.per_channel_saliency)
    evaluators = [Evaluator(model, data, seed=s, batch_size=64, finetune_lr=3e-4, importance=importance) for s in seeds]
    print(f"greedy at 16x ({budget:,} B), full joint space: validation accuracy at the search fidelity, "
          f"fine-tune seeds {list(seeds)}")
    for name, dm in _models(model, data, inventory, space, sens.raw_per_kernel, sens.per_channel_saliency, sens).items():
        plan = repair(top_plan(sp, dm), sp, sizes, dm, budget, fill=True)
        accs = [100 * ev.evaluate(plan, Fidelity.short(20), split="val").accuracy for ev in evaluators]
        desc = "; ".join(f"{n} {c.bits}b keep {c.keep_ratio} {c.number_format} {c.granularity}"
                         for n, c in plan.layers.items())
        print(f"- {name}: {' / '.join(f'{a:.1f}' for a in accs)} % ({sizes.nbytes(plan):,} B): {desc}", flush=True)


def journals(model, data, inventory, dirs: list[Path]) -> None:
    from hirelc.evaluate.sensitivity import Sensitivity
    from hirelc.methods.space import SpaceConfig
    from hirelc.plan import Plan

    print("journals: Spearman(-damage, val accuracy) over each run's candidates")
    for d in dirs:
        config = json.loads((d / "config.json").read_text())
        sens = json.loads((d / "sensitivity.json").read_text())
        records = [json.loads(x) for x in (d / "journal.jsonl").read_text().splitlines() if x]
        evs = [(Plan.from_dict(r["plan"]), r["accuracy"]) for r in records if r.get("kind") == "evaluation"]
        space = SpaceConfig.from_dict(config["space"]) if isinstance(config.get("space"), dict) else SpaceConfig()
        models = _models(model, data, inventory, space, sens["raw_per_kernel"], sens["per_channel_saliency"],
                         Sensitivity.from_dict(sens))
        out = [f"{name} {spearman([-dm.total(p) for p, _ in evs], [a for _, a in evs]):.3f}" for name, dm in models.items()]
        print(f"{d.name} ({len(evs)} plans): " + ", ".join(out), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--journals", nargs="*", type=Path, default=[], help="run directories of cnn1d joint runs")
    p.add_argument("--greedy", action="store_true", help="also evaluate each model's greedy plan at 16x")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    setup = _setup()
    landscape(*setup)
    journals(*setup, args.journals)
    if args.greedy:
        greedy(*setup)
