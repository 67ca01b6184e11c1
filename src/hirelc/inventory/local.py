"""Channel groups of a model torch.fx cannot trace, from the modules inside it that it can.

Hugging Face-style models stop fx with Python control flow on tensors. Shape checks are
traced with the example's shapes (`hirelc.inventory.concrete`); what stops that too (control
flow on tensor values, masks) lands here. Their pieces are usually plain: an MLP, an embedding block. Each module
called with positional arguments is traced on its own, on the inputs it received in one run
of the model; the largest traceable modules are analysed (a module that traces is not
descended into) and whatever leaves such a module counts as unknown, so only groups whose
producers and consumers all sit inside one traced module are prunable. Every module that
failed is remembered, so a kernel left out gets the innermost failure as its reason.

>>> import torch
>>> from hirelc.inventory.kernels import find_kernels
>>> class Block(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
...     def forward(self, x):
...         if x.sum() > 0:  # data-dependent: the block (and the model) cannot be traced
...             x = -x
...         return self.mlp(x)
>>> model = nn.Sequential(Block(), Block())
>>> refs = find_kernels(model)
>>> flow, failed = local_flow(model, refs, {r.name: i for i, r in enumerate(refs)}, (torch.randn(2, 4),))
>>> [(g.id, g.prunable) for g in flow.groups]
[('0.mlp.0', True), ('0.mlp.2', False), ('1.mlp.0', True), ('1.mlp.2', False)]
>>> sorted(failed)
['0', '1']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from hirelc.inventory.channels import ChannelFlow, analyse_channels
from hirelc.inventory.kernels import KernelRef
from hirelc.inventory.measure import run_hooked
from hirelc.inventory.trace import trace


def record_inputs(model: nn.Module, args: tuple) -> dict[str, tuple]:
    """Module path -> positional arguments of its first call, for every module with
    children called without keyword arguments (the caller freezes the model)."""
    seen: dict[str, tuple] = {}
    handles = []
    for path, mod in model.named_modules():
        if path and any(True for _ in mod.children()):
            def pre(m: nn.Module, a: tuple, kw: dict, path: str = path) -> None:
                if path not in seen and not kw:
                    seen[path] = a
            handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
    run_hooked(model, args, handles)
    return seen


def _merge(flows: Sequence[ChannelFlow]) -> ChannelFlow:
    merged = ChannelFlow([], {}, [], set())
    for f in flows:
        merged.groups += f.groups
        merged.kernel_reasons.update(f.kernel_reasons)
        merged.attention_calls += f.attention_calls
        merged.leaf_calls |= f.leaf_calls
    return merged


def local_flow(model: nn.Module, refs: Sequence[KernelRef], order: Mapping[str, int],
               args: tuple) -> tuple[ChannelFlow, dict[str, str]]:
    """(channel groups of the largest traceable modules, module path -> why fx failed on it).
    The caller freezes the model (this runs it once, and once more per traced module)."""
    inputs = record_inputs(model, args)
    flows: list[ChannelFlow] = []
    failed: dict[str, str] = {}

    def visit(path: str, mod: nn.Module) -> None:
        for name, child in mod.named_children():
            cpath = f"{path}.{name}" if path else name
            if not any(True for _ in child.children()):
                continue  # a leaf holds no channel flow of its own
            if cpath in inputs:
                gm, error = trace(child, inputs[cpath])
                if gm is not None:
                    flows.append(analyse_channels(gm, refs, order, prefix=cpath + "."))
                    continue
                failed[cpath] = error
            visit(cpath, child)

    visit("", model)
    return _merge(flows), failed
