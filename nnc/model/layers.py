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


def _deconv_parts(layer: nn.ConvTranspose2d, who: str):
    """The weight (cin, cout, 5, 5) and bias (cout) of one of deconv()'s layers (k=5,
    stride 2, padding 2, output padding 1), detached; TypeError for any other layer."""
    if (layer.kernel_size, layer.stride, layer.padding, layer.output_padding,
            layer.groups, layer.dilation) != ((5, 5), (2, 2), (2, 2), (1, 1), 1, (1, 1)):
        raise TypeError(f"{who}: only deconv()'s k=5, stride 2 layers")
    w = layer.weight.detach()
    return w, (layer.bias.detach() if layer.bias is not None else w.new_zeros(w.shape[1]))


class SubpixelDeconv(nn.Module):
    """A ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1) as a 3x3 convolution
    with four outputs per channel (one per output phase) followed by depth-to-space, the
    "sub-pixel" form (Shi et al. 2016): the same sums in another order, so equal up to
    float rounding. ONNX Runtime's CPU ConvTranspose is about 5x slower than its Conv on
    the synthesis (benchmarks/cpu_paths.py), so the exported graphs use this form.

    Output pixel 2a + r along an axis takes input a + j with the kernel tap 2 - 2j + r
    (j in -1..1; r = 1, j = -1 would be tap 5, outside the kernel: a zero weight)."""

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        w, bias = _deconv_parts(layer, "SubpixelDeconv")     # (cin, cout, 5, 5), (cout,)
        cin, cout = w.shape[:2]
        sub = w.new_zeros(cout, 2, 2, cin, 3, 3)        # (cout, ry, rx, cin, 3, 3)
        for ry in range(2):
            for jy in range(-1, 2):
                ky = 2 - 2 * jy + ry
                if not 0 <= ky < 5:
                    continue
                for rx in range(2):
                    for jx in range(-1, 2):
                        kx = 2 - 2 * jx + rx
                        if 0 <= kx < 5:
                            sub[:, ry, rx, :, jy + 1, jx + 1] = w[:, :, ky, kx].t()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        self.conv.weight.data = sub.reshape(4 * cout, cin, 3, 3)
        self.conv.bias.data = bias.repeat_interleave(4)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class _DepthToSpaceDCR(torch.autograd.Function):
    """depth-to-space of (N, 4C, H, W) whose channels run phase-major, index (2 ry + rx) C + c
    (ONNX's DepthToSpace, mode DCR; torch's pixel_shuffle is the CRD order): (N, C, 2H, 2W)."""

    @staticmethod
    def forward(ctx, x):
        n, c4, h, w = x.shape
        c = c4 // 4
        return x.view(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, 2 * h, 2 * w)

    @staticmethod
    def symbolic(g, x):
        return g.op("DepthToSpace", x, blocksize_i=2, mode_s="DCR")


class _PaddedConv(torch.autograd.Function):
    """conv2d of x zero-padded by ``pads`` (top, left, bottom, right), exported as one ONNX
    Conv with those pads (a Pad node would be a pass of its own: ONNX Runtime leaves it)."""

    @staticmethod
    def forward(ctx, x, weight, bias, pads):
        top, left, bottom, right = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias)

    @staticmethod
    def symbolic(g, x, weight, bias, pads):
        return g.op("Conv", x, weight, bias, pads_i=list(pads), strides_i=[1, 1])


class PhaseDeconv(nn.Module):
    """A ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1) as four convolutions,
    one per output phase, whose outputs depth-to-space interleaves: output pixel 2a + r
    along an axis takes input a + j with the kernel tap 2 - 2j + r, which is three taps for
    r = 0 (j = -1, 0, 1) and two for r = 1 (j = 0, 1). So the phases are 3x3, 3x2, 2x3 and
    2x2 convolutions, the kernel's 25 taps, where SubpixelDeconv's 3x3 form computes 36 (the
    other 11 zero): 30% fewer multiply-adds, the same sums up to float rounding. Each
    phase's zero padding is asymmetric (one before for three taps, none for two; one after),
    which an ONNX Conv holds."""

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        w, bias = _deconv_parts(layer, "PhaseDeconv")        # (cin, cout, 5, 5), (cout,)
        cin, cout = w.shape[:2]
        taps = {0: [4, 2, 0], 1: [3, 1]}                # kernel taps of j = -1.. (r = 0), 0.. (1)
        self.phases = nn.ModuleList()
        self.pads = []
        for ry in range(2):
            for rx in range(2):
                k = w[:, :, taps[ry]][:, :, :, taps[rx]]            # (cin, cout, ky, kx)
                conv = nn.Conv2d(cin, cout, tuple(k.shape[2:]))
                conv.weight.data = k.permute(1, 0, 2, 3).contiguous()
                conv.bias.data = bias.clone()
                self.phases.append(conv)
                self.pads.append((1 - ry, 1 - rx, 1, 1))            # top, left, bottom, right
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([_PaddedConv.apply(x, conv.weight, conv.bias, pad)
                       for conv, pad in zip(self.phases, self.pads)], 1)
        return _DepthToSpaceDCR.apply(y)
