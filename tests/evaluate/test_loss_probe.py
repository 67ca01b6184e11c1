"""Measured loss increases of pruning and quantizing one kernel: what the damage model is
calibrated on, so they must be exactly what the evaluator's compression does to the loss."""

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hirelc.compress.prune import kept_indices, prune_physically
from hirelc.compress.quantize import dequantize, quantize
from hirelc.evaluate.calibrate import kernel_weights, measure_damage_model
from hirelc.evaluate.loss_probe import anchor_keys, measure_losses
from hirelc.inventory import inspect
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.plan import LayerConfig, Plan


def _bn_shift_net():
    """Hidden channel 0 has zero weights but a BatchNorm shift of 2 that alone makes class 1
    win; channel 1 carries x0 and is read by class 0. OBD (1/2 F w^2 of the rows) rates
    channel 0 at exactly 0."""
    net = nn.Sequential(nn.Linear(4, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 0, 0, 0], [1.0, 0, 0, 0]]))
        net[1].bias.copy_(torch.tensor([2.0, 0.0]))
        net[3].weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        net[3].bias.zero_()
    net.eval()
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = net(x).argmax(1)  # the net is right on its own data: a well-fit model
    return net, SimpleNamespace(train=TensorDataset(x, y)), x, y


def _loss(net, x, y):
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y))


def test_removing_a_channel_with_a_large_batchnorm_shift_is_measured_as_costly_where_obd_sees_nothing():
    net, data, x, y = _bn_shift_net()
    inv = inspect(net, x[:2])
    space = SearchSpace(tuple(inv), SpaceConfig(bits=(8,), keep_ratios=(1.0, 0.5)))
    importance = {"0": torch.tensor([0.0, 1.0])}  # channel 0 first out, as OBD ranks it
    _, prune = measure_losses(net, data, inv, space, importance, n_batches=4)
    kept = kept_indices(net, inv.groups, Plan({"0": LayerConfig(8, keep_ratio=0.5)}), importance)
    removed = _loss(prune_physically(net, kept, inv.groups), x, y) - _loss(net, x, y)
    assert kept["0"].tolist() == [1]
    assert prune["0"][0.5] == pytest.approx(removed, rel=1e-4) and removed > 0.3
    obd = measure_damage_model(space, kernel_weights(net, list(inv)), unit_saliency={"0": [0.0, 1.0]})
    assert obd.prune["0"][0.5] == 0.0  # what the old estimate said


def test_quantization_anchors_are_the_loss_increase_of_that_kernel_alone_and_the_model_is_restored():
    net, data, x, y = _bn_shift_net()
    inv = inspect(net, x[:2])
    space = SearchSpace(tuple(inv), SpaceConfig(bits=(2, 4), formats=("int_sym", "pow2"), granularities=("per_tensor",)))
    before = copy.deepcopy(net.state_dict())
    quant, _ = measure_losses(net, data, inv, space, None, n_batches=4)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(quant["3"]) == set(anchor_keys(space, "3")) == {(2, "int_sym", "per_tensor", None),
                                                              (4, "int_sym", "per_tensor", None)}
    q = copy.deepcopy(net)
    with torch.no_grad():
        q[3].weight.copy_(dequantize(quantize(net[3].weight, LayerConfig(2, granularity="per_tensor"))))
    expected = max(_loss(q, x, y) - _loss(net, x, y), 0.0)
    assert quant["3"][(2, "int_sym", "per_tensor", None)] == pytest.approx(expected, rel=1e-4, abs=1e-7)


class _Residual(nn.Module):
    """Two producers tied by a residual add: one channel group with two kernels."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        return self.head(torch.relu(h + self.b(torch.relu(h))))


def test_a_group_shared_by_two_kernels_is_pruned_whole_and_its_loss_split_between_them():
    torch.manual_seed(0)
    net = _Residual().eval()
    x, y = torch.randn(128, 3), torch.randint(0, 2, (128,))
    inv = inspect(net, x[:2])
    assert inv.groups["a"].producers == ("a", "b")
    space = SearchSpace(tuple(inv), SpaceConfig(bits=(8,), keep_ratios=(1.0, 0.5)))
    _, prune = measure_losses(net, SimpleNamespace(train=TensorDataset(x, y)), inv, space, "l1", n_batches=2)
    plan = Plan({"a": LayerConfig(8, keep_ratio=0.5), "b": LayerConfig(8, keep_ratio=0.5)})
    whole = _loss(prune_physically(net, kept_indices(net, inv.groups, plan, "l1"), inv.groups), x, y) - _loss(net, x, y)
    assert prune["a"][0.5] == prune["b"][0.5] == pytest.approx(max(whole, 0.0) / 2, rel=1e-4, abs=1e-7)
    assert prune["a"][1.0] == 0.0
