"""TCS-DL: the paper's decoder (Methods, Figure 1), a CNN for the first frame and two RNNs.

* First frame: a CNN over the coded copies of the normalised measurement
  Y-bar ⊙ C_b (Equation 2).  The paper concatenates all B copies, which ties the
  weights to B; here each copy [Y-bar ⊙ C_b, Y-bar, C_b] goes through one shared
  four-layer CNN and the copies are pooled (mean), so one set of weights serves every
  B.  The first copy's features are kept beside the pool, then a second four-layer
  CNN, a three-layer residual block and a self-attention block give X_1 (12 layers).
* Forward RNN, frames 2..B: each cell sees the previous frame, [Y-bar, R_k, C_k] with
  R_k the residual of Equation 3, and the hidden state, through three small CNNs;
  concatenation, two residual blocks, a new hidden state and an output frame.
* Backward RNN, frames B..1: same structure, own weights, R_k from Equation 4 (all
  forward estimates but frame k), initial hidden state from the forward pass.

Width and depth are configuration; the network is fully convolutional.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ResBlock, SelfAttention, cnn, conv
from .sensing_torch import forward as A
from .sensing_torch import normalised_measurement


class FirstFrame(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.per_copy = cnn(3, width, 4)
        self.body = nn.Sequential(cnn(2 * width, width, 4), ResBlock(width), nn.LeakyReLU(0.1), SelfAttention(width))
        self.head = conv(width, 1)

    def forward(self, ybar: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        n, B, h, w = C.shape
        copies = torch.stack([ybar[:, None].expand(-1, B, -1, -1) * C, ybar[:, None].expand(-1, B, -1, -1), C], dim=2)
        f = self.per_copy(copies.reshape(n * B, 3, h, w)).reshape(n, B, -1, h, w)
        return self.head(self.body(torch.cat([f[:, 0], f.mean(dim=1)], dim=1)))[:, 0]


class Cell(nn.Module):
    """One RNN cell: (previous frame, [Y-bar, residual, mask], hidden) -> (frame, hidden)."""

    def __init__(self, width: int, branch_layers: int = 2):
        super().__init__()
        half = max(width // 2, 4)
        self.prev = cnn(1, half, branch_layers)
        self.meas = cnn(3, half, branch_layers)
        self.hid = cnn(width, width, 1)
        self.fuse = nn.Sequential(conv(2 * half + width, width), nn.LeakyReLU(0.1), ResBlock(width), ResBlock(width))
        self.out = nn.Sequential(conv(width, half), nn.LeakyReLU(0.1), conv(half, 1))

    def forward(self, prev: torch.Tensor, meas: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fuse(torch.cat([self.prev(prev), self.meas(meas), self.hid(h)], dim=1))
        return prev[:, 0] + self.out(h)[:, 0], h


class TCSDL(nn.Module):
    """The TCS-DL decoder; ``forward`` returns the backward pass's frames (n, B, h, w).

    With ``return_all=True`` it returns (backward frames, forward frames) for the loss,
    which the paper puts on both passes.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width
        self.first = FirstFrame(width)
        self.fwd = Cell(width)
        self.bwd = Cell(width)
        # channels-last (NHWC) convolution weights, whose layout the convolutions then use:
        # on one core of an AMD EPYC a 256 x 256 x 10 tile decoded 1.37x faster, the same
        # frames to 1e-6 (session 23)
        self.to(memory_format=torch.channels_last)

    def forward(self, y: torch.Tensor, C: torch.Tensor, return_all: bool = False):
        n, B, h, w = C.shape
        ybar = normalised_measurement(y, C)
        x = self.first(ybar, C)
        hid = y.new_zeros(n, self.width, h, w)
        fwd = [x]
        for k in range(1, B):
            # Equation 3: Y - sum_{t<k} C_t X_t - sum_{t>k} C_t Y-bar
            r = y - (C[:, :k] * torch.stack(fwd, 1)).sum(1) - (C[:, k + 1 :] * ybar[:, None]).sum(1)
            x, hid = self.fwd(x[:, None], torch.stack([ybar, r, C[:, k]], 1), hid)
            fwd.append(x)
        xf = torch.stack(fwd, 1)
        total = A(xf, C)
        bwd: list[torch.Tensor] = [None] * B  # type: ignore[list-item]
        x = xf[:, B - 1]
        for k in range(B - 1, -1, -1):
            # Equation 4: Y - sum_{t != k} C_t X_t^f
            r = y - (total - C[:, k] * xf[:, k])
            x, hid = self.bwd(x[:, None], torch.stack([ybar, r, C[:, k]], 1), hid)
            bwd[k] = x
        xb = torch.stack(bwd, 1)
        return (xb, xf) if return_all else xb
