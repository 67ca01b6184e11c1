"""Run the model once on the example input with forward hooks: MACs and execution order.

MACs are counted from the tensors the kernels really see, over every token and position,
then divided by the batch size (dim 0 of the example input) to give MACs per example.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hirelc.inventory.kernels import EMBEDDINGS, KernelRef, is_attention


@contextlib.contextmanager
def mha_slow_path() -> Iterator[None]:
    """torch's fused MHA / TransformerEncoderLayer fast path bypasses the submodules' calls
    (and so forward hooks); the slow path computes the same thing through them."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def run_hooked(model: nn.Module, args: tuple, handles: list) -> None:
    """`model(*args)` through the submodules' calls (`mha_slow_path`), then the hooks in
    `handles` removed, whatever happened."""
    try:
        with mha_slow_path():
            model(*args)
    finally:
        for h in handles:
            h.remove()


TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


@dataclass
class Measurement:
    """What one forward pass on the example input showed."""

    macs: dict[str, int] = field(default_factory=dict)  # kernel name -> MACs per example
    order: list[str] = field(default_factory=list)  # kernel names in first-call order
    # attention / torch transformer layer path -> (args, kwargs) of its first call, to probe
    # head and feed-forward removal
    attention_inputs: dict[str, tuple[tuple, dict]] = field(default_factory=dict)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no grad for a measuring pass, so BatchNorm running statistics and
    dropout RNG state of the user's model are left as they were; training flags restored."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in flags:
            m.training = training


def as_args(example_input: Any) -> tuple:
    """The positional arguments the model is called with."""
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def batch_size(args: tuple) -> int:
    """Dim 0 of the first tensor argument of rank >= 2 (rank-1 inputs are one example)."""
    for a in args:
        if isinstance(a, torch.Tensor):
            return int(a.shape[0]) if a.dim() >= 2 else 1
    raise ValueError("example_input must be a tensor or a tuple whose first tensor is the batch")


def _conv_macs(conv: nn.Module, out: torch.Tensor) -> int:
    # every output element is a dot product over in_channels/groups x kernel positions
    return out.numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)


def _linear_macs(lin: nn.Linear, out: torch.Tensor) -> int:
    return out.numel() * lin.in_features


def _no_macs(mod: nn.Module, out: torch.Tensor) -> int:
    return 0


def _mha_macs(mha: nn.MultiheadAttention, args: tuple, kwargs: dict) -> tuple[int, int]:
    """(in_proj, out_proj) MACs: each query/key/value token is projected by an E x E block."""
    names = ("query", "key", "value")
    q, k, v = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    e = mha.embed_dim
    tokens = [t.numel() // t.shape[-1] for t in (q, k, v)]
    return sum(tokens) * e * e, tokens[0] * e * e


class _Recorder:
    """Forward hooks that add each call's MACs to its kernel and note first-call order."""

    def __init__(self, kernels: Sequence[KernelRef]) -> None:
        self.result = Measurement()
        self.total: dict[str, int] = {k.name: 0 for k in kernels}
        self.handles: list[Any] = []
        self.seen: set[str] = set()

    def _add(self, name: str | None, macs: int) -> None:
        if name is None:
            return
        if name not in self.seen:
            self.seen.add(name)
            self.result.order.append(name)
        self.total[name] += macs

    def kernel(self, ref: KernelRef, mod: nn.Module) -> None:
        if isinstance(mod, EMBEDDINGS):
            count = _no_macs  # a table lookup (EmbeddingBag's sum/mean: additions, no products)
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            count = _conv_macs
        else:
            count = _linear_macs
        hook = lambda m, inp, out: self._add(ref.name, count(m, out))  # noqa: E731
        self.handles.append(mod.register_forward_hook(hook))

    def mha(self, mha: nn.MultiheadAttention, in_name: str | None, out_name: str) -> None:
        def after(m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            in_macs, out_macs = _mha_macs(m, args, kwargs)
            self._add(in_name, in_macs)
            self._add(out_name, out_macs)

        self.handles.append(mha.register_forward_hook(after, with_kwargs=True))

    def attention(self, path: str, attn: nn.Module) -> None:
        def before(m: nn.Module, args: tuple, kwargs: dict) -> None:
            self.result.attention_inputs.setdefault(path, (args, dict(kwargs)))

        self.handles.append(attn.register_forward_pre_hook(before, with_kwargs=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _hook_all(model: nn.Module, kernels: Sequence[KernelRef], rec: _Recorder) -> None:
    mha_kernels: dict[str, dict[str, str]] = {}
    for ref in kernels:
        if ref.kind.startswith("mha_"):  # computed inside the MHA's forward, not by a call
            mha_kernels.setdefault(ref.caller, {})[ref.kind] = ref.name
            continue
        for path in (ref.module, *ref.aliases):
            rec.kernel(ref, model.get_submodule(path))
    for path, names in mha_kernels.items():
        rec.mha(model.get_submodule(path), names.get("mha_in_proj"), names["mha_out_proj"])
    for path, mod in model.named_modules():
        if is_attention(mod) or isinstance(mod, (*TRANSFORMER_LAYERS, nn.MultiheadAttention)):
            rec.attention(path, mod)


def measure(model: nn.Module, kernels: Sequence[KernelRef], args: tuple) -> Measurement:
    """Run `model(*args)` once (the caller freezes the model) and record MACs and order."""
    rec = _Recorder(kernels)
    _hook_all(model, kernels, rec)
    try:
        with mha_slow_path():
            model(*args)
    finally:
        rec.remove()
    per = batch_size(args)
    rec.result.macs = {name: int(round(m / per)) for name, m in rec.total.items()}
    return rec.result
