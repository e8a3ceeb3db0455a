"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)


def cnn(cin: int, width: int, layers: int) -> nn.Sequential:
    """``layers`` 3x3 convolutions with LeakyReLU, cin -> width."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [conv(cin if i == 0 else width, width), nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*mods)


class ResBlock(nn.Module):
    """x + conv(act(conv(x))), optionally with a dilation for a wider view."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.c1 = conv(width, width, dilation=dilation)
        self.c2 = conv(width, width, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.leaky_relu(self.c1(x), 0.1))


class SelfAttention(nn.Module):
    """Spatial self-attention on a 4x average-pooled feature map, added back upsampled.

    Pooling keeps the token count at (h/4)(w/4): 4,096 tokens for a 256 x 256 tile.
    """

    def __init__(self, width: int, pool: int = 4):
        super().__init__()
        self.pool = pool
        self.qkv = nn.Conv2d(width, 3 * width, 1)
        self.out = nn.Conv2d(width, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = F.avg_pool2d(x, self.pool, ceil_mode=True) if min(h, w) >= self.pool else x
        q, k, v = self.qkv(p).flatten(2).transpose(1, 2).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(q, k, v)
        a = a.transpose(1, 2).reshape(n, c, *p.shape[-2:])
        return x + F.interpolate(self.out(a), size=(h, w), mode="bilinear", align_corners=False)
