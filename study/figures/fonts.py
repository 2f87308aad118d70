"""Fonts for text in any script: class names in Hangul, Chinese, Arabic, ... render in every figure.

Matplotlib's default font (DejaVu Sans) has no Hangul or CJK glyphs and draws empty boxes
with a `Glyph ... missing from font` warning. `font_families_for` returns DejaVu Sans followed
by the installed fonts (matplotlib's font manager and their character maps tell) that cover
the characters it lacks; matplotlib falls back along that list glyph by glyph. NanumGothic,
shipped by the `koreanize-matplotlib` package, is registered first, so Hangul renders on a
machine with no Korean font installed. The package is located, not imported: importing it
would switch every figure's font globally.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Iterable

DEFAULT_FAMILY = "DejaVu Sans"


@lru_cache(maxsize=None)
def register_bundled_fonts() -> tuple[str, ...]:
    """Add the fonts shipped by koreanize-matplotlib to matplotlib's font manager; their paths."""
    from matplotlib import font_manager

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return ()
    paths = sorted(str(p) for folder in spec.submodule_search_locations for p in (Path(folder) / "fonts").glob("*.ttf"))
    for path in paths:
        font_manager.fontManager.addfont(path)
    return tuple(paths)


@lru_cache(maxsize=None)
def characters_of(font_path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (empty if it cannot be read)."""
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(font_path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _candidates():
    """Installed regular-weight fonts, bundled ones first, then by name (a stable choice)."""
    from matplotlib import font_manager

    bundled = set(register_bundled_fonts())
    fonts = [f for f in font_manager.fontManager.ttflist
             if f.style == "normal" and f.weight in (400, "normal", "regular") and f.fname.endswith((".ttf", ".otf"))
             and not f.name.startswith("Last Resort")]  # its 'glyphs' for every code point are boxes
    return sorted(fonts, key=lambda f: (f.fname not in bundled, f.name, f.fname))


def font_families_for(texts: Iterable[str]) -> list[str]:
    """`font.family` for figures showing `texts`: the default, then fonts for what it lacks.

    Characters no installed font has are left to matplotlib (it warns about them).
    """
    from matplotlib import font_manager

    needed = {ord(c) for text in texts for c in str(text) if c.isprintable() and not c.isspace()}
    default_path = font_manager.findfont(DEFAULT_FAMILY, fallback_to_default=True)
    needed -= characters_of(default_path)
    families = [DEFAULT_FAMILY]
    for font in _candidates() if needed else ():
        covered = needed & characters_of(font.fname)
        if covered and font.name not in families:
            families.append(font.name)
            needed -= covered
        if not needed:
            break
    return families
