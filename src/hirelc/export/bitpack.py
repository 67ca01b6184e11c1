"""Pack b-bit codes (b = 1..8) into bytes and back.

Bit order is little-endian throughout: code i occupies stream bits [i*b, (i+1)*b), its least
significant bit first, and stream bit j is bit (j % 8) of byte j // 8 (LSB = bit 0). n codes
take exactly ceil(n*b/8) bytes; the unused high bits of the last byte are zero.

Written here rather than with numpy.packbits because packbits packs single bits only; the
b-bit case is the same trick one level up (expand to bits, regroup by 8), all vectorised.

>>> codes = torch.tensor([1, 2, 3, 0, 3], dtype=torch.uint8)
>>> packed = pack_bits(codes, 2)
>>> packed.tolist()  # 01 10 11 00 | 11 -> 0b00111001, 0b00000011
[57, 3]
>>> unpack_bits(packed, 2, 5).tolist()
[1, 2, 3, 0, 3]
"""

from __future__ import annotations

import torch
from torch import Tensor


def packed_nbytes(n: int, bits: int) -> int:
    """Bytes `pack_bits` returns for n codes of `bits` bits: ceil(n*bits/8).

    >>> packed_nbytes(5, 3)
    2
    """
    _check_bits(bits)
    return (n * bits + 7) // 8


def pack_bits(codes: Tensor, bits: int) -> Tensor:
    """Pack uint8 codes (any shape, read in row-major order) into a 1-D uint8 tensor.

    Raises ValueError when a code does not fit in `bits` bits (it would be silently
    truncated otherwise).

    >>> pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=torch.uint8), 1).tolist()
    [13, 1]
    """
    _check_bits(bits)
    if codes.dtype != torch.uint8:
        raise ValueError(f"pack_bits needs uint8 codes, got {codes.dtype}")
    flat = codes.reshape(-1)  # (n,)
    if bits == 8:
        return flat.clone()
    if flat.numel() and int(flat.max()) >= 2**bits:
        raise ValueError(f"pack_bits: code {int(flat.max())} does not fit in {bits} bits")
    shifts = torch.arange(bits, dtype=torch.uint8, device=flat.device)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1)  # (n*bits,) one bit per element
    pad = (-stream.numel()) % 8
    if pad:
        stream = torch.cat([stream, stream.new_zeros(pad)])
    byte_shifts = torch.arange(8, dtype=torch.uint8, device=flat.device)
    # The 8 bits of a byte are disjoint, so their sum is their bitwise or (max 255, no overflow).
    return (stream.reshape(-1, 8) << byte_shifts).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, bits: int, n: int) -> Tensor:
    """Inverse of `pack_bits`: the first n codes of `bits` bits, as a 1-D uint8 tensor.

    Raises ValueError unless `packed` holds exactly ceil(n*bits/8) bytes, so a truncated or
    padded buffer is caught here instead of decoding into wrong weights.

    >>> unpack_bits(torch.tensor([13, 1], dtype=torch.uint8), 1, 9).tolist()
    [1, 0, 1, 1, 0, 0, 0, 0, 1]
    """
    _check_bits(bits)
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise ValueError(f"unpack_bits needs a 1-D uint8 tensor, got {packed.dtype} {tuple(packed.shape)}")
    if n < 0:
        raise ValueError(f"unpack_bits: n must be >= 0, got {n}")
    expected = packed_nbytes(n, bits)
    if packed.numel() != expected:
        raise ValueError(
            f"unpack_bits: {n} codes of {bits} bits need {expected} bytes, got {packed.numel()}"
        )
    if bits == 8:
        return packed.clone()
    byte_shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    stream = ((packed[:, None] >> byte_shifts) & 1).reshape(-1)[: n * bits]  # (n*bits,)
    shifts = torch.arange(bits, dtype=torch.uint8, device=packed.device)
    return (stream.reshape(n, bits) << shifts).sum(dim=1, dtype=torch.uint8)


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8, got {bits!r}")
