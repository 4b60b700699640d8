"""nnc: a neural image codec without quantization.

Python API::

    import nnc
    data = nnc.compress("in.png", quality=0.5)     # or a PIL image, a uint8 array, PNG bytes
    image = nnc.decompress(data)                   # a PIL.Image.Image
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

__all__ = ["compress", "decompress", "__version__"]
__version__ = "0.1.0"


def _to_raster(image):
    from PIL import Image
    from .image_io import RasterImage, read_image
    if isinstance(image, (str, Path)):
        return read_image(Path(image).read_bytes())
    if isinstance(image, (bytes, bytearray)):
        return read_image(bytes(image))
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return read_image(buf.getvalue())
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError("arrays must be uint8")
    if arr.ndim == 2:
        return RasterImage(np.repeat(arr[..., None], 3, 2), gray=True, alpha=None)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
        return RasterImage(np.ascontiguousarray(arr[..., :3]), gray=False, alpha=alpha)
    raise TypeError("arrays must be HxW, HxWx3 or HxWx4")


def compress(image, quality: float = 0.5, bpp: float | None = None, seed: int = 0,
             model: str | None = None, device: str | None = None,
             refine: int | None = None) -> bytes:
    """Compress an image (path, PNG bytes, PIL image or uint8 array) to .nnc bytes.
    ``refine``: refinement steps per latent level, as ``nnc compress --refine`` (None: the
    CLI's default on the device, 1 on the CPU and 5 on a GPU)."""
    from . import codec
    img = _to_raster(image)
    params = codec.refined(codec.default_refine_steps(device) if refine is None else refine)
    if bpp is not None:
        return codec.compress_to_bpp(img, bpp, seed=seed, model_name=model, device=device,
                                     params=params)[0]
    return codec.compress(img, quality=quality, seed=seed, model_name=model, device=device,
                          params=params)


def decompress(data: bytes, device: str | None = None):
    """Decompress .nnc bytes to a PIL image (RGB, L, RGBA or LA)."""
    from PIL import Image
    from . import codec
    from .image_io import write_png
    return Image.open(io.BytesIO(write_png(codec.decompress(data, device=device))))
