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
