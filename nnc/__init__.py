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

__all__ = ["compress", "decompress", "__version__"]
__version__ = "0.1.0"

_API = ("MAX_REFINE", "MAX_SEED", "compress", "decompress", "with_metadata")


def __getattr__(name: str):
    """The API (nnc/api.py) on first use: importing nnc, or the CLI, does not import numpy
    until it is needed (the CLI first tells numpy's BLAS to start no threads of its own)."""
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'nnc' has no attribute {name!r}")


def _register_pillow_plugin() -> None:
    from .pillow import register
    register()


_register_pillow_plugin()
