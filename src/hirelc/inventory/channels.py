"""Channel groups for structured pruning, found by following channels through an fx graph.

Every call of a Conv/Linear/Embedding kernel creates channels (a union-find element); the
analysis follows them through channel-wise layers (BatchNorm and its subclasses, depthwise
conv, activations, dropout, pooling, scalar scaling, flatten) to the kernels that read them,
and merges elements that a residual add or a squeeze-and-excitation gate (x * gate(x)) ties
together. A grouped convolution's outputs are pruned evenly per group, its inputs at the same
positions of every group. Anything it does not understand (LayerNorm, permute, indexing, the
model output, ...)
marks the group "not prunable" with the reason, so pruning is never applied where removing a
channel could change the function.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from hirelc.inventory.channel_sets import ChannelSets, Members, shared_weights
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import EMBEDDINGS, KernelRef, is_attention, is_depthwise
from hirelc.inventory.nodes import _arg, _describe, _shape, _Track
from hirelc.inventory.norms import batchnorm_reason
from hirelc.inventory.tokens import PERMUTES, TokenOps

PASSTHROUGH_MODULES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Hardtanh, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Identity,
)
POOL_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)
BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)  # and every subclass, probed (norms.py)
PASSTHROUGH_FUNCTIONS = {
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.gelu, F.silu, F.hardswish,
    F.hardsigmoid, F.leaky_relu, F.elu, F.mish, F.hardtanh, torch.sigmoid, torch.tanh,
    F.dropout, F.dropout1d, F.dropout2d, torch.dropout,
}
PASSTHROUGH_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach"}
POOL_FUNCTIONS = {
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, torch.max_pool1d,
    torch.max_pool2d, torch.avg_pool1d, torch.adaptive_avg_pool1d, torch.adaptive_max_pool1d,
}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
ADD_METHODS = {"add", "add_", "sub", "sub_"}
SCALE_FUNCTIONS = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
SCALE_METHODS = {"mul", "mul_", "div", "div_"}
DIVISIONS = {operator.truediv, operator.itruediv, torch.div, "div", "div_"}
SHAPE_METHODS = {"size", "dim", "numel"}
SHAPE_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda"}


@dataclass
class ChannelFlow:
    """Result of the analysis."""

    groups: list[ChannelGroup]
    kernel_reasons: dict[str, str]  # kernels that produce no group: why they can't be pruned
    attention_calls: list[str]  # timm-style attention modules called in the graph
    leaf_calls: set[str]  # paths of every module called as a unit


class _Analysis(TokenOps, ChannelSets):
    """One pass over the graph in topological order, then the union-find is resolved."""

    def __init__(self, gm: fx.GraphModule, kernels: Mapping[str, KernelRef], prefix: str = "") -> None:
        super().__init__()
        self.gm = gm
        self.prefix = prefix  # path of the traced module inside the model, + "." ("" = the model)
        self.kernels = kernels  # module path (aliases too) -> kernel
        self.track: dict[fx.Node, _Track] = {}
        self.kernel_reasons: dict[str, str] = {}
        self.attention_calls: list[str] = []
        self.leaf_calls: set[str] = set()

    # -- helpers ------------------------------------------------------------------------
    def _src(self, node: fx.Node, index: int = 0) -> _Track | None:
        arg = node.args[index] if len(node.args) > index else None
        return self.track.get(arg) if isinstance(arg, fx.Node) else None

    def _poison(self, t: _Track | None, phrase: str) -> None:
        if t is not None:
            self.members[t.elem].reasons.append(phrase)

    def _poison_inputs(self, node: fx.Node, phrase: str) -> None:
        for n in node.all_input_nodes:
            self._poison(self.track.get(n), phrase)

    def _pass(self, node: fx.Node, src: _Track, dim: int | None = None, repeat: int | None = None) -> None:
        self.track[node] = _Track(src.elem, src.dim if dim is None else dim,
                                  src.repeat if repeat is None else repeat)

    def _unknown(self, node: fx.Node, what: str | None = None) -> None:
        what = what or f"read by {_describe(node)}, which the channel analysis does not follow"
        self._poison_inputs(node, what)

    # -- graph walk ---------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                self._call_module(node)
            elif node.op in ("call_function", "call_method"):
                self._call(node)
            elif node.op == "output" and not self.prefix:
                self._poison_inputs(node, "returned as (part of) the model output")
            elif node.op == "output":
                self._poison_inputs(node, f"returned by module '{self.prefix[:-1]}', whose caller "
                                          "torch.fx could not trace")
        self._poison_shape_reads()

    def _call_module(self, node: fx.Node) -> None:
        mod = self.gm.get_submodule(str(node.target))
        path = self.prefix + str(node.target)
        self.leaf_calls.add(path)
        ref = self.kernels.get(path)
        if is_attention(mod):
            self.attention_calls.append(path)
            if not self._attention_on_stream(node, path, mod):
                self._unknown(node, f"read by attention module '{path}' in a way the analysis does not follow")
        elif isinstance(mod, nn.LayerNorm):
            self._layernorm(node, path, mod)
        elif isinstance(mod, nn.MultiheadAttention):
            self._unknown(node, f"read by nn.MultiheadAttention '{path}'")
        elif isinstance(mod, nn.TransformerEncoderLayer):
            self._encoder_layer(node, path, mod)
        elif ref is not None and isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            self._conv(node, ref, mod)
        elif ref is not None and isinstance(mod, nn.Linear):
            self._linear(node, ref, mod)
        elif ref is not None and isinstance(mod, EMBEDDINGS):
            self._embedding(node, ref, mod)
        elif isinstance(mod, BATCHNORMS):
            self._batchnorm(node, path, mod)
        elif isinstance(mod, PASSTHROUGH_MODULES):
            self._elementwise(node)
        elif isinstance(mod, POOL_MODULES):
            self._pool(node)
        elif isinstance(mod, nn.Flatten):
            self._flatten(node, mod.start_dim, mod.end_dim)
        else:
            self._unknown(node, f"read by {type(mod).__name__} '{path}', which is not a channel-wise layer")

    def _call(self, node: fx.Node) -> None:
        t, is_method = node.target, node.op == "call_method"
        if (is_method and t in SHAPE_METHODS) or (t is getattr and node.args[1] in SHAPE_ATTRS):
            return  # shape queries: no tensor flows on
        if (is_method and t in ADD_METHODS) or (not is_method and t in ADD_FUNCTIONS):
            self._add(node)
        elif (is_method and t in SCALE_METHODS) or (not is_method and t in SCALE_FUNCTIONS):
            self._scale(node, divides=t in DIVISIONS)
        elif (is_method and t in PASSTHROUGH_METHODS) or (not is_method and t in PASSTHROUGH_FUNCTIONS):
            self._elementwise(node)
        elif not is_method and t in POOL_FUNCTIONS:
            self._pool(node)
        elif t == "flatten" or t is torch.flatten:
            self._flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        elif t in ("view", "reshape") or t is torch.reshape:
            self._reshape(node)
        elif t in ("mean", "sum") or t in (torch.mean, torch.sum):
            self._reduce(node)
        elif t in (torch.cat, torch.concat) and not is_method:
            self._cat(node)
        elif t is operator.getitem:
            self._index(node)
        elif t in PERMUTES:
            self._permute(node)
        else:
            self._unknown(node)

    # -- kernels ------------------------------------------------------------------------
    def _consume(self, src: _Track | None, name: str, dim: int, width: int) -> None:
        if src is None:  # every input column of this call is read: none may be sliced
            self.whole_columns.add(name)
            return
        size = self.members[src.elem].size
        if src.dim != dim:
            self._poison(src, f"read by '{name}' along a dimension other than its input features")
        elif size * src.repeat != width:
            self._poison(src, f"read by '{name}', whose {width} inputs are not "
                              f"{size} channels x {src.repeat}")
        else:
            self.members[src.elem].consumers.append((name, src.repeat))

    def _conv(self, node: fx.Node, ref: KernelRef, conv: nn.Module) -> None:
        src, name = self._src(node), ref.name
        if is_depthwise(conv):
            if src is None:
                self.kernel_reasons.setdefault(name, "depthwise convolution whose input channels "
                                               "do not come from a prunable kernel")
            elif src.dim != 1 or src.repeat != 1:
                self._poison(src, f"read by depthwise convolution '{name}' along another dimension")
                self.kernel_reasons.setdefault(name, "depthwise convolution reading a reshaped tensor")
            else:
                self.members[src.elem].depthwise.append(name)
                self._pass(node, src)
            return
        if conv.groups > 1:  # each group keeps the same number of its output channels
            if src is not None and src.dim == 1 and src.repeat == 1 and self.members[src.elem].size == conv.in_channels:
                self.members[src.elem].grouped.append((name, conv.groups))  # inputs: see ChannelSets
                self.members[src.elem].consumers.append((name, 1))
            else:
                self._poison(src, f"read by grouped convolution '{name}' (groups={conv.groups}) along "
                                  "another dimension")
            e = self._new(conv.out_channels, name, segments=conv.groups)
        else:
            self._consume(src, name, dim=1, width=conv.in_channels)
            e = self._new(conv.out_channels, name)
        self.track[node] = _Track(e, 1)

    def _linear(self, node: fx.Node, ref: KernelRef, lin: nn.Linear) -> None:
        in_shape, out_shape = _shape(node.args[0]), _shape(node)
        self._consume(self._src(node), ref.name, dim=len(in_shape) - 1, width=lin.in_features)
        self.track[node] = _Track(self._new(lin.out_features, ref.name), len(out_shape) - 1)

    def _cat(self, node: fx.Node) -> None:
        """torch.cat along the channel dim: a new element made of its inputs' channels, each
        at its offset; consumers and BatchNorms of it are handed to the parts (`_distribute`)."""
        tensors, out = _arg(node, 0, "tensors"), _shape(node)
        dim = _arg(node, 1, "dim", 0)
        tracks = [self.track.get(t) if isinstance(t, fx.Node) else None for t in tensors]
        if not isinstance(dim, int) or out is None or all(t is None for t in tracks):
            return self._unknown(node)
        dim %= len(out)
        if all(t is None or t.dim != dim for t in tracks):  # along tokens: channels shared
            return self._cat_along_tokens(node, list(tensors), tracks, dim)
        if any(t is not None and (t.dim != dim or t.repeat != 1) for t in tracks):
            return self._unknown(node, f"concatenated along another dimension by {_describe(node)}")
        self.parent.append(len(self.parent))
        cat = Members(out[dim])
        offset = 0
        for t, x in zip(tracks, tensors):
            if t is not None:
                cat.parts.append((t.elem, offset))
            offset += _shape(x)[dim]
        self.members.append(cat)
        self.track[node] = _Track(len(self.members) - 1, dim)

    def _embedding(self, node: fx.Node, ref: KernelRef, emb: nn.Module) -> None:
        self._poison_inputs(node, f"used as indices or offsets by embedding '{ref.name}'")
        out_shape = _shape(node)
        self.track[node] = _Track(self._new(emb.embedding_dim, ref.name, embedding=True), len(out_shape) - 1)

    # -- channel-wise layers ------------------------------------------------------------
    def _batchnorm(self, node: fx.Node, path: str, bn: nn.Module) -> None:
        src = self._src(node)
        if src is None:
            return
        if src.dim != 1 or src.repeat != 1 or bn.num_features != self.members[src.elem].size:
            self._poison(src, f"normalised by '{path}' along another dimension")
            return
        why = batchnorm_reason(bn, path, _shape(node.args[0]))
        if why:
            self._poison(src, why)
            return
        self.members[src.elem].batchnorms.append(path)
        self._pass(node, src)

    def _elementwise(self, node: fx.Node) -> None:
        src = self._src(node)
        for other in node.all_input_nodes[1:]:
            self._poison(self.track.get(other), f"combined with other tensors by {_describe(node)}")
        if src is None:
            return
        if _shape(node) == _shape(node.args[0]):
            self._pass(node, src)
        else:
            self._poison(src, f"changed in shape by {_describe(node)}")

    def _pool(self, node: fx.Node) -> None:
        src, in_shape, out_shape = self._src(node), _shape(node.args[0]), _shape(node)
        if src is None:
            return
        if src.dim == 1 and src.repeat == 1 and len(in_shape) >= 3 and out_shape[1] == in_shape[1]:
            self._pass(node, src)
        else:
            self._poison(src, f"pooled across channels by {_describe(node)}")

    def _flatten(self, node: fx.Node, start: int, end: int) -> None:
        src, in_shape = self._src(node), _shape(node.args[0])
        if src is None:
            return
        rank = len(in_shape)
        start, end = start % rank, end % rank
        d = src.dim
        if d < start:
            self._pass(node, src)
        elif d > end:
            self._pass(node, src, dim=d - (end - start))
        elif d == start:  # the channel is the slowest-varying of the merged dims
            self._pass(node, src, repeat=src.repeat * math.prod(in_shape[d + 1:end + 1]))
        else:
            self._poison(src, f"flattened together with an earlier dimension by {_describe(node)}")

    def _reshape(self, node: fx.Node) -> None:
        src = self._src(node)
        if src is None:
            return
        in_shape, out_shape, d = _shape(node.args[0]), _shape(node), src.dim
        sizes = list(node.args[1:]) or list(node.kwargs.get("shape", ()))
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = list(sizes[0])
        flat = in_shape[:d] + (math.prod(in_shape[d:]),)
        # only a flatten written with -1 survives physical pruning (a literal width would not)
        if out_shape == flat and len(sizes) == d + 1 and isinstance(sizes[d], int) and sizes[d] == -1:
            self._pass(node, src, repeat=src.repeat * math.prod(in_shape[d + 1:]))
        else:
            self._poison(src, f"reshaped by {_describe(node)} (only x.view(..., -1) flattening "
                              "the channel dimension with every later one is followed)")

    def _reduce(self, node: fx.Node) -> None:
        src = self._src(node)
        if src is None:
            return
        dims, keep = _arg(node, 1, "dim"), bool(_arg(node, 2, "keepdim", False))
        rank = len(_shape(node.args[0]))
        dims = [dims] if isinstance(dims, int) else dims
        if not isinstance(dims, (tuple, list)) or not all(isinstance(x, int) for x in dims):
            self._poison(src, f"reduced over every dimension by {_describe(node)}")
            return
        dims = [x % rank for x in dims]
        if src.dim in dims or src.repeat != 1:
            self._poison(src, f"reduced across channels by {_describe(node)}")
            return
        self._pass(node, src, dim=src.dim if keep else src.dim - sum(x < src.dim for x in dims))

    def _add(self, node: fx.Node) -> None:
        a, b = node.args[0], _arg(node, 1, "other")
        ta = self.track.get(a) if isinstance(a, fx.Node) else None
        tb = self.track.get(b) if isinstance(b, fx.Node) else None
        if ta is not None and tb is not None:
            sa, sb, out = _shape(a), _shape(b), _shape(node)
            aligned = ta.dim - len(sa) == tb.dim - len(sb)  # broadcasting aligns trailing dims
            if ta.dim == tb.dim and ta.repeat == tb.repeat and sa == sb == out:
                self._pass(node, _Track(self.union(ta.elem, tb.elem), ta.dim, ta.repeat))
            elif aligned and ta.repeat == tb.repeat == 1 and out in (sa, sb):  # word + position
                self._pass(node, _Track(self.union(ta.elem, tb.elem), ta.dim - len(sa) + len(out)))
            else:
                for t in (ta, tb):
                    self._poison(t, f"added to a tensor of another layout by {_describe(node)}")
            return
        t, other = (ta, b) if ta is not None else (tb, a)
        if t is None:
            return
        same_shape = _shape(node) == _shape(a if ta is not None else b)
        if isinstance(other, (int, float)) and same_shape:
            self._pass(node, t)
        elif same_shape and node.target not in ("sub", "sub_", operator.sub, operator.isub, torch.sub) \
                and self._attach_param(t, other, len(_shape(node))):  # + a position embedding
            self._pass(node, t)
        else:
            self._poison(t, f"added to a tensor whose channels cannot be removed by {_describe(node)}")

    def _scale(self, node: fx.Node, divides: bool) -> None:
        a, b = node.args[0], _arg(node, 1, "other")
        ta = self.track.get(a) if isinstance(a, fx.Node) else None
        tb = self.track.get(b) if isinstance(b, fx.Node) else None
        if ta is not None and tb is not None and not divides and self._gate(node, a, b, ta, tb):
            return
        if ta is not None and tb is None and isinstance(b, (int, float)):
            self._pass(node, ta)
        elif tb is not None and ta is None and isinstance(a, (int, float)) and not divides:
            self._pass(node, tb)
        else:
            self._unknown(node, f"scaled by a tensor in {_describe(node)}")

    def _gate(self, node: fx.Node, a: fx.Node, b: fx.Node, ta: _Track, tb: _Track) -> bool:
        """x * gate with both sides carrying channels on the same dim (a squeeze-and-
        excitation gate broadcast over positions): channel c of the product is x_c * gate_c,
        so the two elements are tied (a removed channel is zero on either side)."""
        sa, sb, out = _shape(a), _shape(b), _shape(node)
        if ta.dim != tb.dim or ta.repeat != 1 or tb.repeat != 1 or len(sa) != len(sb):
            return False
        if sa[ta.dim] != sb[tb.dim] or out not in (sa, sb):
            return False
        self._pass(node, _Track(self.union(ta.elem, tb.elem), ta.dim))
        return True

def analyse_channels(
    gm: fx.GraphModule, kernels: Sequence[KernelRef], order: Mapping[str, int], prefix: str = ""
) -> ChannelFlow:
    """Channel groups of a traced model (with `tensor_meta` from ShapeProp on every node).

    `order` maps kernel names to their execution index; a group is named after its first
    producer in that order. `prefix`: the traced module's path in the model + "." when `gm`
    is one submodule (`hirelc.inventory.local`): its outputs then count as leaving it.
    """
    by_module = {p: k for k in kernels if not k.kind.startswith("mha_") for p in (k.module, *k.aliases)}
    analysis = _Analysis(gm, by_module, prefix)
    analysis.run()
    groups = analysis.groups(order, shared_weights(gm, kernels, analysis.leaf_calls, prefix))
    return ChannelFlow(groups, analysis.kernel_reasons, analysis.attention_calls, analysis.leaf_calls)

