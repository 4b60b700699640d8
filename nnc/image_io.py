"""Images in and out: PNG (or any Pillow format) <-> uint8 arrays; padding and cropping."""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .container import MAX_DIMENSION  # pixels a side, the format's limit
from .errors import InputError

MAX_IMAGE_BYTES = 1 << 30      # an input image file (a 100 MP 16-bit RGBA PNG fits)
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


def check_size(width: int, height: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """The limits every .nnc reader enforces (spec §3: at most MAX_DIMENSION pixels a side;
    ``max_pixels`` in all), enforced by the encoder first, with the decoder's wording: nnc
    never writes a file that it then refuses. InputError (exit code 3)."""
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise InputError(f"image size {width}x{height} is out of range (the format holds "
                         f"1 to {MAX_DIMENSION} pixels a side)")
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(f"image is {width}x{height} = {width * height} pixels, over the "
                         f"limit of {max_pixels} (raise it with --max-pixels)")


def read_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RasterImage:
    """Decode image bytes. Gray, palette, 16-bit and alpha images are accepted: 16-bit
    values v become round(v / 257), the same scale for every image; palette becomes RGB (or
    RGBA when it has transparency); the EXIF orientation is applied, so that a phone photo
    comes out the way it is shown. Images of several frames (animations, multi-page TIFFs)
    and 32-bit integer or floating-point images are refused, not guessed at.

    The size limits (:func:`check_size`: ``max_pixels`` and the format's side limit) are
    checked on the header, before any pixel is decoded. They are the only ones: Pillow's
    decompression-bomb limit is not applied, and not changed either (it is process-wide:
    another thread's ``Image.open`` keeps its guard). A PNG's colour profile is read here,
    up to the format's 16 MiB; a larger one is dropped and the pixels kept."""
    try:
        data, png_icc = _split_png_profile(data)
        im = _open_unchecked(data)
        w, h = im.size
        check_size(w, h, max_pixels)
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
    if png_icc is not None:
        im.info["icc_profile"] = png_icc
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
    if icc is not None and not profile_fits(icc, gray):
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


def profile_fits(icc: bytes, gray: bool) -> bool:
    """Whether a colour profile describes the coded pixels: its data colour space (ICC
    header bytes 16-19) is 'GRAY' for a gray image, 'RGB ' for a colour one (spec §6b)."""
    return icc[16:20] == (b"GRAY" if gray else b"RGB ")


def _open_unchecked(data: bytes) -> Image.Image:
    """``Image.open`` without its decompression-bomb check (our own size check replaces it,
    so a --max-pixels above Pillow's 89.5 MP works) and without changing Pillow's global
    limit: the same search over the registered plugins that ``Image.open`` makes."""
    prefix = data[:16]
    for loader in (Image.preinit, Image.init):
        loader()
        for fmt in list(Image.ID):
            factory, accept = Image.OPEN[fmt]
            try:
                if accept is not None:
                    ok = accept(prefix)
                    if isinstance(ok, str) or not ok:
                        continue
                return factory(io.BytesIO(data), None)
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError("cannot identify image file")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _split_png_profile(data: bytes) -> tuple[bytes, bytes | None]:
    """A PNG's iCCP chunk taken out (the PNG without it, the profile). Pillow inflates a
    profile or a compressed text chunk only up to a process-wide limit (1 MiB) and refuses
    the whole image past it; nnc keeps profiles up to the format's 16 MiB, drops larger
    ones, and drops text chunks past Pillow's limit: the pixels are kept, and Pillow's
    limits are left as they are. Other files come back unchanged (profile None)."""
    if not data.startswith(PNG_SIGNATURE):
        return data, None
    from PIL import PngImagePlugin
    text_limit = PngImagePlugin.MAX_TEXT_CHUNK
    pos, profile, keep = len(PNG_SIGNATURE), None, []
    start = pos
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if kind in (b"IDAT", b"IEND") or end > len(data):
            break
        body = data[pos + 8:pos + 8 + length]
        if kind == b"iCCP":
            profile = _inflated(body, MAX_ICC_BYTES, 2) or profile
        elif kind not in (b"zTXt", b"iTXt") or _inflated(
                body, text_limit, 2 if kind == b"zTXt" else 3) is not False:
            keep.append(data[pos:end])
        pos = end
    if pos == start or (profile is None and sum(map(len, keep)) == pos - start):
        return data, None
    return data[:start] + b"".join(keep) + data[pos:], profile


def _inflated(body: bytes, limit: int, after: int):
    """A PNG chunk's zlib stream (after its keyword's NUL and ``after`` - 1 more bytes)
    inflated up to ``limit`` bytes: the bytes, None for an uncompressed iTXt or a stream
    that does not inflate, False when it inflates past ``limit``."""
    name_end = body.find(b"\0")
    if not 0 <= name_end < 80:
        return None
    if after == 3:                                   # iTXt: compression flag, method, ...
        if body[name_end + 1:name_end + 2] != b"\1":
            return None
        rest = body[name_end + 3:]
        for _ in range(2):                           # language tag, translated keyword
            cut = rest.find(b"\0")
            if cut < 0:
                return None
            rest = rest[cut + 1:]
    else:
        rest = body[name_end + after:]
    d = zlib.decompressobj()
    try:    # never inflate past the limit (zlib bombs)
        raw = d.decompress(rest, limit + 1)
    except zlib.error:
        return None
    return False if len(raw) > limit or d.unconsumed_tail else raw


def _to_pil(img: RasterImage) -> Image.Image:
    if img.gray:
        base = Image.fromarray(img.rgb[..., 0], "L")
        return base if img.alpha is None else Image.merge(
            "LA", [base, Image.fromarray(img.alpha)])
    base = Image.fromarray(img.rgb, "RGB")
    return base if img.alpha is None else Image.merge(
        "RGBA", [*base.split(), Image.fromarray(img.alpha)])


def write_png(img: RasterImage, warn=None) -> bytes:
    """The image as a PNG (nnc/png.py), with its colour profile, EXIF and XMP."""
    return encode_for(img, "x.png", warn)


def _png(img: RasterImage, options: dict) -> bytes:
    """nnc/png.py's PNG of the image, on the threads the process may use."""
    from . import png
    from .threads import intra_op_threads
    if img.gray:
        pixels, mode = img.rgb[..., :1], "L"
    else:
        pixels, mode = img.rgb, "RGB"
    if img.alpha is not None:
        pixels, mode = np.concatenate([pixels, img.alpha[..., None]], axis=2), mode + "A"
    return png.encode(pixels, mode, options, parts=intra_op_threads())


# the largest profile each format's readers take back: JPEG splits it over at most 255 APP2
# segments of 65,519 bytes; PNG readers inflate iCCP only so far (Pillow: 1 MiB, its
# MAX_TEXT_CHUNK default), and a PNG that stock Pillow cannot reopen is no use
MAX_PROFILE_BYTES = {"JPEG": 255 * 65_519, "PNG": 1 << 20}


def _profile(img: RasterImage, fmt: str, warn=None) -> dict:
    """The save() keyword that writes the colour profile into a ``fmt`` file: none when
    the format cannot carry it (``warn(message)`` is told, and the image is written
    without it)."""
    if not img.icc or fmt not in ICC_FORMATS:
        return {}
    limit = MAX_PROFILE_BYTES.get(fmt)
    if limit is not None and len(img.icc) > limit:
        if warn is not None:
            warn(f"the colour profile ({len(img.icc)} bytes) is larger than {fmt} files "
                 f"carry ({limit} bytes); the image is written without it")
        return {}
    return {"icc_profile": img.icc}


def output_format(name: str) -> str | None:
    """The Pillow format an output name asks for by its extension, when this Pillow (its
    plugins included) can write it: 'PNG' for '-' and names without an extension (a device,
    a pipe); None for an extension no format registered for saving claims."""
    ext = Path(name).suffix.lower()
    if name == "-" or ext == "":
        return "PNG"
    # the common formats first (Image.preinit), every plugin only for another extension:
    # Image.init imports all of Pillow's plugins, 0.05 s of a 0.7 s decompress
    for loader in (Image.preinit, Image.init):
        loader()
        fmt = Image.EXTENSION.get(ext)
        if fmt in Image.SAVE:
            return fmt
    return None


DEFAULT_OUT_QUALITY = 95      # JPEG, WebP and AVIF outputs (--out-quality)


def encode_for(img: RasterImage, name: str, warn=None,
               quality: int = DEFAULT_OUT_QUALITY) -> bytes:
    """The decoded image in the format the output name's extension asks for (PNG for '-',
    .png and names without an extension), with its colour profile and camera metadata in
    the formats that hold them. JPEG, WebP and AVIF are written at ``quality`` (JPEG without
    chroma subsampling, 4:4:4, as nnc codes colour at full resolution). ValueError with a
    message for an extension Pillow cannot write or a format that cannot hold the image
    (alpha in a JPEG). A colour profile, EXIF or XMP larger than the format carries is left
    out, and ``warn(message)`` says so."""
    ext = Path(name).suffix.lower()
    fmt = output_format(name)
    if fmt is None:
        raise ValueError(f"{name}: not an image format this Pillow writes "
                         f"({ext}); use .png, .jpg, .webp, .tif, ...")
    if fmt == "JPEG" and img.alpha is not None:
        raise ValueError(f"{name}: JPEG cannot hold the alpha plane; write a .png")
    opts = _profile(img, fmt, warn)
    if fmt in QUALITY_FORMATS:
        opts["quality"] = quality
    if fmt == "JPEG":
        opts["subsampling"] = 0
    opts.update(_metadata(img, fmt, warn))
    buf = io.BytesIO()
    try:
        if fmt == "PNG":       # its metadata chunks are still Pillow's (png.metadata_chunks)
            return _png(img, opts)
        _to_pil(img).save(buf, format=fmt, **opts)
    except Exception as e:
        raise ValueError(f"{name}: cannot write {fmt}: {e}") from None
    return buf.getvalue()


ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "AVIF")    # Pillow writes a profile into these
QUALITY_FORMATS = ("JPEG", "WEBP", "AVIF")
METADATA_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF")      # ... and EXIF and XMP into these
JPEG_SEGMENT_BYTES = 65533    # an APP1 segment's payload at most (EXIF and XMP each)
PNG_TEXT_BYTES = 1 << 20      # an iTXt chunk stock Pillow inflates (its MAX_TEXT_CHUNK default)


