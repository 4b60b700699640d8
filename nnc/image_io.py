"""Images in and out: PNG (or any Pillow format) <-> uint8 arrays; padding and cropping."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import InputError

DEFAULT_MAX_PIXELS = 100_000_000


@dataclass
class RasterImage:
    rgb: np.ndarray            # H x W x 3 uint8 (gray images are replicated)
    gray: bool                 # decode back to one channel
    alpha: np.ndarray | None   # H x W uint8, kept losslessly


def read_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RasterImage:
    """Decode image bytes. Gray, palette, 16-bit and alpha PNGs are accepted: 16-bit is
    reduced to 8 bits; palette becomes RGB (or RGBA when it has transparency)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"image is {w}x{h} = {w * h} pixels, over the limit of "
                                 f"{max_pixels} (raise it with --max-pixels)")
            im.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("image dimensions are too large (decompression bomb?)") from None
    except Exception as e:   # Pillow raises many types for broken files
        raise InputError(f"cannot decode the image: {e}") from None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.int64)
        im = Image.fromarray((arr >> 8 if arr.max() > 255 else arr).astype(np.uint8), "L")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "PA":
        im = im.convert("RGBA")
    gray = im.mode in ("L", "LA")
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return RasterImage(rgb=rgb, gray=gray, alpha=alpha)


def write_png(img: RasterImage) -> bytes:
    arr = img.rgb
    if img.gray:
        base = Image.fromarray(arr[..., 0], "L")
        im = base if img.alpha is None else Image.merge("LA", [base, Image.fromarray(img.alpha)])
    else:
        base = Image.fromarray(arr, "RGB")
        im = base if img.alpha is None else Image.merge(
            "RGBA", [*base.split(), Image.fromarray(img.alpha)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def compute_padding(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Bottom and right padding that makes (h, w) multiples of ``multiple``."""
    return (-h) % multiple, (-w) % multiple
