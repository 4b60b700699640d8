"""The loss: lambda-balanced weights, the learning-rate schedule, the distortion (Gaussian
or Laplace likelihood) and one ELBO pass."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def lambda_weights(lam: "torch.Tensor", cfg, power: float) -> "torch.Tensor":
    """(lambda_ref / lambda)^power, lambda_ref the geometric middle of the config's range."""
    ref = math.sqrt(cfg.lambda_min * cfg.lambda_max)
    return (ref / lam) ** power


def lr_at(frac: float, lr: float) -> float:
    """Constant, then a cosine decay over the last 20% of the run (``frac`` in [0, 1])."""
    if frac < 0.8:
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.8) / 0.2)))


LIKELIHOODS = ("gaussian", "laplace")


def distortion(x_hat: "torch.Tensor", x: "torch.Tensor", lam: "torch.Tensor",
               likelihood: str) -> "torch.Tensor":
    """Per-image distortion term of the loss (see the module docstring)."""
    if likelihood == "gaussian":
        return lam * 255.0 ** 2 * (x_hat - x).pow(2).flatten(1).mean(1)
    if likelihood == "laplace":
        return 2 * 255.0 * lam.sqrt() * (x_hat - x).abs().flatten(1).mean(1)
    raise ValueError(f"unknown likelihood {likelihood!r} (choose from {', '.join(LIKELIHOODS)})")


# --- one process or several (torchrun) ------------------------------------------------


def elbo_pass(model, x, quality, e2, e1):
    """``PLN.forward`` with its two standard-normal draws passed in (``e2`` for z2, ``e1``
    for z1): the processes of a distributed run each draw the whole batch's noise and take
    their own images' share, the numbers one process would use. Returns x_hat and the KLs
    (nats, per image)."""
    return model(x, quality, e2, e1)
