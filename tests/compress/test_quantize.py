"""Properties of the weight quantizers (hirelc.compress.quantize)."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc.compress.quantize import (
    FLOAT_FORMATS,
    WeightRangeError,
    dequantize,
    fake_quantize,
    magnitude_table,
    n_scales,
    quantize,
    scale_shape,
)
from hirelc.plan import GRANULARITIES, NUMBER_FORMATS, LayerConfig

SETTINGS = settings(max_examples=60, deadline=None)
FP16_MIN_NORMAL = 2.0**-14
FP16_ULP = 2.0**-10  # relative spacing of normal float16 values (at most)


def valid_configs(bits_range=range(1, 9), group_size=8):
    for fmt, gran, bits in itertools.product(NUMBER_FORMATS, GRANULARITIES, bits_range):
        if fmt == "float" and bits < 4:
            continue
        yield LayerConfig(bits, number_format=fmt, granularity=gran, group_size=group_size)


@st.composite
def configs(draw, min_bits=1):
    fmt = draw(st.sampled_from(NUMBER_FORMATS))
    lo = max(min_bits, 4 if fmt == "float" else 1)
    bits = draw(st.integers(lo, 8))
    gran = draw(st.sampled_from(GRANULARITIES))
    group_size = draw(st.integers(1, 12)) if gran == "per_group" else None
    return LayerConfig(bits, number_format=fmt, granularity=gran, group_size=group_size)


@st.composite
def weights(draw):
    """Small weights of 2-D or conv shape, several magnitudes and distributions, with
    exact zeros and constant rows mixed in."""
    shape = draw(
        st.one_of(
            st.tuples(st.integers(1, 6), st.integers(1, 40)),
            st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
        )
    )
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    magnitude = 10.0 ** draw(st.integers(-4, 3))
    kind = draw(st.sampled_from(["normal", "positive", "negative", "sparse", "constant_row"]))
    w = torch.randn(shape, generator=gen) * magnitude
    if kind == "positive":
        w = w.abs() + magnitude
    elif kind == "negative":
        w = -w.abs()
    elif kind == "sparse":
        w = w * (torch.rand(shape, generator=gen) < 0.5)
    elif kind == "constant_row":
        w[0] = magnitude * 0.7
    return w


def per_element(t: torch.Tensor, q) -> torch.Tensor:
    """Broadcast a scale-shaped tensor (e.g. the stored float16 scales) to the (rows, cols)
    code matrix as float32 (independent of the implementation: written from the contract)."""
    t = t.to(torch.float32)
    rows, cols = q.codes.shape
    if q.granularity == "per_tensor":
        return t.reshape(1, 1).expand(rows, cols)
    if q.granularity == "per_channel":
        return t[:, None].expand(rows, cols)
    return t.repeat_interleave(q.group_size, dim=1)[:, :cols]


def as_matrix(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


def nearest_level_error(w2: torch.Tensor, scale: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """|w| to the nearest signed level table * scale, by brute force over the table."""
    levels = table[None, None, :].double() * scale[..., None].double()  # (rows, cols, L)
    return (w2.abs()[..., None].double() - levels).abs().amin(dim=-1)


def half_local_gap(w2: torch.Tensor, scale: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Half the gap between the two levels around |w| (at the top: half the top gap)."""
    s = scale.double()
    mag = (w2.abs().double() / torch.where(s > 0, s, torch.ones_like(s))).clamp(max=float(table[-1]))
    t = table.double()
    upper = torch.searchsorted(t, mag).clamp(1, len(t) - 1)
    return (t[upper] - t[upper - 1]) / 2 * s


# --------------------------------------------------------------------------- error bounds


