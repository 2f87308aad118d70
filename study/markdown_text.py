"""Markdown text helpers shared by the report's sections: escaping user text, percentages."""

from __future__ import annotations

import math
import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def md(text) -> str:
    """Escape user text (class names, study names) for markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def pct(value: float | None, digits: int = 2) -> str:
    """`12.34%`, or `-` for a missing value."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}%"


def count(value: float | None) -> str:
    """`1.23 M`, `456 k`, `2.10 G` for counts (parameters, multiply-adds); `-` when missing."""
    if value is None:
        return "-"
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.0f}"


def size(n_bytes: float | None) -> str:
    """`12.3 MiB`, `850 KiB` for file sizes; `-` when missing."""
    if n_bytes is None:
        return "-"
    if n_bytes >= 1 << 20:
        return f"{n_bytes / (1 << 20):.3g} MiB"
    return f"{n_bytes / 1024:.3g} KiB"
