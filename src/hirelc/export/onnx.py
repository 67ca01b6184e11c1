"""ONNX export: the physically pruned model with low-bit weights ONNX Runtime runs on CPU.

Route: the model is compressed (`apply_plan`) and made physical (`to_physical`: pruned
channels and heads removed); every kernel the plan quantizes is wrapped in a marker whose
ONNX symbolic is a placeholder node, and torch's TorchScript exporter writes the graph
(`dynamo=False`: the torch.export-based exporter needs onnxscript, which hirelc does not
require). The placeholders are then replaced (`hirelc.export.onnx_graph`) with operators
holding hirelc's own codes and scales (`hirelc.compress.quantize`, rewritten as integers by
`hirelc.export.onnx_weights`):

    Linear -> com.microsoft::MatMulNBits (2/4/8 bits, block = the plan's group size when the
              kernel runs it), else DequantizeLinear + MatMul
    Conv   -> DequantizeLinear (int4/int8/int16, per tensor / per channel / blocked per group)
              + Conv
    decode="load": the same integers decoded by Cast/Mul nodes that onnxruntime folds into
              float32 weights at load (faster in a default session; Linears of <= 4 bits
              stay 4-bit MatMulNBits; see benchmarks/RESULTS.md)

A format the runtime cannot run as such (3/5/6/7 bits, 1 bit, pow2, minifloats) is stored
at the next width that holds its levels exactly; `OnnxExport.lines()` says, per kernel,
what was widened and what it costs in bytes next to hirelc's packed storage. Because the
stored values are exactly hirelc's, the ONNX model computes what the compressed PyTorch
model computes, up to float summation order (tests/export/test_onnx.py states the tolerance).

>>> import os, tempfile
>>> from torch import nn
>>> from hirelc.plan import LayerConfig, Plan
>>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
>>> x = torch.randn(2, 64)
>>> plan = Plan({"0": LayerConfig(bits=4, keep_ratio=0.5), "2": LayerConfig(bits=3)})
>>> result = export_onnx(net, plan, os.path.join(tempfile.mkdtemp(), "net.onnx"), x)
>>> [(k.name, k.lowering.op, k.lowering.bits) for k in result.kernels]
[('0', 'MatMulNBits', 4), ('2', 'MatMulNBits', 4)]
>>> import onnxruntime as ort
>>> sess = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
>>> y = sess.run(None, {"input": x.numpy()})[0]
>>> y.shape
(2, 10)
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hirelc.durable import atomic_write_bytes
from hirelc.compress.apply import compact_latent_weights, compression_state, to_physical
from hirelc.compress.quantize import dequantize, quantize
from hirelc.compress.slots import SlotLinear
from hirelc.export.onnx_weights import MATMULNBITS_BITS, Lowering, choose_lowering, hirelc_bytes, to_integers
from hirelc.export.packed import compressed_for_export
from hirelc.inventory import Inventory
from hirelc.plan import Plan

if TYPE_CHECKING:
    from hirelc.export.onnx_graph import Lowered

__all__ = ["INSTALL_HINT", "IR_VERSION", "OPSET", "KernelExport", "OnnxExport", "export_onnx", "require_onnx"]

OPSET = 21  # DequantizeLinear with int4 and blocked scales needs opset 21 (ONNX 1.16)
IR_VERSION = 10  # opset 21's IR version; onnxruntime >= 1.17 loads it
INSTALL_HINT = "ONNX export needs onnx and onnxruntime: pip install 'hirelc[onnx]'"


def require_onnx() -> None:
    """Raise ImportError with the install command when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None


