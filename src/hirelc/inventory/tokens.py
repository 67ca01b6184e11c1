"""Channel-analysis ops of a transformer's residual stream (a mixin of the graph walk).

A ViT's embedding width runs from the patch embedding through every block to the head: token
layouts (transpose / permute), a cls token concatenated along the tokens, a position
embedding added, LayerNorms over the channels, attention modules that read and write it, and
indexing of the cls token. Each is followed here:

- LayerNorm over exactly the group's channels: sliced with it. Its statistics depend on how
  many channels there are, so the masked (search) model normalises over the kept channels
  only (`hirelc.compress.tokens.MaskedLayerNorm`) and computes what the pruned model does.
- a parameter added to or concatenated with the stream (cls token, position embedding) is
  sliced along its channel dim, when nothing else in the graph reads it.
- an attention module called on the stream: its q/k/v (or fused qkv) Linears read the
  channels as input columns and its output projection writes new ones, when a probe on a
  random input of the traced shape shows that its code computes the same with one input and
  one output channel removed as with them zeroed. When its code sizes its reshapes from the
  input width (timm's older `C // num_heads`), the pruned module's input is zero-filled back
  to the full width (`padded_inputs`, `hirelc.compress.slots.pad_stream_input_`), probed the
  same way.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from hirelc.compress.slots import pad_stream_input_
from hirelc.inventory.heads import attention_parts
from hirelc.inventory.torch_layers import probe_encoder_stream
from hirelc.inventory.nodes import _arg, _describe, _shape, _Track

PERMUTES = {"transpose", "permute", "swapaxes", torch.transpose, torch.permute, torch.swapaxes}
EXPANDS = {"expand", "expand_as"}


class TokenOps:
    """Methods of `hirelc.inventory.channels._Analysis` for the residual stream."""

    track: dict[fx.Node, _Track]
    members: list[Any]
    gm: fx.GraphModule
    prefix: str

    def _layernorm(self, node: fx.Node, path: str, ln: nn.Module) -> None:
        src = self._src(node)
        if src is None:
            return
        m, rank = self.members[src.elem], len(_shape(node.args[0]))
        if type(ln) is nn.LayerNorm and tuple(ln.normalized_shape) == (m.size,) and \
                src.dim == rank - 1 and src.repeat == 1:
            m.layernorms.append(path)
            self._pass(node, src)
        else:
            self._poison(src, f"normalised by '{path}' ({type(ln).__name__}) over other dimensions too")

    def _permute(self, node: fx.Node) -> None:
        src = self._src(node)
        if src is None:
            return
        rank = len(_shape(node.args[0]))
        if node.target in ("permute", torch.permute):
            dims = node.args[1:] if len(node.args) > 2 or not isinstance(node.args[1], (tuple, list)) \
                else node.args[1]
            perm = [int(d) % rank for d in dims]
        else:
            d0, d1 = int(_arg(node, 1, "dim0")) % rank, int(_arg(node, 2, "dim1")) % rank
            perm = list(range(rank))
            perm[d0], perm[d1] = d1, d0
        if src.repeat != 1 or sorted(perm) != list(range(rank)):
            return self._poison(src, f"rearranged by {_describe(node)} while flattened")
        self._pass(node, src, dim=perm.index(src.dim))

    def _index(self, node: fx.Node) -> None:
        """x[:, 0], x[..., :k] on dims other than the channels: the channels move or stay."""
        src, index = self._src(node), node.args[1]
        if src is None:
            return
        rank = len(_shape(node.args[0]))
        index = list(index) if isinstance(index, tuple) else [index]
        if any(not (i is None or i is Ellipsis or (isinstance(i, (int, slice)) and not isinstance(i, bool)))
               for i in index):
            return self._poison(src, f"indexed by a tensor or a mask in {_describe(node)}")
        real = sum(1 for i in index if i is not None and i is not Ellipsis)
        if Ellipsis in index:
            at = index.index(Ellipsis)
            index[at:at + 1] = [slice(None)] * (rank - real)
        index += [slice(None)] * (rank - sum(1 for i in index if i is not None))
        d, out_dim, new_dim = 0, 0, None
        for i in index:
            if i is None:  # a new axis
                out_dim += 1
                continue
            if d == src.dim:
                if i != slice(None):
                    return self._poison(src, f"indexed along its channels by {_describe(node)}")
                new_dim = out_dim
            out_dim += not isinstance(i, int)
            d += 1
        if new_dim is None or src.repeat != 1:
            return self._poison(src, f"indexed by {_describe(node)} in a way the analysis does not follow")
        self._pass(node, src, dim=new_dim)

    # -- parameters in the stream ---------------------------------------------------------
    def _param_of(self, x: object) -> tuple[str, nn.Parameter, fx.Node] | None:
        """(path, parameter, get_attr node) when `x` is a parameter, possibly expanded."""
        n = x
        while isinstance(n, fx.Node) and n.op == "call_method" and n.target in EXPANDS:
            n = n.args[0]
        if not (isinstance(n, fx.Node) and n.op == "get_attr"):
            return None
        p = self.gm.get_parameter(str(n.target)) if _is_parameter(self.gm, str(n.target)) else None
        return (self.prefix + str(n.target), p, n) if p is not None else None

    def _attach_param(self, t: _Track, x: object, out_rank: int) -> bool:
        """Slice the parameter `x` with element `t`'s channels, when it is read nowhere else."""
        found = self._param_of(x)
        if found is None or t.repeat != 1:
            return False
        path, p, node = found
        pdim = t.dim - (out_rank - p.dim())  # broadcasting aligns trailing dims
        same = [n for n in self.gm.graph.nodes if n.op == "get_attr" and n.target == node.target]
        chain_ok = len(same) == 1 and all(len(n.users) == 1 for n in _chain(x, node))
        if pdim < 0 or p.shape[pdim] != self.members[t.elem].size or not chain_ok:
            return False
        self.members[t.elem].params.append((path, pdim))
        return True

    def _cat_along_tokens(self, node: fx.Node, tensors: list, tracks: list, dim: int) -> None:
        """cat along a dim other than the channels: the inputs share their channels."""
        known = [t for t in tracks if t is not None]
        cdim = known[0].dim
        if any(t.dim != cdim or t.repeat != 1 for t in known):
            return self._unknown(node, f"concatenated along another dimension by {_describe(node)}")
        elem = known[0].elem
        for t in known[1:]:
            elem = self.union(elem, t.elem)
        track = _Track(elem, cdim)
        for x, t in zip(tensors, tracks):
            if t is None and not self._attach_param(track, x, len(_shape(node))):
                return self._unknown(node, f"concatenated with a tensor whose channels cannot be removed "
                                           f"by {_describe(node)}")
        self.track[node] = track

    # -- attention on the stream ----------------------------------------------------------
    def _attention_on_stream(self, node: fx.Node, path: str, attn: nn.Module) -> bool:
        """Treat `attn(x)` as q/k/v reading x's channels and a projection writing new ones."""
        src = self._src(node)
        in_shape, out_shape = _shape(node.args[0]) if node.args else None, _shape(node)
        if src is None or len(node.all_input_nodes) != 1 or node.kwargs or in_shape is None \
                or out_shape is None or src.dim != len(in_shape) - 1 or src.repeat != 1:
            return False
        why = _probe_stream(attn, in_shape)
        if why:  # its code needs the full width: try a zero-filled input (compress.slots)
            why_padded = _probe_stream(attn, in_shape, padded=True)
            if why_padded:
                self._poison(src, f"read by attention module '{path}', {why}; with its input "
                                  f"zero-filled to the full width, {why_padded}")
                return True
            self.members[src.elem].padded_inputs.append(path)
        _, producers, out, _ = attention_parts(attn)
        for name in producers:
            self._consume(src, f"{path}.{name}", dim=len(in_shape) - 1, width=in_shape[-1])
        e = self._new(attn.get_submodule(out).out_features, f"{path}.{out}")
        self.track[node] = _Track(e, len(out_shape) - 1)
        return True

    def _poison_shape_reads(self) -> None:
        """Traced with the example's shapes (`hirelc.inventory.concrete`): a tensor whose
        shape the code read may have its width used as a number, so its channels stay."""
        for node in self.gm.graph.nodes:
            if node.name in self.gm.meta.get("shape_reads", ()):
                self._poison(self.track.get(node), f"read as numbers by the model's code ({_describe(node)}"
                                                   ".shape), which may use their count")

    def _encoder_layer(self, node: fx.Node, path: str, layer: nn.TransformerEncoderLayer) -> None:
        """nn.TransformerEncoderLayer on the stream (torch's `forward`: x + sa(x) and
        x + ff(x), each normalised after or before): in_proj and linear1 read the channels,
        out_proj and linear2 write them back through the residual adds, norm1 and norm2
        normalise them; probed removed == zeroed (`hirelc.inventory.torch_layers`)."""
        src, in_shape = self._src(node), _shape(node.args[0]) if node.args else None
        if src is None or len(node.args) != 1 or node.kwargs or in_shape is None or len(in_shape) != 3 \
                or src.dim != 2 or src.repeat != 1:
            return self._unknown(node, f"read by TransformerEncoderLayer '{path}' with masks or "
                                       "another layout, which the analysis does not follow")
        why = probe_encoder_stream(layer, in_shape)
        if why:
            return self._poison(src, f"read by TransformerEncoderLayer '{path}', {why}")
        prefix = f"{path}." if path else ""
        width = in_shape[-1]
        for name in ("self_attn.in_proj", "linear1"):
            self._consume(src, prefix + name, dim=2, width=width)
        elem = src.elem
        for name in ("self_attn.out_proj", "linear2"):
            elem = self.union(elem, self._new(width, prefix + name))
        self.members[self.find(elem)].layernorms += [prefix + "norm1", prefix + "norm2"]
        self.track[node] = _Track(self.find(elem), 2)


