"""nnc: a neural image codec without quantization.

Python API::

    import nnc
    data = nnc.compress("in.png", quality=0.5)     # a path, a file object, image bytes,
                                                   # a PIL image or a uint8 array
    image = nnc.decompress(data)                   # .nnc bytes, a path or a file object;
                                                   # returns a PIL.Image.Image

Importing nnc also makes Pillow read and write .nnc files (``nnc.pillow``)::

    from PIL import Image
    Image.open("x.nnc").save("x.png")
"""
from __future__ import annotations

import io
import os

import numpy as np

__all__ = ["compress", "decompress", "__version__"]
__version__ = "0.1.0"


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
    from .image_io import RasterImage, read_image
    from .cli import MAX_IMAGE_BYTES
    if isinstance(image, Image.Image):
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
    if arr.ndim == 2:
        return RasterImage(np.repeat(arr[..., None], 3, 2), gray=True, alpha=None)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
        return RasterImage(np.ascontiguousarray(arr[..., :3]), gray=False, alpha=alpha)
    raise TypeError(f"arrays must be HxW, HxWx3 or HxWx4, not {arr.shape}")


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
             refine: int | None = None) -> bytes:
    """Compress an image to .nnc bytes. ``image``: a path, a binary file object, image
    file bytes (PNG, JPEG, ...), a PIL image or a uint8 array (HxW, HxWx3, HxWx4).

    ``quality`` in [0, 1] is the rate parameter (default 0.5); ``bpp`` instead targets a file size in
    bits per pixel (as ``nnc compress --bpp``). ``refine``: refinement steps per latent
    level, as ``nnc compress --refine`` (None: the CLI's default on the device: on the CPU
    2 steps on level 2 and 1 on level 1, from a smaller first step (codec.CPU_REFINEMENT);
    5 per level on a GPU)."""
    from . import codec
    if bpp is not None and quality is not None:
        raise ValueError("give quality or bpp, not both")
    if bpp is not None and not bpp > 0:
        raise ValueError(f"bpp must be positive, not {bpp!r}")
    quality = 0.5 if quality is None else quality
    if not 0 <= quality <= 1:
        raise ValueError(f"quality is a rate parameter in [0, 1], not {quality!r}")
    img = _to_raster(image)
    settings = codec.default_settings(device) if refine is None else codec.refined(refine)
    if bpp is not None:
        from .ratecontrol import compress_to_bpp
        return compress_to_bpp(img, bpp, seed=seed, model_name=model, device=device,
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


def _register_pillow_plugin() -> None:
    from .pillow import register
    register()


_register_pillow_plugin()
