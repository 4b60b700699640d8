"""Per-image refinement of the posteriors (nnc/model/refine.py): encoder only."""
import math

import numpy as np
import pytest
import torch

from nnc import codec
from nnc.image_io import RasterImage
from nnc.metrics import psnr
from nnc.model import refine
from nnc.model import tiling
from nnc.model.pln import quality_to_lambda
from nnc.model.weights import load_model

from conftest import smooth_image



def _posterior(img: np.ndarray, quality: float):
    model = load_model(None, "cpu").net
    x = tiling.to_tensor(RasterImage(img, False, None), model.stride, "cpu")
    q = torch.tensor([quality])
    with torch.no_grad():
        post = model.posteriors(x, q)
    (mu_p, s_p), (mu1, s1) = post.prior1, post.z1
    return model, x, q, mu_p, s_p, mu1, s1


def _expected_loss(model, x, q, h, w, mu_p, s_p, mu1, s1, samples=8):
    """The refinement's objective, averaged over fixed noise (bits per pixel)."""
    lam = quality_to_lambda(float(q[0]), model.cfg)
    u, r = (mu1 - mu_p) / s_p, s1 / s_p
    kl = (0.5 * (r * r + u * u - 1) - r.log()).sum().item() / math.log(2) / (h * w)
    g = torch.Generator().manual_seed(123)
    d = 0.0
    with torch.no_grad():
        for _ in range(samples):
            z1 = mu1 + s1 * torch.randn(mu1.shape, generator=g)
            x_hat = model.decode(z1, q)[..., :h, :w]
            d += lam * 255.0 ** 2 * (x_hat - x[..., :h, :w]).square().mean().item()
    return kl + d / samples


def test_refinement_lowers_the_models_loss(kodim23_crop):
    img = kodim23_crop
    h, w, _ = img.shape
    model, x, q, mu_p, s_p, mu1, s1 = _posterior(img, 0.8)
    before = _expected_loss(model, x, q, h, w, mu_p, s_p, mu1, s1)
    m2, s2 = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p), posterior=(mu1, s1), steps=5, step=0.2)
    after = _expected_loss(model, x, q, h, w, mu_p, s_p, m2, s2)
    # measured: 2.5% lower on the kodim23 crop
    assert after < 0.99 * before


def _mean_loss(model, x, q, h, w, mu_p, s_p, mu1):
    """The level-1 refinement's loss without the coder's mask, in nats."""
    lam = quality_to_lambda(float(q[0]), model.cfg)
    with torch.no_grad():
        x_hat = model.decode(mu1, q)[..., :h, :w]
        d = (x_hat - x[..., :h, :w]).square().mean().item()
    return 0.5 * ((mu1 - mu_p) / s_p).square().sum().item() + h * w * math.log(2) * lam * 255.0 ** 2 * d


def test_an_overlong_step_is_taken_back(kodim23_crop):
    """A step far too long (a diagonal Newton step is 1) raises the loss; backtracking halves
    it until one helps (64 -> 0.5 in 8 tries), and the result is never worse than the start."""
    img = kodim23_crop
    h, w, _ = img.shape
    model, x, q, mu_p, s_p, mu1, s1 = _posterior(img, 0.8)
    before = _mean_loss(model, x, q, h, w, mu_p, s_p, mu1)
    for step in (0.5, 64.0):
        m2, s2 = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p), posterior=(mu1, s1), steps=8, step=step)
        assert s2 is s1
        assert _mean_loss(model, x, q, h, w, mu_p, s_p, m2) < before
    # with no steps that help, the start comes back unchanged
    m2, _ = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p), posterior=(mu1, s1), steps=1, step=1e6)
    assert torch.allclose(m2, mu1, atol=1e-5)


def test_a_last_step_that_overshoots_is_retried_at_half_size(monkeypatch):
    """With one step, an overlong step would waste the whole refinement: it is tried again
    at half the size (loss 3 (u - 1)^2 from u = 0, step 0.5: u = 3 raises the loss, u = 1.5
    lowers it)."""
    def loss(u):
        return 3.0 * (u - 1.0).square().sum()
    u0, var = torch.zeros(4), torch.ones(4)
    out = refine._descend(torch.nn.Identity(), u0, var, 1, 0.5, loss)
    assert torch.allclose(out, torch.full((4,), 1.5))
    monkeypatch.setattr(refine, "LAST_STEP_RETRIES", 0)
    assert torch.equal(refine._descend(torch.nn.Identity(), u0, var, 1, 0.5, loss), u0)


