"""Shared fixtures: sklearn digits splits and a tiny CNN trained on them in well under a second."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hirelc.data import load_dataset
from hirelc.evaluate import PlanCompressor
from hirelc.plan import LayerConfig, Plan

KERNELS = ("conv1", "fc1", "fc2")


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (B, 8, 4, 4)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))  # (B, 10)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)  # train 1,078 / val 360 / test 359, 1x8x8


@pytest.fixture(scope="session")
def _trained(digits):
    torch.manual_seed(0)
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(4):
        for x, y in digits.loader("train", batch_size=64, seed=epoch):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


@pytest.fixture
def model(_trained):
    """A fresh copy per test, so no test can leak changes into another."""
    return copy.deepcopy(_trained)


def uniform_plan(bits: int, **kw) -> Plan:
    return Plan({k: LayerConfig(bits, **kw) for k in KERNELS})


@pytest.fixture
def compress(digits):
    """The real default compressor (apply_plan + inventory), for tests that wrap it."""
    return PlanCompressor(digits.example_input(2))
