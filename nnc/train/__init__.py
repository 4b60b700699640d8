"""Training the PLN: the beta-weighted ELBO of thesis §3.3 with KL warm-up and rate conditioning.

loss = KL(q||p) / (ln 2 * pixels) * w(t)  +  D(x, x_hat; lambda(quality))

with quality ~ U[0, 1] drawn per image, lambda(quality) log-spaced between the config's
lambda_min and lambda_max, and w(t) = min(1, t / warmup) the warm-up of Sønderby et al.

``top_share`` of each batch draws its quality from U[0.5, 1] rather than U[0, 1]: the upper
half of the range then gets (1 + top_share) / 2 of the images instead of half.

Each image's loss is scaled by (lambda_ref / lambda)^p (``lambda_power``; lambda_ref the
geometric middle of the range). Scaling one image's loss leaves its own optimum where it was,
but without it the high-lambda images, whose loss is ~100x larger, set the shared weights
alone (measured: a long CPU run gave up the low rates for the top one).

The distortion is a negative log-likelihood with a fixed scale set by lambda:

- ``gaussian``: D = lambda * 255^2 * MSE  (a Gaussian of variance 1 / (2 lambda 255^2));
- ``laplace``:  D = 2 * 255 * sqrt(lambda) * mean|x - x_hat|, the Laplace of the *same
  variance* (b = sigma / sqrt 2), so that a lambda means about the same trade-off for both
  and a checkpoint can switch between them (the gradients match at ~30 dB, lambda = 0.01).

The defaults are ``RECIPE``, pln-gpu-1's. Under torchrun the same loop runs on several
processes (DistributedDataParallel) and takes the steps one process would (``train``).

One job per module: ``recipe`` (RECIPE), ``data`` (images and crops), ``objective`` (the
loss and the schedule), ``distributed`` (torchrun), ``loop`` (``train``), ``export``
(installing the model). Every name is importable from ``nnc.train``.
"""
from __future__ import annotations

from .data import IMAGE_SUFFIXES, TensorCrops, batch_sampler, load_folder, random_batch
from .distributed import _Group, dist_env
from .export import (EXPORT_SHARE, TABLE_CROP, TABLE_IMAGES, TABLE_RATES, _spread, export_run,
                     plan_export, table_images)
from .loop import _Progress, _clock, _train, run_config, train
from .objective import LIKELIHOODS, distortion, elbo_pass, lambda_weights, lr_at
from .recipe import RECIPE, Recipe

__all__ = ["EXPORT_SHARE", "IMAGE_SUFFIXES", "LIKELIHOODS", "RECIPE", "Recipe", "TABLE_CROP",
           "TABLE_IMAGES", "TABLE_RATES", "TensorCrops", "batch_sampler", "dist_env",
           "distortion", "elbo_pass", "export_run", "lambda_weights", "load_folder", "lr_at",
           "plan_export", "random_batch", "run_config", "table_images", "train"]