@SETTINGS
@given(weights(), configs(min_bits=2))
def test_error_within_half_a_step(w, cfg):
    q = quantize(w, cfg)
    dq = dequantize(q)
    assert dq.shape == w.shape and dq.dtype == torch.float32
    w2, err = as_matrix(w), (as_matrix(dq) - as_matrix(w)).abs()
    scale = per_element(q.scale, q)
    slack = 1e-5 * w2.abs().max() + 1e-30  # float32 rounding of w / s and q * s
    if cfg.number_format in ("int_sym", "int_asym"):
        assert (err <= scale / 2 * (1 + 1e-5) + slack).all()
    else:
        table = magnitude_table(cfg.bits, cfg.number_format)
        assert (err <= half_local_gap(w2, scale, table) * (1 + 1e-5) + slack).all()
        # and it is the nearest level, not just a near one
        assert (err <= nearest_level_error(w2, scale, table) * (1 + 1e-5) + slack).all()


@SETTINGS
@given(weights(), configs())
def test_quantize_dequantize_is_a_fixed_point(w, cfg):
    """With float16 scales rounded up, dequantize(q) sits on q's grid, and quantizing it again
    recomputes the same grid whenever each group's largest value lands on the top level:
    always for int_sym / pow2 / float / 1 bit when the scales are normal float16 (the step is
    then at most 2^-10 coarser than ideal, too little to move the top code). Not for int_asym
    (the data spans cmax * s / s' < cmax steps, so the extreme codes can land one short of
    0 / cmax) nor for subnormal scales; there a second pass only refines the grid."""
    q = quantize(w, cfg)
    dq = dequantize(q)
    q2 = quantize(dq, cfg)
    dq2 = dequantize(q2)
    assert (q2.scale.float() <= q.scale.float()).all()  # never coarser
    normal = bool(((q.scale == 0) | (q.scale.float() >= FP16_MIN_NORMAL)).all())
    if normal and (cfg.number_format != "int_asym" or cfg.bits == 1):
        assert torch.equal(dq2, dq) and torch.equal(q2.scale, q.scale)
    elif cfg.number_format in ("int_sym", "int_asym") and cfg.bits >= 2:
        slack = 1e-5 * float(dq.abs().max()) + 1e-30
        step = per_element(q2.scale, q2)
        assert (as_matrix(dq2 - dq).abs() <= step / 2 * (1 + 1e-5) + slack).all()


@pytest.mark.parametrize("fmt", ["int_sym", "int_asym"])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_8bit_integer_is_close_to_lossless(fmt, granularity):
    w = torch.randn(64, 3, 3, 3) * 0.05
    dq = dequantize(quantize(w, LayerConfig(8, number_format=fmt, granularity=granularity)))
    rel_mse = float(((dq - w) ** 2).mean() / (w**2).mean())
    assert rel_mse < 1e-4


def test_8bit_float_is_e4m3_accurate():
    # E4M3 keeps 3 mantissa bits: relative error per weight <= 2^-4 in the normal range,
    # so relative MSE is of order 2^-8 / 3 ~ 1e-3 at most.
    w = torch.randn(64, 128) * 0.05
    dq = dequantize(quantize(w, LayerConfig(8, number_format="float")))
    assert float(((dq - w) ** 2).mean() / (w**2).mean()) < 2e-3


def test_pow2_relative_error_at_most_one_third():
    # Levels 2^-k: between 2^-k and 2^-k+1 the worst point is the midpoint 1.5 * 2^-k,
    # error 0.5 * 2^-k, so relative error <= 1/3 above the smallest non-zero level.
    w = torch.randn(16, 64)
    cfg = LayerConfig(5, number_format="pow2", granularity="per_channel")  # 15 powers
    q = quantize(w, cfg)
    dq = dequantize(q)
    smallest = per_element(q.scale, q) * 2.0**-14
    inside = w.abs() >= smallest
    rel = ((dq - w).abs() / w.abs())[inside]
    assert float(rel.max()) <= 1 / 3 + 1e-6


# --------------------------------------------------------------------------- granularity


