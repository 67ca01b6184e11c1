"""Feed-forward groups inside torch's own transformer layers.

`nn.TransformerEncoderLayer` / `nn.TransformerDecoderLayer` run `linear2(dropout(
activation(linear1(x))))` in their feed-forward block (torch's `_ff_block`), so linear1's
output width is local to the layer: pruning its rows and linear2's matching columns is exact.
fx cannot trace these layers (their forward branches on tensor properties for the fast
path), so the structure is taken from torch's source and then checked on the example input
like a head group: the layer with hidden unit 0 removed must compute what it computes with
unit 0 zeroed.

>>> import torch
>>> from hirelc.inventory.kernels import find_kernels
>>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
>>> g = feedforward_group(layer, "", {r.name: r for r in find_kernels(layer)},
...                       ((torch.randn(2, 3, 8),), {}))
>>> g.producers, g.consumers, g.prunable
(('linear1',), (('linear2', 1),), True)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef


def _probe(layer: nn.Module, inputs: tuple[tuple, dict]) -> str:
    """"" when removing hidden unit 0 computes what zeroing it does, else why not."""
    args, kwargs = inputs
    masked, removed = copy.deepcopy(layer), copy.deepcopy(layer)
    with torch.no_grad():
        masked.linear1.weight[0] = 0
        if masked.linear1.bias is not None:
            masked.linear1.bias[0] = 0
        masked.linear2.weight[:, 0] = 0
        removed.linear1.weight = nn.Parameter(layer.linear1.weight.detach()[1:].clone())
        if layer.linear1.bias is not None:
            removed.linear1.bias = nn.Parameter(layer.linear1.bias.detach()[1:].clone())
        removed.linear2.weight = nn.Parameter(layer.linear2.weight.detach()[:, 1:].clone())
        removed.linear1.out_features = removed.linear2.in_features = layer.linear1.out_features - 1
        try:
            expected, got = masked(*args, **kwargs), removed(*args, **kwargs)
        except Exception as e:  # a subclass whose code needs the full width
            return f"its feed-forward fails with fewer hidden units ({type(e).__name__})"
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        return "its feed-forward computes something else with a hidden unit removed than zeroed"
    return ""


def feedforward_group(model: nn.Module, path: str, kernels: Mapping[str, KernelRef],
                      inputs: tuple[tuple, dict] | None) -> ChannelGroup:
    """The hidden-width group of the torch transformer layer at `path`."""
    layer = model.get_submodule(path) if path else model
    prefix = f"{path}." if path else ""
    first, second = kernels[prefix + "linear1"], kernels[prefix + "linear2"]
    hidden = layer.linear1.out_features
    reason = ""
    if first.aliases or first.tied or second.aliases or second.tied:
        reason = "its feed-forward weights are shared with another module"
    elif hidden < 2:
        reason = "it has a single hidden unit, and at least one is always kept"
    elif inputs is None:
        reason = "it is not executed on the example input"
    else:
        reason = _probe(layer, inputs)
    return ChannelGroup(first.name, "channels", hidden, producers=(first.name,),
                        consumers=((second.name, 1),), prunable=not reason,
                        reason=f"its output channels are read inside '{path}': {reason}" if reason else "")
