"""A job's guidance: what it measures, and that the damage model is in measured loss units."""

import torch
from torch import nn

from hirelc.data import load_dataset
from hirelc.guidance import measure_guidance
from hirelc.inventory import inspect
from hirelc.methods.space import SpaceConfig
from hirelc.methods.target import Target
from hirelc.plan import LayerConfig


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)).eval()


def test_a_bits_only_search_without_target_measures_no_fisher_and_no_damage():
    data = load_dataset("digits", seed=0)
    net = _net()
    g = measure_guidance(net, data, inspect(net, data.example_input(2)), SpaceConfig.bits_only([2, 4]), Target(),
                         "releq")
    assert g.sensitivity is None and g.damage is None and g.importance is None


def test_with_a_size_target_the_damage_is_anchored_on_measured_losses_in_the_pruning_order():
    from hirelc.evaluate.loss_probe import measure_losses
    from hirelc.methods.space import SearchSpace

    data = load_dataset("digits", seed=0)
    net = _net()
    inv = inspect(net, data.example_input(2))
    space = SpaceConfig(bits=(2, 4), keep_ratios=(1.0, 0.5), formats=("int_sym", "pow2"))
    g = measure_guidance(net, data, inv, space, Target(compression=8), "random")
    assert g.importance is not None and set(g.importance) == {"1"}
    quant, prune = measure_losses(net, data, inv, SearchSpace(tuple(inv), space), g.importance)
    assert g.damage.prune["1"] == prune["1"]  # pruned in the evaluator's order
    anchor = (2, "int_sym", "per_channel", None)
    assert g.damage.of("1", LayerConfig(bits=2)) == quant["1"][anchor]
    assert g.damage.of("1", LayerConfig(bits=2)) > g.damage.of("1", LayerConfig(bits=4)) >= 0
