"""The training recipe: pln-gpu-1's, the defaults of `nnc train`, train() and
training/device_train.py (torch-free: the command line reads it at start)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """How the shipped model ``pln-gpu-1`` was trained (weights/manifest.json): the defaults
    of ``nnc train``, of :func:`train` and of ``training/device_train.py``, set here only.
    pln-gpu-1 ran 120,136 steps of this recipe in a 1,478 s budget on one H100."""
    arch: str = "128,192,128,64"     # N,M,F,G: main transforms, level-1 latents, level 2
    lambda_min: float = 0.001        # rate-distortion weight at quality 0
    lambda_max: float = 0.15         # ... at quality 1
    lambda_power: float = 0.5        # the lambda-balanced loss (module docstring)
    top_share: float = 0.0           # of each batch, the images whose quality is drawn from
                                     # U[0.5, 1] instead of U[0, 1] (the top weighted up)
    batch: int = 32                  # images per optimizer step (over all processes)
    crop: int = 192
    lr: float = 2e-4
    warmup: int = 2000               # KL warm-up steps
    likelihood: str = "gaussian"
    steps: int = 120_000

    def config(self):
        """The PLNConfig of a new model."""
        from ..model.pln import PLNConfig
        return PLNConfig(lambda_min=self.lambda_min,
                         lambda_max=self.lambda_max).with_arch(self.arch)


RECIPE = Recipe()
