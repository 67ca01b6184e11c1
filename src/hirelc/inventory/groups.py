"""`ChannelGroup`: a set of channels (or attention heads) that structured pruning removes together.

A group is found by `hirelc.inspect` (see `hirelc.inventory.channels`) and is the unit that
`hirelc.compress.prune` ranks, masks and removes. Everything needed to slice the model is in
the group itself, so export and apply need nothing else:

- `producers`: kernels whose weight rows (dim 0) create the channels. Several producers when
  residual adds tie their outputs together; each keeps the *same* rows.
- `batchnorms`: module paths of BatchNorm layers on the way; their affine parameters and
  running statistics are sliced the same way.
- `depthwise`: depthwise convolutions on the way (kernel name = module path); their rows,
  bias, `in_channels`, `out_channels` and `groups` shrink with the group. They count as
  producers when the kept count is chosen (they ask for a keep ratio like any kernel).
- `embeddings`: embedding kernels (`nn.Embedding` / `EmbeddingBag`) whose weight *columns*
  (dim 1) create the channels (their rows are tokens); they keep the same columns.
- `segments`: the units form this many equal consecutive segments, each keeping the same
  count (a grouped convolution's output channels, pruned evenly per group); 1 otherwise.
- `spans`: `(consumer or BatchNorm, channel offset, total channels)` for each member that
  reads the group as a slice of a concatenation (`torch.cat` of branches): its channel `c`
  is that member's channel `offset + c` (columns scaled by the consumer's repeat).
- `layernorms`: LayerNorms normalising exactly these channels (sliced; the masked model
  normalises over the kept channels only, `hirelc.compress.tokens`).
- `params`: `(parameter path, dim)` of bare parameters in the stream (cls token, position
  embedding), sliced along `dim`.
- `padded_inputs`: attention modules reading the channels whose code sizes its reshapes
  from its input width: after removal their input is zero-filled back to the full width
  (`hirelc.compress.slots.pad_stream_input_`).
- `consumers`: `(kernel name, repeat)`: kernels reading the channels as input columns along
  weight dim 1; channel `c` owns columns `[c * repeat, (c + 1) * repeat)` (repeat > 1 for a
  Linear after a flatten of C x H x W, or `head_dim` for an attention output projection).

For an attention head group (`kind == "heads"`) a unit is a head: the producer is the fused
qkv Linear whose rows are laid out `[3, heads, head_dim]` (`row_chunks=3`, `unit=head_dim`),
and `module` is the attention module whose `num_heads` changes on removal.

>>> g = ChannelGroup("conv1", "channels", 4, producers=("conv1",), consumers=(("fc", 2),))
>>> g.rows(torch.tensor([0, 2])).tolist(), g.columns("fc", torch.tensor([0, 2])).tolist()
([0, 2], [0, 1, 4, 5])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP_KINDS = ("channels", "heads")


@dataclass(frozen=True)
class ChannelGroup:
    """Channels (or heads) removed together; see the module docstring for the layout."""

    id: str  # the name of its first producer in execution order
    kind: str  # "channels" or "heads"
    size: int  # number of channels (or heads)
    producers: tuple[str, ...] = ()
    batchnorms: tuple[str, ...] = ()  # module paths of BatchNorm layers
    depthwise: tuple[str, ...] = ()  # kernel names of depthwise convolutions
    consumers: tuple[tuple[str, int], ...] = ()  # (kernel name, columns per channel)
    prunable: bool = True
    reason: str = ""  # why not prunable, when it is not
    module: str = ""  # heads: the attention module path holding `num_heads`
    unit: int = 1  # producer rows per unit per chunk (head_dim for heads)
    row_chunks: int = 1  # 3 for a fused qkv: rows are [chunk, unit index, unit]
    embeddings: tuple[str, ...] = ()  # kernels whose columns create the channels
    segments: int = 1  # equal segments of units that each keep the same count
    spans: tuple[tuple[str, int, int], ...] = ()  # members reading a concatenation
    layernorms: tuple[str, ...] = ()  # LayerNorms over exactly these channels
    params: tuple[tuple[str, int], ...] = ()  # (parameter path, dim) sliced with the channels
    heads_attr: str = "num_heads"  # heads: the attribute of `module` holding the head count
    padded: bool = False  # heads: kept heads stay at their slots, removed ones are zero-filled
    padded_inputs: tuple[str, ...] = ()  # attention modules whose input is zero-filled to full width

    def __post_init__(self) -> None:
        if self.kind not in GROUP_KINDS:
            raise ValueError(f"group {self.id!r}: unknown kind {self.kind!r}; expected {GROUP_KINDS}")
        if self.size < 1 or self.unit < 1 or self.row_chunks < 1 or self.segments < 1:
            raise ValueError(f"group {self.id!r}: size, unit, row_chunks and segments must be >= 1")
        if self.size % self.segments:
            raise ValueError(f"group {self.id!r}: {self.size} units do not split into "
                             f"{self.segments} equal segments")

    @property
    def n_rows(self) -> int:
        """Rows of each producer's weight."""
        return self.row_chunks * self.size * self.unit

    def rows(self, kept: torch.Tensor) -> torch.Tensor:
        """Producer weight rows (dim 0) belonging to the kept units, ascending when `kept` is."""
        kept = kept.long().view(-1, 1)
        within = torch.arange(self.unit, device=kept.device)
        per_chunk = (kept * self.unit + within).reshape(-1)  # (k * unit,)
        offsets = torch.arange(self.row_chunks, device=kept.device) * self.size * self.unit
        return (offsets.view(-1, 1) + per_chunk.view(1, -1)).reshape(-1)

    def repeat_of(self, consumer: str) -> int:
        """Columns per unit in the consumer `consumer`'s weight."""
        for name, repeat in self.consumers:
            if name == consumer:
                return repeat
        raise KeyError(f"{consumer!r} does not consume group {self.id!r}")

    def columns(self, consumer: str, kept: torch.Tensor) -> torch.Tensor:
        """Consumer weight columns (dim 1) belonging to the kept units."""
        repeat = self.repeat_of(consumer)
        within = torch.arange(repeat, device=kept.device)
        return (kept.long().view(-1, 1) * repeat + within).reshape(-1)

    def spans_of(self, member: str) -> list[tuple[int, int]]:
        """(channel offset, total channels) of each slice `member` reads this group as."""
        return [(o, t) for n, o, t in self.spans if n == member]

    def to_dict(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "size": self.size,
            "producers": list(self.producers), "batchnorms": list(self.batchnorms),
            "consumers": [list(c) for c in self.consumers], "prunable": self.prunable,
            "reason": self.reason, "module": self.module, "unit": self.unit,
            "row_chunks": self.row_chunks, "depthwise": list(self.depthwise),
            "embeddings": list(self.embeddings), "segments": self.segments, "padded": self.padded,
            "spans": [list(x) for x in self.spans], "heads_attr": self.heads_attr,
            "layernorms": list(self.layernorms), "params": [list(x) for x in self.params],
            "padded_inputs": list(self.padded_inputs),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelGroup":
        d = dict(d)
        for key in ("producers", "batchnorms", "depthwise", "embeddings", "layernorms", "padded_inputs"):
            d[key] = tuple(d.get(key, ()))
        d["consumers"] = tuple((str(n), int(r)) for n, r in d.get("consumers", ()))
        d["spans"] = tuple((str(n), int(o), int(t)) for n, o, t in d.get("spans", ()))
        d["params"] = tuple((str(n), int(k)) for n, k in d.get("params", ()))
        return cls(**d)
