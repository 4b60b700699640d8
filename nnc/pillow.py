"""nnc as a Pillow image plugin: ``Image.open("x.nnc")`` and ``img.save("y.nnc")``.

Registered when ``nnc`` is imported (Pillow finds plugins only by import: it has no
entry-point discovery). Opening reads and checks the container and the header, as Pillow's
own plugins do; the pixels are decoded on ``load()`` (or on first use), with the model the
file names, on ONNX Runtime (nnc/decoder.py: no torch on the CPU). Saving takes nnc's
options as keyword arguments::

    from PIL import Image
    import nnc
    im = Image.open("x.nnc")                 # size and mode known, nothing decoded yet
    im.load()                                # decoded (the file's model)
    im.save("y.nnc", quality=0.3)            # or bpp=0.5, seed=, model=, refine=, device=
"""
from __future__ import annotations

from PIL import Image, ImageFile

from .errors import NNCError

FORMAT = "NNC"
SAVE_OPTIONS = ("quality", "bpp", "seed", "model", "refine", "device")


class DecodeError(OSError):
    """nnc could not decode an .nnc file (its ``__cause__`` is nnc's own error: a
    nnc.errors.FormatError for a bad file, ModelError for weights that are not here). An
    OSError, as the errors of Pillow's own plugins are."""


def _accept(prefix: bytes) -> bool:
    from .container import MAGIC
    return prefix[:len(MAGIC)] == MAGIC


class NNCImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "nnc neural image codec"

    def _open(self) -> None:
        from .container import read_header
        try:          # the header only: identifying a file never reads all of it
            header = read_header(self.fp.read)
        except NNCError as e:   # Pillow reports SyntaxError as "cannot identify"
            raise SyntaxError(str(e)) from None
        self._size = (header.width, header.height)
        self._mode = ("L" if header.channels == 1 else "RGB") + ("A" if header.alpha else "")
        self.info["nnc_model"] = header.model_name
        self.info["nnc_quality"] = header.quality
        self._nnc_pending = True
        self.tile = []

    def load(self):
        if self._im is None and getattr(self, "_nnc_pending", False):
            from .api import with_metadata
            from .codes import read_codes
            from .container import MAX_DIMENSION, MAX_FILE_BYTES
            from .decoder import decompress
            from .image_io import _to_pil
            try:
                self.fp.seek(0)
                data = self.fp.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    raise DecodeError(f"an .nnc file over {MAX_FILE_BYTES >> 20} MiB")
                # the size was checked by Image.open (Pillow's bomb limit): no limit of nnc's
                img = decompress(read_codes(data, MAX_DIMENSION ** 2))
            except NNCError as e:
                raise DecodeError(f"cannot decode the .nnc file: {e}") from e
            finally:
                self._nnc_pending = False
                self._done_with_file()
            pil = _to_pil(img)
            self.info.update(with_metadata(pil, img).info)
            self.im = pil.im
            self._mode = pil.mode
        return Image.Image.load(self)

    def _done_with_file(self) -> None:
        """Close the file Image.open opened, as Pillow's own plugins do after load()."""
        if self.fp is not None and getattr(self, "_exclusive_fp", False) and \
                self._close_exclusive_fp_after_loading:
            self.fp.close()
        self.fp = None


def _save(im: Image.Image, fp, filename) -> None:
    from .api import compress
    opts = {k: v for k, v in im.encoderinfo.items() if k in SAVE_OPTIONS}
    q = opts.get("quality")
    if q is not None and not 0 <= q <= 1:
        raise ValueError(f"nnc's quality is a rate parameter in [0, 1], not {q!r}")
    fp.write(compress(im, **opts))


def register() -> None:
    if FORMAT in Image.OPEN:
        return
    Image.register_open(FORMAT, NNCImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".nnc")
    Image.register_mime(FORMAT, "image/x-nnc")