@SETTINGS
@given(weights(), configs(min_bits=2))
def test_per_channel_steps_and_error_within_per_tensor_bound(w, cfg):
    tensor_cfg = LayerConfig(cfg.bits, number_format=cfg.number_format, granularity="per_tensor")
    chan_cfg = LayerConfig(cfg.bits, number_format=cfg.number_format, granularity="per_channel")
    qt, qc = quantize(w, tensor_cfg), quantize(w, chan_cfg)
    slack = 1e-5 * float(w.abs().max()) + 1e-30
    # A row's range is within the tensor's, and rounding up to float16 is monotone, so the
    # stored per-channel steps are exactly no larger; the error bound uses the stored step.
    assert (qc.scale <= qt.scale).all()
    if cfg.number_format in ("int_sym", "int_asym"):
        bound = float(qt.scale) / 2
    else:  # the largest gap of these tables is the top one
        table = magnitude_table(cfg.bits, cfg.number_format)
        bound = float(table[-1] - table[-2]) / 2 * float(qt.scale)
    assert float((dequantize(qc) - w).abs().max()) <= bound * (1 + 1e-5) + slack


@SETTINGS
@given(weights(), configs(min_bits=2))
def test_per_group_steps_within_per_channel_steps(w, cfg):
    group_cfg = LayerConfig(cfg.bits, number_format=cfg.number_format, granularity="per_group", group_size=5)
    chan_cfg = LayerConfig(cfg.bits, number_format=cfg.number_format, granularity="per_channel")
    qg, qc = quantize(w, group_cfg), quantize(w, chan_cfg)
    assert (qg.scale <= qc.scale[:, None]).all()  # exact: see the per-channel test


# --------------------------------------------------------------------------- 1 bit, zeros


def reference_group_means(w2: torch.Tensor, cfg: LayerConfig) -> torch.Tensor:
    """mean|w| of every element's group, with Python loops (the implementation has none)."""
    rows, cols = w2.shape
    out = torch.empty_like(w2)
    if cfg.granularity == "per_tensor":
        out[:] = w2.abs().mean()
        return out
    size = cols if cfg.granularity == "per_channel" else cfg.group_size
    for r in range(rows):
        for c0 in range(0, cols, size):
            out[r, c0 : c0 + size] = w2[r, c0 : c0 + size].abs().mean()
    return out


@SETTINGS
@given(weights(), st.sampled_from(["int_sym", "int_asym", "pow2"]), st.sampled_from(GRANULARITIES))
def test_one_bit_is_sign_times_mean_abs(w, fmt, granularity):
    cfg = LayerConfig(1, number_format=fmt, granularity=granularity, group_size=7)
    q = quantize(w, cfg)
    assert q.zero_point is None
    assert set(q.codes.unique().tolist()) <= {0, 1}
    w2 = as_matrix(w)
    sign = torch.where(w2 >= 0, 1.0, -1.0)
    mean = reference_group_means(w2, cfg)
    stored = per_element(q.scale, q)
    assert torch.equal(as_matrix(dequantize(q)), sign * stored)
    # the stored scale is mean|w| rounded up to float16: >= the mean, and at most one
    # float16 spacing above it (2^-10 relative, or 2^-24 absolute below the normal range)
    assert (stored >= mean * (1 - 1e-6)).all()
    assert (stored <= torch.maximum(mean * (1 + FP16_ULP), mean + 2.0**-24) * (1 + 1e-6)).all()


@pytest.mark.parametrize("cfg", list(valid_configs(range(2, 9))), ids=str)
def test_zero_weights_stay_exactly_zero(cfg):
    w = torch.randn(4, 20)
    w[:, ::3] = 0.0
    w[1] = 0.0  # an all-zero row: scale 0 must not give NaN
    dq = dequantize(quantize(w, cfg))
    assert not dq.isnan().any()
    assert (dq[w == 0] == 0).all()


@pytest.mark.parametrize("cfg", list(valid_configs()), ids=str)
def test_all_zero_and_constant_weights(cfg):
    assert (dequantize(quantize(torch.zeros(3, 10), cfg)) == 0).all()
    c = torch.full((3, 10), -0.37)
    dq = dequantize(quantize(c, cfg))
    # the constant is the top level, up to the rounding of its scale up to float16
    assert torch.allclose(dq, c, rtol=FP16_ULP, atol=0)
    assert (dq == dq.reshape(-1)[0]).all()


