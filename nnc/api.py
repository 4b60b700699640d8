"""The Python API behind ``import nnc``: nnc.compress and nnc.decompress, their arguments
checked with the CLI's ranges (the package's __init__ re-exports them and registers the Pillow
plugin, which uses them)."""
from __future__ import annotations

import io
import os

import numpy as np


def _read_source(source, what: str, limit: int) -> bytes:
    """The bytes of a path (str or os.PathLike), a binary file object, or bytes-like data."""
    from .errors import InputError
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise InputError(f"{os.fsdecode(source)}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{os.fsdecode(source)}: is a directory, not a file") from None
        except OSError as e:
            raise InputError(f"{os.fsdecode(source)}: cannot read ({e.strerror})") from None
    elif hasattr(source, "read"):
        data = source.read(limit + 1)
        if isinstance(data, str):
            raise TypeError(f"{what}: the file object is open in text mode; open it with 'rb'")
    else:
        raise TypeError(f"{what}: expected a path, a binary file object or bytes, not "
                        f"{type(source).__name__}")
    if len(data) > limit:
        raise InputError(f"{what} is larger than {limit >> 20} MiB; nnc does not read inputs "
                         "that large")
    return bytes(data)


def _to_raster(image):
    from PIL import Image
    from .image_io import DEFAULT_MAX_PIXELS, RasterImage, check_size, read_image
    from .image_io import MAX_IMAGE_BYTES
    if isinstance(image, Image.Image):
        check_size(*image.size)             # before a copy of a huge image is made
        if image.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I", "I;16"):
            image = image.convert("RGB")    # CMYK, Lab, YCbCr... (PNG holds none of them)
        buf = io.BytesIO()
        # keeps the colour profile (image.info), and the camera metadata given here
        image.save(buf, format="PNG", **_metadata_of(image.info))
        return read_image(buf.getvalue())
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) \
            or hasattr(image, "read"):
        return read_image(_read_source(image, "the image", MAX_IMAGE_BYTES))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"arrays must be uint8, not {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise TypeError(f"arrays must be HxW, HxWx3 or HxWx4, not {arr.shape}")
    check_size(arr.shape[1], arr.shape[0], DEFAULT_MAX_PIXELS)
    if arr.ndim == 2:
        return RasterImage(np.repeat(arr[..., None], 3, 2), gray=True, alpha=None)
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    return RasterImage(np.ascontiguousarray(arr[..., :3]), gray=False, alpha=alpha)


MAX_SEED = 2 ** 32 - 1      # as `nnc compress --seed` (a u32 in the header)
MAX_REFINE = 1000           # as `nnc compress --refine`


def _check_arguments(quality, bpp, seed, model, device, refine) -> None:
    """compress's arguments, checked before any work with the CLI's ranges: TypeError or
    ValueError naming the argument."""
    import numbers

    def real(name, v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a number, not {type(v).__name__}")

    def integer(name, v, lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int, not {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], not {v!r}")

    if quality is not None:
        real("quality", quality)
        if not 0 <= quality <= 1:
            raise ValueError(f"quality is a rate parameter in [0, 1], not {quality!r}")
    if bpp is not None:
        real("bpp", bpp)
        if not 0 < bpp < float("inf"):
            raise ValueError(f"bpp must be positive and finite, not {bpp!r}")
    if bpp is not None and quality is not None:
        raise ValueError("give quality or bpp, not both")
    integer("seed", seed, 0, MAX_SEED)
    if refine is not None:
        integer("refine", refine, 0, MAX_REFINE)
    for name, v in (("model", model), ("device", device)):
        if v is not None and not isinstance(v, str):
            raise TypeError(f"{name} must be a str or None, not {type(v).__name__}")


def _metadata_of(info: dict) -> dict:
    """Save options that carry a PIL image's EXIF and XMP (``info``) through a PNG."""
    from .image_io import RasterImage, _metadata, _xmp_payload
    exif = info.get("exif")
    exif = exif[6:] if isinstance(exif, bytes) and exif.startswith(b"Exif\0\0") else exif
    return _metadata(RasterImage(None, False, None, exif=exif if isinstance(exif, bytes)
                                 else None, xmp=_xmp_payload(info)), "PNG")


def with_metadata(pil, img):
    """``pil`` with the decoded image's colour profile, EXIF and XMP in its ``info``, as
    Pillow's own readers put them there."""
    if img.icc:
        pil.info["icc_profile"] = img.icc
    if img.exif:
        pil.info["exif"] = b"Exif\0\0" + img.exif
    if img.xmp:
        pil.info["xmp"] = img.xmp
    return pil


def compress(image, quality: float | None = None, bpp: float | None = None, seed: int = 0,
             model: str | None = None, device: str | None = None,
             refine: int | None = None, fast: bool = False) -> bytes:
    """Compress an image to .nnc bytes. ``image``: a path, a binary file object, image
    file bytes (PNG, JPEG, ...), a PIL image or a uint8 array (HxW, HxWx3, HxWx4).

    ``quality`` in [0, 1] is the rate parameter (default 0.5); ``bpp`` instead targets a file size in
    bits per pixel (as ``nnc compress --bpp``). ``refine``: refinement steps per latent
    level, as ``nnc compress --refine`` (None: the CLI's default on the device: on the CPU
    2 steps on level 2 and 1 on level 1, from a smaller first step (codec.CPU_REFINEMENT);
    5 per level on a GPU). ``fast``: as ``nnc compress --fast``, no refinement (unless
    ``refine`` is given) and a narrower search, for CPUs without bfloat16. ``seed``: an int in [0, 2**32 - 1]. Arguments out of these
    ranges raise ValueError (TypeError for a wrong type) before any work; an image the
    format cannot hold (over 65536 pixels a side, or over 100 megapixels) raises
    nnc.errors.InputError."""
    from . import codec
    _check_arguments(quality, bpp, seed, model, device, refine)
    seed = int(seed)
    quality = 0.5 if quality is None else float(quality)
    img = _to_raster(image)
    settings = codec.encoder_settings(device, None if refine is None else int(refine),
                                      bool(fast))
    if bpp is not None:
        from .ratecontrol import compress_to_bpp
        return compress_to_bpp(img, float(bpp), seed=seed, model_name=model, device=device,
                               settings=settings)[0]
    return codec.compress(img, quality=quality, seed=seed, model_name=model, device=device,
                          settings=settings)


def decompress(data, device: str | None = None):
    """Decompress an .nnc file (its bytes, a path, or a binary file object) to a PIL image
    (RGB, L, RGBA or LA; ``info["icc_profile"]`` holds the colour profile, ``info["exif"]``
    and ``info["xmp"]`` the camera metadata, if the file has them). On the
    CPU the networks run on ONNX Runtime, without importing torch (nnc/decoder.py);
    ``device="cuda"`` decodes with torch."""
    from .codes import read_codes
    from .container import MAX_FILE_BYTES
    from .decoder import decompress as decode
    from .image_io import DEFAULT_MAX_PIXELS, _to_pil
    codes = read_codes(_read_source(data, "the .nnc file", MAX_FILE_BYTES), DEFAULT_MAX_PIXELS)
    img = decode(codes, device=device)
    return with_metadata(_to_pil(img), img)
