"""Which existing outputs a rerun keeps: one that is whole (it decodes) is kept and counted
as skipped (``--skip-existing``); any other is written again. One rule for every batch."""
from __future__ import annotations

from pathlib import Path

from .errors import NNCError


def output_decodes(path: str | Path, max_pixels: int = 1 << 62) -> bool:
    """Whether the file at ``path`` (a local path or a URL) is a whole output: an .nnc file
    whose every integer reads and checks (nnc/codes.py; the networks are not run), or an
    image Pillow decodes completely. nnc writes its outputs whole (a temporary file moved into place), so a file
    that fails here came from elsewhere, or from a disk that lost it."""
    from .container import MAGIC, MAX_FILE_BYTES
    from .storage import open_read
    try:
        with open_read(str(path)) as f:
            head = f.read(len(MAGIC))
            if head == MAGIC:
                from .codes import read_codes
                data = head + f.read(MAX_FILE_BYTES)
                if len(data) > MAX_FILE_BYTES:
                    return False
                read_codes(data, max_pixels)
                return True
            from .image_io import MAX_IMAGE_BYTES
            data = head + f.read(MAX_IMAGE_BYTES)
        if len(data) > MAX_IMAGE_BYTES:
            return False
        # as read_image opens images: the size checked here, Pillow's bomb limit and text
        # limit neither applied nor changed (they are process-wide)
        from .image_io import _open_unchecked, _split_png_profile, check_size
        im = _open_unchecked(_split_png_profile(data)[0])
        if im.format == "NNC":               # no decoding an .nnc by another name here
            return False
        check_size(*im.size, max_pixels)
        im.load()
        return True
    except (NNCError, OSError, SyntaxError, ValueError, MemoryError):
        return False
    except Exception:                        # Pillow raises many types for broken files
        return False
