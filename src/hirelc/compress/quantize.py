"""Weight-only quantizers: int_sym, int_asym, pow2 and float (minifloat), 1..8 bits.

Pure tensor math, no logging, no I/O. A weight is viewed as a matrix (rows, cols): rows are
dim 0 (output channels / neurons), cols the flattened remaining dims (docs/ARCHITECTURE.md).
Scales are shared per tensor, per row (per_channel) or per group of `group_size`
consecutive columns of a row (per_group; the last group of a row may be short).

Formats (b = bits):
  - int_sym: levels q·s, q in [-(2^(b-1)-1), 2^(b-1)-1] (restricted range, so zero is a
    level and the grid is symmetric), s = max|w| / (2^(b-1)-1). code = q + 2^(b-1)-1.
  - int_asym: levels (c - z)·s, c in [0, 2^b-1], s = (max-min)/(2^b-1), z = round(-min/s)
    as uint8. The range is first widened to include 0 (as PyTorch / TFLite do) so that 0 is
    exactly a level and a range that does not straddle 0 is still covered.
  - pow2 and float are sign + magnitude codebooks: code = sign << (b-1) | magnitude index,
    magnitude = table[index] · s with s = max|w| / table[-1]; the nearest level is chosen in
    the linear domain (searchsorted on midpoints), so the error is at most half the gap
    between the two levels around |w|.
      pow2 table: 0, 2^-(K-1), ..., 2^-1, 1 with K = 2^(b-1) - 1 powers.
      float table: every non-negative value of an ExMy minifloat (IEEE-style bias
      2^(E-1)-1, subnormals, no inf/nan codes), see `FLOAT_FORMATS`.
  - 1 bit, any format: sign(w) · s with s = mean|w| of the group, the L2-optimal scale for
    a binary code (Rastegari et al., XNOR-Net, ECCV 2016, eq. 4). code 1 = w >= 0.

Scales are float16, as stored in the packed file (as in GPTQ / AWQ / llama.cpp formats):
each scale s above is rounded UP to the nearest float16 s' >= s, and the codes are computed
with s', so quantize, `fake_quantize` (apply_plan) and the packed file use the very same
step. Rounding up never clips (|w| / s' <= |w| / s), so the error bounds above hold with the
stored step s': at most s'/2 for int_sym / int_asym, half the local level gap x s' for pow2
and float. The price is a step up to 2^-10 (relative) coarser than the ideal one; below
float16's smallest normal 2^-14 ~ 6.1e-5 the spacing is a fixed 2^-24 ~ 6e-8, so a group
with a smaller scale (max|w| below ~7.8e-3 at int_sym 8 bits, ~4.3e-4 at 4 bits) loses
some resolution, and a non-zero scale below 2^-24 becomes 2^-24. A scale above float16's
largest value 65504 (max|w| above 65504 x the top level, e.g. 458,528 at int_sym 4 bits)
cannot be stored: `quantize` (and so `hirelc.export.packed`) and `fake_quantize` (and so
every evaluation and fine-tune) raise `WeightRangeError` naming the kernel (rescale that
layer's weights or leave it out of the plan); NaN/inf weights raise it too. The same check
in both places means a model that trains fine under fake quantization always exports, and
a fine-tune whose weights blow up is reported as exactly that (the evaluator catches it).

An all-zero group gets scale 0 and dequantizes to exact zeros; a zero weight in any group
dequantizes to exactly 0 for every format with b >= 2 (all have a zero level).

>>> from hirelc.plan import LayerConfig
>>> w = torch.tensor([[0.4, -1.0, 0.9], [2.0, 0.0, -2.0]])
>>> q = quantize(w, LayerConfig(bits=3))  # int_sym per_channel: levels -3..3 times max|w|/3
>>> q.scale  # 1/3 and 2/3, rounded up to float16
tensor([0.3335, 0.6670], dtype=torch.float16)
>>> dequantize(q)
tensor([[ 0.3335, -1.0005,  1.0005],
        [ 2.0010,  0.0000, -2.0010]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from hirelc.cost import has_zero_point, n_scales
from hirelc.plan import LayerConfig

__all__ = [
    "FLOAT_FORMATS",
    "SCALE_DTYPE",
    "QuantizedTensor",
    "WeightRangeError",
    "dequantize",
    "fake_quantize",
    "has_zero_point",
    "magnitude_table",
    "n_scales",
    "quantize",
    "scale_shape",
]

# bits -> (exponent bits, mantissa bits) of the minifloat used for number_format "float".
# 4, 6 and 8 bits are the OCP formats (MX FP4 E2M1, MX FP6 E3M2, FP8 E4M3); 5 and 7 bits
# give the extra bit to the mantissa (E2M2, E3M3), alternating with 6 and 8. Why mantissa
# first: the per-group scale already supplies the dynamic range, and weights have few
# outliers, for which Kuzmin et al. ("FP8 Quantization: The Power of the Exponent",
# NeurIPS 2022) report formats with fewer exponent bits quantize with lower error. Unlike
# OCP E4M3 no code is reserved for NaN, so the largest E4M3 magnitude here is 480, not 448.
FLOAT_FORMATS: dict[int, tuple[int, int]] = {4: (2, 1), 5: (2, 2), 6: (3, 2), 7: (3, 3), 8: (4, 3)}

SCALE_DTYPE = torch.float16  # dtype of every scale (module docstring: rounded up)
_SCALE_MAX = float(torch.finfo(SCALE_DTYPE).max)  # 65504


class WeightRangeError(ValueError):
    """A weight cannot be quantized: NaN/inf values, or a scale beyond float16's range.
    `kernel` names the layer when the caller said which one it was."""

    def __init__(self, message: str, kernel: str | None = None, max_abs: float = math.nan) -> None:
        super().__init__(f"kernel {kernel!r}: {message}" if kernel else message)
        self.kernel = kernel
        self.max_abs = max_abs  # max|w|, or NaN/inf for a non-finite weight


@dataclass
class QuantizedTensor:
    """A quantized weight: integer codes plus the scales (and zero points) to decode them.

    codes: uint8 (rows, cols), values in [0, 2**bits).
    scale: float16 (`SCALE_DTYPE`), shaped by `scale_shape`: (1,) per_tensor, (rows,)
        per_channel, (rows, n_groups) per_group.
    zero_point: uint8 shaped like `scale` for int_asym with bits >= 2, else None.
    shape: the original weight shape; `dequantize` restores it.
    """

    codes: Tensor
    scale: Tensor
    zero_point: Tensor | None
    bits: int
    number_format: str
    granularity: str
    group_size: int | None
    shape: tuple[int, ...]


def quantize(w: Tensor, cfg: LayerConfig, *, kernel: str | None = None) -> QuantizedTensor:
    """Quantize a weight tensor to `cfg.bits`-bit codes with the format and granularity of
    `cfg` (`cfg.keep_ratio` is ignored: pruning happens before quantization).

    Raises ValueError for a non-float or empty weight, and `WeightRangeError` (naming
    `kernel`) for a non-finite one or one whose scale would exceed float16's range (module
    docstring).

    >>> q = quantize(torch.randn(16, 8), LayerConfig(bits=4, number_format="pow2"))
    >>> q.codes.shape, q.scale.shape
    (torch.Size([16, 8]), torch.Size([16]))
    """
    if not torch.is_floating_point(w):
        raise ValueError(f"quantize needs a floating-point weight, got dtype {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"quantize needs a non-empty weight, got shape {tuple(w.shape)}")
    q = _quantize(w.detach(), cfg)
    _check_range(w.detach(), q.scale, kernel)
    return q


def _check_range(w: Tensor, scale: Tensor, kernel: str | None) -> None:
    """The one range check of quantize and fake_quantize. A NaN or inf weight makes its
    group's scale non-finite (max, min and mean all propagate it), so checking the few
    scales covers the weights too; the weights are only scanned to say which it was."""
    if bool(torch.isfinite(scale).all()):
        return
    if not bool(torch.isfinite(w).all()):
        raise WeightRangeError("the weight has inf or NaN values (a diverged fine-tune or a broken model)", kernel)
    max_abs = float(w.abs().max())
    raise WeightRangeError(
        f"a weight with max|w| = {max_abs:.6g} needs a scale above "
        f"float16's largest value {_SCALE_MAX:g} (scale = max|w| / the format's top level, "
        "mean|w| at 1 bit), and hirelc stores scales as float16. Rescale the layer (e.g. "
        "move the factor into the next layer) or leave it out of the plan",
        kernel,
        max_abs,
    )


def dequantize(q: QuantizedTensor) -> Tensor:
    """Decode a `QuantizedTensor` back to a float32 tensor of its original shape.

    >>> w = torch.randn(4, 6)
    >>> dequantize(quantize(w, LayerConfig(bits=8))).shape == w.shape
    True
    """
    rows, cols = _rows_cols(q.shape)
    grouped = _group_view(q.codes.to(torch.int32), q.granularity, q.group_size)  # (R, G, S)
    scale = q.scale.reshape(grouped.shape[0], grouped.shape[1], 1)  # (R, G, 1)
    if q.bits == 1:
        levels = grouped * 2 - 1  # code 1 -> +1, code 0 -> -1
    elif q.number_format == "int_sym":
        levels = grouped - (2 ** (q.bits - 1) - 1)
    elif q.number_format == "int_asym":
        zp = q.zero_point.reshape(scale.shape).to(torch.int32)
        levels = grouped - zp
    else:
        levels = _decode_sign_magnitude(grouped, q.bits, q.number_format, q.codes.device)
    # A level (at most 8 significant bits) times a float16 scale (11) is exact in float32
    # barring underflow; either way fake_quantize, to_physical and load_packed get the same bits.
    values = levels.to(torch.float32) * scale.to(torch.float32)  # (R, G, S)
    return _ungroup(values, rows, cols).reshape(q.shape)


def fake_quantize(w: Tensor, cfg: LayerConfig, *, kernel: str | None = None) -> Tensor:
    """dequantize(quantize(w)) in value, identity in gradient (straight-through estimator,
    Bengio et al. 2013), for quantization-aware fine-tuning. Raises `WeightRangeError`
    naming `kernel` exactly when `quantize` would (export and search agree).

    >>> w = torch.randn(4, 6, requires_grad=True)
    >>> fake_quantize(w, LayerConfig(bits=2)).sum().backward()
    >>> bool((w.grad == 1).all())
    True
    """
    q = _quantize(w.detach(), cfg)
    _check_range(w.detach(), q.scale, kernel)
    dq = dequantize(q).to(w.dtype)
    # The STE written as dq + (w - w.detach()) rather than w + (dq - w).detach(): same
    # gradient (d out / d w = 1), but the forward value is exactly dq (w - w == 0), so the
    # fine-tuned copy and the exported codes agree bit for bit.
    return dq + (w - w.detach())


# --------------------------------------------------------------------------- internals


def _rows_cols(shape: tuple[int, ...] | torch.Size) -> tuple[int, int]:
    rows = int(shape[0]) if len(shape) else 1
    cols = math.prod(int(d) for d in shape[1:]) if len(shape) > 1 else 1
    return rows, cols


def _group_view(m: Tensor, granularity: str, group_size: int | None) -> Tensor:
    """(rows, cols) -> (R, G, S): R x G groups of S values that share one scale.

    per_group zero-pads the columns to a multiple of group_size; callers mask or slice
    the padding away (`_valid_mask`, `_ungroup`).
    """
    rows, cols = m.shape
    if granularity == "per_tensor":
        return m.reshape(1, 1, rows * cols)
    if granularity == "per_channel":
        return m.reshape(rows, 1, cols)
    n_groups = math.ceil(cols / group_size)
    pad = n_groups * group_size - cols
    if pad:
        m = torch.nn.functional.pad(m, (0, pad))
    return m.reshape(rows, n_groups, group_size)


def _ungroup(g: Tensor, rows: int, cols: int) -> Tensor:
    """(R, G, S) -> (rows, cols), dropping per_group padding."""
    return g.reshape(rows, -1)[:, :cols]


def _valid_mask(cols: int, cfg: LayerConfig, device: torch.device) -> Tensor | None:
    """(1, G, S) bool mask of real (non-padding) columns for per_group, else None."""
    if cfg.granularity != "per_group" or cols % cfg.group_size == 0:
        return None
    n_groups = math.ceil(cols / cfg.group_size)
    col = torch.arange(n_groups * cfg.group_size, device=device).reshape(1, n_groups, -1)
    return col < cols


def _quantize(w: Tensor, cfg: LayerConfig) -> QuantizedTensor:
    shape = tuple(w.shape)
    rows, cols = _rows_cols(shape)
    x = _group_view(w.reshape(rows, cols).to(torch.float32), cfg.granularity, cfg.group_size)
    # per_group pads with zeros: they never change max|w|, and only widen [min, max] towards
    # 0, which int_asym does anyway; the 1-bit mean|w| divides by the real member count.
    valid = _valid_mask(cols, cfg, w.device)
    zero_point = None
    if cfg.bits == 1:
        codes, scale = _binary(x, valid)
    elif cfg.number_format == "int_sym":
        codes, scale = _int_sym(x, cfg.bits)
    elif cfg.number_format == "int_asym":
        codes, scale, zero_point = _int_asym(x, cfg.bits)
    else:
        codes, scale = _sign_magnitude(x, cfg.bits, cfg.number_format)
    shape_s = scale_shape(shape, cfg)
    return QuantizedTensor(
        codes=_ungroup(codes, rows, cols).contiguous(),
        scale=scale.to(SCALE_DTYPE).reshape(shape_s).contiguous(),  # exact: already float16 values
        zero_point=None if zero_point is None else zero_point.reshape(shape_s).contiguous(),
        bits=cfg.bits,
        number_format=cfg.number_format,
        granularity=cfg.granularity,
        group_size=cfg.group_size,
        shape=shape,
    )


def scale_shape(shape: tuple[int, ...] | torch.Size, cfg: LayerConfig) -> tuple[int, ...]:
    """Shape of `quantize(w, cfg).scale` for a weight of `shape` (numel = `n_scales`).

    >>> scale_shape((8, 3, 3, 3), LayerConfig(bits=4, granularity="per_group", group_size=16))
    (8, 2)
    """
    rows, cols = _rows_cols(shape)
    if cfg.granularity == "per_tensor":
        return (1,)
    if cfg.granularity == "per_channel":
        return (rows,)
    return (rows, math.ceil(cols / cfg.group_size))


def _stored_scale(scale: Tensor) -> Tensor:
    """The smallest float16 >= each (non-negative, float32) scale, as float32 values.

    0 stays 0 (an all-zero group); a positive scale below float16's smallest subnormal
    becomes 2^-24; a scale above float16's largest value becomes inf (and NaN stays NaN):
    `quantize` and `fake_quantize` refuse those (`_check_range`).
    """
    half = scale.to(SCALE_DTYPE)  # round to nearest (even); above 65504 rounds to 65504 or inf
    # For a non-negative finite float16 the next representable value up is its bit pattern
    # + 1 (65504 + 1 ulp is inf).
    up = (half.view(torch.int16) + 1).view(SCALE_DTYPE)
    return torch.where(half.to(torch.float32) < scale, up, half).to(torch.float32)


def _safe(scale: Tensor) -> Tensor:
    # An all-zero group has scale 0; divide by 1 instead so its codes are the zero level.
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _binary(x: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """1 bit: code = (w >= 0), scale = mean|w| over the real (unpadded) group members."""
    abs_sum = x.abs().sum(dim=-1)  # (R, G); zero padding adds nothing
    if valid is None:
        count = torch.full_like(abs_sum, x.shape[-1])
    else:
        count = valid.sum(dim=-1).to(x.dtype).expand_as(abs_sum)
    scale = _stored_scale(abs_sum / count)
    codes = (x >= 0).to(torch.uint8)
    return codes, scale


def _int_sym(x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    qmax = 2 ** (bits - 1) - 1
    scale = _stored_scale(x.abs().amax(dim=-1) / qmax)  # (R, G)
    q = torch.round(x / _safe(scale)[..., None]).clamp_(-qmax, qmax)
    return (q + qmax).to(torch.uint8), scale


def _int_asym(x: Tensor, bits: int) -> tuple[Tensor, Tensor, Tensor]:
    cmax = 2**bits - 1
    # Widen [min, max] to include 0 so zero is exact and the zero point fits in [0, cmax].
    # Zero padding can only move lo/hi towards 0, which this widening does anyway.
    lo = x.amin(dim=-1).clamp(max=0.0)  # (R, G)
    hi = x.amax(dim=-1).clamp(min=0.0)
    scale = _stored_scale((hi - lo) / cmax)
    safe = _safe(scale)
    zp = torch.round(-lo / safe).clamp_(0, cmax)
    codes = (torch.round(x / safe[..., None]) + zp[..., None]).clamp_(0, cmax)
    return codes.to(torch.uint8), scale, zp.to(torch.uint8)


@lru_cache(maxsize=None)
def _magnitude_table_cpu(bits: int, number_format: str) -> Tensor:
    """Ascending non-negative levels of a sign + magnitude format; entry i is the value of
    magnitude code i, entry 0 is 0. Length 2^(bits-1)."""
    if number_format == "pow2":
        n_pow = 2 ** (bits - 1) - 1
        powers = [2.0 ** -(n_pow - 1 - i) for i in range(n_pow)]  # 2^-(K-1) .. 2^0
        return torch.tensor([0.0] + powers, dtype=torch.float32)
    if number_format == "float":
        e_bits, m_bits = FLOAT_FORMATS[bits]
        bias = 2 ** (e_bits - 1) - 1
        values = []
        for e in range(2**e_bits):  # code = e << m_bits | m, so the table ascends with code
            for m in range(2**m_bits):
                if e == 0:  # subnormal: 2^(1-bias) * m/2^M
                    values.append(2.0 ** (1 - bias) * m / 2**m_bits)
                else:  # normal: 2^(e-bias) * (1 + m/2^M)
                    values.append(2.0 ** (e - bias) * (1 + m / 2**m_bits))
        return torch.tensor(values, dtype=torch.float32)
    raise ValueError(f"{number_format!r} is not a sign + magnitude format")


def magnitude_table(bits: int, number_format: str, device: torch.device | str = "cpu") -> Tensor:
    """Non-negative levels (before scaling) of the pow2 / float formats, ascending; the
    largest is the level the group's max|w| maps to.

    >>> magnitude_table(4, "float").tolist()  # E2M1
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    """
    return _magnitude_table_cpu(bits, number_format).to(device)


def _sign_magnitude(x: Tensor, bits: int, number_format: str) -> tuple[Tensor, Tensor]:
    """Shared pow2 / float quantizer: nearest table level in the linear domain."""
    table = magnitude_table(bits, number_format, x.device)  # (2^(b-1),)
    mids = (table[1:] + table[:-1]) / 2  # decision thresholds between adjacent levels
    scale = _stored_scale(x.abs().amax(dim=-1) / table[-1])  # (R, G)
    mag = x.abs() / _safe(scale)[..., None]
    # right=True: a magnitude exactly on a midpoint takes the larger level.
    index = torch.bucketize(mag, mids, right=True)
    sign = (x < 0).to(torch.int64) << (bits - 1)
    return (sign | index).to(torch.uint8), scale


def _decode_sign_magnitude(codes: Tensor, bits: int, number_format: str, device: torch.device) -> Tensor:
    table = magnitude_table(bits, number_format, device)
    index = codes & (2 ** (bits - 1) - 1)
    negative = (codes >> (bits - 1)) & 1
    return table[index] * (1 - 2 * negative).to(torch.float32)
