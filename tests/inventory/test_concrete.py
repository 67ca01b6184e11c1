"""Tracing with the example's shapes (hirelc.inventory.concrete), the fallback for models
whose Python code checks shapes, as Hugging Face models do."""

from __future__ import annotations

import torch
from torch import nn

from hirelc.inventory import inspect


class ShapeChecked(nn.Module):
    """A shape check stops plain fx; the MLP's hidden width is read by nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(6, 16), nn.Linear(16, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 6:
            raise ValueError("expected 6 features")
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class WidthAsNumber(ShapeChecked):
    """Uses a width as a number: removing a channel would change the divisor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.out(torch.relu(self.fc2(h / h.shape[-1])))


def test_a_model_checking_its_input_shape_is_traced_with_the_examples_shapes():
    inv = inspect(ShapeChecked(), torch.randn(4, 6))
    assert inv.trace_error == ""
    assert inv.spec("fc1").prunable and inv.spec("fc2").prunable
    assert not inv.spec("out").prunable and "model output" in inv.spec("out").prune_reason


def test_channels_whose_width_the_code_reads_as_a_number_are_not_pruned():
    class Checked(WidthAsNumber):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] != 6:
                raise ValueError("expected 6 features")
            return super().forward(x)

    inv = inspect(Checked(), torch.randn(4, 6))
    assert not inv.spec("fc1").prunable and "read as numbers" in inv.spec("fc1").prune_reason
    assert inv.spec("fc2").prunable  # its own channels are not read as numbers


class InPlaceResidual(ShapeChecked):
    """In-place ops in the traced code: tracing must not write into the model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 6:
            raise ValueError("expected 6 features")
        h = self.fc2(torch.relu_(self.fc1(x)))
        h += x
        return self.out(h)


def test_tracing_with_shapes_leaves_the_model_as_it_was():
    model = InPlaceResidual()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inv = inspect(model, torch.randn(4, 6))
    assert inv.trace_error == "" and inv.spec("fc1").prunable
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
