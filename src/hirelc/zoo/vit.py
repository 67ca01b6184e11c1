"""A small Vision Transformer (Dosovitskiy et al. 2021) with timm-style modules.

Module layout follows timm so compression code written for timm models applies here:
`patch_embed.proj` (conv, kernel = stride = patch; or, with `stem="conv"`, a 1x1 conv after
`patch_embed.stem`), `cls_token`, `pos_embed`,
`blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`, `head`.

>>> import torch
>>> VisionTransformer(image_size=28, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout).

    Heads are merged with `reshape(B, N, -1)`, never with the input width, so a pruned
    copy whose `qkv`/`proj` hold fewer heads (and `num_heads` says so) still runs.
    """

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, h, d)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, h, N, d)
        q, k, v = qkv.unbind(0)  # each (B, h, N, d)
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, N, d)
        x = x.transpose(1, 2).reshape(B, N, -1)  # (B, N, h*d)
        return self.proj(x)  # (B, N, D)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens, via a conv with kernel = stride = patch size."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W/p^2, D)


class ConvStem(nn.Module):
    """Convolutional patch embedding (Xiao et al. 2021, "Early convolutions help transformers
    see better"): 3x3 stride-2 conv-BN-ReLU layers down to the patch grid, then a 1x1 `proj`.

    Same token grid as a patch-4 `PatchEmbed` (two stride-2 convs), but local features
    make a ViT train far faster on small datasets.
    """

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        if patch_size & (patch_size - 1) or patch_size < 2:
            raise ValueError(f"a conv stem needs a power-of-two patch size >= 2, got {patch_size}")
        layers: list[nn.Module] = []
        channels, width = in_channels, dim // 2
        for _ in range(patch_size.bit_length() - 1):  # log2(patch) stride-2 convs
            conv = nn.Conv2d(channels, width, 3, 2, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(width), nn.ReLU()]
            channels, width = width, dim
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.stem(x)).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W/p^2, D)


class VisionTransformer(nn.Module):
    """ViT classifier on the cls token; images not a multiple of the patch size are zero-padded."""

    def __init__(
        self, image_size: int = 32, in_channels: int = 3, num_classes: int = 10, patch_size: int = 4,
        dim: int = 96, depth: int = 6, num_heads: int = 4, mlp_ratio: float = 2.0, stem: str = "patch",
    ) -> None:
        super().__init__()
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        extra = -image_size % patch_size
        self.pad = nn.ZeroPad2d((0, extra, 0, extra)) if extra else nn.Identity()
        embed = PatchEmbed if stem == "patch" else ConvStem
        self.patch_embed = embed(in_channels, dim, patch_size)
        n_patches = ((image_size + extra) // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ViT initialisation: truncated normal (std 0.02) embeddings and linears.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.pad(x))  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, N+1, D)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])  # (B, classes)