def test_zero_steps_and_large_images_are_left_alone(kodim23_crop, monkeypatch):
    img = kodim23_crop
    h, w, _ = img.shape
    model, x, q, mu_p, s_p, mu1, s1 = _posterior(img, 0.5)
    m2, s2 = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p), posterior=(mu1, s1), steps=0, step=0.2)
    assert m2 is mu1 and s2 is s1
    monkeypatch.setattr(refine, "MAX_PIXELS", x.shape[-1] * x.shape[-2] - 1)
    m2, s2 = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p), posterior=(mu1, s1), steps=5, step=0.2)
    assert m2 is mu1 and s2 is s1


def test_refined_files_decode_better_and_repeat(kodim23_crop):
    img = RasterImage(kodim23_crop, False, None)
    plain = codec.compress(img, 0.9)
    p = codec.refined(5)
    a = codec.compress(img, 0.9, settings=p)
    assert codec.compress(img, 0.9, settings=p) == a          # deterministic: the same file
    assert a != plain
    ra, rp = codec.decompress(a).rgb, codec.decompress(plain).rgb
    # on a photo it beats the plain curve: fewer bits and a better PSNR than q=1 (measured:
    # 4564 bytes, 36.28 dB; plain 4452 bytes, 35.31 dB; plain q=1 5104, 35.83)
    top = codec.compress(img, 1.0)
    assert len(a) < len(top)
    assert psnr(kodim23_crop, ra) > psnr(kodim23_crop, codec.decompress(top).rgb) + 0.2
    assert psnr(kodim23_crop, ra) > psnr(kodim23_crop, rp) + 0.5


def test_model_parameters_keep_their_grad_flags(kodim23_crop):
    model, x, q, mu_p, s_p, mu1, s1 = _posterior(smooth_image(64, 64), 0.5)
    flags = [p.requires_grad for p in model.parameters()]
    refine.refine_level1(model, x, q, height=64, width=64, prior=(mu_p, s_p), posterior=(mu1, s1), steps=2, step=0.2)
    assert [p.requires_grad for p in model.parameters()] == flags


def test_level2_refinement_lowers_the_models_loss(kodim23_crop):
    img = kodim23_crop
    h, w, _ = img.shape
    model = load_model(None, "cpu").net
    x = tiling.to_tensor(RasterImage(img, False, None), model.stride, "cpu")
    q = torch.tensor([0.8])
    with torch.no_grad():
        (mu_x, s_x), (mu2, s2) = model.encode(x, q)

    def loss(m2, v2):       # the whole loss with z2 at its posterior mean and level 1 exact
        with torch.no_grad():
            (mu_p, s_p), (mu1, s1) = model.level1((mu_x, s_x), m2, q)
            kl2 = (0.5 * (v2 * v2 + m2 * m2 - 1) - v2.log()).sum().item() / math.log(2)
        return _expected_loss(model, x, q, h, w, mu_p, s_p, mu1, s1) + kl2 / (h * w)

    kw = dict(height=h, width=w, x_stats=(mu_x, s_x), posterior=(mu2, s2))
    m2, v2 = refine.refine_level2(model, x, q, steps=5, step=0.2, **kw)
    assert loss(m2, v2) < loss(mu2, s2)
    assert refine.refine_level2(model, x, q, steps=0, step=0.2, **kw) == (mu2, s2)


