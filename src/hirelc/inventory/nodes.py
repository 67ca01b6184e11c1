"""Small helpers on torch.fx nodes shared by the channel analysis modules."""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx


@dataclass(frozen=True)
class _Track:
    """Where a traced tensor carries an element's channels: dim `dim`, each channel owning
    `repeat` consecutive entries of that dim (repeat > 1 after a flatten of C x H x W)."""

    elem: int
    dim: int
    repeat: int = 1


def _shape(node: object) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if hasattr(meta, "shape") else None


def _describe(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}() (node '{node.name}')"
    name = getattr(node.target, "__name__", str(node.target))
    return f"{name} (node '{node.name}')"


def _arg(node: fx.Node, index: int, name: str, default: object = None) -> object:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)
