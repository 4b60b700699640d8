"""Images in and out: PNG (or any Pillow format) <-> uint8 arrays; padding and cropping."""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

DEFAULT_MAX_PIXELS = 100_000_000
MAX_ICC_BYTES = 16 << 20        # the format's limit on a colour profile (spec §6b)


@dataclass
class RasterImage:
    rgb: np.ndarray            # H x W x 3 uint8 (gray images are replicated)
    gray: bool                 # decode back to one channel
    alpha: np.ndarray | None   # H x W uint8, kept losslessly
    icc: bytes | None = None   # the colour profile, carried as it came (iCCP section)


def read_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RasterImage:
    """Decode image bytes. Gray, palette, 16-bit and alpha images are accepted: 16-bit
    values v become round(v / 257), the same scale for every image; palette becomes RGB (or
    RGBA when it has transparency); the EXIF orientation is applied, so that a phone photo
    comes out the way it is shown. Images of several frames (animations, multi-page TIFFs)
    and 32-bit integer or floating-point images are refused, not guessed at.

    ``max_pixels`` is the only size limit: it is checked on the header, before any pixel
    is decoded (Pillow's own decompression-bomb limit is lifted for the call, so a limit
    above Pillow's 89.5 MP works), and text chunks of up to 16 MiB are read."""
    try:
        with _pillow_limits():
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"image is {w}x{h} = {w * h} pixels, over the limit of "
                                 f"{max_pixels} (raise it with --max-pixels)")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise InputError(f"the image has {frames} frames (an animation or a "
                                 "multi-page file); nnc codes one still image: extract the "
                                 "frame you want first")
            im.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError("not an image nnc can read (PNG, JPEG, WebP, TIFF, ...; a broken "
                         "or truncated file?)") from None
    except Exception as e:   # Pillow raises many types for broken files
        raise InputError(f"cannot decode the image: {e}") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:         # a broken EXIF block: the pixels as stored
        pass
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode.startswith("I;16") or (mode == "I" and im.format == "PNG"):
        arr = np.asarray(im, dtype=np.int64)      # 16-bit samples (Pillow may say "I")
        im = Image.fromarray(((arr + 128) // 257).clip(0, 255).astype(np.uint8), "L")
    elif mode in ("I", "F") or mode.startswith(("I;32", "F;")):
        kind = "floating-point" if mode.startswith("F") else "32-bit integer"
        raise InputError(f"{kind} images are not supported (their range is not defined); "
                         "convert to 8 or 16 bits per sample first")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "PA":
        im = im.convert("RGBA")
    icc = im.info.get("icc_profile") or None
    if icc is not None and len(icc) > MAX_ICC_BYTES:
        icc = None               # not a profile anyone uses; the pixels matter more
    gray = im.mode in ("L", "LA")
    if icc is not None and icc[16:20] != (b"GRAY" if gray else b"RGB "):
        icc = None               # a CMYK, Lab, YCbCr... profile: not of the coded pixels
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return RasterImage(rgb=rgb, gray=gray, alpha=alpha, icc=icc)


@contextlib.contextmanager
def _pillow_limits():
    """Our own size check replaces Pillow's bomb limit; larger text chunks are read."""
    from PIL import PngImagePlugin
    saved = Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK
    Image.MAX_IMAGE_PIXELS = None
    PngImagePlugin.MAX_TEXT_CHUNK = max(saved[1], 16 << 20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK = saved


def _to_pil(img: RasterImage) -> Image.Image:
    if img.gray:
        base = Image.fromarray(img.rgb[..., 0], "L")
        return base if img.alpha is None else Image.merge(
            "LA", [base, Image.fromarray(img.alpha)])
    base = Image.fromarray(img.rgb, "RGB")
    return base if img.alpha is None else Image.merge(
        "RGBA", [*base.split(), Image.fromarray(img.alpha)])


# zlib level of decoded PNGs: Pillow's default 6 took 0.11 s of kodim23's decode, a fifth of
# it; level 4 takes 0.05 s for a 2.8% larger PNG (level 1: 0.03 s, +16%), the same pixels
PNG_COMPRESS_LEVEL = 4


def write_png(img: RasterImage) -> bytes:
    buf = io.BytesIO()
    _to_pil(img).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, **_profile(img))
    return buf.getvalue()


def _profile(img: RasterImage) -> dict:
    return {"icc_profile": img.icc} if img.icc else {}


def encode_for(img: RasterImage, name: str) -> bytes:
    """The decoded image in the format the output name's extension asks for (PNG for '-',
    .png and names without an extension; JPEG and WebP at quality 95). ValueError with a
    message for an extension Pillow does not know or a format that cannot hold the image
    (alpha in a JPEG)."""
    ext = Path(name).suffix.lower()
    if name == "-" or ext in ("", ".png"):     # no extension (a device, a pipe): PNG
        return write_png(img)
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"{name}: unknown image extension {ext or '(none)'}; use .png, .jpg, "
                         ".webp, .tif, ...")
    im = _to_pil(img)
    if fmt == "JPEG" and im.mode in ("RGBA", "LA"):
        raise ValueError(f"{name}: JPEG cannot hold the alpha plane; write a .png")
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}),
                **(_profile(img) if fmt in ICC_FORMATS else {}))
    except Exception as e:
        raise ValueError(f"{name}: cannot write {fmt}: {e}") from None
    return buf.getvalue()


ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")    # Pillow writes a profile into these


def compute_padding(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Bottom and right padding that makes (h, w) multiples of ``multiple``."""
    return (-h) % multiple, (-w) % multiple