def _metadata(img: RasterImage, fmt: str, warn=None) -> dict:
    """Pillow's save options that write the image's EXIF and XMP in ``fmt``. What the
    format cannot carry is left out, and ``warn(message)`` says so: a JPEG holds each in
    one APP1 segment (larger ones are rare: a big thumbnail); a PNG's compressed iTXt is
    read back only up to Pillow's text-chunk limit (1 MiB), and a PNG that stock Pillow
    cannot reopen is no use."""
    if fmt not in METADATA_FORMATS:
        return {}
    exif = b"Exif\0\0" + img.exif if img.exif else None
    xmp = img.xmp

    def fits(what, size, limit):
        if size <= limit:
            return True
        if warn is not None:
            warn(f"the {what} ({size} bytes) is larger than {fmt} files carry ({limit} "
                 "bytes); the image is written without it")
        return False

    if fmt == "JPEG":
        exif = exif if exif and fits("EXIF data", len(exif), JPEG_SEGMENT_BYTES) else None
        xmp = xmp if xmp and fits("XMP packet", len(xmp), JPEG_SEGMENT_BYTES - 29) else None
    elif fmt == "PNG" and xmp:      # sized as written: UTF-8, invalid bytes replaced
        text = xmp.decode("utf-8", "replace")
        xmp = xmp if fits("XMP packet", len(text.encode("utf-8")), PNG_TEXT_BYTES) else None
    opts: dict = {}
    if exif:
        opts["exif"] = exif
    if xmp and fmt == "PNG":
        from PIL import PngImagePlugin
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", text, zip=True)
        opts["pnginfo"] = info
    elif xmp:
        opts["xmp"] = xmp
    return opts


def compute_padding(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Bottom and right padding that makes (h, w) multiples of ``multiple``."""
    return (-h) % multiple, (-w) % multiple
