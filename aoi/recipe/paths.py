"""Paths inside a recipe: checked when the recipe is read, naming the field, before any file is
opened (a recipe loaded without its files, for the product-code lookup, already says what is
wrong with a path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

#: The longest file name (one path component) and path POSIX systems accept, in bytes.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095


def _usable_path(p: Path) -> Path:
    """A path the operating system can look up: no NUL byte, no over-long name or path.

    Checked here, not where the file is opened, so that a recipe loaded without its files (the
    product-code lookup) already says what is wrong with the path, naming the field.
    """
    text = str(p)
    nul = text.find("\x00")
    if nul >= 0:
        msg = f"must be a file path without NUL bytes, found one at character {nul}"
        raise ValueError(msg)
    encoded = os.fsencode(text)
    if len(encoded) > PATH_MAX_BYTES:
        msg = f"must be a path of at most {PATH_MAX_BYTES} bytes, found {len(encoded)} bytes"
        raise ValueError(msg)
    longest = max(p.parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > NAME_MAX_BYTES:
        msg = (
            f"must have file and folder names of at most {NAME_MAX_BYTES} bytes, found a name "
            f"of {len(os.fsencode(longest))} bytes"
        )
        raise ValueError(msg)
    return p


#: A path inside a recipe (relative to the recipe file) that the OS can look up.
RecipePath = Annotated[Path, AfterValidator(_usable_path)]
