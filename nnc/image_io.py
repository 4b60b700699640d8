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
MAX_METADATA_BYTES = 16 << 20   # ... and on EXIF data and an XMP packet (spec §6c)
ORIENTATION = 0x0112            # the EXIF tag of the orientation


@dataclass
class RasterImage:
    rgb: np.ndarray            # H x W x 3 uint8 (gray images are replicated)
    gray: bool                 # decode back to one channel
    alpha: np.ndarray | None   # H x W uint8, kept losslessly
    icc: bytes | None = None   # the colour profile, carried as it came (iCCP section)
    exif: bytes | None = None  # EXIF as a TIFF structure, orientation applied (eXIf section)
    xmp: bytes | None = None   # the XMP packet (xMPd section)

    def stripped(self) -> "RasterImage":
        """The image without its camera metadata (EXIF, XMP; GPS with them); the colour
        profile stays, as the colours depend on it."""
        return RasterImage(self.rgb, self.gray, self.alpha, self.icc)


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
        exif = _exif_payload(im)
    except Exception:         # a broken EXIF block: not carried
        exif = None
    try:
        im = ImageOps.exif_transpose(im)      # drops the orientation from the XMP too
    except Exception:         # a broken EXIF block: the pixels as stored
        pass
    xmp = _xmp_payload(im.info)
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
    return RasterImage(rgb=rgb, gray=gray, alpha=alpha, icc=icc, exif=exif, xmp=xmp)


def _exif_payload(im: Image.Image) -> bytes | None:
    """The EXIF an image file carried, as the TIFF structure the eXIf section stores (spec
    §6c): with its orientation set to 1 when it turned the image (the pixels are coded
    upright), as it came otherwise. None without EXIF, or for EXIF that is not a TIFF
    structure or over 16 MiB."""
    raw = im.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    exif = Image.Exif()
    exif.load(raw)
    if exif.get(ORIENTATION, 1) not in (0, 1):
        exif[ORIENTATION] = 1
        raw = exif.tobytes()
    if raw.startswith(b"Exif\0\0"):
        raw = raw[6:]
    if raw[:4] not in (b"II*\0", b"MM\0*") or len(raw) > MAX_METADATA_BYTES:
        return None
    return raw


def _xmp_payload(info: dict) -> bytes | None:
    """The XMP packet as UTF-8 bytes (JPEG and WebP give bytes, PNG's iTXt a str)."""
    raw = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes) or not raw.strip(b"\0 \r\n\t") \
            or len(raw) > MAX_METADATA_BYTES:
        return None
    return raw


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


def write_png(img: RasterImage) -> bytes:
    buf = io.BytesIO()
    _to_pil(img).save(buf, format="PNG", **_profile(img))
    return buf.getvalue()


def _profile(img: RasterImage) -> dict:
    return {"icc_profile": img.icc} if img.icc else {}


def output_format(name: str) -> str | None:
    """The Pillow format an output name asks for by its extension, when this Pillow (its
    plugins included) can write it: 'PNG' for '-' and names without an extension (a device,
    a pipe); None for an extension no format registered for saving claims."""
    ext = Path(name).suffix.lower()
    if name == "-" or ext == "":
        return "PNG"
    fmt = Image.registered_extensions().get(ext)
    return fmt if fmt in Image.SAVE else None


DEFAULT_OUT_QUALITY = 95      # JPEG, WebP and AVIF outputs (--out-quality)


def encode_for(img: RasterImage, name: str, quality: int = DEFAULT_OUT_QUALITY) -> bytes:
    """The decoded image in the format the output name's extension asks for (PNG for '-',
    .png and names without an extension), with its colour profile and camera metadata in
    the formats that hold them. JPEG, WebP and AVIF are written at ``quality`` (JPEG without
    chroma subsampling, 4:4:4, as nnc codes colour at full resolution). ValueError with a
    message for an extension Pillow cannot write or a format that cannot hold the image
    (alpha in a JPEG)."""
    ext = Path(name).suffix.lower()
    fmt = output_format(name)
    if fmt is None:
        raise ValueError(f"{name}: not an image format this Pillow writes "
                         f"({ext}); use .png, .jpg, .webp, .tif, ...")
    im = _to_pil(img)
    if fmt == "JPEG" and im.mode in ("RGBA", "LA"):
        raise ValueError(f"{name}: JPEG cannot hold the alpha plane; write a .png")
    opts = _profile(img) if fmt in ICC_FORMATS else {}
    if fmt in QUALITY_FORMATS:
        opts["quality"] = quality
    if fmt == "JPEG":
        opts["subsampling"] = 0
    opts.update(_metadata(img, fmt))
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt, **opts)
    except Exception as e:
        raise ValueError(f"{name}: cannot write {fmt}: {e}") from None
    return buf.getvalue()


ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "AVIF")    # Pillow writes a profile into these
QUALITY_FORMATS = ("JPEG", "WEBP", "AVIF")
METADATA_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF")      # ... and EXIF and XMP into these
JPEG_SEGMENT_BYTES = 65533    # an APP1 segment's payload at most (EXIF and XMP each)


def _metadata(img: RasterImage, fmt: str) -> dict:
    """Pillow's save options that write the image's EXIF and XMP in ``fmt``."""
    if fmt not in METADATA_FORMATS:
        return {}
    exif = b"Exif\0\0" + img.exif if img.exif else None
    xmp = img.xmp
    if fmt == "JPEG":    # one APP1 segment each: larger ones do not fit (rare: a thumbnail)
        exif = exif if exif and len(exif) <= JPEG_SEGMENT_BYTES else None
        xmp = xmp if xmp and len(xmp) + 29 <= JPEG_SEGMENT_BYTES else None
    opts: dict = {}
    if exif:
        opts["exif"] = exif
    if xmp and fmt == "PNG":
        from PIL import PngImagePlugin
        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"), zip=True)
        opts["pnginfo"] = text
    elif xmp:
        opts["xmp"] = xmp
    return opts


def compute_padding(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Bottom and right padding that makes (h, w) multiples of ``multiple``."""
    return (-h) % multiple, (-w) % multiple
