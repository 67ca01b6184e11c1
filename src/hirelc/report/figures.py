"""The seed 000 figures, drawn from plain data (episode logs, Pareto points) to PNG files.

- `plot_action_probabilities`: per-layer probability of each bitwidth over episodes (Fig. 2).
- `plot_convergence`: reward, State of Relative Accuracy and State of Quantization over
  episodes (Fig. 3b).
- `plot_pareto`: accuracy vs parameter-weighted bits, frontier dashed, a search result
  marked with an arrow (Fig. 3a).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_action_probabilities(
    episodes: Sequence[Mapping[str, Any]], layer_names: Sequence[str], actions: Sequence[str], path: Path
) -> Path | None:
    """One panel per layer: P(action) at that layer's step, per episode. None if the log
    holds no probabilities (baseline methods)."""
    probs = [ep["action_probs"] for ep in episodes if ep.get("action_probs")]
    if not probs:
        return None
    arr = np.asarray(probs)  # (episodes, layers, actions)
    if len(actions) != arr.shape[2]:  # labels missing or not matching: name actions by index
        actions = [f"action {a}" for a in range(arr.shape[2])]
    n_layers = arr.shape[1]
    cols = min(4, n_layers)
    rows = math.ceil(n_layers / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= n_layers:
            ax.axis("off")
            continue
        for a, label in enumerate(actions):
            ax.plot(arr[:, i, a], label=label, linewidth=1.2)
        ax.set_title(layer_names[i] if i < len(layer_names) else f"layer {i}", fontsize=9)
        ax.set_xlabel("episode")
        ax.set_ylim(0, 1)
    axes.flat[0].set_ylabel("action probability")
    axes.flat[0].legend(fontsize=7, title="action", loc="upper left")
    fig.suptitle("Bitwidth selection probability over episodes (seed 000 Fig. 2)")
    return _save(fig, path)


def plot_convergence(episodes: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Reward, StateAcc and StateQ of each episode's final plan, with a moving average."""
    if not episodes:
        return None
    series = [("reward", "reward"), ("state_acc", "State of Relative Accuracy"), ("state_q", "State of Quantization")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    for ax, (key, title) in zip(axes, series):
        y = np.asarray([ep[key] for ep in episodes], dtype=float)
        ax.plot(y, ".", alpha=0.4, markersize=3)
        ax.plot(_moving_average(y, max(1, len(y) // 10)), linewidth=1.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("episode")
    fig.suptitle("Convergence (seed 000 Fig. 3b)")
    return _save(fig, path)


def plot_pareto(
    points: Sequence[Mapping[str, Any]],
    frontier: Sequence[Mapping[str, Any]],
    path: Path,
    found: Mapping[str, Any] | None = None,
) -> Path | None:
    """Every enumerated configuration, the frontier (dashed) and the search's pick."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
    ax.scatter([p["weighted_bits"] for p in points], [100 * p["accuracy"] for p in points],
               s=6, alpha=0.35, label="configurations")
    fx = [p["weighted_bits"] for p in frontier]
    fy = [100 * p["accuracy"] for p in frontier]
    ax.plot(fx, fy, "k--", drawstyle="steps-post", linewidth=1, label="Pareto frontier")
    if found is not None:
        xy = (found["weighted_bits"], 100 * found["accuracy"])
        ax.annotate(found.get("label", "search result"), xy=xy, xytext=(0.45, 0.2), textcoords="axes fraction",
                    arrowprops={"arrowstyle": "->", "color": "red"}, color="red")
        ax.plot(*xy, "r*", markersize=10)
    ax.set_xlabel("parameter-weighted average bits")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Quantization space and Pareto frontier (seed 000 Fig. 3a)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return y
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
