"""Head pruning for attention code that keeps its head count: zero-filled head slots.

Some attention implementations size their reshapes from the input (timm's older
`C // num_heads` with `B, N, C = x.shape`, and `reshape(B, N, C)` to merge heads), so a copy
holding fewer heads fails. Their heads are still pruned: the qkv Linear stores and computes
only the kept heads' rows and scatters them into the first k head slots of the full width
(zeros in the others), and the output projection stores only the kept heads' columns and
gathers them from those slots. The module's own code then runs unchanged, each empty slot
being a zero head (as a masked head is); the weights, the file and the two projections'
MACs shrink, the attention core (softmax(q k^T) v) still runs every slot.

Kept heads move to the first slots, so this is exact only when the module treats heads
alike (no per-head parameters such as a relative position bias): the inventory probes it
(`hirelc.inventory.heads`). The slots follow from the kept count alone, so nothing is
stored for them: the packed file and the storage model are unchanged.

>>> import torch
>>> from hirelc.inventory.groups import ChannelGroup
>>> attn = nn.Module(); attn.qkv, attn.proj = nn.Linear(8, 24), nn.Linear(8, 8)
>>> g = ChannelGroup("qkv", "heads", 4, ("qkv",), consumers=(("proj", 2),), module="",
...                  unit=2, row_chunks=3, padded=True)
>>> attn.qkv.weight = nn.Parameter(attn.qkv.weight[g.rows(torch.tensor([1, 3]))])
>>> attn.qkv.bias = nn.Parameter(attn.qkv.bias[g.rows(torch.tensor([1, 3]))])
>>> attn.proj.weight = nn.Parameter(attn.proj.weight[:, g.columns("proj", torch.tensor([1, 3]))])
>>> pad_heads_(attn, g, torch.tensor([1, 3]))
>>> attn.qkv(torch.randn(5, 8)).shape, attn.proj(torch.randn(5, 8)).shape
(torch.Size([5, 24]), torch.Size([5, 8]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # the inventory probes head removal with this module: no import cycle
    from hirelc.inventory.groups import ChannelGroup

SLOTS = "hirelc_slots"  # buffer (not saved) of the filled rows / read columns


class SlotLinear(nn.Linear):
    """A Linear whose stored weight covers only some slots of its input or output:
    `forward(x) = slot_output(linear(slot_input(x)))` (the ONNX exporter wraps the same two
    steps around its quantized kernel)."""

    def slot_input(self, x: Tensor) -> Tensor:
        return x

    def slot_output(self, y: Tensor) -> Tensor:
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.slot_output(F.linear(self.slot_input(x), self.weight, self.bias))


class ScatterLinear(SlotLinear):
    """A Linear computing only its kept output rows, scattered into `full_out` slots."""

    full_out: int

    def slot_output(self, y: Tensor) -> Tensor:  # (..., kept)
        out = y.new_zeros(*y.shape[:-1], self.full_out)  # (..., full_out)
        return out.index_copy(out.dim() - 1, getattr(self, SLOTS), y)


class GatherLinear(SlotLinear):
    """A Linear reading only its kept input columns from a full-width input."""

    def slot_input(self, x: Tensor) -> Tensor:
        return x.index_select(x.dim() - 1, getattr(self, SLOTS))


class NarrowScatterLinear(ScatterLinear):
    """A ScatterLinear (kept heads into slots) reading only the first `in_features` columns
    of a zero-padded input (`pad_stream_input_`)."""

    def slot_input(self, x: Tensor) -> Tensor:
        return x[..., : self.in_features]


class PadInput:
    """Forward pre-hook: zero-fill the last dim of the first argument back to `width`, after
    the kept channels (the module's code then sees the width it was written for)."""

    def __init__(self, width: int) -> None:
        self.width = width

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        pad = x.new_zeros(*x.shape[:-1], self.width - x.shape[-1])  # (..., removed)
        return (torch.cat([x, pad], dim=-1), *args[1:])


def _swap(mod: nn.Module, cls: type, slots: Tensor) -> None:
    if type(mod) is not nn.Linear:
        raise ValueError(f"zero-filled head slots need plain nn.Linear projections, got {type(mod).__name__}")
    mod.__class__ = cls
    mod.register_buffer(SLOTS, slots.to(mod.weight.device), persistent=False)


def pad_stream_input_(attn: nn.Module, readers: list[str], width: int) -> None:
    """Run an attention module whose code sizes its reshapes from its input width (timm's
    older `C // num_heads`) on a pruned residual stream: its input is zero-filled back to
    `width` after the kept channels, and its q/k/v (or fused qkv) Linears `readers`, already
    resliced to the kept input columns, read only those first columns. Exact when the module
    reads its input only through `readers` (probed by the inventory, `hirelc.inventory.tokens`).
    Nothing is stored: the slots follow from the kept count."""
    for name in readers:
        lin = attn.get_submodule(name)
        if type(lin) is ScatterLinear:
            lin.__class__ = NarrowScatterLinear
        else:
            _swap(lin, GatherLinear, torch.arange(lin.in_features))
    attn.register_forward_pre_hook(PadInput(width))


def pad_heads_(attn_root: nn.Module, group: ChannelGroup, kept: Tensor) -> None:
    """Turn the already resliced qkv / proj of a padded head group into zero-filled slots:
    the `len(kept)` kept heads fill the first slots. `attn_root` is the model (the group's
    kernel names are paths inside it)."""
    kept = torch.arange(len(kept))  # slots, not the heads' original positions
    for name in group.producers:  # a fused qkv, or separate q, k and v
        producer = attn_root.get_submodule(name)
        _swap(producer, ScatterLinear, group.rows(kept))
        producer.full_out = group.n_rows
    proj_name = group.consumers[0][0]
    _swap(attn_root.get_submodule(proj_name), GatherLinear, group.columns(proj_name, kept))
