"""The coder seam: what every latent coder module provides (both levels, one signature),
and the context that carries what a coder needs besides its code.

A coder module (registered in coding/__init__.py) is a :class:`Coder`: its ``LEVEL`` and
``SECTIONS`` (tags and their rank, spec §1), ``check_sections``, its format read from a
header, and four functions of (code or sections, :class:`CoderContext`): ``encode_latent``
(torch: the posterior, standardized by the prior, to a code), ``write`` (a code to its
sections), ``read`` (sections to a code, checked: FormatError) and ``decode_latent`` (a code
to the standardized latent, numpy float32 (1, *shape): the same for every engine).
tests/test_coders.py runs every registered coder through encode -> write -> read -> decode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CoderContext:
    """What a coder needs besides its code: the file's seed, the latent's shape (C, H, W),
    the coder's format (its header fields) and the model's data for it (level 1: the shard
    count table; None for level 2)."""
    seed: int
    shape: tuple
    fmt: Any
    table: np.ndarray | None = None


@runtime_checkable
class Coder(Protocol):
    LEVEL: int
    SECTIONS: dict

    def check_sections(self, sections: dict) -> None: ...

    def format_from_header(self, hd) -> Any: ...

    def encode_latent(self, mean, std, ctx: CoderContext, search) -> Any: ...

    def write(self, code, ctx: CoderContext) -> dict: ...

    def read(self, sections: dict, ctx: CoderContext) -> Any: ...

    def decode_latent(self, code, ctx: CoderContext) -> np.ndarray: ...
