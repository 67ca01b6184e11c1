"""torch.fx symbolic trace with shapes, and residual-block detection from the traced graph.

Attention modules (timm-style and `nn.MultiheadAttention`) are traced as single calls: their
inner reshapes into heads are not channel-wise ops, and head pruning is handled as a unit.
"""

from __future__ import annotations

import operator
import re

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hirelc.inventory.concrete import trace_concrete
from hirelc.inventory.kernels import is_attention, is_norm

ADD_OPS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_"}
# Used only when tracing fails: class names of the usual residual / transformer blocks.
BLOCK_CLASS = re.compile(r"(Block|Bottleneck|EncoderLayer|DecoderLayer)$")
TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def analysed_as_unit(m: nn.Module, module_qualified_name: str = "") -> bool:
    """Attention is analysed as a unit (heads); a norm subclass is judged by its behaviour."""
    return is_attention(m) or isinstance(m, nn.MultiheadAttention) or is_norm(m)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return analysed_as_unit(m) or super().is_leaf_module(m, module_qualified_name)


def _why(e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"[:300]


def trace(model: nn.Module, args: tuple, concrete: bool = True) -> tuple[fx.GraphModule | None, str]:
    """(graph module with `tensor_meta` on every tensor node, "") or (None, why it failed).

    When plain fx fails and `concrete`, the model is traced again with the example's shapes
    (`hirelc.inventory.concrete`): `gm.meta["shape_reads"]` then names the nodes whose shape
    its code read, and `gm.meta["plain_fx_error"]` why plain fx failed. The caller runs
    this under `frozen(model)`: ShapeProp executes the model once.
    """
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
        ShapeProp(gm).propagate(*args)
        return gm, ""
    except Exception as e:  # any failure only disables pruning; say which, don't crash inspect
        error = _why(e)
    if not concrete:
        return None, error
    try:
        gm, reads = trace_concrete(model, args, analysed_as_unit)
        ShapeProp(gm).propagate(*args)
    except Exception:  # data-dependent control flow: no single graph
        return None, error
    gm.meta["shape_reads"], gm.meta["plain_fx_error"] = reads, error
    return gm, ""


def is_tensor_node(arg: object) -> bool:
    return isinstance(arg, fx.Node) and "tensor_meta" in arg.meta and arg.op != "get_attr"


def _is_residual_add(node: fx.Node) -> bool:
    """An add of two computed tensors (not a tensor plus a parameter such as pos_embed)."""
    is_add = (node.op == "call_function" and node.target in ADD_OPS) or (
        node.op == "call_method" and node.target in ADD_METHODS
    )
    return is_add and len(node.args) >= 2 and all(is_tensor_node(a) for a in node.args[:2])


def residual_blocks(model: nn.Module, gm: fx.GraphModule | None) -> set[str]:
    """Paths of modules whose forward contains a residual add, plus torch's transformer
    layers (fx does not trace into them). Without a graph, fall back to class names."""
    blocks = {p for p, m in model.named_modules() if p and isinstance(m, TRANSFORMER_LAYERS)}
    if gm is None:
        blocks |= {p for p, m in model.named_modules() if p and BLOCK_CLASS.search(type(m).__name__)}
        return blocks
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack and _is_residual_add(node):
            innermost = list(stack.values())[-1][0]  # values are (module path, class)
            if innermost:  # the model's own top-level forward is not a block
                blocks.add(innermost)
    return blocks


def block_of(module_path: str, blocks: set[str]) -> str:
    """The nearest enclosing block of a module, or "" (the layer is its own block)."""
    best = ""
    for b in blocks:
        if module_path.startswith(b + ".") and len(b) > len(best):
            best = b
    return best
