"""Log lines reduced to message templates, so that ids and numbers do not split one error into a thousand.

"payment 8d1f… failed after 3012 ms" and "payment 77aa… failed after 15 ms" are one pattern:
"payment <id> failed after <n> ms". The runbook asks for the most frequent errors and for error patterns that
are new since a fix; both are counted over templates.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from integrations.observability_reads import LogLine

# Order matters: the specific shapes go first, so that a UUID is not eaten piecemeal as hex and numbers.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Hex or mixed letters-and-digits tokens of 6+ characters: request ids, hashes, trace ids.
    (re.compile(r"\b(?=[0-9a-zA-Z_-]*\d)(?=[0-9a-zA-Z_-]*[a-zA-Z])[0-9a-zA-Z_-]{6,}\b"), "<id>"),
    (re.compile(r"(?<![\w<])-?\d+(?:\.\d+)?(?![\w>])"), "<n>"),
    (re.compile(r"\"[^\"]{0,200}\"|'[^']{0,200}'"), "<str>"),
)
_SPACES = re.compile(r"\s+")
TEMPLATE_LIMIT = 200


def template(message: str) -> str:
    text = message.strip()
    for pattern, placeholder in _SHAPES:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", text)[:TEMPLATE_LIMIT]


@dataclass(frozen=True)
class Pattern:
    template: str
    count: int
    example: LogLine  # the newest line of the pattern, shown as it was logged


def frequent(lines: Iterable[LogLine], top: int) -> list[Pattern]:
    """The `top` most frequent templates, most frequent first (ties: the most recently seen first)."""
    counts: Counter[str] = Counter()
    newest: dict[str, LogLine] = {}
    for line in lines:
        key = template(line.message)
        counts[key] += 1
        newest[key] = line
    ranked = sorted(counts, key=lambda key: (-counts[key], -newest[key].at.timestamp()))
    return [Pattern(key, counts[key], newest[key]) for key in ranked[:top]]


def new_patterns(before: Iterable[LogLine], since: Iterable[LogLine], top: int) -> list[Pattern]:
    """Templates seen `since` a moment that did not occur `before` it."""
    known = {template(line.message) for line in before}
    return [pattern for pattern in frequent(since, top=10_000) if pattern.template not in known][:top]
