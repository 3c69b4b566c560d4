"""Words for operators: plurals, articles, and the schema's messages in the form's labels.

Qt-free. The schema names fields as the file does (``classes.open.review_score``); the screen
names them as the form does ("open · Review score ≥"). Internals (OpenCV's ``ecc.cpp`` lines, NaN)
go to the log; the screen says what happened and what to check.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from aoi.app.golden import NOT_ALIGNED
from aoi.types import ErrorKind, InspectionResult

log = logging.getLogger(__name__)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 false call``, ``3 false calls``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def with_article(word: str) -> str:
    """``an engineer``, ``an admin``, ``an operator``, ``a supervisor`` (lower case)."""
    w = word.lower()
    return f"{'an' if w[:1] in 'aeiou' else 'a'} {w}"


def error_for_operator(r: InspectionResult) -> str:
    """Why a board got ERROR, in an operator's words (the full text stays in the log)."""
    if r.error_kind is ErrorKind.REGISTRATION:
        log.info("registration failed: %s", r.error)
        return NOT_ALIGNED[0].upper() + NOT_ALIGNED[1:]
    return r.error.split("(")[0].strip()[:90]


_LINE = re.compile(r"^(?P<source>.*?): (?P<field>[A-Za-z_][\w.\[\]]*)(?:: | )(?P<text>.*)$")


def labelled(messages: list[str] | tuple[str, ...], labels: Mapping[str, str]) -> list[str]:
    """The schema's lines with the form's label in front of each field and the file left out:
    ``open: Review score ≥ must be < NG score ≥, got 0.7 >= 0.6``."""
    out = []
    for line in messages:
        m = _LINE.match(line)
        if m is None:
            out.append(line)
            continue
        field, text = m.group("field"), m.group("text")
        out.append(f"{labels.get(field, _fallback(field))}: {_rename(text, field, labels)}")
    return out


def _fallback(field: str) -> str:
    parts = field.split(".")
    if parts[0] == "classes" and len(parts) == 2:
        return parts[1].replace("_", " ")
    return field


def _rename(text: str, field: str, labels: Mapping[str, str]) -> str:
    """Field names inside a message (``review_score must be < score``) as their labels, in one
    pass (a label may contain another field's name); a whole table's value is not shown."""
    text = text.removesuffix(" (found {...})")
    leaves = {
        key[len(field) + 1 :]: label.split(" · ")[-1]
        for key, label in labels.items()
        if key.startswith(field + ".") and "." not in key[len(field) + 1 :]
    }
    if not leaves:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, leaves)) + r")\b")
    return pattern.sub(lambda m: leaves[m.group(1)], text)
