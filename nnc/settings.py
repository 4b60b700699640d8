"""What an encoder can be told: the coders' format fields (what a file records), their
encoder-only search settings, and per-image refinement; each a frozen object, with the
float fields a file stores rounded to float32 when built (so the encoder codes with exactly
what the decoder will read).

    Settings()                                   # the defaults (benchmarks/coder_params.py)
    Settings().replace(l1_beam=4, refine_steps=1)   # by the flat names benchmarks use
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .coding.greedy import Level1Format, Level1Search
from .coding.importance import Level2Format, Level2Search


@dataclass(frozen=True)
class Refinement:
    """Per-image refinement of the posteriors (model/refine.py); encoder only."""
    steps: int = 0               # steps on the level-1 posterior
    l2_steps: int = 0            # steps on the level-2 posterior
    step: float = 0.5            # their size (1 = a diagonal Newton step)
    coder_aware: bool = True     # refine as the level-1 coder will code (coded_mask)
    check: bool = True           # keep the last step only if it lowered the loss (one more
                                 # pass of g_s per level; model/refine.py)
    precision: str = "auto"      # g_s's while refining: float32, bfloat16, or auto
                                 # (model/fused.py encoder_dtype)

    def __post_init__(self):
        _check_precision("refine", self.precision)


@dataclass(frozen=True)
class Analysis:
    """The analysis transform g_a's pass over the image (encoder only)."""
    precision: str = "auto"      # float32, bfloat16, or auto (model/fused.py encoder_dtype)

    def __post_init__(self):
        _check_precision("analysis", self.precision)


PRECISIONS = ("auto", "float32", "bfloat16")


def _check_precision(what: str, value: str) -> None:
    if value not in PRECISIONS:
        raise ValueError(f"{what} precision {value!r}: use {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Settings:
    level1: Level1Format = Level1Format()
    level1_search: Level1Search = Level1Search()
    level2: Level2Format = Level2Format()
    level2_search: Level2Search = Level2Search()
    refine: Refinement = Refinement()
    analysis: Analysis = Analysis()

    def replace(self, **flat) -> "Settings":
        """These settings with fields changed by their flat names: ``l1_<field>`` of
        ``level1`` or ``level1_search``, ``l2_<field>`` likewise, ``refine_steps``,
        ``refine_l2_steps``, ``refine_step``, ``refine_coder_aware``, ``refine_check``,
        ``refine_precision``,
        ``analysis_precision``."""
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        changes: dict[str, dict] = {}
        for name, value in flat.items():
            part, field = _FLAT.get(name, (None, None))
            if part is None:
                raise TypeError(f"unknown setting {name!r}")
            changes.setdefault(part, {})[field] = value
        for part, ch in changes.items():
            parts[part] = replace(parts[part], **ch)
        return Settings(**parts)

    def flat(self) -> dict:
        """Every setting by its flat name (for records of what a benchmark ran)."""
        return {name: getattr(getattr(self, part), field)
                for name, (part, field) in _FLAT.items()}


def _flat_names() -> dict[str, tuple[str, str]]:
    names = {}
    for part, prefix in (("level1", "l1_"), ("level1_search", "l1_"), ("level2", "l2_"),
                         ("level2_search", "l2_")):
        for f in fields(Settings.__dataclass_fields__[part].default):
            names[prefix + f.name] = (part, f.name)
    names.update({"refine_steps": ("refine", "steps"), "refine_l2_steps": ("refine", "l2_steps"),
                  "refine_step": ("refine", "step"),
                  "refine_coder_aware": ("refine", "coder_aware"),
                  "refine_check": ("refine", "check"),
                  "refine_precision": ("refine", "precision"),
                  "analysis_precision": ("analysis", "precision")})
    return names


_FLAT = _flat_names()
