"""Inventory: walk any `nn.Module`, find its kernels, measure them, and find the channel
groups structured pruning may remove.

>>> inv = inspect(model, example_input)   # an Inventory: list[LayerSpec] in execution order
>>> inv.unsupported, inv.groups           # what is left in fp32, and the pruning groups
"""

from hirelc.inventory.core import Inventory, inspect
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef, find_kernels
from hirelc.inventory.spec import LayerSpec

__all__ = ["ChannelGroup", "Inventory", "KernelRef", "LayerSpec", "find_kernels", "inspect"]
