"""Inventory: walk any `nn.Module`, find its kernels, measure them, and find the channel
groups structured pruning may remove.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
...                       nn.Linear(4 * 6 * 6, 10))
>>> inv = inspect(model, torch.randn(2, 1, 8, 8))  # an Inventory: LayerSpecs in execution order
>>> inv.names()
['0', '4']
>>> inv.unsupported                       # what is left in fp32
[('1', 'normalisation layer (BatchNorm2d), kept in fp32')]
>>> {gid: g.prunable for gid, g in inv.groups.items()}  # the pruning groups
{'0': True, '4': False}
>>> round(inv.coverage.share("prunable"), 3)   # of all parameters: what pruning can shrink
0.985
"""

from hirelc.inventory.core import Inventory, inspect
from hirelc.inventory.coverage import Coverage
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef, find_kernels
from hirelc.inventory.spec import LayerSpec

__all__ = ["ChannelGroup", "Coverage", "Inventory", "KernelRef", "LayerSpec", "find_kernels", "inspect"]