def _is_parameter(gm: fx.GraphModule, target: str) -> bool:
    try:
        gm.get_parameter(target)
        return True
    except AttributeError:
        return False


def _chain(x: object, base: fx.Node) -> list[fx.Node]:
    chain, n = [], x
    while isinstance(n, fx.Node):
        chain.append(n)
        if n is base:
            break
        n = n.args[0]
    return chain


def _probe_stream(attn: nn.Module, in_shape: tuple[int, ...], padded: bool = False) -> str:
    """"" when the attention computes the same with input and output channel 0 removed as
    with them zeroed, on a random input of `in_shape`; else why not. `padded`: the removed
    copy's input is zero-filled back to the full width (`pad_stream_input_`)."""
    _, producers, out, _ = attention_parts(attn)
    masked, removed = copy.deepcopy(attn).eval(), copy.deepcopy(attn).eval()
    with torch.no_grad():
        for name in producers:
            masked.get_submodule(name).weight[:, 0] = 0
            r = removed.get_submodule(name)
            r.weight = nn.Parameter(r.weight.detach()[:, 1:].clone())
            r.in_features -= 1
        o_m, o_r = masked.get_submodule(out), removed.get_submodule(out)
        o_m.weight[0] = 0
        o_r.weight = nn.Parameter(o_r.weight.detach()[1:].clone())
        if o_m.bias is not None:
            o_m.bias[0] = 0
            o_r.bias = nn.Parameter(o_r.bias.detach()[1:].clone())
        o_r.out_features -= 1
        if padded:
            pad_stream_input_(removed, producers, in_shape[-1])
        x = torch.randn(in_shape, generator=torch.Generator().manual_seed(0))
        x[..., 0] = 0
        try:
            expected, got = masked(x), removed(x[..., 1:])
        except Exception as e:  # its code needs the full width (e.g. C // num_heads)
            return f"whose code fails with one channel fewer ({type(e).__name__})"
    if not isinstance(got, torch.Tensor) or got.shape != expected[..., 1:].shape or \
            not torch.allclose(got, expected[..., 1:], rtol=1e-4, atol=1e-5):
        return "whose output changes when one of its input channels is removed"
    return ""
