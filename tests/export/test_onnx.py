"""export_onnx: the ONNX file computes what hirelc's compressed model computes, runs in
onnxruntime, stores low-bit weights, and says what it widened.

Tolerance (stated once, used everywhere): |onnx - hirelc| <= 1e-5 * max|hirelc output|
(+ rtol 1e-4). The weights are bit-identical (checked in test_onnx_weights.py); what
remains is float32 summation order (MLAS vs ATen), measured at <= 1.2e-6 of the largest
output over every zoo model and format.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import torch
from torch import nn

from hirelc.compress.apply import apply_plan
from hirelc.export.onnx import INSTALL_HINT, IR_VERSION, OPSET, export_onnx
from hirelc.export.onnx_graph import describe
from hirelc.inventory import inspect
from hirelc.plan import LayerConfig, Plan

ort.set_default_logger_severity(3)
REL_TOL = 1e-5


def run_onnx(path: str, x: torch.Tensor, threads: int = 1) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})[0]


def assert_matches(got: np.ndarray, expected: torch.Tensor) -> None:
    ref = expected.detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=REL_TOL * float(np.abs(ref).max()))


class SmallCNN(nn.Module):
    """Conv2d, depthwise conv, Conv1d-free BatchNorm net with a Linear on 3-D input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, groups=8, padding="same", bias=False)
        self.tok = nn.Linear(8, 48)
        self.head = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(torch.relu(self.bn(self.conv(x))))  # (B, 8, H, W)
        x = self.tok(x.flatten(2).transpose(1, 2))  # (B, HW, 48): a MatMul on 3-D input
        return self.head(torch.relu(x).mean(1))  # (B, 5)


def _model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(3, 3, 6, 6)


CONFIGS = [  # every number format and granularity, with bits that need widening
    LayerConfig(bits=4),
    LayerConfig(bits=8, granularity="per_tensor"),
    LayerConfig(bits=3, granularity="per_group", group_size=16),
    LayerConfig(bits=2, keep_ratio=0.5),
    LayerConfig(bits=1, granularity="per_group", group_size=8),
    LayerConfig(bits=5, number_format="int_asym", granularity="per_group", group_size=16),
    LayerConfig(bits=4, number_format="int_asym", granularity="per_tensor"),
    LayerConfig(bits=3, number_format="pow2", granularity="per_channel"),
    LayerConfig(bits=6, number_format="pow2", granularity="per_group", group_size=32),
    LayerConfig(bits=4, number_format="float", granularity="per_group", group_size=16),
    LayerConfig(bits=6, number_format="float", granularity="per_tensor"),
    LayerConfig(bits=8, number_format="float"),
]


@pytest.mark.parametrize("decode", ["runtime", "load"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.number_format}-{c.bits}b-{c.granularity}-k{c.keep_ratio}")
def test_onnx_output_matches_the_compressed_model(cfg: LayerConfig, decode: str, tmp_path) -> None:
    model, x = _model()
    inv = inspect(model, x[:1])
    plan = Plan.uniform(inv, cfg.bits, cfg.keep_ratio, cfg.number_format, cfg.granularity, cfg.group_size)
    small = apply_plan(model, plan, inventory=inv).eval()
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1], inventory=inv, decode=decode)
    got = run_onnx(result.path, x)  # batch 3 through a graph traced at batch 1
    with torch.no_grad():
        assert_matches(got, small(x))
        # ...and the weights really are quantized: the fp32 model is far from it
        assert np.abs(got - model(x).numpy()).max() > 100 * REL_TOL * np.abs(got).max()
    assert len(result.kernels) == 4 and all(k.onnx_bytes > 0 for k in result.kernels)


def test_file_is_valid_onnx_at_the_pinned_versions_with_low_bit_operators(tmp_path) -> None:
    model, x = _model()
    inv = inspect(model, x[:1])
    plan = Plan.uniform(inv, bits=4, keep_ratio=0.5, granularity="per_group", group_size=16)
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1], inventory=inv)
    m = onnx.load(result.path)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == IR_VERSION == 10
    assert {o.domain or "ai.onnx": o.version for o in m.opset_import} == {"ai.onnx": OPSET, "com.microsoft": 1}
    ops = describe(m)
    assert ops["MatMulNBits"] == 2 and ops["DequantizeLinear"] == 2 and ops["Conv"] == 2
    assert "Gemm" not in ops and "MatMul" not in ops
    # no float weight of a quantized kernel is left: float initializers are biases, BN, scales
    floats = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    assert sum(int(np.prod(t.dims)) for t in floats) < 400
    # physically pruned: conv keeps 4 of 8 channels, tok 24 of 48 neurons
    nbits = {n.name: {a.name: a.i for a in n.attribute} for n in m.graph.node if n.op_type == "MatMulNBits"}
    assert nbits["hirelc/tok/matmulnbits"]["N"] == 24 and nbits["hirelc/head/matmulnbits"]["K"] == 24
    assert result.file_bytes == (tmp_path / "m.onnx").stat().st_size


def test_each_kernel_line_says_what_was_widened_and_its_byte_cost(tmp_path) -> None:
    model, x = _model()
    plan = Plan({"conv": LayerConfig(bits=3), "tok": LayerConfig(bits=4, number_format="pow2"),
                 "head": LayerConfig(bits=8, number_format="float")})
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1])
    lines = dict(zip((k.name for k in result.kernels), result.lines()))
    assert "DequantizeLinear 4b" in lines["conv"] and "3->4 bits" in lines["conv"]
    assert "MatMulNBits 8b" in lines["tok"] and "pow2 levels as 8-bit integers" in lines["tok"]
    assert "float32" in lines["head"]
    conv = next(k for k in result.kernels if k.name == "conv")
    # 8x3x3x3 = 216 codes: hirelc 81 B (3 bits) + 8 fp16 scales; ONNX 108 B (int4) + 8 fp32 scales
    assert (conv.hirelc_bytes, conv.onnx_bytes) == (81 + 16, 108 + 32)
    assert f"{conv.onnx_bytes - conv.hirelc_bytes:+,} B" in lines["conv"]