@dataclass(frozen=True)
class KernelExport:
    """How one kernel of the plan was stored: its plan entry, the ONNX storage, the bytes
    of both, and what was widened to reach a format the runtime executes."""

    name: str
    config: str  # e.g. "int_sym 3b per_channel"
    lowering: Lowering
    hirelc_bytes: int  # hirelc's packed storage of this kernel (codes + fp16 scales + zps)
    onnx_bytes: int  # the initializers holding it in the ONNX file
    widened: tuple[str, ...]

    def line(self) -> str:
        block = f" block {self.lowering.block}" if self.lowering.block else ""
        kept = f"{self.lowering.op} {self.lowering.bits}b{block}"
        extra = self.onnx_bytes - self.hirelc_bytes
        why = "; ".join(self.widened) if self.widened else "nothing widened"
        return (f"{self.name}: {self.config} -> {kept}: {self.onnx_bytes:,} B vs {self.hirelc_bytes:,} B "
                f"packed ({extra:+,} B: {why})")


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the file, its size (measured with os.stat) and one entry per
    quantized kernel."""

    path: str
    file_bytes: int
    kernels: tuple[KernelExport, ...]

    def lines(self) -> list[str]:
        return [k.line() for k in self.kernels]


# --------------------------------------------------------------------------- marking


class _Marker(torch.autograd.Function):
    """Runs a kernel as usual; exports as a `hirelc::Kernel` placeholder naming it.

    The weight and bias are inputs (not read from a captured module) because the
    TorchScript tracer cannot trace parameters captured inside a Function's forward.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, index: int, conv: tuple | None) -> Tensor:
        if conv is None:
            return F.linear(x, w, b)
        stride, padding, dilation, groups = conv
        fn = F.conv1d if w.dim() == 3 else F.conv2d
        return fn(x, w, b, stride, padding, dilation, groups)

    @staticmethod
    def symbolic(g: Any, x: Any, w: Any, b: Any, index: int, conv: tuple | None) -> Any:
        out = g.op("hirelc::Kernel", x, index_i=index)
        sizes = x.type().sizes()
        if sizes is not None:  # declare the output shape, so the exporter's inference holds
            out.setType(x.type().with_sizes(_out_sizes(list(sizes), w.type().sizes(), conv)))
        return out


def _out_sizes(x: list[int], w: list[int], conv: tuple | None) -> list[int]:
    if conv is None:
        return x[:-1] + [w[0]]
    stride, padding, dilation, _ = conv
    spatial = [(n + 2 * p - d * (k - 1) - 1) // s + 1
               for n, k, s, p, d in zip(x[2:], w[2:], stride, padding, dilation)]
    return [x[0], w[0]] + spatial


class _Marked(nn.Module):
    def __init__(self, inner: nn.Module, index: int) -> None:
        super().__init__()
        self.inner, self.index = inner, index

    # A model that reads `layer.weight` itself (not calling the layer) still finds it; that
    # kernel gets no placeholder and is reported as float32 (`export_onnx`).
    @property
    def weight(self) -> Tensor:
        return self.inner.weight

    @property
    def bias(self) -> Tensor | None:
        return self.inner.bias

    def forward(self, x: Tensor) -> Tensor:
        m = self.inner
        conv = None
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            conv = (tuple(m.stride), _padding(m), tuple(m.dilation), m.groups)
        if isinstance(m, SlotLinear):  # zero-filled head slots / a zero-padded input
            return m.slot_output(_Marker.apply(m.slot_input(x), m.weight, m.bias, self.index, conv))
        return _Marker.apply(x, m.weight, m.bias, self.index, conv)


