"""`LayerSpec`: what hirelc knows about one compressible weight tensor (a "kernel").

A spec is produced by `hirelc.inspect(model, example_input)`, or built by hand by a user
who brings their own evaluator and no model:

>>> LayerSpec(name="fc1", kind="linear", weight_shape=(500, 800), n_macs=400_000)
LayerSpec(name='fc1', kind='linear', weight_shape=(500, 800), n_macs=400000, ...)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Kinds of kernel hirelc can compress. Attention kinds keep their role because structured
# pruning removes whole heads from them (seed 001: "kernels" of a transformer block).
KERNEL_KINDS = (
    "conv1d",
    "conv2d",
    "linear",
    "embedding",  # nn.Embedding / nn.EmbeddingBag: rows are tokens, columns the channels
    "attn_qkv",  # fused q/k/v projection of a timm-style attention block
    "attn_proj",  # output projection of a timm-style attention block
    "mha_in_proj",  # nn.MultiheadAttention.in_proj_weight
    "mha_out_proj",  # nn.MultiheadAttention.out_proj
)


@dataclass
class LayerSpec:
    """One compressible kernel: identity, size, cost and structure.

    Only `name`, `kind`, `weight_shape` and `n_macs` are required; the rest is filled by
    `hirelc.inspect` or left at neutral defaults for hand-built specs.
    """

    name: str  # unique kernel name; the module path, or module path + ".in_proj" for MHA
    kind: str
    weight_shape: tuple[int, ...]
    n_macs: int  # multiply-accumulates per example, measured with forward hooks
    n_params: int = 0  # 0 -> product of weight_shape
    weight_mean: float = 0.0
    weight_std: float = 0.0
    weight_min: float = 0.0
    weight_max: float = 0.0
    block: str = ""  # residual/transformer block name; "" -> the layer itself
    index: int = -1  # position in forward (execution) order
    module: str = ""  # module path holding the parameter ("" -> name)
    param: str = "weight"  # attribute of `module` holding the weight
    conv_groups: int = 1
    n_heads: int | None = None  # attention heads (attn_qkv / attn_proj / mha_*)
    prune_group: str | None = None  # id of the output-channel group this kernel produces
    prune_segments: int = 1  # its group keeps the same count in each of this many segments
    prunable: bool = False  # True when its output channels/heads can be removed physically
    prune_reason: str = ""  # why not prunable, when it is not
    consumers: tuple[str, ...] = field(default_factory=tuple)  # kernels reading its outputs

    def __post_init__(self) -> None:
        if self.kind not in KERNEL_KINDS:
            raise ValueError(
                f"LayerSpec {self.name!r}: unknown kind {self.kind!r}; expected one of {KERNEL_KINDS}"
            )
        self.weight_shape = tuple(int(d) for d in self.weight_shape)
        if not self.weight_shape or any(d <= 0 for d in self.weight_shape):
            raise ValueError(f"LayerSpec {self.name!r}: invalid weight_shape {self.weight_shape}")
        if self.n_macs < 0:
            raise ValueError(f"LayerSpec {self.name!r}: n_macs must be >= 0, got {self.n_macs}")
        if self.n_params == 0:
            self.n_params = math.prod(self.weight_shape)
        if not self.block:
            self.block = self.name
        if not self.module:
            self.module = self.name
        self.consumers = tuple(self.consumers)

    @property
    def out_channels(self) -> int:
        """Rows of the weight: output channels, neurons, or 3*D for a fused qkv (tokens for
        an embedding, whose output channels are its columns: see `channels`)."""
        return self.weight_shape[0]

    @property
    def channels(self) -> int:
        """Channels this kernel produces: its columns for an embedding, else its rows."""
        return self.weight_shape[1] if self.kind == "embedding" else self.weight_shape[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weight_shape"] = list(self.weight_shape)
        d["consumers"] = list(self.consumers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerSpec":
        return cls(**d)
