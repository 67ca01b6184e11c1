"""Cost models: pure functions of layer sizes and a plan, each citing its formula.

Everything here is arithmetic on `LayerSpec`s and `LayerConfig`s: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hirelc.inventory.spec import LayerSpec

# seed 000 §2.2: memory access energy over MAcc compute energy, "estimated to be around 120x".
E_MEM_OVER_E_MACC = 120.0


def state_of_quantization(
    specs: Sequence[LayerSpec],
    bits: Mapping[str, int],
    bits_max: int,
    e_mem_over_e_macc: float = E_MEM_OVER_E_MACC,
) -> float:
    """ReLeQ State of Quantization, seed 000 eq. 1:

        sum_l (n_w_l * E_mem/E_MAcc + n_MAcc_l) * bits_l
        ------------------------------------------------
        sum_l (n_w_l * E_mem/E_MAcc + n_MAcc_l) * bits_max

    Layers missing from `bits` count at `bits_max` (all layers start at the top bitwidth).
    """
    if bits_max <= 0:
        raise ValueError(f"bits_max must be positive, got {bits_max}")
    num = den = 0.0
    for s in specs:
        cost = s.n_params * e_mem_over_e_macc + s.n_macs
        num += cost * bits.get(s.name, bits_max)
        den += cost * bits_max
    if den == 0:
        raise ValueError("state_of_quantization needs at least one layer with weights or MACs")
    return num / den