# --------------------------------------------------------------------------- STE


STE_CONFIGS = [LayerConfig(1), LayerConfig(3, number_format="pow2", granularity="per_group")]


@pytest.mark.parametrize("cfg", STE_CONFIGS)
def test_fake_quantize_value_and_straight_through_gradient(cfg):
    w = torch.randn(6, 10, requires_grad=True)
    upstream = torch.randn(6, 10)
    out = fake_quantize(w, cfg)
    assert torch.equal(out.detach(), dequantize(quantize(w.detach(), cfg)))
    (out * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


def test_fake_quantize_keeps_dtype():
    w = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    assert fake_quantize(w, LayerConfig(4)).dtype == torch.float64


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("cfg", list(valid_configs()), ids=str)
def test_every_combination_runs_with_the_contract_layout(cfg):
    w = torch.randn(6, 3, 3, 3)  # cols 27: the last group of 8 is short
    q = quantize(w, cfg)
    assert q.codes.dtype == torch.uint8 and q.codes.shape == (6, 27)
    assert int(q.codes.max()) < 2**cfg.bits
    expected_scale = {"per_tensor": (1,), "per_channel": (6,), "per_group": (6, 4)}[cfg.granularity]
    assert q.scale.dtype == torch.float16 and tuple(q.scale.shape) == expected_scale
    assert scale_shape(w.shape, cfg) == expected_scale
    assert q.scale.numel() == n_scales(w.shape, cfg)
    if cfg.number_format == "int_asym" and cfg.bits >= 2:
        assert q.zero_point.dtype == torch.uint8 and q.zero_point.shape == q.scale.shape
    else:
        assert q.zero_point is None
    assert (q.bits, q.number_format, q.granularity) == (cfg.bits, cfg.number_format, cfg.granularity)
    assert q.shape == (6, 3, 3, 3)
    dq = dequantize(q)
    assert dq.shape == w.shape and torch.isfinite(dq).all()


# --------------------------------------------------------------------------- hand-computed


def test_int_sym_hand_computed():
    # 3 bits: levels -3..3, per_channel scales 0.9/3 = 0.3 and 2/3, each rounded up to the
    # next float16: 0.3 -> 0.29980 (nearest) is below, so 0.30005; 2/3 -> 0.66699
    w = torch.tensor([[0.4, -0.9, 0.0], [2.0, -0.5, 1.0]])
    q = quantize(w, LayerConfig(3))
    assert q.scale.tolist() == [0.300048828125, 0.6669921875]
    # round(w/s') + 3; 1.0/0.66699 = 1.4993 rounds to 1 (it was exactly 1.5 with s = 2/3)
    assert q.codes.tolist() == [[4, 0, 3], [6, 2, 4]]


def test_int_asym_hand_computed():
    # 2 bits, range [-1, 2] -> scale 1, zero point 1: levels -1, 0, 1, 2
    w = torch.tensor([[-1.0, 0.4, 0.6, 2.0]])
    q = quantize(w, LayerConfig(2, number_format="int_asym", granularity="per_tensor"))
    assert q.scale.tolist() == [1.0] and q.zero_point.tolist() == [1]
    assert q.codes.tolist() == [[0, 1, 2, 3]]
    assert dequantize(q).tolist() == [[-1.0, 0.0, 1.0, 2.0]]


def test_int_asym_range_not_straddling_zero_is_covered():
    w = torch.tensor([[0.5, 0.75, 1.0]])  # range widened to [0, 1]: s = 1/3, z = 0
    q = quantize(w, LayerConfig(2, number_format="int_asym"))
    assert q.zero_point.tolist() == [0]
    s = 0.33349609375  # 1/3 rounded up to float16
    assert q.scale.tolist() == [s]
    # 0.5 was a tie between levels 1/3 and 2/3; with the slightly larger stored step it is
    # 1.4993 steps, so it rounds down
    assert q.codes.tolist() == [[1, 2, 3]]
    assert dequantize(q).tolist() == [[s, 2 * s, 3 * s]]


def test_pow2_hand_computed():
    # 3 bits: sign + 2-bit magnitude {0, 1/4, 1/2, 1} x max|w|
    assert magnitude_table(3, "pow2").tolist() == [0.0, 0.25, 0.5, 1.0]
    w = torch.tensor([[1.0, -0.3, 0.1, 0.74, -0.76]])
    dq = dequantize(quantize(w, LayerConfig(3, number_format="pow2", granularity="per_tensor")))
    # 0.3 -> 0.25 (midpoints 0.125, 0.375, 0.75); 0.1 -> 0; 0.74 -> 0.5; 0.76 -> 1
    assert dq.tolist() == [[1.0, -0.25, 0.0, 0.5, -1.0]]


@pytest.mark.parametrize(
    "bits, largest, smallest_subnormal",
    [(4, 6.0, 0.5), (5, 7.0, 0.25), (6, 28.0, 0.0625), (7, 30.0, 2**-5), (8, 480.0, 2**-9)],
)
def test_float_tables(bits, largest, smallest_subnormal):
    e_bits, m_bits = FLOAT_FORMATS[bits]
    assert 1 + e_bits + m_bits == bits
    table = magnitude_table(bits, "float")
    assert len(table) == 2 ** (bits - 1)
    assert (table[1:] > table[:-1]).all()  # strictly ascending: every code is a distinct level
    assert float(table[-1]) == largest and float(table[1]) == smallest_subnormal


def test_float_e2m1_hand_computed():
    # E2M1 levels {0, .5, 1, 1.5, 2, 3, 4, 6}; scale = 6 / 6 = 1
    w = torch.tensor([[6.0, -2.4, 2.6, 0.2, -0.3]])
    q = quantize(w, LayerConfig(4, number_format="float", granularity="per_tensor"))
    assert q.scale.tolist() == [1.0]
    assert dequantize(q).tolist() == [[6.0, -2.0, 3.0, 0.0, -0.5]]
    assert q.codes.tolist() == [[7, 12, 5, 0, 9]]  # sign bit 8 | magnitude index


def test_per_group_short_last_group_has_its_own_scale():
    w = torch.tensor([[1.0, 1.0, 1.0, 8.0, 2.0]])  # groups of 2: [1,1] [1,8] [2]
    q = quantize(w, LayerConfig(2, granularity="per_group", group_size=2))
    assert q.scale.tolist() == [[1.0, 8.0, 2.0]]


def test_rejects_non_finite_and_integer_weights():
    with pytest.raises(ValueError, match="inf or NaN"):
        quantize(torch.tensor([[1.0, float("nan")]]), LayerConfig(4))
    with pytest.raises(ValueError, match="floating-point"):
        quantize(torch.ones(2, 2, dtype=torch.int64), LayerConfig(4))


def test_one_dimensional_weight_is_a_column():
    q = quantize(torch.tensor([1.0, -2.0, 3.0]), LayerConfig(4))
    assert q.codes.shape == (3, 1) and q.scale.shape == (3,)
    assert dequantize(q).shape == (3,)
    assert n_scales((3,), LayerConfig(4)) == 3 == math.prod(q.scale.shape)


# --------------------------------------------------------------------------- float16 scales


def fp16_ceil_reference(x: np.ndarray) -> np.ndarray:
    """Smallest float16 >= each float32 value, with numpy (independent of the implementation)."""
    h = x.astype(np.float16)
    below = h.astype(np.float32) < x
    return np.where(below, np.nextafter(h, np.float16(np.inf)), h)


def reference_ideal_scales(w2: torch.Tensor, cfg: LayerConfig) -> torch.Tensor:
    """The scale of every group before float16 rounding, with Python loops over groups, from
    the formulas of the module docstring (float32, like the implementation)."""
    rows, cols = w2.shape
    if cfg.granularity == "per_tensor":
        groups = [[w2.reshape(-1)]]
    else:
        size = cols if cfg.granularity == "per_channel" else cfg.group_size
        groups = [[w2[r, c0 : c0 + size] for c0 in range(0, cols, size)] for r in range(rows)]
    out = torch.empty(len(groups), len(groups[0]))
    for i, row in enumerate(groups):
        for j, g in enumerate(row):
            if cfg.bits == 1:
                s = g.abs().mean()
            elif cfg.number_format == "int_sym":
                s = g.abs().max() / (2 ** (cfg.bits - 1) - 1)
            elif cfg.number_format == "int_asym":
                s = (g.max().clamp(min=0) - g.min().clamp(max=0)) / (2**cfg.bits - 1)
            else:
                s = g.abs().max() / magnitude_table(cfg.bits, cfg.number_format)[-1]
            out[i, j] = s
    return out


@SETTINGS
@given(weights(), configs())
def test_scales_are_the_ideal_scales_rounded_up_to_float16(w, cfg):
    q = quantize(w, cfg)
    assert q.scale.dtype == torch.float16
    ideal = reference_ideal_scales(as_matrix(w), cfg).reshape(q.scale.shape).numpy()
    # same float32 formula as the implementation up to summation order (1-bit means), so
    # compare the rounded-up values of the ideal scale nudged down and up by 1e-6
    lo = fp16_ceil_reference((ideal * (1 - 1e-6)).astype(np.float32))
    hi = fp16_ceil_reference((ideal * (1 + 1e-6)).astype(np.float32))
    stored = q.scale.numpy()
    assert ((lo <= stored) & (stored <= hi)).all()


def test_a_tiny_scale_becomes_the_smallest_float16_subnormal_and_still_bounds_the_error():
    w = torch.tensor([[3e-9, -1e-9, 0.0], [0.0, 0.0, 0.0]])
    q = quantize(w, LayerConfig(4))
    assert q.scale.tolist() == [2.0**-24, 0.0]  # the all-zero row keeps scale 0
    dq = dequantize(q)
    assert (dq - w).abs().max() <= 2.0**-25 and (dq[1] == 0).all()


def test_largest_float16_scale_is_accepted_and_one_above_it_is_refused():
    ok = torch.tensor([[65504.0 * 7, 1.0]])  # int_sym 4 bits: scale max|w| / 7 = 65504 exactly
    q = quantize(ok, LayerConfig(4))
    assert q.scale.tolist() == [65504.0]
    assert dequantize(q)[0, 0] == 65504.0 * 7
    too_big = torch.tensor([[65505.0 * 7, 1.0]])
    with pytest.raises(ValueError, match="float16's largest value 65504"):
        quantize(too_big, LayerConfig(4))
    with pytest.raises(ValueError, match="float16"):
        quantize(torch.full((2, 3), 7e4), LayerConfig(1))  # 1 bit: the scale is mean|w|


@pytest.mark.parametrize("bad", [1e7, float("inf"), float("nan")])
@pytest.mark.parametrize("cfg", [LayerConfig(4), LayerConfig(1), LayerConfig(3, number_format="int_asym"),
                                 LayerConfig(4, number_format="pow2", granularity="per_group", group_size=2)])
def test_fake_quantize_applies_the_range_checks_of_quantize_and_names_the_kernel(bad, cfg):
    # the same check as export: a plan that fine-tunes under fake quantization always exports
    w = torch.tensor([[bad, 1.0], [0.5, -0.25]], requires_grad=True)
    why = "float16's largest value" if bad == 1e7 else "inf or NaN"
    if bad == 1e7 and cfg.bits == 1:
        w = torch.full((2, 2), 1e5)  # 1 bit: the scale is mean|w|
    with pytest.raises(WeightRangeError, match=f"kernel 'conv1': .*{why}") as e:
        fake_quantize(w, cfg, kernel="conv1")
    assert e.value.kernel == "conv1"
    with pytest.raises(WeightRangeError, match=why):
        quantize(w, cfg, kernel="conv1")
