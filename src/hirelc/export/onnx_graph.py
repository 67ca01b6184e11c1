"""Graph surgery for the ONNX export: replace each `hirelc::Kernel` placeholder written by
`hirelc.export.onnx` with the operators and initializers of its `Lowering`.

    MatMulNBits       x -> MatMulNBits(B, scales[, zero_points]) [-> Add bias]
    DequantizeLinear  Linear: x -> MatMul(DQ(codes^T)) [-> Add bias]
                      Conv:   x -> Conv(Reshape(DQ(codes (rows, cols))), bias)
    Cast+Mul (FOLD)   the same integers decoded by Cast/Sub/Mul (+ Reshape/Slice, and a
                      Transpose for MatMul) on constants only, which onnxruntime folds to
                      float32 when it loads the file
    float32           the dequantized weight as a float32 initializer, MatMul or Conv

DequantizeLinear reads the codes as (rows, cols) or their transpose, so hirelc's
per-group blocks (consecutive columns of a row, across a conv's input channels and taps)
are one ONNX block axis; per channel is `axis`, per tensor a scalar scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import nn

from hirelc.export.onnx_weights import FOLD, IntWeight, Lowering, pack_matmulnbits

__all__ = ["Lowered", "describe", "rewrite"]

MS_DOMAIN = "com.microsoft"
_DQ_DTYPES = {(4, True): ml_dtypes.int4, (4, False): ml_dtypes.uint4, (8, True): np.int8,
              (8, False): np.uint8, (16, True): np.int16, (16, False): np.uint16}


@dataclass
class Lowered:
    """One quantized kernel to put in the graph: its module (shapes, bias, conv attributes),
    its integer weight and the chosen storage."""

    index: int
    name: str
    module: nn.Module
    iw: IntWeight
    lowering: Lowering
    _inits: list[onnx.TensorProto] | None = field(default=None, repr=False)
    _call: int = field(default=0, repr=False)

    def _key(self, what: str) -> str:
        """Name of an initializer (shared by every call of the kernel)."""
        return f"hirelc/{self.name}/{what}"

    def _nkey(self, what: str) -> str:
        """Name of a node or intermediate value: unique per call, as a module may run twice."""
        return self._key(what) + (f"/call{self._call}" if self._call else "")

    @property
    def is_linear(self) -> bool:
        return isinstance(self.module, nn.Linear)

    def initializers(self) -> list[onnx.TensorProto]:
        if self._inits is None:
            self._inits = self._weight_initializers() + self._bias_initializers()
        return self._inits

    def onnx_bytes(self) -> int:
        """Bytes of the weight's initializers (codes, scales, zero points; not the bias)."""
        return sum(_nbytes(t) for t in self.initializers() if not t.name.endswith("/bias"))

    def _bias_initializers(self) -> list[onnx.TensorProto]:
        b = self.module.bias
        return [] if b is None else [numpy_helper.from_array(b.detach().cpu().numpy(), self._key("bias"))]

    def _weight_initializers(self) -> list[onnx.TensorProto]:
        low, iw = self.lowering, self.iw
        if low.op == "MatMulNBits":
            arrays = pack_matmulnbits(iw, low.bits, low.block)
            return [numpy_helper.from_array(a, self._key(k)) for k, a in arrays.items()]
        if low.op == FOLD:
            return self._fold_initializers()
        if low.op == "float32":
            w = iw.dequantized()
            w = w.T if self.is_linear else w.reshape(tuple(self.module.weight.shape))
            return [numpy_helper.from_array(np.ascontiguousarray(w), self._key("weight"))]
        return self._dq_initializers()

    def _dq_initializers(self) -> list[onnx.TensorProto]:
        low, iw = self.lowering, self.iw
        dtype = _DQ_DTYPES[(low.bits, iw.signed)]
        values, scale, zp = iw.values, iw.scale, iw.zero_point
        if iw.per_tensor:
            scale, zp = scale.reshape(()), None if zp is None else zp.reshape(())
        elif iw.scale.shape[1] == 1:  # per channel: one scale per row
            scale, zp = scale.reshape(-1), None if zp is None else zp.reshape(-1)
        if self.is_linear:  # MatMul wants (in, out): store the transpose, blocks along axis 0
            values, scale, zp = values.T, scale.T, None if zp is None else zp.T
        elif not self.blocked:  # one scale per tensor / out channel: the conv's own shape
            values = values.reshape(tuple(self.module.weight.shape))
        out = [numpy_helper.from_array(np.ascontiguousarray(values).astype(dtype), self._key("codes")),
               numpy_helper.from_array(np.ascontiguousarray(scale, dtype=np.float32), self._key("scale"))]
        if zp is not None:
            out.append(numpy_helper.from_array(np.ascontiguousarray(zp).astype(dtype), self._key("zero_point")))
        return out

    def _fold_initializers(self) -> list[onnx.TensorProto]:
        """Conv codes + scales (+ zero points) for Cast/Mul: (rows, n_groups, group) blocks,
        zero-padded, when hirelc's groups split a row; else the conv's own shape."""
        iw, dtype = self.iw, _DQ_DTYPES[(self.lowering.bits, self.iw.signed)]
        rank = len(self.module.weight.shape)
        if self.blocked:
            rows, cols = iw.values.shape
            n, g = iw.scale.shape[1], iw.block
            values = np.zeros((rows, n * g), np.int32)
            values[:, :cols] = iw.values
            if iw.zero_point is not None:  # padding decodes to 0 (sliced away anyway)
                values[:, cols:] = iw.zero_point[:, -1:]
            shape = (rows, n, 1)
        else:
            values = iw.values.reshape(tuple(self.module.weight.shape))
            shape = () if iw.per_tensor else (-1,) + (1,) * (rank - 1)
        out = [numpy_helper.from_array(values.astype(dtype), self._key("codes")),
               numpy_helper.from_array(iw.scale.reshape(shape).astype(np.float32), self._key("scale"))]
        if iw.zero_point is not None:
            out.append(numpy_helper.from_array(iw.zero_point.reshape(shape).astype(dtype), self._key("zero_point")))
        return out

    def _fold_nodes(self, names: list[str]) -> tuple[list[onnx.NodeProto], str]:
        """(codes - zero_point) * scale from Cast/Sub/Mul/Reshape/Slice on constants only:
        onnxruntime's constant folding turns it into a float32 weight when the session
        loads (it leaves DequantizeLinear alone, to keep QDQ groups fusable)."""
        k, m, iw = self._nkey, self.module, self.iw
        nodes = [helper.make_node("Cast", [names[0]], [k("codes_f")], name=k("cast"), to=onnx.TensorProto.FLOAT)]
        cur = k("codes_f")
        if self.blocked:
            rows, cols = iw.values.shape
            nodes += _reshape(cur, k("blocks"), (rows, iw.scale.shape[1], iw.block))
            cur = k("blocks")
        if len(names) > 2:
            nodes.append(helper.make_node("Cast", [names[2]], [k("zp_f")], name=k("cast_zp"), to=onnx.TensorProto.FLOAT))
            nodes.append(helper.make_node("Sub", [cur, k("zp_f")], [k("levels")], name=k("sub")))
            cur = k("levels")
        nodes.append(helper.make_node("Mul", [cur, names[1]], [k("w_scaled")], name=k("mul")))
        cur = k("w_scaled")
        if self.blocked:
            rows, cols = iw.values.shape
            nodes += _reshape(cur, k("w2d_padded"), (rows, -1))
            nodes += _slice_cols(k("w2d_padded"), k("w2d"), cols)
            nodes += _reshape(k("w2d"), k("w"), tuple(m.weight.shape))
            cur = k("w")
        return nodes, cur

    def nodes(self, x: str, y: str, call: int = 0) -> list[onnx.NodeProto]:
        """The operators computing `y` from `x`, for the `call`-th use of the kernel."""
        self._call = call
        core = y if self.module.bias is None or not self.is_linear else self._nkey("mm")
        if self.is_linear:
            out = self._linear_nodes(x, core)
            if core != y:
                out.append(helper.make_node("Add", [core, self._key("bias")], [y], name=self._nkey("add")))
            return out
        return self._conv_nodes(x, y)

    def _linear_nodes(self, x: str, y: str) -> list[onnx.NodeProto]:
        low, iw = self.lowering, self.iw
        names = [t.name for t in self.initializers() if not t.name.endswith("/bias")]
        if low.op == "MatMulNBits":
            rows, cols = iw.values.shape
            return [helper.make_node("MatMulNBits", [x, *names], [y], name=self._nkey("matmulnbits"),
                                     domain=MS_DOMAIN, K=cols, N=rows, bits=low.bits, block_size=low.block)]
        if low.op == "float32":
            return [helper.make_node("MatMul", [x, names[0]], [y], name=self._nkey("matmul"))]
        if low.op == FOLD:  # (out, in) decoded, then transposed for MatMul: all constants
            nodes, w = self._fold_nodes(names)
            wt = self._nkey("w_t")
            return nodes + [helper.make_node("Transpose", [w], [wt], name=self._nkey("transpose"), perm=[1, 0]),
                            helper.make_node("MatMul", [x, wt], [y], name=self._nkey("matmul"))]
        w = self._nkey("w")
        dq = self._dq_node(names, w, axis=0 if self.blocked else 1)
        return [dq, helper.make_node("MatMul", [x, w], [y], name=self._nkey("matmul"))]

    @property
    def blocked(self) -> bool:
        """Several scales per row (hirelc per_group), as opposed to per tensor / channel."""
        return self.iw.scale.shape[1] > 1

    def _dq_node(self, names: list[str], out: str, axis: int) -> onnx.NodeProto:
        attrs: dict[str, Any] = {}
        if not self.iw.per_tensor:
            attrs["axis"] = axis
            if self.blocked:
                attrs["block_size"] = self.iw.block
        return helper.make_node("DequantizeLinear", names, [out], name=self._nkey("dq"), **attrs)

    def _conv_nodes(self, x: str, y: str) -> list[onnx.NodeProto]:
        m, low = self.module, self.lowering
        names = [t.name for t in self.initializers() if not t.name.endswith("/bias")]
        nodes, w = [], names[0]
        if low.op == FOLD:
            nodes, w = self._fold_nodes(names)
        elif low.op != "float32" and not self.blocked:
            w = self._nkey("w")
            nodes.append(self._dq_node(names, w, axis=0))
        elif low.op != "float32":  # hirelc's groups run across input channels and taps: 2-D
            flat, w = self._nkey("w2d"), self._nkey("w")
            shape = self._nkey("shape")
            nodes.append(helper.make_node("Constant", [], [shape], name=self._nkey("shape_const"),
                                          value=numpy_helper.from_array(np.array(m.weight.shape, np.int64))))
            nodes.append(self._dq_node(names, flat, axis=1))
            nodes.append(helper.make_node("Reshape", [flat, shape], [w], name=self._nkey("reshape")))
        inputs = [x, w] + ([self._key("bias")] if m.bias is not None else [])
        from hirelc.export.onnx import _padding  # the marker's padding rule, stated once

        pads = list(_padding(m))
        nodes.append(helper.make_node(
            "Conv", inputs, [y], name=self._nkey("conv"), kernel_shape=list(m.kernel_size),
            strides=list(m.stride), pads=pads + pads, dilations=list(m.dilation), group=m.groups))
        return nodes


