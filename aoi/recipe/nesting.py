"""How deep a TOML text nests arrays and inline tables, found before Python's reader runs.

``tomllib`` recurses once per level and dies with RecursionError near Python's recursion limit
(a recipe nesting arrays 2,000 deep). :func:`check_nesting` refuses such a text with a
:class:`RecipeError` naming the file, the line and the key.
"""

from __future__ import annotations

from aoi.errors import RecipeError

#: How deep arrays and inline tables may nest. A recipe needs 3; Python's TOML reader recurses
#: per level and dies with RecursionError near 1,000, so deeper files are refused before it runs.
MAX_NESTING = 64


def check_nesting(text: str, source: str) -> None:
    """Refuse TOML whose arrays or inline tables nest deeper than :data:`MAX_NESTING`.

    A small scan that skips strings and comments; the error names the line and the key.
    """
    depth = 0
    line_no = 1
    line_start = 0
    key = ""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line_no += 1
            line_start = i + 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            end = _skip_string(text, i)
            # Multi-line strings span lines: keep the line number the error names right.
            newlines = text.count("\n", i, end)
            if newlines:
                line_no += newlines
                line_start = text.rindex("\n", i, end) + 1
            i = end
            continue
        elif c == "=" and depth == 0:
            key = text[line_start:i].strip()
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                msg = (
                    f"{source}: line {line_no}: {key or 'a value'} must nest arrays and inline "
                    f"tables at most {MAX_NESTING} deep, found more levels"
                )
                raise RecipeError(msg)
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1


def _skip_string(text: str, i: int) -> int:
    """The index just after the TOML string starting at ``text[i]`` (or the end of the text)."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        end = text.find(quote * 3, i + 3)
        while end >= 0 and quote == '"' and _escaped(text, end):
            end = text.find(quote * 3, end + 1)
        if end < 0:
            return len(text)
        end += 3
        # A multi-line string may end with one or two quotes before its closing three.
        for _ in range(2):
            if end < len(text) and text[end] == quote:
                end += 1
        return end
    j = i + 1
    while j < len(text) and text[j] != "\n":
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    return j


def _escaped(text: str, i: int) -> bool:
    """Whether ``text[i]`` follows an odd number of backslashes."""
    k = i
    while k > 0 and text[k - 1] == "\\":
        k -= 1
    return (i - k) % 2 == 1
