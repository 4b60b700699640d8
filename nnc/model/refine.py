"""Per-image refinement of the posteriors (encoder only).

The analysis transforms are amortized: one network guesses the posteriors of every image,
and for this model the guess is worst at high rates. :func:`refine_level2` fits q(z2|x) to
the whole loss before z2 is coded; once z2 is coded, the prior p(z1|z2) = N(mu_p, sigma_p^2)
is fixed, and :func:`refine_level1` improves N(mu1, sigma1^2) for this one image by gradient
descent on the model's own training loss at its rate parameter:

    KL[q(z1) || p(z1|z2)] / pixels / ln 2  +  lambda * 255^2 * MSE(g_s(z1), x),

z1 a reparametrized sample of q. The variables are standardized by the prior,
u = (mu1 - mu_p) / sigma_p and log(sigma1 / sigma_p), so that one Adam step moves every
dimension by about the same fraction of its prior's width (dimensions whose prior is
nearly a point would otherwise jump to huge KLs). The decoder is unchanged: it never sees
the posterior. The noise comes from a generator seeded with the file's seed, so a given
machine makes the same file twice.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .pln import PLN, combine_posterior, quality_to_lambda

# refinement backpropagates through g_s at full resolution: above this many (padded)
# pixels it is skipped; at the cap a whole compress peaked at 1.69 GB (0.84 GB without)
MAX_PIXELS = 1 << 20


def _block_sum(t: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """(1, M, H, W) -> (1, M, H, W): each value replaced by the sum over its level-1 block."""
    _, m, h, w = t.shape
    s = t.reshape(m, h // bh, bh, w // bw, bw).sum((2, 4), keepdim=True)
    return s.expand(m, h // bh, bh, w // bw, bw).reshape(1, m, h, w)


def _kl_nats(u: torch.Tensor, r: torch.Tensor, log_r: torch.Tensor) -> torch.Tensor:
    """Elementwise KL[N(u, r^2) || N(0, 1)] in nats, given r and its log."""
    return 0.5 * (r * r + u * u - 1) - log_r


def _adam(model: PLN, variables: list[torch.Tensor], steps: int, lr: float,
          loss: "Callable[[], torch.Tensor]") -> None:
    """``steps`` Adam steps on ``variables`` for ``loss()``, the model's weights frozen for
    the duration (their requires_grad flags are restored afterwards)."""
    opt = torch.optim.Adam(variables, lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                value = loss()
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def _skip(x: torch.Tensor, steps: int) -> bool:
    return steps <= 0 or x.shape[-2] * x.shape[-1] > MAX_PIXELS


def _distortion(model: PLN, z1: torch.Tensor, quality: torch.Tensor, target: torch.Tensor,
                lam: float) -> torch.Tensor:
    x_hat = model.decode(z1, quality)[..., :target.shape[-2], :target.shape[-1]]
    return lam * 255.0 ** 2 * (x_hat - target).square().mean()


def refine_level1(model: PLN, x: torch.Tensor, quality: torch.Tensor, height: int, width: int,
                  mu_p: torch.Tensor, s_p: torch.Tensor, mu1: torch.Tensor, s1: torch.Tensor,
                  steps: int, lr: float, seed: int = 0, block: tuple[int, int] | None = None,
                  coded_kl_bits: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Adam steps (rate ``lr``) on the loss above; returns the refined (mu1, s1).

    x: the padded image (1, 3, H, W) in [0, 1]; only its top-left height x width counts.
    ``block`` (rows, columns): coder-aware, blocks whose KL is under ``coded_kl_bits`` count
    as the coder treats them, decoded at mu_p and free.
    Returns the inputs unchanged when ``steps`` is 0 or the image is over MAX_PIXELS."""
    if _skip(x, steps):
        return mu1, s1
    lam = quality_to_lambda(float(quality.reshape(-1)[0]), model.cfg)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    target = x[..., :height, :width]
    u = ((mu1 - mu_p) / s_p).detach().clone().requires_grad_(True)
    log_r = (s1 / s_p).log().detach().clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        r = log_r.exp()
        eps = torch.randn(u.shape, generator=gen, device=u.device, dtype=u.dtype)
        kl = _kl_nats(u, r, log_r) / math.log(2)
        if block is None:
            z1 = mu_p + s_p * (u + r * eps)
            kl_bits = kl.sum()
        else:     # as the coder will: blocks under coded_kl_bits decode to mu_p
            coded = (_block_sum(kl.detach(), *block) >= coded_kl_bits).to(u.dtype)
            z1 = mu_p + s_p * coded * (u + r * eps)
            kl_bits = (kl * coded).sum()
        return kl_bits / (height * width) + _distortion(model, z1, quality, target, lam)

    _adam(model, [u, log_r], steps, lr, loss)
    with torch.no_grad():
        return mu_p + s_p * u.detach(), s_p * log_r.detach().exp()


def refine_level2(model: PLN, x: torch.Tensor, quality: torch.Tensor, height: int, width: int,
                  mu_x: torch.Tensor, s_x: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor,
                  steps: int, lr: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Adam steps on q(z2|x) = N(mu2, s2^2) (prior N(0, 1)) for the whole loss,
    KL2 + KL1 + distortion, with the level-1 statistics (mu_x, s_x) held; returns the refined
    (mu2, s2). Run before z2 is coded; :func:`refine_level1` then fits level 1 to the coded
    z2."""
    if _skip(x, steps):
        return mu2, s2
    lam = quality_to_lambda(float(quality.reshape(-1)[0]), model.cfg)
    gen = torch.Generator(device=x.device).manual_seed(seed + 1)
    target = x[..., :height, :width]
    u = mu2.detach().clone().requires_grad_(True)
    log_r = s2.log().detach().clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        r = log_r.exp()
        z2 = u + r * torch.randn(u.shape, generator=gen, device=u.device, dtype=u.dtype)
        mu_p, s_p = model.prior1(z2, quality)
        mu1, s1 = combine_posterior(mu_x, s_x, mu_p, s_p)
        e1 = torch.randn(mu1.shape, generator=gen, device=u.device, dtype=u.dtype)
        t = s1 / s_p
        kl1 = _kl_nats((mu1 - mu_p) / s_p, t, t.log()).sum()
        kl2 = _kl_nats(u, r, log_r).sum()
        return (kl1 + kl2) / math.log(2) / (height * width) \
            + _distortion(model, mu1 + s1 * e1, quality, target, lam)

    _adam(model, [u, log_r], steps, lr, loss)
    with torch.no_grad():
        return u.detach(), log_r.detach().exp()
