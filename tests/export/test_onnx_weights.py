"""hirelc's quantized weights as the integers ONNX Runtime runs: exact, narrowest, packed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc.compress.quantize import dequantize, quantize
from hirelc.export.bitpack import unpack_bits
from hirelc.export.onnx_weights import (
    Lowering,
    choose_lowering,
    hirelc_bytes,
    pack_matmulnbits,
    signed_bits,
    to_integers,
)
from hirelc.plan import LayerConfig

FORMAT_BITS = [(f, b) for f in ("int_sym", "int_asym", "pow2") for b in range(1, 9)] + [
    ("float", b) for b in range(4, 9)]


def _cfg(fmt: str, bits: int, gran: str, group: int | None = None) -> LayerConfig:
    return LayerConfig(bits=bits, number_format=fmt, granularity=gran, group_size=group)


@settings(max_examples=60, deadline=None)
@given(fb=st.sampled_from(FORMAT_BITS), gran=st.sampled_from(["per_tensor", "per_channel", "per_group"]),
       rows=st.integers(1, 5), cols=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_integers_times_scales_are_exactly_hirelcs_dequantized_weight(fb, gran, rows, cols, seed) -> None:
    fmt, bits = fb
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    q = quantize(w, _cfg(fmt, bits, gran, 8 if gran == "per_group" else None))
    iw = to_integers(q)
    assert np.array_equal(iw.dequantized(), dequantize(q).numpy())
    if iw.values is None:  # levels beyond int32 (pow2 at 6+ bits): kept as the float weight
        assert iw.bits > 31
        return
    lo, hi = (-(2 ** (iw.bits - 1)), 2 ** (iw.bits - 1) - 1) if iw.signed else (0, 2**iw.bits - 1)
    assert lo <= iw.values.min() and iw.values.max() <= hi  # `bits` really holds the values


@pytest.mark.parametrize(("fmt", "bits", "expected"), [
    ("int_sym", 1, 2), ("int_sym", 3, 3), ("int_sym", 8, 8), ("int_asym", 5, 5),
    ("pow2", 2, 2), ("pow2", 3, 4), ("pow2", 4, 8), ("pow2", 5, 16),  # levels 2^-14..1 -> 2^14
    ("float", 4, 5), ("float", 5, 6), ("float", 6, 10), ("float", 8, 19),
])
def test_bits_needed_per_format(fmt: str, bits: int, expected: int) -> None:
    q = quantize(torch.randn(4, 16), _cfg(fmt, bits, "per_channel"))
    assert to_integers(q).bits == expected


def test_signed_bits_is_the_narrowest_twos_complement_width() -> None:
    assert [signed_bits(m) for m in (1, 3, 4, 7, 8, 127, 128)] == [2, 3, 4, 4, 5, 8, 9]


@pytest.mark.parametrize(("cfg", "kind", "expected"), [
    (_cfg("int_sym", 4, "per_group", 32), "linear", Lowering("MatMulNBits", 4, 32)),
    (_cfg("int_sym", 3, "per_group", 64), "linear", Lowering("MatMulNBits", 4, 64)),
    (_cfg("int_sym", 2, "per_group", 512), "linear", Lowering("MatMulNBits", 2, 256)),  # 2-bit max block
    (_cfg("int_sym", 4, "per_group", 48), "linear", Lowering("MatMulNBits", 4, 16)),  # 16 divides 48
    (_cfg("int_sym", 4, "per_group", 8), "linear", Lowering("DequantizeLinear", 4, 8)),  # no block < 16
    (_cfg("int_sym", 5, "per_channel"), "linear", Lowering("MatMulNBits", 8, 256)),
    (_cfg("int_sym", 1, "per_tensor"), "linear", Lowering("MatMulNBits", 2, 256)),
    (_cfg("float", 6, "per_channel"), "linear", Lowering("DequantizeLinear", 16, None)),
    (_cfg("float", 8, "per_channel"), "linear", Lowering("float32", 32, None)),
    (_cfg("int_sym", 3, "per_group", 32), "conv", Lowering("DequantizeLinear", 4, 32)),
    (_cfg("int_asym", 6, "per_channel"), "conv", Lowering("DequantizeLinear", 8, None)),
    (_cfg("int_sym", 4, "per_tensor"), "conv", Lowering("DequantizeLinear", 4, None)),
])
def test_lowering_is_the_narrowest_the_runtime_executes(cfg: LayerConfig, kind: str, expected: Lowering) -> None:
    iw = to_integers(quantize(torch.randn(8, 256), cfg))
    assert choose_lowering(iw, kind) == expected


def test_per_channel_block_trades_padding_against_repeated_scales() -> None:
    # K = 100: one block of 128 pads 28 codes per row (14 B at 4 bits) but stores one scale;
    # blocks of 16 pad 12 codes (6 B) but store 7 scales (28 B). 128 is cheapest.
    iw = to_integers(quantize(torch.randn(4, 100), _cfg("int_sym", 4, "per_channel")))
    assert choose_lowering(iw, "linear") == Lowering("MatMulNBits", 4, 128)


@pytest.mark.parametrize("fmt", ["int_sym", "int_asym"])
def test_matmulnbits_packing_decodes_to_the_same_weight(fmt: str) -> None:
    q = quantize(torch.randn(3, 40), _cfg(fmt, 3, "per_group", 32))
    iw = to_integers(q)
    arrays = pack_matmulnbits(iw, 4, 16)
    assert arrays["B"].shape == (3, 3, 8)  # 40 columns -> 3 blocks of 16 x 4 bits = 8 bytes
    codes = unpack_bits(torch.from_numpy(arrays["B"].reshape(-1)), 4, 3 * 48).numpy().reshape(3, 48)
    if fmt == "int_asym":
        # 3 zero points of 4 bits per row, each row padded to whole bytes: 2 bytes, 4 slots
        zp = unpack_bits(torch.from_numpy(arrays["zero_points"]), 4, 3 * 4).numpy().reshape(3, 4)[:, :3]
    else:
        zp = np.full((3, 3), 8)  # MatMulNBits' default zero point 2^(bits-1)
    scale = arrays["scales"].reshape(3, 3)
    decoded = (codes.astype(np.int32).reshape(3, 3, 16) - zp[..., None].astype(np.int32)) * scale[..., None]
    assert np.array_equal(decoded.reshape(3, 48)[:, :40], dequantize(q).numpy())
    assert np.all(decoded.reshape(3, 48)[:, 40:] == 0)  # padding decodes to zero


def test_hirelc_bytes_counts_packed_codes_fp16_scales_and_zero_points() -> None:
    q = quantize(torch.randn(4, 10), _cfg("int_asym", 3, "per_channel"))
    assert hirelc_bytes(q) == 15 + 4 * 2 + 4  # ceil(40*3/8) + 4 fp16 scales + 4 zero points


def test_min_matmul_bits_widens_narrow_linears() -> None:
    two = to_integers(quantize(torch.randn(8, 64), _cfg("int_sym", 2, "per_group", 32)))
    assert choose_lowering(two, "linear", 4) == Lowering("MatMulNBits", 4, 32)
    assert choose_lowering(two, "linear", 8) == Lowering("MatMulNBits", 8, 32)
    assert choose_lowering(two, "conv", 4) == Lowering("DequantizeLinear", 4, 32)  # convs unaffected


def test_decode_at_load_keeps_4_bit_matmulnbits_and_folds_the_rest() -> None:
    def low(fmt: str, bits: int, kind: str) -> Lowering:
        return choose_lowering(to_integers(quantize(torch.randn(8, 64), _cfg(fmt, bits, "per_channel"))), kind,
                               decode="load")
    assert low("int_sym", 2, "linear") == Lowering("MatMulNBits", 4, 64)
    assert low("int_sym", 8, "linear") == Lowering("Cast+Mul", 8, None)
    assert low("int_sym", 3, "conv") == Lowering("Cast+Mul", 4, None)
    assert low("float", 8, "linear") == Lowering("float32", 32, None)