def test_cli_default_refinement_follows_the_device():
    cpu, gpu = codec.default_settings("cpu").refine, codec.default_settings("cuda").refine
    assert (cpu.steps, cpu.l2_steps, cpu.step) == (1, 2, 0.35) and cpu == codec.CPU_REFINEMENT
    assert gpu.steps == gpu.l2_steps == codec.REFINE_STEPS_GPU > 1
    from click.testing import CliRunner
    from nnc.cli import main
    text = " ".join(CliRunner().invoke(main, ["compress", "--help"]).output.split())
    assert (f"[default: {codec.REFINE_STEPS_GPU} on a GPU; on the CPU 2 on the small level, "
            "1 on the large one]") in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_refined_on_cuda_decodes_on_cpu(kodim23_crop):
    img = RasterImage(kodim23_crop, False, None)
    data = codec.compress(img, 0.8, device="cuda", settings=codec.refined(codec.REFINE_STEPS_GPU))
    plain = codec.compress(img, 0.8, device="cuda")
    rec = codec.decompress(data, device="cpu").rgb
    assert psnr(kodim23_crop, rec) > psnr(kodim23_crop, codec.decompress(plain, device="cpu").rgb) - 0.1


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 0.05)])
def test_the_folded_synthesis_is_the_networks(dtype, tol):
    """model/fused.py: g_s with its gains folded in decodes as the network does (float32 to
    rounding; bfloat16 within its precision), and its gradient points the same way."""
    from nnc.model.fused import folded_synthesis
    model = load_model(None, "cpu").net
    q = torch.tensor([0.6])
    z1 = torch.randn(1, model.cfg.m, 4, 6, generator=torch.Generator().manual_seed(5))
    target = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(6))

    def run(decode):
        u = z1.clone().requires_grad_(True)
        x_hat = decode(u)
        (grad,) = torch.autograd.grad((x_hat - target).square().mean(), u)
        return grad, x_hat.detach()

    g_ref, x_ref = run(lambda z: model.decode(z, q))
    g, x = run(folded_synthesis(model, q, dtype))
    assert x.dtype == torch.float32 and x.shape == x_ref.shape
    assert (x - x_ref).abs().max() < tol
    assert torch.nn.functional.cosine_similarity(g.flatten(), g_ref.flatten(), 0) > 0.99


def test_refinement_in_bfloat16_lowers_the_loss(kodim23_crop):
    """The CPU default refines with g_s in bfloat16 (model/fused.py): the refined posterior
    is better on the float32 network's own loss."""
    img = kodim23_crop
    h, w, _ = img.shape
    model, x, q, mu_p, s_p, mu1, s1 = _posterior(img, 0.8)
    before = _expected_loss(model, x, q, h, w, mu_p, s_p, mu1, s1)
    m2, s2 = refine.refine_level1(model, x, q, height=h, width=w, prior=(mu_p, s_p),
                                  posterior=(mu1, s1), steps=5, step=0.2, dtype=torch.bfloat16)
    after = _expected_loss(model, x, q, h, w, mu_p, s_p, m2, s2)
    assert after < 0.99 * before


def test_refine_precision_is_checked():
    from nnc.settings import Refinement
    with pytest.raises(ValueError, match="precision"):
        Refinement(precision="float16")


def test_inverse_gdn_gradient_is_exact():
    """model/fused.py's hand-written IGDN gradient, against autograd's numerical check, with a
    non-symmetric gamma (the shipped model's are diagonal, which hides a transposed one)."""
    from nnc.model.fused import _InverseGDN
    g = torch.Generator().manual_seed(7)
    gamma = torch.rand(5, 5, generator=g, dtype=torch.float64) * 0.3
    beta = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    x = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: _InverseGDN.apply(t, gamma.view(5, 5, 1, 1), beta,
                                    gamma.t().contiguous().view(5, 5, 1, 1)), (x,))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 0.05)])
def test_the_folded_analysis_is_the_networks(dtype, tol):
    """folded_analysis equals g_a, alone and as tiling.encode's analysis over several tiles."""
    from nnc.model.fused import folded_analysis
    model = load_model(None, "cpu").net
    q = torch.tensor([0.3])
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(8))
    ga = folded_analysis(model, q, dtype)
    with torch.no_grad():
        assert (ga(x) - model.g_a(x - 0.5, q)).abs().max() < tol
        (mu_ref, _), (m2_ref, _) = tiling.encode(model, x, q, tile=64, halo=32)
        (mu, _), (m2, _) = tiling.encode(model, x, q, tile=64, halo=32, analysis=ga)
    assert (mu - mu_ref).abs().max() < tol and (m2 - m2_ref).abs().max() < 4 * tol