def test_a_fine_tuned_apply_plan_model_is_exported_with_its_own_weights(tmp_path) -> None:
    model, x = _model()
    plan = Plan({"tok": LayerConfig(bits=4), "head": LayerConfig(bits=2)})
    small = apply_plan(model, plan).eval()
    with torch.no_grad():
        small.tok.parametrizations.weight.original.mul_(1.5)  # as a fine-tune would move it
        expected = small(x)
    result = export_onnx(small, None, tmp_path / "m.onnx", x[:1])
    assert_matches(run_onnx(result.path, x, threads=2), expected)
    with pytest.raises(ValueError, match="differs from the plan"):
        export_onnx(small, Plan({"tok": LayerConfig(bits=8)}), tmp_path / "n.onnx", x[:1])


def test_conv1d_and_unquantized_layers_are_exported(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 6, 3, stride=2), nn.ReLU(), nn.Conv1d(6, 4, 1), nn.Flatten(),
                          nn.Linear(4 * 7, 3)).eval()
    x = torch.randn(2, 2, 16)
    plan = Plan({"0": LayerConfig(bits=5, keep_ratio=0.5), "4": LayerConfig(bits=4)})  # "2" stays fp32
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1])
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan, example_input=x[:1])(x))
    assert [k.name for k in result.kernels] == ["0", "4"]


def test_multihead_attention_kernels_stay_float32_and_say_so(tmp_path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.mha(x, x, x, need_weights=False)[0].mean(1))

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 5, 8)
    plan = Plan({"mha.in_proj": LayerConfig(bits=4), "fc": LayerConfig(bits=4)})
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1])
    line = next(k.line() for k in result.kernels if k.name == "mha.in_proj")
    assert "not lowered" in line and "float32" in line
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan)(x))


def test_missing_onnxruntime_gives_the_install_command(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    model, x = _model()
    with pytest.raises(ImportError, match=r"pip install 'hirelc\[onnx\]'") as e:
        export_onnx(model, Plan({"tok": LayerConfig(bits=4)}), tmp_path / "m.onnx", x[:1])
    assert str(e.value) == INSTALL_HINT
    assert not (tmp_path / "m.onnx").exists()


def test_min_matmul_bits_4_stores_2_bit_linears_at_4_bits_with_the_same_outputs(tmp_path) -> None:
    model, x = _model()
    plan = Plan({"tok": LayerConfig(bits=2), "head": LayerConfig(bits=8)})
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1], min_matmul_bits=4)
    assert [(k.lowering.op, k.lowering.bits) for k in result.kernels] == [("MatMulNBits", 4), ("MatMulNBits", 8)]
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan)(x))
    with pytest.raises(ValueError, match="min_matmul_bits"):
        export_onnx(model, plan, tmp_path / "n.onnx", x[:1], min_matmul_bits=3)


def test_a_layer_called_twice_and_a_weight_read_directly_are_exported_correctly(tmp_path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(16, 16)
            self.raw = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.shared(torch.relu(self.shared(x)))  # one kernel, two calls
            return torch.nn.functional.linear(x, self.raw.weight, self.raw.bias)  # never called

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(3, 16)
    plan = Plan({"shared": LayerConfig(bits=4), "raw": LayerConfig(bits=4)})
    result = export_onnx(model, plan, tmp_path / "m.onnx", x[:1])
    m = onnx.load(result.path)
    onnx.checker.check_model(m, full_check=True)
    assert describe(m)["MatMulNBits"] == 2 and len([t for t in m.graph.initializer if "shared/B" in t.name]) == 1
    raw = next(k for k in result.kernels if k.name == "raw")
    assert raw.lowering.op == "float32" and "never calls this layer" in raw.line()
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan)(x))


@pytest.mark.parametrize("granularity", ["per_channel", "per_group"])
def test_decode_at_load_leaves_float32_constants_in_the_session_graph(granularity: str, tmp_path) -> None:
    model, x = _model()
    plan = Plan({"conv": LayerConfig(bits=4, number_format="int_asym", granularity=granularity, group_size=16),
                 "head": LayerConfig(bits=6, granularity=granularity, group_size=16)})
    folded = export_onnx(model, plan, tmp_path / "f.onnx", x[:1], decode="load")
    plain = export_onnx(model, plan, tmp_path / "d.onnx", x[:1])
    assert [k.lowering.op for k in folded.kernels] == ["Cast+Mul", "Cast+Mul"]
    assert "Cast" in describe(onnx.load(folded.path))
    assert folded.kernels[0].onnx_bytes <= plain.kernels[0].onnx_bytes + 8 * 4  # 27 cols -> 32: 5 codes per row
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "loaded.onnx")  # the graph the session runs
    ort.InferenceSession(folded.path, opts, providers=["CPUExecutionProvider"])
    ops = describe(onnx.load(opts.optimized_model_filepath))
    assert "Cast" not in ops and "Mul" not in ops and "DequantizeLinear" not in ops and "Transpose" not in ops
    with torch.no_grad():
        assert_matches(run_onnx(folded.path, x), apply_plan(model, plan)(x))
    ort.InferenceSession(plain.path, opts, providers=["CPUExecutionProvider"])
    assert "DequantizeLinear" in describe(onnx.load(opts.optimized_model_filepath))  # runs every call
