"""Which inputs and which regressor rank a search's real evaluations? (issue 9: the surrogate's rho)

For each finished run, every journaled real evaluation (plan, validation accuracy at the search
fidelity) is predicted by models fitted on the other folds (5-fold cross-validation, the
folds of `surrogate.cross_validated_rho`), and the Spearman rho of the pooled out-of-fold
predictions against the real accuracies is printed per model:

- `forest_estimate` / `mlp_estimate`: HiReLC's surrogate, a random forest (the default) or
  the seed's MLP ensemble (`make_surrogate`), on `PlanFeaturizer`'s features with the
  damage-model total as the proxy input (the uncalibrated form of the estimate a search
  feeds it, affordable for every pool plan);
- `forest_measured` / `mlp_measured`: the same with the measured proxy: the logit-MSE of
  the compressed model before any fine-tune (one forward pass on validation data);
- `measured_alone` / `estimate_alone`: -proxy itself, nothing fitted;
- `ridge_measured`: `sklearn.linear_model.RidgeCV` on the surrogate's features;
- `gp_compact`: a Gaussian process on four summary inputs (log measured proxy, log damage
  total, storage ratio, BitOps ratio).

    python benchmarks/surrogate_inputs.py benchmarks/runs/joint/resnet20/hirelc_s0 [...]

One JSON line per run. Measuring the proxy costs one forward pass per plan (the evaluator's
disk cache keeps it); nothing here is part of a search or of a reported search result.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def out_of_fold(x: np.ndarray, y: np.ndarray, fit_predict, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row predicted by `fit_predict(x_train, y_train, x_held_out)` fitted without it;
    the folds are those of `hirelc.methods.hirelc.surrogate.cross_validated_rho`."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), folds)
    predicted = np.empty(len(y))
    for held_out in parts:
        train = np.setdiff1d(np.arange(len(y)), held_out)
        predicted[held_out] = fit_predict(x[train], y[train], x[held_out])
    return predicted


def _surrogate(kind: str):
    from hirelc.methods.hirelc.config import HiReLCConfig

    config = HiReLCConfig(surrogate=kind)
    return lambda x, y, x_new: config.make_surrogate(seed=0).fit(x, y).predict(x_new)[0]


def _ridge(x, y, x_new):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))).fit(x, y).predict(x_new)


def _gp(x, y, x_new):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(x)
    kernel = ConstantKernel() * RBF(np.ones(x.shape[1])) + WhiteKernel()
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0, n_restarts_optimizer=2)
    return gp.fit(scale.transform(x), y).predict(scale.transform(x_new))


def measure(run: Path, folds: int) -> dict:
    from joint_baselines import journal_evaluations  # this directory is on sys.path for a script here

    from hirelc.methods.api import build_problem
    from hirelc.methods.hirelc.features import PlanFeaturizer
    from hirelc.methods.hirelc.surrogate import spearman
    from hirelc.pipeline import JobConfig, prepare, problem_inputs
    from hirelc.plan import Plan

    config = JobConfig.from_dict(json.loads((run / "config.json").read_text()))
    prep = prepare(config, progress=False, log=lambda _m: None)
    problem = build_problem(**problem_inputs(config, prep))
    records = [r for r in journal_evaluations(run) if r.get("status", "ok") == "ok"]
    plans = [Plan.from_dict(r["plan"]) for r in records]
    y = np.array([r["accuracy"] for r in records])
    measured = np.array([max(problem.proxy(p), 1e-12) for p in plans])
    damage = np.array([max(problem.damage_model.total(p), 1e-12) for p in plans])
    featurize = PlanFeaturizer(problem)
    full_measured = np.stack([featurize(p, v) for p, v in zip(plans, measured)])
    full_estimate = np.stack([featurize(p, v) for p, v in zip(plans, damage)])
    compact = np.column_stack([np.log10(measured), np.log10(damage), full_measured[:, -3], full_measured[:, -2]])

    def rho(pred) -> float | None:
        return spearman(list(pred), list(y))

    fitted = {f"{kind}_{inputs}": rho(out_of_fold(x, y, _surrogate(kind), folds))
              for kind in ("forest", "mlp") for inputs, x in (("estimate", full_estimate), ("measured", full_measured))}
    return {"run": str(run), "evaluations": len(y), "accuracy_range_points": round(100 * float(np.ptp(y)), 1),
            **fitted, "measured_alone": rho(-measured), "estimate_alone": rho(-damage),
            "ridge_measured": rho(out_of_fold(full_measured, y, _ridge, folds)),
            "gp_compact": rho(out_of_fold(compact, y, _gp, folds)),
            "search_cv_rho": _search_cv_rho(run)}


def _search_cv_rho(run: Path) -> float | None:
    result = json.loads((run / "result.json").read_text())
    cv = result.get("search", {}).get("options", {}).get("hirelc", {}).get("rho_cross_validated")
    return cv["rho"] if cv else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--folds", type=int, default=5)
    a = p.parse_args()
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # the GP's length scales at their bounds

    torch.set_num_threads(1)
    for run in a.runs:
        if not (run / "config.json").exists() or not (run / "journal.jsonl").exists():
            sys.exit(f"error: {run} has no config.json and journal.jsonl: not a run directory")
        print(json.dumps(measure(run, a.folds)), flush=True)


if __name__ == "__main__":
    main()
