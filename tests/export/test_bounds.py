"""A packed file's pruning groups are checked against the `like` model before use."""

from __future__ import annotations

import pytest
import torch

from hirelc.export.bounds import check_groups_fit
from hirelc.inventory import inspect
from inventory.arch_models import WidthViT


def test_a_zero_filled_attention_input_must_name_an_attention_module():
    model = WidthViT()
    stream = inspect(model, torch.randn(2, 3, 16, 16)).groups["patch_embed"]
    good = dict(stream.to_dict(), kept=16)
    check_groups_fit(model, [good])
    with pytest.raises(ValueError, match="'blocks.0.mlp' is not an attention module"):
        check_groups_fit(model, [dict(good, padded_inputs=["blocks.0.mlp"])])
    with pytest.raises(ValueError, match="not an attention module"):
        check_groups_fit(model, [dict(good, padded_inputs=["no.such.module"])])