def _padding(conv: nn.Module) -> tuple[int, ...]:
    """Explicit symmetric padding; 'same' with an odd total is not markable (None)."""
    k = conv.kernel_size
    if conv.padding == "valid":
        return (0,) * len(k)
    if conv.padding == "same":
        totals = [d * (n - 1) for n, d in zip(k, conv.dilation)]
        if any(t % 2 for t in totals):
            raise _Unmarkable("padding='same' with an even kernel pads asymmetrically")
        return tuple(t // 2 for t in totals)
    return tuple(conv.padding)


class _Unmarkable(Exception):
    pass


def _markable(mod: nn.Module) -> str | None:
    """Why a kernel module cannot be lowered (stays float32 in the file), or None."""
    if isinstance(mod, nn.Linear):
        return None
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        if mod.padding_mode != "zeros":
            return f"padding_mode {mod.padding_mode!r}"
        try:
            _padding(mod)
        except _Unmarkable as e:
            return str(e)
        return None
    return f"{type(mod).__name__} weights are not exported through their own module"


# --------------------------------------------------------------------------- export


def export_onnx(
    model: nn.Module,
    plan: Plan | None,
    path: str | os.PathLike,
    example_input: Tensor,
    *,
    inventory: Inventory | None = None,
    importance: str | Mapping[str, Tensor] | None = None,
    min_matmul_bits: int = 2,
    decode: str = "runtime",
) -> OnnxExport:
    """Write `model` compressed with `plan` as an ONNX file (module docstring) and return
    what was written. The batch dimension is dynamic; the input is named "input" and the
    output "output".

    model: the fp32 model (compressed here) or a model from `apply_plan` (e.g. fine-tuned;
        `plan` must then be None or its plan). example_input: one input tensor (batch first).
    min_matmul_bits: Linear kernels are stored as MatMulNBits with at least this many bits
        (2, 4 or 8; default 2: the smallest file). onnxruntime 1.32 computes fastest at 4
        bits; its 2-bit kernel with float32 activations was slower than float32 MatMul at
        batch 1 (benchmarks/RESULTS.md), so 4 trades bytes for speed.
    decode: "runtime" (default): weights stay low-bit in the session and its operators
        decode them on every run (MatMulNBits, DequantizeLinear: the standard QDQ form
        other runtimes read as quantized weights). "load": the same integers and scales,
        decoded by Cast/Mul nodes that onnxruntime's default constant folding turns into
        float32 weights when it loads the file (float32 memory and speed, Conv+BatchNorm
        fusion; the file as small), except Linears of <= 4 bits, kept as 4-bit MatMulNBits,
        which ran faster than float32 MatMul (benchmarks/RESULTS.md).
    The file is written atomically; it replaces an existing file at `path` (the CLI refuses
    to). Raises ImportError naming `pip install 'hirelc[onnx]'` when onnx / onnxruntime are
    missing.
    """
    require_onnx()
    import onnx

    from hirelc.export.onnx_graph import rewrite  # imports onnx: only when exporting

    if decode not in ("runtime", "load"):
        raise ValueError(f"decode must be 'runtime' or 'load', got {decode!r}")
    if min_matmul_bits not in MATMULNBITS_BITS:
        raise ValueError(f"min_matmul_bits must be one of {MATMULNBITS_BITS}, got {min_matmul_bits!r}")
    if not isinstance(example_input, Tensor):
        raise ValueError(f"export_onnx needs one example input tensor, got {type(example_input).__name__}")
    compressed = compressed_for_export(model, plan, example_input, inventory, importance)
    state = compression_state(compressed)
    latents = compact_latent_weights(compressed)
    physical = to_physical(compressed).eval()
    physical.to(example_input.device)
    lowered: list[Lowered] = []
    reports: list[KernelExport] = []
    for name, cfg in state.plan.items():
        ref = state.kernels[name]
        item, report = _lower_kernel(name, cfg, ref, latents[name], physical, len(lowered), min_matmul_bits,
                                     decode)
        reports.append(report)
        if item is not None:
            lowered.append(item)
            for p in (ref.module,) + ref.aliases:
                _replace_module(physical, p, _Marked(physical.get_submodule(p), item.index))
    graph, placed = rewrite(onnx.load_from_string(_torch_export(physical, example_input, bool(lowered))), lowered)
    unplaced = {item.name: item for item in lowered if item.index not in placed}
    reports = [_as_float32(r, unplaced[r.name]) if r.name in unplaced else r for r in reports]
    onnx.checker.check_model(graph)
    data = graph.SerializeToString()
    atomic_write_bytes(Path(path), data)
    return OnnxExport(str(path), os.stat(path).st_size, tuple(reports))


def _lower_kernel(name: str, cfg: Any, ref: Any, latent: Tensor, physical: nn.Module, index: int,
                  min_matmul_bits: int, decode: str) -> tuple[Lowered | None, KernelExport]:
    """The storage of one kernel of the plan (None when it stays float32) and its report."""
    from hirelc.export.onnx_graph import Lowered  # noqa: F811 (the runtime import; onnx is optional)

    module = physical.get_submodule(ref.module)
    q = quantize(latent, cfg)
    weight = getattr(module, ref.param).detach()
    if not torch.equal(dequantize(q).reshape(weight.shape).to(weight.device), weight):
        raise AssertionError(f"kernel {name!r}: the physical weight is not its quantized codes")
    desc = f"{cfg.number_format} {cfg.bits}b {cfg.granularity}" + (f" {cfg.group_size}" if cfg.group_size else "")
    reason = (f"{ref.kind}: computed inside nn.MultiheadAttention" if ref.kind.startswith("mha")
              else _markable(module))
    if reason is not None:
        return None, KernelExport(name, desc, Lowering("float32", 32, None), hirelc_bytes(q), weight.numel() * 4,
                                  (f"not lowered ({reason}): float32",))
    iw = to_integers(q)
    low = choose_lowering(iw, "linear" if isinstance(module, nn.Linear) else "conv", min_matmul_bits, decode)
    item = Lowered(index, name, module, iw, low)
    return item, KernelExport(name, desc, low, hirelc_bytes(q), item.onnx_bytes(), _widened(cfg, iw, low))


def _as_float32(report: KernelExport, item: Any) -> KernelExport:
    """The report of a lowered kernel that got no placeholder: the exporter kept its float32
    weight (the model reads `layer.weight` itself instead of calling the layer)."""
    return KernelExport(report.name, report.config, Lowering("float32", 32, None), report.hirelc_bytes,
                        item.module.weight.numel() * 4,
                        ("not lowered (the model never calls this layer, it reads the weight itself): float32",))


@contextmanager
def _without_placeholder_warning() -> Iterator[None]:
    """Drop the C++ warning that the placeholder op has no shape inference (it is replaced
    before anyone reads the graph); it goes straight to file descriptor 2, past `warnings`.
    Every other line written to stderr meanwhile is passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if "hirelc::Kernel" not in line]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def _torch_export(model: nn.Module, example_input: Tensor, marked: bool) -> bytes:
    """The TorchScript exporter's ONNX bytes, batch dimension dynamic."""
    buf = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's inference fast path is one fused aten op with no ONNX
        # export; the regular path exports as plain MatMul / Softmax.
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings(), torch.no_grad(), _without_placeholder_warning():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (example_input,), buf, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"], custom_opsets={"hirelc": 1} if marked else None,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buf.getvalue()


def _replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


def _widened(cfg: Any, iw: Any, low: Lowering) -> tuple[str, ...]:
    """Human-readable list of what the file stores wider than hirelc's plan."""
    out = []
    if cfg.number_format in ("pow2", "float") and cfg.bits > 1:
        out.append(f"{cfg.number_format} levels as {iw.bits}-bit integers")
    elif cfg.bits == 1:
        out.append("1-bit signs as levels -1/+1")
    if low.bits > cfg.bits:
        out.append(f"{cfg.bits}->{low.bits} bits")
    if low.op != "float32":
        out.append("scales float16->float32")
    if low.op == "MatMulNBits" and low.block is not None and low.block < iw.block:
        out.append(f"scales repeated per {low.block} columns")
    if low.op != "DequantizeLinear" and low.block and iw.values.shape[1] % low.block:
        out.append(f"columns padded to a multiple of {low.block}")
    return tuple(out)