def _const(name: str, values: Any) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name + "_node",
                            value=numpy_helper.from_array(np.array(values, np.int64)))


def _reshape(x: str, y: str, shape: tuple[int, ...]) -> list[onnx.NodeProto]:
    """Node names derive from their (unique) output names."""
    s = y + "_shape"
    return [_const(s, shape), helper.make_node("Reshape", [x, s], [y], name=y + "_node")]


def _slice_cols(x: str, y: str, cols: int) -> list[onnx.NodeProto]:
    """y = x[:, :cols]."""
    a, b, ax = y + "_starts", y + "_ends", y + "_axes"
    return [_const(a, [0]), _const(b, [cols]), _const(ax, [1]),
            helper.make_node("Slice", [x, a, b, ax], [y], name=y + "_node")]


def _nbytes(t: onnx.TensorProto) -> int:
    """Stored bytes of an initializer's data."""
    if t.raw_data:
        return len(t.raw_data)
    return numpy_helper.to_array(t).nbytes


def rewrite(model: onnx.ModelProto, lowered: list[Lowered]) -> tuple[onnx.ModelProto, set[int]]:
    """Replace the placeholders, add the new initializers, drop unused ones, set the opsets.
    Returns the model and the indices of the kernels placed (a kernel whose module the
    model never calls, e.g. one it reads the weight of directly, has no placeholder)."""
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    calls: dict[int, int] = {}
    for node in graph.node:
        if node.domain != "hirelc":
            nodes.append(node)
            continue
        index = next(a.i for a in node.attribute if a.name == "index")
        calls[index] = calls.get(index, -1) + 1
        nodes.extend(lowered[index].nodes(node.input[0], node.output[0], calls[index]))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(t for item in lowered if item.index in calls for t in item.initializers())
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    opsets = [o for o in model.opset_import if o.domain not in ("hirelc", MS_DOMAIN)]
    if any(n.domain == MS_DOMAIN for n in graph.node):
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    model.ir_version = 10
    return model, set(calls)


def describe(model: onnx.ModelProto) -> dict[str, int]:
    """op type -> count, for reports and tests."""
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))

