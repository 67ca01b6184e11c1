"""Hand-built equivalents of what model libraries build (no timm / torchvision / transformers
here): each reproduces one construct that structured pruning must reach through."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WidthAttention(nn.Module):
    """timm's older attention: head size and merge both from the input width C."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, C / heads)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WidthAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WidthViT(nn.Module):
    """Patch-4 ViT on 3x16x16 images whose attention reshapes by the input width."""

    def __init__(self, dim: int = 32, heads: int = 4, depth: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 16, 16)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, 16, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class BatchNormAct2d(nn.BatchNorm2d):
    """timm-style fused BatchNorm + activation: a BatchNorm2d subclass with its own forward."""

    def __init__(self, c: int, act: bool = True) -> None:
        super().__init__(c)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * self.expand(F.silu(self.reduce(s))).sigmoid()


class MBConv(nn.Module):
    """EfficientNet inverted residual: expand, depthwise, SE, project, residual add."""

    def __init__(self, c: int, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.conv_pw = nn.Conv2d(c, h, 1, bias=False)
        self.bn1 = BatchNormAct2d(h)
        self.conv_dw = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False)
        self.bn2 = BatchNormAct2d(h)
        self.se = SqueezeExcite(h, max(2, c // 4))
        self.conv_pwl = nn.Conv2d(h, c, 1, bias=False)
        self.bn3 = BatchNormAct2d(c, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.se(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x)))))
        return x + self.bn3(self.conv_pwl(h))


class EfficientNetish(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(16)
        self.blocks = nn.Sequential(MBConv(16), MBConv(16))
        self.conv_head = nn.Conv2d(16, 64, 1, bias=False)
        self.bn2 = BatchNormAct2d(64)
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 16, 16)
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.classifier(x.mean((2, 3)))


class BertSelfAttention(nn.Module):
    """Hugging Face style: separate q/k/v Linears, heads from attributes, a shape check in
    Python control flow (what stops torch.fx on real HF models)."""

    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.max_len = heads, dim // heads, max_len
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        if N > self.max_len:  # data-dependent: untraceable by torch.fx
            raise ValueError("sequence too long")
        split = lambda t: t.view(B, N, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, -1)
        return self.output(ctx)


class BertIntermediate(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dense(x)))


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.attention = BertSelfAttention(dim, heads, max_len)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = BertIntermediate(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attention(x))
        return self.ln2(x + self.ffn(x))


class TinyBert(nn.Module):
    """Word + position embeddings, post-norm encoder layers, an MLM head whose decoder is
    tied to the word embedding (one (vocab, dim) tensor read by two modules). Python control
    flow on a tensor's shape (as in Hugging Face models) stops torch.fx at the top level."""

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4, depth: int = 2, max_len: int = 16) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(max_len, dim)
        self.emb_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(BertLayer(dim, heads, max_len) for _ in range(depth))
        self.transform = nn.Linear(dim, dim)
        self.head_norm = nn.LayerNorm(dim)
        self.decoder = nn.Linear(dim, vocab)
        self.decoder.weight = self.word_embeddings.weight  # tied, as in BERT / GPT

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, N) token ids
        if ids.shape[1] > self.position_embeddings.num_embeddings:  # untraceable, as in HF models
            raise ValueError("sequence longer than the position table")
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.emb_norm(self.word_embeddings(ids) + self.position_embeddings(pos))
        for layer in self.layers:
            x = layer(x)
        return self.decoder(self.head_norm(F.gelu(self.transform(x))))  # (B, N, vocab)


class CatBranches(nn.Module):
    """Inception-style: two branches concatenated on channels, then BN and a 1x1 conv."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch_a = nn.Conv2d(8, 6, 1)
        self.branch_b = nn.Conv2d(8, 10, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.mix = nn.Conv2d(16, 12, 1)
        self.fc = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 8, 8)
        h = torch.relu(self.stem(x))
        h = torch.cat([torch.relu(self.branch_a(h)), torch.relu(self.branch_b(h))], dim=1)
        h = torch.relu(self.mix(torch.relu(self.bn(h))))
        return self.fc(h.mean((2, 3)))


class GroupedConvNet(nn.Module):
    """ResNeXt-style grouped (non-depthwise) 3x3 conv between 1x1 convs."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 24, 1)
        self.fc = nn.Linear(24, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 8, 8)
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.fc(torch.relu(self.conv3(h)).mean((2, 3)))


class TorchEncoder(nn.Module):
    """nn.TransformerEncoderLayer over projected tokens."""

    def __init__(self, dim: int = 32, heads: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, 12)
        return self.head(self.encoder(self.embed(x)).mean(1))


class BagClassifier(nn.Module):
    """fastText-style: an EmbeddingBag of token ids straight into a Linear."""

    def __init__(self, vocab: int = 40, dim: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.hidden = nn.Linear(dim, 24)
        self.out = nn.Linear(24, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) token ids
        return self.out(torch.relu(self.hidden(self.bag(ids))))


def randomize_norms_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so eval-mode BN matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model


def prenorm_vit() -> nn.Module:
    """timm's current layout (heads merged with reshape(B, N, -1)): the whole residual stream
    (patch embedding, cls token, position embedding, LayerNorms, attention and MLP outputs) is
    prunable."""
    from inventory.toy_models import TinyViT

    return TinyViT(dim=32, heads=4, depth=2)


# name -> (factory, example input factory)
ARCH_MODELS = {
    "prenorm_vit": (prenorm_vit, lambda: torch.randn(2, 3, 8, 8)),
    "width_vit": (WidthViT, lambda: torch.randn(2, 3, 16, 16)),
    "efficientnetish": (EfficientNetish, lambda: torch.randn(2, 3, 16, 16)),
    "tiny_bert": (TinyBert, lambda: torch.randint(0, 50, (2, 12))),
    "cat_branches": (CatBranches, lambda: torch.randn(2, 3, 8, 8)),
    "grouped_conv": (GroupedConvNet, lambda: torch.randn(2, 3, 8, 8)),
    "torch_encoder": (TorchEncoder, lambda: torch.randn(2, 6, 12)),
    "bag_classifier": (BagClassifier, lambda: torch.randint(0, 40, (2, 7))),
}


class TableHead(nn.Module):
    """Not a kernel: its own attribute holds a weight tied to an embedding matrix."""

    def __init__(self, weight: nn.Parameter) -> None:
        super().__init__()
        self.table = weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.table)


class TiedHeadLM(nn.Module):
    """An embedding whose matrix is read again by a non-kernel output head (tied weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.head = TableHead(self.emb.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.emb(ids)))

