"""Cost models: pure functions of layer sizes and a plan, each citing its formula.

Everything here is arithmetic on `LayerSpec`s and `LayerConfig`s: no model, no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

from hirelc.inventory.spec import LayerSpec
from hirelc.plan import LayerConfig
from hirelc.pruned_shapes import kept_count, kept_shapes, kept_units, prune_units  # noqa: F401 -- callers read them here

# This module imports only plan, spec and pruned_shapes, never compress/ or export/: those import from it
# (kept_count, n_scales), and a cycle through a package __init__ would break `import`.

# seed 000 §2.2: memory access energy over MAcc compute energy, "estimated to be around 120x".
E_MEM_OVER_E_MACC = 120.0

# Storage contract (docs/ARCHITECTURE.md): a scale is a float16 (hirelc.compress.quantize
# rounds it up to one), a zero point a uint8.
SCALE_BITS = 16
ZERO_POINT_BITS = 8


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


# --------------------------------------------------------------------------- storage


def n_scales(shape: Sequence[int], cfg: LayerConfig) -> int:
    """Number of scale values `hirelc.compress.quantize` stores for a weight of `shape`
    (each a float16, `SCALE_BITS` bits): 1 per tensor, 1 per row (dim 0) per channel,
    rows * ceil(cols / group_size) per group, where cols is the product of the remaining dims.

    >>> n_scales((8, 3, 3, 3), LayerConfig(bits=4, granularity="per_group", group_size=16))
    16
    """
    rows, cols = int(shape[0]), math.prod(int(d) for d in shape[1:])
    if cfg.granularity == "per_tensor":
        return 1
    if cfg.granularity == "per_channel":
        return rows
    return rows * -(-cols // cfg.group_size)


def has_zero_point(cfg: LayerConfig) -> bool:
    """True when the format stores a uint8 zero point per scale: int_asym with bits >= 2
    (a 1-bit code is sign x scale in every format).

    >>> has_zero_point(LayerConfig(bits=4, number_format="int_asym"))
    True
    """
    return cfg.number_format == "int_asym" and cfg.bits >= 2



@functools.lru_cache(maxsize=1 << 16)  # a budget repair asks for the same few shapes millions of times
def quantized_weight_bits(rows: int, cols: int, cfg: LayerConfig) -> int:
    """Bits a (rows, cols) weight takes in the packed file under `cfg`:

        8 * ceil(rows * cols * bits / 8)   codes, bit-packed per tensor to whole bytes
      + 16 * n_scales                      one float16 per scale (`SCALE_BITS`)
      + 8 * n_scales  (int_asym, bits>=2)  one uint8 zero point per scale

    This is the storage contract of docs/ARCHITECTURE.md, byte-exact with
    `hirelc.export.packed` (whose codes, scales and zero_points blobs hold these bytes).

    >>> quantized_weight_bits(10, 3, LayerConfig(bits=3, granularity="per_tensor"))  # 90 -> 96
    112
    """
    n_sc = n_scales((rows, cols), cfg)
    zero_point_bits = ZERO_POINT_BITS * n_sc if has_zero_point(cfg) else 0
    code_bytes = -(-rows * cols * cfg.bits // 8)  # ceil, as hirelc.export.bitpack.packed_nbytes
    return 8 * code_bytes + SCALE_BITS * n_sc + zero_point_bits


def fp32_bits(spec: LayerSpec) -> int:
    """Bits of the kernel's weight in float32: 32 * prod(weight_shape) (weights only; biases
    and norms are counted by the whole-file model in `hirelc.export.packed`).

    >>> fp32_bits(LayerSpec("fc", "linear", (10, 20), n_macs=200))
    6400
    """
    return 32 * math.prod(spec.weight_shape)


def layer_storage_bits(
    spec: LayerSpec,
    cfg: LayerConfig | None,
    kept_rows: int | None = None,
    kept_cols: int | None = None,
) -> int:
    """Storage bits of one kernel's weight: `quantized_weight_bits` on the pruned matrix, or
    32 bits per kept weight when `cfg` is None (not in the plan -> fp32).

    kept_rows defaults to the kernel's own keep_ratio (`prune_units` aware); kept_cols to
    all columns. Pass both from `kept_shapes` to account for pruned producers and groups.

    >>> spec = LayerSpec("fc", "linear", (10, 20), n_macs=200)
    >>> layer_storage_bits(spec, LayerConfig(bits=4, keep_ratio=0.5))  # 5*20*4 + 5*16
    480
    """
    rows, cols = spec.out_channels, math.prod(spec.weight_shape[1:])
    if kept_rows is None:
        units = prune_units(spec)
        keep_ratio = cfg.keep_ratio if cfg is not None else 1.0
        kept_rows = rows * kept_count(units, keep_ratio) // units
    kept_cols = cols if kept_cols is None else kept_cols
    if cfg is None:
        return 32 * kept_rows * kept_cols
    return quantized_weight_bits(kept_rows, kept_cols, cfg)


def total_storage_bits(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig],
                       shapes: Mapping[str, tuple[int, int]] | None = None) -> int:
    """Storage bits of all kernels' weights under `plan` (pruning of producers and channel
    groups included via `kept_shapes`, or `shapes` already computed by it; kernels not in
    the plan at fp32).

    >>> specs = [LayerSpec("fc", "linear", (10, 20), n_macs=200)]
    >>> total_storage_bits(specs, {"fc": LayerConfig(bits=2, granularity="per_tensor")})
    416
    """
    shapes = kept_shapes(specs, plan) if shapes is None else shapes
    return sum(layer_storage_bits(s, plan.get(s.name), *shapes[s.name]) for s in specs)


def compression_ratio(fp32_bits: int | float, compressed_bits: int | float) -> float:
    """fp32 size / compressed size (HiReLC's "parameter-storage compression ratio", seed 001).

    >>> compression_ratio(6400, 800)
    8.0
    """
    if compressed_bits <= 0:
        raise ValueError(f"compressed size must be positive, got {compressed_bits}")
    return fp32_bits / compressed_bits


# --------------------------------------------------------------------------- bits and ops


def avg_bits(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig]) -> float:
    """Unweighted mean weight bitwidth over kernels; kernels not in the plan count as 32.

    >>> specs = [LayerSpec("a", "linear", (2, 2), 4), LayerSpec("b", "linear", (8, 8), 64)]
    >>> avg_bits(specs, {"a": LayerConfig(2), "b": LayerConfig(8)})
    5.0
    """
    if not specs:
        raise ValueError("avg_bits needs at least one layer")
    return sum(_bits(s, plan, 32) for s in specs) / len(specs)


def param_weighted_avg_bits(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig]) -> float:
    """Σ kept_weights_l * bits_l / Σ kept_weights_l (codes only, no scales), with kept
    weights from `kept_shapes`; kernels not in the plan count as 32 bits.

    >>> specs = [LayerSpec("a", "linear", (2, 2), 4), LayerSpec("b", "linear", (4, 3), 12)]
    >>> param_weighted_avg_bits(specs, {"a": LayerConfig(8), "b": LayerConfig(4)})  # (32+48)/16
    5.0
    """
    shapes = kept_shapes(specs, plan)
    weights = {name: r * c for name, (r, c) in shapes.items()}
    total = sum(weights.values())
    return sum(weights[s.name] * _bits(s, plan, 32) for s in specs) / total


def kept_macs(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig]) -> dict[str, float]:
    """MACs per example after pruning: n_macs scaled by the kept fraction of the weight
    matrix (every weight is used the same number of times: output positions or tokens).

    >>> a = LayerSpec("a", "linear", (8, 4), n_macs=32, consumers=("b",))
    >>> b = LayerSpec("b", "linear", (2, 8), n_macs=16)
    >>> kept_macs([a, b], {"a": LayerConfig(4, keep_ratio=0.25)})
    {'a': 8.0, 'b': 4.0}
    """
    shapes = kept_shapes(specs, plan)
    out = {}
    for s in specs:
        rows, cols = shapes[s.name]
        out[s.name] = s.n_macs * rows * cols / math.prod(s.weight_shape)
    return out


def bitops(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig], act_bits: int = 8) -> float:
    """BitOps = Σ_l kept_MACs_l * w_bits_l * act_bits (as in e.g. Wang et al., HAQ, CVPR
    2019 and DJPQ); kernels not in the plan count at 32 weight bits.

    >>> specs = [LayerSpec("a", "linear", (2, 2), 100), LayerSpec("b", "linear", (2, 2), 10)]
    >>> bitops(specs, {"a": LayerConfig(4), "b": LayerConfig(2)})  # 100*4*8 + 10*2*8
    3360.0
    """
    macs = kept_macs(specs, plan)
    return float(sum(macs[s.name] * _bits(s, plan, 32) * act_bits for s in specs))


def stripes_speedup(
    specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig], baseline_bits: int = 8
) -> float:
    """MODELLED speedup of a bit-serial accelerator in the spirit of Stripes (Judd et al.,
    MICRO 2016) over the unpruned model at `baseline_bits`:

        Σ_l MACs_l * baseline_bits / Σ_l kept_MACs_l * bits_l

    Stripes serialises activation bits; ReLeQ (seed 000 §4.4) uses it to run variable
    weight bitwidths, so here the serial operand is the weight: compute cycles of a layer
    ∝ MACs x weight bits. Kernels not in the plan run at `baseline_bits`. A model, not a
    measurement: it ignores memory stalls and array under-utilisation.

    >>> specs = [LayerSpec("a", "linear", (2, 2), 100), LayerSpec("b", "linear", (2, 2), 100)]
    >>> stripes_speedup(specs, {"a": LayerConfig(2), "b": LayerConfig(6)})  # 1600 / 800
    2.0
    """
    macs = kept_macs(specs, plan)
    base = sum(s.n_macs * baseline_bits for s in specs)
    new = sum(macs[s.name] * _bits(s, plan, baseline_bits) for s in specs)
    return _ratio(base, new, "stripes_speedup")


def stripes_energy_reduction(
    specs: Sequence[LayerSpec],
    plan: Mapping[str, LayerConfig],
    baseline_bits: int = 8,
    e_mem_over_e_macc: float = E_MEM_OVER_E_MACC,
) -> float:
    """MODELLED energy reduction of the Stripes-style bit-serial accelerator over the
    unpruned model at `baseline_bits`, using the energy weighting of seed 000 eq. 1:

        E_l ∝ (n_w_l * E_mem/E_MAcc + n_MAcc_l) * bits_l,   E_mem/E_MAcc = 120

    (memory traffic ∝ weights x bits, bit-serial compute ∝ MACs x bits), pruning shrinking
    n_w and n_MAcc to their kept values. Returns Σ E_l(baseline) / Σ E_l(plan). Kernels not
    in the plan stay at `baseline_bits`.

    >>> specs = [LayerSpec("a", "linear", (2, 5), n_macs=800)]  # cost 10*120 + 800 = 2000
    >>> stripes_energy_reduction(specs, {"a": LayerConfig(2)})  # 2000*8 / (2000*2)
    4.0
    """
    macs = kept_macs(specs, plan)
    shapes = kept_shapes(specs, plan)
    base = new = 0.0
    for s in specs:
        rows, cols = shapes[s.name]
        base += (math.prod(s.weight_shape) * e_mem_over_e_macc + s.n_macs) * baseline_bits
        new += (rows * cols * e_mem_over_e_macc + macs[s.name]) * _bits(s, plan, baseline_bits)
    return _ratio(base, new, "stripes_energy_reduction")


def _bits(spec: LayerSpec, plan: Mapping[str, LayerConfig], default: int) -> int:
    return plan[spec.name].bits if spec.name in plan else default


def _ratio(base: float, new: float, what: str) -> float:
    if new <= 0:
        raise ValueError(f"{what}: the layers have no MACs or weights to model")
    return base / new
