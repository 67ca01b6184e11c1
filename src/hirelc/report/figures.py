"""The ReLeQ paper's figures (Elthakeb et al.), drawn from plain data (episode logs, Pareto
points, the chosen plan) to PNG files.

- `plot_action_probabilities`: per-layer probability of each bitwidth over episodes (Fig. 2).
- `plot_convergence`: reward, State of Relative Accuracy and State of Quantization over
  episodes (Fig. 3b).
- `plot_pareto`: accuracy vs parameter-weighted bits, frontier dashed, a search result
  marked with an arrow (Fig. 3a).
- `plot_plan`: the chosen plan per layer: bits and keep ratio against layer size (hirelc's own).
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
from matplotlib.ticker import MaxNLocator  # noqa: E402


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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(layer_names[i] if i < len(layer_names) else f"layer {i}", fontsize=9)
        ax.set_xlabel("episode")
        ax.set_ylim(0, 1)
    for ax in axes[:, 0]:
        ax.set_ylabel("action probability")
    # one legend for every panel: the same actions (lines) in every layer's panel
    handles, labels = axes.flat[0].get_legend_handles_labels()
    title = "bits" if all(str(a).isdigit() for a in actions) else "action"
    fig.legend(handles, labels, title=title, loc="outside right upper", fontsize=8)
    fig.suptitle("Bitwidth selection probability over episodes (ReLeQ paper, Fig. 2)")
    return _save(fig, path)


def plot_convergence(episodes: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Reward, StateAcc and StateQ of each episode's final plan, with a moving average."""
    if not episodes:
        return None
    series = [("reward", "reward"), ("state_acc", "State of Relative Accuracy"), ("state_q", "State of Quantization")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    window = max(1, len(episodes) // 10)
    for ax, (key, title) in zip(axes, series):
        y = np.asarray([ep[key] for ep in episodes], dtype=float)
        ax.plot(y, ".", alpha=0.5, markersize=3 if len(y) > 100 else 6, label="each episode")
        if window > 1:  # fewer than 20 episodes: the points alone
            ax.plot(_moving_average(y, window), linewidth=1.5, label=f"moving average ({window} episodes)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("episode")
        ax.set_ylabel(key.replace("_", " ") if key == "reward" else title)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Convergence of the episode's final plan (ReLeQ paper, Fig. 3b)")
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
        ax.plot(*xy, "r*", markersize=10, label=found.get("label", "search result"))
    ax.set_xlabel("parameter-weighted average bits")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Quantization space and Pareto frontier (ReLeQ paper, Fig. 3a)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_plan(
    plan: Mapping[str, Mapping[str, Any]], layer_params: Sequence[int] | None, path: Path
) -> Path | None:
    """The chosen plan, one point per layer: bits (left) and keep ratio (right) against the
    layer's parameter count (log scale; the layer's position when sizes are unknown)."""
    if not plan:
        return None
    names = list(plan)
    sized = layer_params is not None and len(layer_params) == len(names) and all(n > 0 for n in layer_params)
    x = np.asarray(layer_params if sized else range(len(names)), dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for ax, key, label, default in ((axes[0], "bits", "weight bits", 8), (axes[1], "keep_ratio", "keep ratio", 1.0)):
        y = np.asarray([plan[n].get(key, default) for n in names], dtype=float)
        ax.plot(x, y, "o", color="tab:blue" if key == "bits" else "tab:green", label=f"{label} of a layer")
        for i, (xi, yi) in enumerate(zip(x, y)):
            ax.annotate(names[i] if len(names) <= 8 else str(i), (xi, yi), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        if sized:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer size (parameters)" if sized else "layer (execution order)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 8.8 if key == "bits" else 1.1)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_title("Bits per layer", fontsize=10)
    axes[1].set_title("Kept fraction of channels per layer (1 = not pruned)", fontsize=10)
    if len(names) > 8:
        fig.text(0.01, 0.01, "labels: layer index in execution order", fontsize=7)
    fig.suptitle("The chosen plan against layer size")
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
