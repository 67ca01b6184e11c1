"""Whether a BatchNorm-derived module is channel-wise, judged by what it computes.

torch's own BatchNorm classes are. A subclass (a fused BatchNorm + activation, a framework's
frozen BatchNorm, ...) may add anything to `forward`, so it is probed: on a random input of
the traced shape, a copy keeping every other channel must compute the kept channels of the
full module's output. Identified by base class and behaviour, never by class name.

>>> class BatchNormAct2d(nn.BatchNorm2d):
...     def forward(self, x):
...         return torch.relu(super().forward(x))
>>> batchnorm_reason(BatchNormAct2d(4).eval(), "bn", (2, 4, 3, 3))
''
>>> class Mixing(nn.BatchNorm2d):
...     def forward(self, x):
...         return super().forward(x) + x.mean(1, keepdim=True)
>>> batchnorm_reason(Mixing(4).eval(), "bn", (2, 4, 3, 3))[:44]
"normalised by 'bn' (Mixing), whose output is"
"""

from __future__ import annotations

import copy

import torch
from torch import nn

TORCH_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
PER_CHANNEL = ("weight", "bias", "running_mean", "running_var")


def _keep_every_other(bn: nn.Module, kept: torch.Tensor) -> nn.Module:
    small = copy.deepcopy(bn)
    for name in PER_CHANNEL:
        t = getattr(small, name, None)
        if isinstance(t, nn.Parameter):
            setattr(small, name, nn.Parameter(t.detach()[kept].clone()))
        elif isinstance(t, torch.Tensor):
            setattr(small, name, t[kept].clone())
    small.num_features = len(kept)
    return small


def batchnorm_reason(bn: nn.Module, path: str, in_shape: tuple[int, ...] | None) -> str:
    """"" when `bn` (a `_BatchNorm`) slices channel by channel, else why it does not.
    The caller runs this in eval mode without grad (`frozen`)."""
    if type(bn) in TORCH_BATCHNORMS:
        return ""
    what = f"normalised by '{path}' ({type(bn).__name__})"
    if in_shape is None or len(in_shape) < 2 or in_shape[1] < 2:
        return f"{what}, a BatchNorm subclass whose behaviour could not be probed"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(in_shape, generator=g)
    kept = torch.arange(0, in_shape[1], 2)
    try:
        expected = bn(x).index_select(1, kept)
        got = _keep_every_other(bn, kept)(x.index_select(1, kept))
    except Exception as e:  # whatever the subclass's own code raises with fewer channels
        return f"{what}, which fails with fewer channels ({type(e).__name__})"
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or \
            not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
        return f"{what}, whose output is not computed channel by channel"
    return ""
