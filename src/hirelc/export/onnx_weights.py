"""Pure math for the ONNX export: hirelc's quantized weights as integers ONNX Runtime runs.

Every hirelc format decodes to `level x scale` (`hirelc.compress.quantize`), with integer
levels for int_sym / int_asym / 1 bit and power-of-two-scaled levels for pow2 and the
minifloats. `to_integers` rewrites a `QuantizedTensor` as

    dequantize(q) == (values - zero_point) * scale      exactly, in float32

with integer `values`, by moving the power of two into the scale (exact: scaling by 2^-m
only changes the exponent). `choose_lowering` then picks the narrowest operator the CPU
runtime executes for those integers, and `pack_matmulnbits` lays codes out for
`com.microsoft::MatMulNBits`.

What ONNX Runtime 1.32 (CPU) runs, probed on the pinned build (see tests/export/test_onnx.py):
MatMulNBits with bits in {2, 4, 8}, power-of-two block sizes >= 16 (at most 256 for 2 bits),
float32 scales; DequantizeLinear (opset 21) for int4/uint4/int8/uint8/int16/uint16, per
tensor, per axis or blocked along one axis.

>>> import torch
>>> from hirelc.compress.quantize import dequantize, quantize
>>> from hirelc.plan import LayerConfig
>>> q = quantize(torch.randn(3, 40), LayerConfig(bits=4, number_format="float"))  # E2M1
>>> iw = to_integers(q)
>>> iw.bits, int(abs(iw.values).max()) <= 12     # E2M1 levels x 2 are the integers 0..12
(5, True)
>>> torch.equal(torch.from_numpy(iw.dequantized()), dequantize(q))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hirelc.compress.quantize import QuantizedTensor, dequantize, magnitude_table
from hirelc.export.bitpack import pack_bits

__all__ = [
    "FOLD",
    "MATMULNBITS_BITS",
    "IntWeight",
    "Lowering",
    "choose_lowering",
    "hirelc_bytes",
    "pack_matmulnbits",
    "to_integers",
]

MATMULNBITS_BITS = (2, 4, 8)  # the CPU kernel rejects other widths ("additional bits planned")
# Powers of two >= 16 (probed up to 1024; at 4 bits blocks of 32..1024 ran a 2048x512
# product equally fast); 2 bits allows at most 256.
MATMULNBITS_BLOCKS = (16, 32, 64, 128, 256, 512, 1024)
MATMULNBITS_MAX_BLOCK_2BIT = 256
DQ_BITS = (4, 8, 16)  # DequantizeLinear integer widths at opset 21
MAX_INT_BITS = 31  # wider levels are kept as the dequantized float weight
FOLD = "Cast+Mul"  # Lowering.op of weights decoded by Cast/Mul on constants (folded at load)


@dataclass(frozen=True)
class IntWeight:
    """A weight as integers: (values - zero_point) * scale, blocks of `block` columns per scale.

    values: int32 (rows, cols), signed levels, or unsigned codes when `zero_point` is set.
    zero_point: int32 (rows, n_blocks) or None; scale: float32 (rows, n_blocks), or (1, 1)
    for one scale for the whole tensor. bits: width that holds `values` (two's complement
    when signed).
    """

    values: np.ndarray | None  # None when wider than int32 (`dense` holds the weight)
    zero_point: np.ndarray | None
    scale: np.ndarray
    block: int
    bits: int
    signed: bool
    dense: np.ndarray | None = None  # the dequantized weight, float32 (rows, cols)

    @property
    def per_tensor(self) -> bool:
        return self.scale.shape == (1, 1)

    def dequantized(self) -> np.ndarray:
        """(values - zero_point) * scale as float32 (rows, cols)."""
        if self.values is None:
            return self.dense
        rows, cols = self.values.shape
        zp = 0 if self.zero_point is None else _expand(self.zero_point, self.block, rows, cols)
        levels = (self.values - zp).astype(np.float32)
        return levels * _expand(self.scale, self.block, rows, cols)


def _expand(per_block: np.ndarray, block: int, rows: int, cols: int) -> np.ndarray:
    """(rows|1, n_blocks) -> (rows, cols): each entry repeated over its block of columns."""
    out = np.repeat(per_block, block, axis=1)[:, :cols]
    return np.broadcast_to(out, (rows, cols))


def signed_bits(max_abs: int) -> int:
    """Two's complement width holding -max_abs..max_abs.

    >>> signed_bits(1), signed_bits(7), signed_bits(8), signed_bits(64)
    (2, 4, 5, 8)
    """
    return max(2, math.ceil(math.log2(max_abs + 1)) + 1)


def _integer_table(bits: int, number_format: str) -> tuple[np.ndarray, int]:
    """The pow2 / minifloat magnitude table times 2^m (float64, exact), the smallest m
    making it integral."""
    table = magnitude_table(bits, number_format).double().numpy()
    for m in range(0, 1024):
        scaled = table * 2.0**m
        if np.all(scaled == np.round(scaled)):
            return scaled, m
    raise AssertionError("a magnitude table of powers of two is always integral at some m")


def to_integers(q: QuantizedTensor) -> IntWeight:
    """`q` as integer values, zero points and float32 scales (module docstring)."""
    rows = int(q.shape[0])
    cols = math.prod(int(d) for d in q.shape[1:]) if len(q.shape) > 1 else 1
    codes = q.codes.reshape(rows, cols).to(dtype=q.codes.dtype).numpy().astype(np.int32)
    scale = q.scale.float().numpy().reshape(rows if q.granularity != "per_tensor" else 1, -1)
    block = q.group_size if q.granularity == "per_group" else cols
    zero_point = None
    if q.bits == 1:
        values, bits = codes * 2 - 1, 2  # sign x scale: levels -1, +1
    elif q.number_format == "int_sym":
        values, bits = codes - (2 ** (q.bits - 1) - 1), q.bits
    elif q.number_format == "int_asym":
        values, bits = codes, q.bits
        zero_point = q.zero_point.numpy().astype(np.int32).reshape(scale.shape)
    else:
        table, m = _integer_table(q.bits, q.number_format)
        bits = signed_bits(int(table[-1]))
        if bits > MAX_INT_BITS:  # e.g. pow2 7 bits: levels 2^-62..1 need 64-bit integers
            return IntWeight(None, None, scale, block, bits, True, dense=dequantize(q).reshape(rows, cols).numpy())
        magnitude = table[codes & (2 ** (q.bits - 1) - 1)]
        negative = (codes >> (q.bits - 1)) & 1
        values = (magnitude * (1 - 2 * negative)).astype(np.int32)
        scale = (scale.astype(np.float64) / 2.0**m).astype(np.float32)  # exact: a power of two
    return IntWeight(values.astype(np.int32), zero_point, scale.astype(np.float32), block, bits,
                     signed=zero_point is None)


@dataclass(frozen=True)
class Lowering:
    """How one kernel is stored in the ONNX file.

    op: "MatMulNBits" (Linear), "DequantizeLinear" (integers + DQ node), FOLD (integers
    decoded by Cast/Mul, folded when the runtime loads the file) or "float32".
    bits: stored bits per weight; block: columns per scale in the file (None: one scale
    per tensor or per row, as in the plan, or float32).
    """

    op: str
    bits: int
    block: int | None


def _matmulnbits_block(iw: IntWeight, bits: int, cols: int) -> int | None:
    """The block size for MatMulNBits: hirelc's group size when the kernel runs it, a power
    of two dividing it otherwise (scales repeated), or, per channel / per tensor, the size
    giving the fewest bytes (padding of the last block vs repeated scales)."""
    allowed = [b for b in MATMULNBITS_BLOCKS if bits != 2 or b <= MATMULNBITS_MAX_BLOCK_2BIT]
    if iw.block < cols:  # per_group: blocks must nest inside hirelc's groups
        fitting = [b for b in allowed if iw.block % b == 0]
        return max(fitting) if fitting else None
    return min(allowed, key=lambda b: (matmulnbits_bytes(iw, bits, b, cols), -b))


def matmulnbits_bytes(iw: IntWeight, bits: int, block: int, cols: int) -> int:
    """Initializer bytes of a MatMulNBits weight: packed codes, float32 scales, zero points."""
    rows = iw.values.shape[0]
    n_blocks = math.ceil(cols / block)
    zp = 0 if iw.zero_point is None else math.ceil(n_blocks * bits / 8)
    return rows * (n_blocks * block * bits // 8 + 4 * n_blocks + zp)


def choose_lowering(iw: IntWeight, kind: str, min_matmul_bits: int = 2, decode: str = "runtime") -> Lowering:
    """The narrowest storage the CPU runtime executes for `iw` on a `kind` kernel
    ("linear" or "conv"). min_matmul_bits: store Linear kernels at no fewer bits than this
    (4 picks onnxruntime's fastest float32-activation MatMulNBits kernel for 2-bit ones).
    decode="load": the same integers, decoded once when the runtime loads the file (FOLD),
    except Linears of <= 4 bits, kept as 4-bit MatMulNBits (faster than float32 MatMul)."""
    if iw.values is None:
        return Lowering("float32", 32, None)
    cols = iw.values.shape[1]
    if decode == "load":
        return _load_time_lowering(iw, kind, cols)
    if kind == "linear" and iw.bits <= max(MATMULNBITS_BITS):
        bits = min(b for b in MATMULNBITS_BITS if b >= max(iw.bits, min_matmul_bits))
        block = _matmulnbits_block(iw, bits, cols)
        if block is not None:
            return Lowering("MatMulNBits", bits, block)
    # A Linear gets here only with a hirelc group size that no MatMulNBits block (a power of
    # two >= 16) divides, or with levels wider than 8 bits. Both matter: onnxruntime's
    # extended optimizations rewrite DequantizeLinear (int4/int8, power-of-two blocks) +
    # MatMul into MatMulNBits with int8 activations (accuracy_level 4), which would change
    # the outputs by ~1e-3; these two cases are left alone (tested).
    if iw.bits <= max(DQ_BITS):
        bits = min(b for b in DQ_BITS if b >= iw.bits)
        return Lowering("DequantizeLinear", bits, iw.block if iw.block < cols else None)
    return Lowering("float32", 32, None)


def _load_time_lowering(iw: IntWeight, kind: str, cols: int) -> Lowering:
    if kind == "linear" and iw.bits <= 4:
        block = _matmulnbits_block(iw, 4, cols)
        if block is not None:
            return Lowering("MatMulNBits", 4, block)
    if iw.bits <= max(DQ_BITS):
        return Lowering(FOLD, min(b for b in DQ_BITS if b >= iw.bits), iw.block if iw.block < cols else None)
    return Lowering("float32", 32, None)


def hirelc_bytes(q: QuantizedTensor) -> int:
    """Bytes hirelc's packed format stores for `q`: packed codes, float16 scales, uint8 zero
    points (docs/ARCHITECTURE.md, storage contract)."""
    n = q.codes.numel()
    zp = 0 if q.zero_point is None else q.zero_point.numel()
    return math.ceil(n * q.bits / 8) + 2 * q.scale.numel() + zp


def _blocked(iw: IntWeight, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Values, scales and zero points re-blocked to `block` columns (a divisor of iw.block,
    or any size when iw has one scale per row), columns padded to whole blocks."""
    rows, cols = iw.values.shape
    n_blocks = math.ceil(cols / block)
    first_col = np.arange(n_blocks) * block  # the hirelc block each new block lies in
    src = np.minimum(first_col // iw.block, iw.scale.shape[1] - 1)
    scale = np.broadcast_to(iw.scale[:, src], (rows, n_blocks))
    zp = None if iw.zero_point is None else np.broadcast_to(iw.zero_point[:, src], (rows, n_blocks))
    values = np.zeros((rows, n_blocks * block), dtype=np.int32)
    values[:, :cols] = iw.values
    if zp is not None:  # padding takes each block's zero point: it decodes to exactly 0
        values[:, cols:] = zp[:, -1:]
    return values, np.ascontiguousarray(scale), None if zp is None else np.ascontiguousarray(zp)


def pack_matmulnbits(iw: IntWeight, bits: int, block: int) -> dict[str, np.ndarray]:
    """The B (uint8 (N, n_blocks, block*bits/8)), scales (float32 (N*n_blocks,)) and
    zero_points (uint8, only for int_asym) inputs of MatMulNBits, whose decode is
    (code - zero_point) * scale with zero_point 2^(bits-1) when absent."""
    import torch  # bitpack works on torch tensors

    values, scale, zp = _blocked(iw, block)
    rows, n_blocks = scale.shape
    codes = values + (2 ** (bits - 1) if zp is None else 0)  # signed levels -> default zp
    if codes.min() < 0 or codes.max() >= 2**bits:
        raise ValueError(f"codes do not fit in {bits} bits for MatMulNBits")
    # Codes of a block are a little-endian bit stream (low nibble first for 4 bits), which
    # is exactly hirelc's pack_bits order; block*bits is a multiple of 8, so packing the
    # whole row keeps every block byte-aligned.
    packed = pack_bits(torch.from_numpy(codes.astype(np.uint8)), bits).numpy()
    out = {"B": packed.reshape(rows, n_blocks, block * bits // 8), "scales": scale.reshape(-1)}
    if zp is not None:
        per_row = [pack_bits(torch.from_numpy(z.astype(np.uint8).copy()), bits).numpy() for z in zp]
        out["zero_points"] = np.concatenate(per_row)
    return out
