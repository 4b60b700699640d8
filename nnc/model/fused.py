"""The image-sized transforms g_a and g_s folded for one rate parameter, in a chosen
precision: the encoder's pass over the image and what its refinement (model/refine.py) runs
forward and backward.

At a fixed ``quality`` each RateGain is a per-channel constant, so it folds into the
preceding convolution's weights and bias; what is left is four convolutions and three GDNs.
In bfloat16 on a CPU with native bf16 (AVX512-BF16 or AMX), oneDNN runs them 3-4x faster than
the float32 network (kodim23's size: g_a 0.23 -> 0.07 s; g_s forward 0.24 -> 0.05 s, forward
and backward 0.48 -> 0.15 s). Only the encoder uses them, to compute posteriors and choose
their means; the decoder always runs the network as it is.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..errors import DeviceError
from .layers import GDN
from .pln import PLN


def fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX); elsewhere
    oneDNN emulates them and they are slower than float32."""
    probes = (getattr(torch.cpu, name, None) for name in
              ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    try:
        return any(bool(probe()) for probe in probes if probe is not None)
    except RuntimeError:
        return False


PRECISION_ENV = "NNC_PRECISION"


def auto_precision() -> str:
    """What "auto" means in this process: the environment variable NNC_PRECISION when set
    (float32 forces the float32 path that CPUs without native bfloat16 take, on any machine;
    bfloat16 forces bfloat16; auto or empty: the default), else auto."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in ("auto", "float32", "bfloat16"):
        raise DeviceError(f"{PRECISION_ENV}={value}: use float32, bfloat16 or auto")
    return value


def encoder_dtype(device: str, precision: str = "auto") -> torch.dtype:
    """The floats of an encoder-only pass (settings.py: ``precision`` float32, bfloat16 or
    auto) on ``device``; auto: NNC_PRECISION when set (:func:`auto_precision`), else
    bfloat16 on a CPU that has it natively, float32 elsewhere (GPUs, older CPUs)."""
    if precision == "auto":
        precision = auto_precision()
    if precision == "auto":
        return torch.bfloat16 if device == "cpu" and fast_bf16() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]


def folded(seq, quality: torch.Tensor, dtype: torch.dtype = torch.float32
           ) -> Callable[[torch.Tensor], torch.Tensor]:
    """One of the PLN's transforms made of (transposed) convolutions and GDNs (g_a, g_s),
    its RateGains folded in at ``quality``, run in ``dtype``: a function t -> seq(t, quality)
    (float32 out; within float32 rounding in float32, within bfloat16's in bfloat16),
    differentiable in t."""
    ops: list = []
    gains = iter(seq.gains)
    channels_last = dtype == torch.bfloat16 or quality.device.type == "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.no_grad():
        for layer in seq.layers:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                if (layer.groups != 1 or layer.padding_mode != "zeros"
                        or any(d != 1 for d in layer.dilation)):
                    raise TypeError("folded: only plain zero-padded convolutions fold")
                g = next(gains).gain(quality)[0]          # (cout,)
                shape = (1, -1, 1, 1) if isinstance(layer, nn.ConvTranspose2d) else (-1, 1, 1, 1)
                w = (layer.weight * g.view(shape)).to(dtype).contiguous(memory_format=fmt)
                b = (layer.bias * g).to(dtype)
                if isinstance(layer, nn.ConvTranspose2d):
                    ops.append(partial(F.conv_transpose2d, weight=w, bias=b,
                                       stride=layer.stride, padding=layer.padding,
                                       output_padding=layer.output_padding))
                else:
                    ops.append(partial(F.conv2d, weight=w, bias=b, stride=layer.stride,
                                       padding=layer.padding))
            elif isinstance(layer, GDN):
                beta, gamma = layer.effective()
                c = gamma.shape[0]
                as_conv = (lambda m: m.view(c, c, 1, 1).to(dtype).contiguous(memory_format=fmt))
                if layer.inverse:
                    ops.append(partial(_InverseGDN.apply, gamma=as_conv(gamma),
                                       beta=beta.to(dtype), gamma_t=as_conv(gamma.t())))
                else:
                    ops.append(partial(_gdn, gamma=as_conv(gamma), beta=beta.to(dtype)))
            else:
                raise TypeError(f"folded: unexpected layer {type(layer).__name__}")

    def run(t: torch.Tensor) -> torch.Tensor:
        t = t.to(dtype).contiguous(memory_format=fmt)
        for op in ops:
            t = op(t)
        return t.float()

    return run


def _gdn(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt(F.conv2d(x * x, gamma, beta))


class _InverseGDN(torch.autograd.Function):
    """IGDN, y = x * s with s = sqrt(beta + gamma (x^2)) (a 1x1 convolution), and its
    gradient in x written out (gamma and beta are constants here):

        dx = dy * s + x * gamma^T (dy * x / s),

    five passes over the activations where autograd's chain of mul, sqrt and conv takes
    about eight (the passes, not the convolutions, dominate in bfloat16)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, gamma_t):
        s = torch.sqrt(F.conv2d(x * x, gamma, beta))
        ctx.save_for_backward(x, s)
        ctx.gamma_t = gamma_t
        return x * s

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, s = ctx.saved_tensors
        t = dy * x
        t /= s
        dx = F.conv2d(t, ctx.gamma_t)
        dx *= x
        dx.addcmul_(dy, s)
        return dx, None, None, None


def folded_synthesis(model: PLN, quality: torch.Tensor, dtype: torch.dtype = torch.float32
                     ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function z1 -> x_hat equal to ``model.decode(z1, quality)``, folded (:func:`folded`)."""
    g_s = folded(model.g_s, quality, dtype)
    return lambda z1: g_s(z1) + 0.5


def folded_analysis(model: PLN, quality: torch.Tensor, dtype: torch.dtype = torch.float32
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function x -> g_a(x - 0.5, quality) as ``model.encode`` runs it, folded."""
    g_a = folded(model.g_a, quality, dtype)
    return lambda x: g_a(x - 0.5)
