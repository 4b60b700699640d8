"""The two-level probabilistic ladder network (thesis §3.2.2, Fig. 3.2).

::

    x ──g_a──▶ (mu_x, sigma_x)            level-1 "likelihood" statistics, stride 16
    mu_x ──h_a──▶ q(z2|x) = N(mu2, sigma2)  level-2 posterior, stride 64; p(z2) = N(0, I)
    z2 ──h_s──▶ p(z1|z2) = N(mu_p, sigma_p)
    combine(mu_x, sigma_x, mu_p, sigma_p) ──▶ q(z1|z2,x)   precision-weighted (§3.2.2)
    z1 ──g_s──▶ x_hat

Every transform takes the rate parameter ``quality`` in [0, 1] through :class:`RateGain`.
Images are in [0, 1]; height and width must be multiples of :attr:`PLN.stride`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from .layers import GDN, PhaseDeconv, RateGain, SubpixelDeconv, conv, deconv

# the layers a RateGain follows
GAINED = (nn.Conv2d, nn.ConvTranspose2d, SubpixelDeconv, PhaseDeconv)

SIGMA_MIN = 1e-3
LN2 = math.log(2.0)


@dataclass(frozen=True)
class PLNConfig:
    n: int = 64          # channels of the main transforms
    m: int = 96          # level-1 latent channels
    f: int = 64          # channels of the level-2 transforms
    g: int = 32          # level-2 latent channels
    anchors: int = 8     # rate-gain anchors
    lambda_min: float = 0.0015   # rate-distortion weight at quality 0 (low rate)
    lambda_max: float = 0.08     # ... at quality 1 (high rate)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_arch(self, arch: str) -> "PLNConfig":
        """This config with the channels from ``"N,M,F,G"``; ValueError unless four positive
        integers."""
        n, m, f, g = (int(v) for v in arch.split(","))
        if min(n, m, f, g) < 1:
            raise ValueError(f"channels must be positive: {arch!r}")
        return PLNConfig(**{**self.to_dict(), "n": n, "m": m, "f": f, "g": g})


def quality_to_lambda(quality: torch.Tensor | float, cfg: PLNConfig):
    lo, hi = math.log(cfg.lambda_min), math.log(cfg.lambda_max)
    if isinstance(quality, torch.Tensor):
        return torch.exp(lo + quality * (hi - lo))
    return math.exp(lo + quality * (hi - lo))


def _scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + SIGMA_MIN


def gaussian_kl_nats(mu_q, sigma_q, mu_p, sigma_p) -> torch.Tensor:
    """Elementwise KL[N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)] in nats."""
    r = sigma_q / sigma_p
    return torch.log(1 / r) + 0.5 * (r * r + ((mu_q - mu_p) / sigma_p) ** 2 - 1)


def combine_posterior(mu_x, sigma_x, mu_p, sigma_p):
    """q(z1|z2,x): the product of N(mu_x, sigma_x^2) and N(mu_p, sigma_p^2), renormalized."""
    prec_x, prec_p = sigma_x.pow(-2), sigma_p.pow(-2)
    var = 1.0 / (prec_x + prec_p)
    mu = var * (mu_x * prec_x + mu_p * prec_p)
    return mu, var.sqrt()


class Posteriors(NamedTuple):
    """What the encoder knows about an image, each as (mean, standard deviation)."""
    x: tuple          # (mu_x, sigma_x): level-1 statistics from the image alone
    z2: tuple         # q(z2|x) = (mu2, sigma2); p(z2) = N(0, I)
    prior1: tuple     # p(z1|z2) = (mu_p, sigma_p), at the z2 it was given
    z1: tuple         # q(z1|z2,x) = (mu1, sigma1)


class _Seq(nn.Module):
    """conv/act layers interleaved with RateGain (each gain follows a conv)."""

    def __init__(self, layers: list[nn.Module], anchors: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.gains = nn.ModuleList(
            RateGain(l.out_channels, anchors) for l in layers
            if isinstance(l, GAINED))

    def forward(self, x, quality):
        gi = 0
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, GAINED):
                x = self.gains[gi](x, quality)
                gi += 1
        return x


class PLN(nn.Module):
    stride = 64   # total downsampling of z2; inputs are padded to a multiple of this

    def __init__(self, cfg: PLNConfig = PLNConfig()):
        super().__init__()
        self.cfg = cfg
        n, m, f, g, a = cfg.n, cfg.m, cfg.f, cfg.g, cfg.anchors
        self.g_a = _Seq([conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n),
                         conv(n, 2 * m)], a)
        self.h_a = _Seq([conv(m, f, 3, 1), nn.LeakyReLU(0.2), conv(f, f), nn.LeakyReLU(0.2),
                         conv(f, 2 * g)], a)
        self.h_s = _Seq([deconv(g, f), nn.LeakyReLU(0.2), deconv(f, f), nn.LeakyReLU(0.2),
                         conv(f, 2 * m, 3, 1)], a)
        self.g_s = _Seq([deconv(m, n), GDN(n, inverse=True), deconv(n, n),
                         GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                         deconv(n, 3)], a)

    # --- the steps of the data flow (DESIGN.md); each returns plain tensors ---
    def encode(self, x: torch.Tensor, quality: torch.Tensor):
        """x in [0,1] -> level-1 statistics (mu_x, sigma_x) and q(z2|x) = (mu2, sigma2)."""
        return self.encode_from(self.g_a(x - 0.5, quality), quality)

    def encode_from(self, y: torch.Tensor, quality: torch.Tensor):
        """:meth:`encode` from g_a's output ``y`` (computed elsewhere: over tiles, folded)."""
        mu_x, s_x = y.chunk(2, dim=1)
        mu2, s2 = self.h_a(mu_x, quality).chunk(2, dim=1)
        return (mu_x, _scale(s_x)), (mu2, _scale(s2))

    def prior1(self, z2: torch.Tensor, quality: torch.Tensor):
        """p(z1|z2) = (mu_p, sigma_p)."""
        h = self.h_s(z2, quality)
        mu_p, s_p = h.chunk(2, dim=1)
        return mu_p, _scale(s_p)

    def level1(self, x_stats, z2: torch.Tensor, quality: torch.Tensor):
        """p(z1|z2) and q(z1|z2,x) from the level-1 statistics (mu_x, sigma_x) and a z2:
        ((mu_p, sigma_p), (mu1, sigma1))."""
        prior = self.prior1(z2, quality)
        return prior, combine_posterior(*x_stats, *prior)

    def posteriors(self, x: torch.Tensor, quality: torch.Tensor,
                   z2: torch.Tensor | None = None, encode=None) -> Posteriors:
        """Every distribution of the encoder's data flow, with level 1 conditioned on ``z2``
        (default: the posterior mean of z2). ``encode``: a replacement for
        :meth:`encode` with its signature (model/tiling.py's tiled one)."""
        x_stats, post2 = (encode or PLN.encode)(self, x, quality)
        prior, post1 = self.level1(x_stats, post2[0] if z2 is None else z2, quality)
        return Posteriors(x_stats, post2, prior, post1)

    def decode(self, z1: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        return self.g_s(z1, quality) + 0.5

    def forward(self, x: torch.Tensor, quality: torch.Tensor,
                e2: torch.Tensor | None = None, e1: torch.Tensor | None = None):
        """Training pass: reparametrized samples, returns x_hat and KLs (nats, per image).
        ``e2``, ``e1``: the standard-normal draws for z2 and z1 (default: drawn here; the
        processes of a distributed run pass their share of the whole batch's, nnc/train.py)."""
        x_stats, (mu2, s2) = self.encode(x, quality)
        z2 = mu2 + s2 * (torch.randn_like(mu2) if e2 is None else e2)
        (mu_p, s_p), (mu1, s1) = self.level1(x_stats, z2, quality)
        z1 = mu1 + s1 * (torch.randn_like(mu1) if e1 is None else e1)
        x_hat = self.decode(z1, quality)
        kl2 = gaussian_kl_nats(mu2, s2, torch.zeros_like(mu2), torch.ones_like(s2))
        kl1 = gaussian_kl_nats(mu1, s1, mu_p, s_p)
        return x_hat, kl1.flatten(1).sum(1), kl2.flatten(1).sum(1)


# Architectures by the name a manifest entry gives in its ``arch`` field (entries without
# one are "pln-2level", the only architecture so far).
ARCHITECTURES = {"pln-2level": (PLN, PLNConfig)}
DEFAULT_ARCH = "pln-2level"


def build(arch: str, config: dict) -> PLN:
    """An untrained network of a registered architecture, from a manifest's or a
    checkpoint's config."""
    try:
        cls, cfg_cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r} (this nnc knows "
                         f"{', '.join(ARCHITECTURES)}); a newer nnc may know it") from None
    return cls(cfg_cls(**config))
