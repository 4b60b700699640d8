"""Per-image refinement of the posteriors (encoder only).

The analysis transforms are amortized: one network guesses the posteriors of every image,
and for this model the guess is worst at high rates. Refinement improves the guess for the
one image being coded, on the model's own loss at its rate parameter, in nats:

    L(u) = KL[q || p] + pixels * ln 2 * lambda * 255^2 * MSE(g_s(posterior mean), x).

:func:`refine_level2` moves the mean of q(z2|x) before z2 is coded (prior N(0, 1)); once z2
is coded, the prior p(z1|z2) = N(mu_p, sigma_p^2) is fixed and :func:`refine_level1` moves
the mean of q(z1) against it, in the prior's standardized coordinates u = (mu1 - mu_p) /
sigma_p. Each step is a gradient step preconditioned by the posterior's own variance r^2
(in the same coordinates):

    u <- u - step * r^2 * dL/du.

A Gaussian posterior fitted by the ELBO has precision 1 / r^2 equal to the curvature of L
along each dimension (the prior's 1 plus the likelihood's), so step = 1 would be a diagonal
Newton step. The decoder couples neighbouring latents and a whole step overshoots (measured:
it diverges; so does 0.3 on smooth images after a few steps), so a step that raises the loss
is taken back and the step halved. From 0.5, 5 steps reach about what 50 Adam steps on the
mean and variance reached (docs/experiments/refinement.md). The variances stay as the encoder
made them. The distortion is taken at the posterior mean, without noise, so refinement is
deterministic. The decoder is unchanged: it never sees the posterior.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .fused import folded_synthesis
from .pln import PLN, gaussian_kl_nats, quality_to_lambda

# refinement backpropagates through g_s at full resolution: above this many (padded)
# pixels it is skipped; at the cap a whole compress --refine 5 peaked at 1.61 GB (without
# refinement 0.84 GB)
MAX_PIXELS = 1 << 20
LAST_STEP_RETRIES = 1   # halvings tried when the last step raises the loss


def _descend(model: PLN, u: torch.Tensor, variance: torch.Tensor, steps: int, step: float,
             loss: "Callable[[torch.Tensor], torch.Tensor]", check: bool = True
             ) -> torch.Tensor:
    """``steps`` steps u <- u - step * variance * grad loss(u), with backtracking: a step
    that raises the loss is taken back and ``step`` halved. Returns the best u seen (never
    worse than the start; one more loss evaluation checks the last step, and LAST_STEP_RETRIES
    more try it at half the size each if it raised the loss). Without ``check``, the last
    step is taken unchecked: one pass of g_s less per level, a little worse on average (6
    Kodak images x 4 rates, float32: +0.5% BD-rate, at most 0.034 dB at a rate; the float32
    path's default, where a pass costs 0.24 s). The model's weights are frozen for the
    duration (their requires_grad flags are restored)."""
    best_u = u.detach()
    best_loss, best_grad = math.inf, None
    cur = best_u
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        i, retries = 0, LAST_STEP_RETRIES if steps > 0 else 0
        while True:
            if i >= steps > 0 and not check:
                return cur
            last = i >= steps        # the check of the last step (and its retries): no grad
            with torch.set_grad_enabled(not last):
                v = cur.clone().requires_grad_(not last)
                value = loss(v)
                better = value.item() < best_loss
                if better:
                    best_u, best_loss = cur, value.item()
                    if not last:
                        (best_grad,) = torch.autograd.grad(value, v)
                else:
                    step *= 0.5
            # a last step that raised the loss is tried again at half the size: with one
            # step per level, 18% of Kodak's steps were taken back and wasted
            if last and (better or retries == 0):
                break
            retries -= last
            cur = best_u - step * variance * best_grad
            i += 1
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    return best_u


def _skip(x: torch.Tensor, steps: int) -> bool:
    return steps <= 0 or x.shape[-2] * x.shape[-1] > MAX_PIXELS


def _distortion(model: PLN, quality: torch.Tensor, target: torch.Tensor, dtype: torch.dtype
                ) -> "Callable[[torch.Tensor], torch.Tensor]":
    """The distortion term of L as a function of z1: pixels * ln 2 * lambda * 255^2 *
    MSE(g_s(z1), target), g_s folded for ``quality`` and run in ``dtype`` (model/fused.py)."""
    lam = quality_to_lambda(float(quality.reshape(-1)[0]), model.cfg)
    decode = folded_synthesis(model, quality, dtype)
    h, w = target.shape[-2:]
    weight = h * w * math.log(2) * lam * 255.0 ** 2

    def nats(z1: torch.Tensor) -> torch.Tensor:
        return weight * (decode(z1)[..., :h, :w] - target).square().mean()

    return nats


def refine_level1(model: PLN, x: torch.Tensor, quality: torch.Tensor, *, height: int,
                  width: int, prior: tuple, posterior: tuple, steps: int, step: float,
                  coded: "Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None" = None,
                  dtype: torch.dtype = torch.float32, check: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` preconditioned steps (size ``step``) on the mean of the posterior
    q(z1) = N(mu1, s1^2) against the prior p(z1|z2) = N(mu_p, s_p^2); returns the refined
    (mu1, s1), s1 unchanged.

    x: the padded image (1, 3, H, W) in [0, 1]; only its top-left height x width counts.
    ``coded``: coder-aware, the level-1 coder's mask of the dimensions it will code, from
    the standardized posterior (u, r) (coding/greedy.py ``coded_mask``); the others count as
    the coder treats them, decoded at mu_p and free. ``dtype``: the precision g_s runs in
    (model/fused.py ``encoder_dtype``). ``check``: see :func:`_descend`.
    Returns the inputs unchanged when ``steps`` is 0 or the image is over MAX_PIXELS."""
    (mu_p, s_p), (mu1, s1) = prior, posterior
    if _skip(x, steps):
        return mu1, s1
    distortion = _distortion(model, quality, x[..., :height, :width], dtype)
    r = (s1 / s_p).detach()
    mask = coded

    def loss(u: torch.Tensor) -> torch.Tensor:
        coded = 1.0 if mask is None else mask(u.detach(), r).to(u.dtype)
        # the KL's terms in r are left out: constant while the mask holds
        return 0.5 * (coded * u * u).sum() \
            + distortion(mu_p + s_p * coded * u)

    u = _descend(model, (mu1 - mu_p) / s_p, r * r, steps, step, loss, check)
    return mu_p + s_p * u, s1


def refine_level2(model: PLN, x: torch.Tensor, quality: torch.Tensor, *, height: int,
                  width: int, x_stats: tuple, posterior: tuple, steps: int, step: float,
                  dtype: torch.dtype = torch.float32, check: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` preconditioned steps on the mean of q(z2|x) = N(mu2, s2^2) (prior N(0, 1))
    for the whole loss, KL2 + KL1 + distortion, z2 and z1 at their means and the level-1
    statistics (mu_x, s_x) held, g_s in ``dtype``; returns the refined (mu2, s2), s2
    unchanged. Run before z2 is coded; :func:`refine_level1` then fits level 1 to the coded
    z2."""
    (mu2, s2) = posterior
    if _skip(x, steps):
        return mu2, s2
    distortion = _distortion(model, quality, x[..., :height, :width], dtype)

    def loss(u: torch.Tensor) -> torch.Tensor:
        (mu_p, s_p), (mu1, s1) = model.level1(x_stats, u, quality)
        kl1 = gaussian_kl_nats(mu1, s1, mu_p, s_p).sum()
        return 0.5 * (u * u).sum() + kl1 + distortion(mu1)

    return _descend(model, mu2, (s2 * s2).detach(), steps, step, loss, check), s2
