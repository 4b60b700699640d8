"""The latent coders, one module each, and the registry that finds the coder of a level by
the sections a file holds.

A coder module provides: ``SECTIONS`` (its tags and their rank in the file, spec §1), its
format (the header fields it reads, ``Level1Format``/``Level2Format`` with ``from_header``
and ``header_fields``), its encoder-only settings, its code (the integers a file carries),
``encode``, ``decode``, ``write_sections`` and ``read_sections`` (the latter without torch or
the network), and the one-signature functions of the coder protocol (coding/protocol.py,
checked for every coder here by tests/test_coders.py). A new coder is one new module here
plus its line below; the container learns its tags from ``SECTIONS``.
"""
from __future__ import annotations

from ..errors import FormatError
from . import greedy, importance

LEVEL2_CODERS = (importance,)
LEVEL1_CODERS = (greedy,)

# every coder's tags with their rank (the order of sections in a file)
SECTIONS = {tag: rank for coder in LEVEL2_CODERS + LEVEL1_CODERS
            for tag, rank in coder.SECTIONS.items()}


def coder_for(coders, sections: dict, level: int):
    """The coder of ``level`` whose sections are in the file: exactly one must claim the
    level, and with exactly its required sections."""
    found = [c for c in coders if any(t in sections for t in c.SECTIONS)]
    if len(found) > 1:
        raise FormatError(f"corrupt .nnc file: level {level} is there in several codings")
    coder = found[0] if found else coders[0]      # its check names the missing section
    coder.check_sections(sections)
    return coder
