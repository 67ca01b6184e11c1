"""pack_bits / unpack_bits: round trips, exact byte layout, and refusal of bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc.export.bitpack import pack_bits, packed_nbytes, unpack_bits


def reference_pack(codes: list[int], bits: int) -> bytes:
    """Little-endian bit stream via one Python big integer: code i at bit offset i*bits."""
    stream = 0
    for i, c in enumerate(codes):
        stream |= c << (i * bits)
    return stream.to_bytes(math.ceil(len(codes) * bits / 8), "little")


@st.composite
def codes_and_bits(draw):
    bits = draw(st.integers(1, 8))
    codes = draw(st.lists(st.integers(0, 2**bits - 1), max_size=200))
    return codes, bits


@settings(max_examples=200, deadline=None)
@given(codes_and_bits())
def test_round_trip_and_layout_match_reference(case):
    codes, bits = case
    t = torch.tensor(codes, dtype=torch.uint8)
    packed = pack_bits(t, bits)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert packed.numel() == packed_nbytes(len(codes), bits) == math.ceil(len(codes) * bits / 8)
    assert bytes(packed.tolist()) == reference_pack(codes, bits)
    assert unpack_bits(packed, bits, len(codes)).tolist() == codes


@pytest.mark.parametrize("bits", range(1, 9))
def test_round_trip_of_a_code_matrix_every_bitwidth(bits):
    codes = torch.randint(0, 2**bits, (7, 13), dtype=torch.uint8)
    packed = pack_bits(codes, bits)
    assert packed.numel() == math.ceil(91 * bits / 8)
    assert torch.equal(unpack_bits(packed, bits, 91).reshape(7, 13), codes)


def test_known_layout():
    # 3-bit codes 5, 1, 7 -> stream 101 | 001<<3 | 111<<6 = 0b111001101 -> bytes 0xCD, 0x01
    assert pack_bits(torch.tensor([5, 1, 7], dtype=torch.uint8), 3).tolist() == [0xCD, 0x01]
    assert pack_bits(torch.tensor([0xAB], dtype=torch.uint8), 8).tolist() == [0xAB]
    assert pack_bits(torch.tensor([0xF, 0x1], dtype=torch.uint8), 4).tolist() == [0x1F]


def test_pack_does_not_alias_its_input():
    codes = torch.tensor([1, 2], dtype=torch.uint8)
    packed = pack_bits(codes, 8)
    packed[0] = 9
    assert codes.tolist() == [1, 2]


def test_rejects_codes_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit in 2 bits"):
        pack_bits(torch.tensor([0, 4], dtype=torch.uint8), 2)
    with pytest.raises(ValueError, match="uint8"):
        pack_bits(torch.tensor([0, 1]), 2)


@pytest.mark.parametrize("bits", [0, 9, True, 2.0])
def test_rejects_bad_bitwidths(bits):
    with pytest.raises(ValueError, match="bits must be"):
        pack_bits(torch.zeros(3, dtype=torch.uint8), bits)


def test_unpack_rejects_truncated_or_padded_buffers():
    packed = pack_bits(torch.ones(10, dtype=torch.uint8), 3)  # 30 bits -> 4 bytes
    with pytest.raises(ValueError, match="need 4 bytes, got 3"):
        unpack_bits(packed[:3], 3, 10)
    with pytest.raises(ValueError, match="need 4 bytes, got 5"):
        unpack_bits(torch.cat([packed, packed[:1]]), 3, 10)
    with pytest.raises(ValueError, match="1-D uint8"):
        unpack_bits(packed.reshape(2, 2), 3, 10)


def test_empty():
    assert pack_bits(torch.zeros(0, dtype=torch.uint8), 5).numel() == 0
    assert unpack_bits(torch.zeros(0, dtype=torch.uint8), 5, 0).numel() == 0
