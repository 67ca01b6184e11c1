"""The surrogate (seed 002: "a lightweight MLP surrogate for reward shaping"), done so that
it knows what it does not know: an ensemble whose members are each fitted on a bootstrap
resample of the real evaluations; the mean is the prediction and the spread across members
the uncertainty that drives acquisition. It shapes rewards only: every reported number
comes from a real evaluation.

Two kinds of member (`make_surrogate`): small MLPs (`Surrogate`, the seed's choice) and
regression trees (`ForestSurrogate`, a random forest: the default). Measured on the 60 real
evaluations of each of 9 HiReLC runs (benchmarks/surrogate_inputs.py, the same features,
5-fold cross-validated Spearman rho; benchmarks/RESULTS.md, sixth session), the forest
ranks held-out evaluations better where accuracy falls off a cliff when one kernel is
squeezed too far (resnet20 0.77 / 0.73 / 0.77 against the MLPs' 0.56 / 0.47 / 0.34),
and with ~150 inputs and 50 rows it does not fit the noise of near-constant inputs.

>>> import numpy as np
>>> x = np.linspace(-1, 1, 40)[:, None].astype(np.float32)
>>> s = Surrogate(n_members=3, hidden=16, epochs=300, seed=0).fit(x, 0.5 + 0.3 * x[:, 0])
>>> mean, std = s.predict(np.array([[0.5]], dtype=np.float32))
>>> abs(float(mean[0]) - 0.65) < 0.05, float(std[0]) >= 0.0
(True, True)
>>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
0.8
>>> cross_validated_rho(x, 0.5 + 0.3 * x[:, 0], lambda: Surrogate(3, 16, 300, seed=0), folds=4) > 0.95
True
>>> forest = make_surrogate("forest", 20, 0, 0, seed=0).fit(x, 0.5 + 0.3 * x[:, 0])
>>> mean, std = forest.predict(np.array([[-0.9], [0.9]], dtype=np.float32))
>>> bool(mean[0] < 0.3 < 0.7 < mean[1]), forest.member_predictions(x[:3]).shape
(True, (20, 3))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn


class Surrogate:
    """Bootstrap ensemble of MLP regressors (inputs and target standardised)."""

    def __init__(self, n_members: int = 5, hidden: int = 32, epochs: int = 300, seed: int = 0):
        self.n_members, self.hidden, self.epochs, self.seed = n_members, hidden, epochs, seed
        self.members: list[nn.Module] = []
        self.n_train = 0

    @property
    def ready(self) -> bool:
        return bool(self.members)

    def fit(self, x: np.ndarray, y: Sequence[float]) -> "Surrogate":
        x = np.asarray(x, dtype=np.float32)  # (N, F)
        y = np.asarray(y, dtype=np.float32)  # (N,)
        self.x_mean, self.x_std = x.mean(0), np.maximum(x.std(0), 1e-6)
        self.y_mean, self.y_std = float(y.mean()), max(float(y.std()), 1e-6)
        xs = torch.from_numpy((x - self.x_mean) / self.x_std)
        ys = torch.from_numpy((y - self.y_mean) / self.y_std)
        rng = np.random.default_rng(self.seed + len(y))
        with torch.random.fork_rng():  # the caller's torch RNG is left as it was
            torch.manual_seed(self.seed + len(y))
            self.members = [self._fit_one(xs, ys, rng.integers(0, len(y), len(y))) for _ in range(self.n_members)]
        self.n_train = len(y)
        return self

    def _fit_one(self, x: torch.Tensor, y: torch.Tensor, rows: np.ndarray) -> nn.Module:
        net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.Tanh(), nn.Linear(self.hidden, self.hidden),
                            nn.Tanh(), nn.Linear(self.hidden, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
        xb, yb = x[rows], y[rows]  # a bootstrap resample: members disagree where data is thin
        for _ in range(self.epochs):
            loss = nn.functional.mse_loss(net(xb).squeeze(1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net.eval()

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, spread) per row, in the target's units."""
        preds = self.member_predictions(x)
        return preds.mean(0), preds.std(0)

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """(members, rows): each member's prediction, in the target's units."""
        xs = torch.from_numpy((np.asarray(x, dtype=np.float32) - self.x_mean) / self.x_std)
        with torch.no_grad():
            preds = torch.stack([m(xs).squeeze(1) for m in self.members]).numpy()
        return preds * self.y_std + self.y_mean


class ForestSurrogate:
    """Random forest regressor (`sklearn.ensemble.RandomForestRegressor`: bootstrap rows,
    min 2 rows per leaf); its trees are the ensemble's members. Trees need no input scaling."""

    def __init__(self, n_trees: int = 100, seed: int = 0):
        self.n_trees, self.seed = n_trees, seed
        self.members: list[Any] = []
        self.n_train = 0

    @property
    def ready(self) -> bool:
        return bool(self.members)

    def fit(self, x: np.ndarray, y: Sequence[float]) -> "ForestSurrogate":
        from sklearn.ensemble import RandomForestRegressor

        y = np.asarray(y, dtype=np.float64)
        forest = RandomForestRegressor(self.n_trees, min_samples_leaf=2, random_state=self.seed + len(y))
        self.members = forest.fit(np.asarray(x, dtype=np.float32), y).estimators_
        self.n_train = len(y)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = self.member_predictions(x)
        return preds.mean(0), preds.std(0)

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """(trees, rows). `tree_.predict` skips the estimator's input checks, which cost 20
        times the prediction itself for the one-row queries of the agents' rewards."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        return np.stack([tree.tree_.predict(rows).reshape(-1) for tree in self.members])


def make_surrogate(kind: str, members: int, hidden: int, epochs: int, seed: int) -> Surrogate | ForestSurrogate:
    """A fresh surrogate: "forest" (`members` trees) or "mlp" (`members` MLPs of `hidden` units,
    `epochs` full-batch steps)."""
    if kind == "forest":
        return ForestSurrogate(members, seed)
    if kind == "mlp":
        return Surrogate(members, hidden, epochs, seed)
    raise ValueError(f"unknown surrogate {kind!r}; use 'forest' or 'mlp'")


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation, or None when undefined (fewer than 3 points, or a
    constant sequence)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if math.isnan(rho) else round(rho, 4)


def cross_validated_rho(x: np.ndarray, y: Sequence[float], make: Callable[[], Surrogate | ForestSurrogate], folds: int = 5,
                        seed: int = 0) -> float | None:
    """Spearman rho of out-of-fold predictions against `y`: the rows are split into `folds`
    parts (seeded shuffle), a fresh surrogate (`make()`) is fitted on all parts but one and
    predicts the held-out part, and the predictions of every part are pooled. Each real
    evaluation is predicted by a surrogate that never saw it, across the whole range the
    search evaluated (the per-cycle rho scores only the next picks, a narrow band at the top).
    None with fewer than 2 rows per fold."""
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    if folds < 2 or len(y) < 2 * folds:
        return None
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), folds)
    predicted = np.empty(len(y), dtype=np.float64)
    for held_out in parts:
        train = np.setdiff1d(np.arange(len(y)), held_out)
        predicted[held_out] = make().fit(x[train], y[train]).predict(x[held_out])[0]
    return spearman(list(predicted), list(y))
