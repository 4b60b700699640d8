"""Building blocks of the PLN: GDN/IGDN (Ballé et al. 2016) and rate-conditioned gains."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class GDN(nn.Module):
    """Generalized divisive normalization, y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).

    With ``inverse=True`` it is IGDN (multiply instead of divide). Parameters are stored
    reparametrized (square roots, clamped) so they stay positive during training.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.pedestal = 2.0 ** -18
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self.pedestal))

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(beta, gamma) as the formula uses them, from their stored square roots."""
        bound = (self.beta_min + self.pedestal) ** 0.5
        beta = torch.clamp(self.beta, min=bound) ** 2 - self.pedestal
        gamma = torch.clamp(self.gamma, min=self.pedestal ** 0.5) ** 2 - self.pedestal
        return beta, gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.effective()
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


class RateGain(nn.Module):
    """Per-channel gain as a function of the rate parameter ``quality`` in [0, 1].

    A table of log-gains at ``anchors`` evenly spaced quality values is linearly
    interpolated (DESIGN.md, "Rate control"): one weights file serves a range of rates.
    """

    def __init__(self, channels: int, anchors: int = 8):
        super().__init__()
        self.log_gain = nn.Parameter(torch.zeros(anchors, channels))

    def gain(self, quality: torch.Tensor) -> torch.Tensor:
        """The gains (B, channels) at ``quality`` (B,), values in [0, 1]."""
        anchors = self.log_gain.shape[0]
        pos = quality.clamp(0, 1) * (anchors - 1)
        lo = pos.floor().long().clamp(max=anchors - 2)
        frac = (pos - lo.to(pos.dtype)).unsqueeze(1)
        lg = self.log_gain[lo] * (1 - frac) + self.log_gain[lo + 1] * frac
        return torch.exp(lg)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        return x * self.gain(quality)[:, :, None, None]


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)
