"""Mutated recipes never end in a traceback: each is loaded or refused with a RecipeError.

Issue 12: 2,000 mutated recipes through ``aoi recipe validate`` once gave 78 tracebacks
(RecursionError, OSError 36, NUL bytes, EIO), and one traceback stopped a multi-file validate.
A shipped recipe's TOML text is mutated by byte and line edits and by replacing values; every
mutant is loaded (without and with its files) and validated beside a good recipe, and validate
must report both files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aoi.app.recipe_cli import cmd_recipe_validate
from aoi.errors import AoiError
from aoi.recipe import load_recipe, recipes_dir

pytestmark = pytest.mark.fault

SHIPPED = recipes_dir() / "board-a-640.toml"


def _base_text() -> str:
    """The shipped recipe with its file paths made absolute, so a copy elsewhere finds them."""
    text = SHIPPED.read_text(encoding="utf-8")
    for rel in ("templates/board-a-640.png", "../models/aoi-defect-v2.onnx"):
        text = text.replace(f'"{rel}"', f'"{(SHIPPED.parent / rel).resolve().as_posix()}"')
    return text


BASE = _base_text()
BASE_LINES = BASE.splitlines()
VALUE_LINES = [i for i, line in enumerate(BASE_LINES) if re.match(r"^[\w.]+ = ", line)]

#: Values a careless edit or a corrupt file puts where a recipe value was (raw TOML text).
HOSTILE_VALUES = [
    '"a\\u0000b"',
    '"' + "x" * 300 + '"',
    '"' + "d/" * 2100 + 'm"',
    '"/proc/self/mem"',
    '"/dev/null"',
    '"/"',
    '"."',
    '""',
    "[" * 2000 + "]" * 2000,
    "{a = " * 2000 + "1" + "}" * 2000,
    "[" * 70 + "]" * 70,
    "[" * 64 + "]" * 64,
    "[" * 40 + "1" + "]" * 40,
    "nan",
    "inf",
    "-inf",
    "1e309",
    "99999999999999999999999999",
    "-1",
    "0",
    "true",
    "1979-05-27T07:32:00Z",
    "{}",
    "[]",
    '["a", 1]',
    '{ path = "x" }',
    '"' + "é" * 200 + '"',
    "'''\n" + "[" * 100 + "\n'''",
]

_byte_edit = st.tuples(
    st.sampled_from(["delete", "insert", "replace"]),
    st.floats(0, 1),
    st.integers(1, 8),
    st.binary(min_size=1, max_size=8)
    | st.sampled_from([b"[", b"{", b'"', b"\x00", b"\\", b"=", b"\n", b"\xff", b"'''", b"#"]),
)
_line_edit = st.tuples(st.sampled_from(["drop", "dup", "swap"]), st.floats(0, 1), st.floats(0, 1))
_value_edit = st.tuples(st.sampled_from(VALUE_LINES), st.sampled_from(HOSTILE_VALUES))
_append = st.sampled_from(HOSTILE_VALUES).map(lambda v: f"\nextra = {v}\n")


def _apply_line_edit(lines: list[str], edit: tuple[str, float, float]) -> list[str]:
    kind, a, b = edit
    if not lines:
        return lines
    i, j = int(a * (len(lines) - 1)), int(b * (len(lines) - 1))
    if kind == "drop":
        return lines[:i] + lines[i + 1 :]
    if kind == "dup":
        return [*lines[: i + 1], lines[i], *lines[i + 1 :]]
    lines = list(lines)
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def _apply_byte_edit(data: bytes, edit: tuple[str, float, int, bytes]) -> bytes:
    kind, at, length, chunk = edit
    i = int(at * len(data))
    if kind == "delete":
        return data[:i] + data[i + length :]
    if kind == "insert":
        return data[:i] + chunk + data[i:]
    return data[:i] + chunk + data[i + len(chunk) :]


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """The shipped recipe's text after one to three value, line and byte edits."""
    lines = list(BASE_LINES)
    for row, value in draw(st.lists(_value_edit, max_size=2)):
        key = lines[row].split(" = ", 1)[0] if " = " in lines[row] else "x"
        lines[row] = f"{key} = {value}"
    for edit in draw(st.lists(_line_edit, max_size=2)):
        lines = _apply_line_edit(lines, edit)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    for edit in draw(st.lists(_byte_edit, max_size=2)):
        data = _apply_byte_edit(data, edit)
    if draw(st.booleans()) and draw(st.booleans()):
        data += draw(_append).encode()
    return data


def _validate(paths: list[Path], *, schema_only: bool) -> tuple[int, list[str]]:
    """``aoi recipe validate`` on ``paths``: exit code and the first line reported per file."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cmd_recipe_validate(argparse.Namespace(paths=paths, schema_only=schema_only))
    reports = [line for line in out.getvalue().splitlines() if line.startswith(("ok ", "INVALID"))]
    return code, reports


@settings(
    max_examples=1000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=mutants())
def test_a_mutated_recipe_loads_or_is_refused_with_a_recipe_error(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "mutant.toml"
    path.write_bytes(data)
    outcomes = []
    for check_files in (False, True):
        error: AoiError | None = None
        try:
            load_recipe(path, check_files=check_files)
        except AoiError as err:
            error = err
        assert error is None or str(error).startswith(f"{path}: "), error
        outcomes.append(error is None)
    event("loads with its files" if outcomes[1] else "refused")
    code, reports = _validate([path, SHIPPED], schema_only=True)
    # A mutant that kept (or took) the shipped recipe's product code is a duplicate beside it.
    duplicates = [r for r in reports if "is claimed by" in r]
    assert all(r.startswith("INVALID product code") for r in duplicates), duplicates
    reports = [r for r in reports if r not in duplicates]
    assert len(reports) == 2, reports
    assert reports[0].startswith(f"ok      {path}" if outcomes[1] else f"INVALID {path}: ")
    assert reports[1].startswith(f"ok      {SHIPPED}"), "the good file after it is still checked"
    assert code == (0 if outcomes[1] and not duplicates else 1)
    assert outcomes[1] <= outcomes[0], "a recipe whose files load also loads without them"


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=mutants())
def test_validate_with_the_start_check_reports_every_mutant(tmp_path: Path, data: bytes) -> None:
    """The start check (template, model, one inference) after the schema: still no traceback."""
    path = tmp_path / "mutant.toml"
    path.write_bytes(data)
    code, reports = _validate([path, path], schema_only=False)
    assert len(reports) == 2, reports
    assert reports[0] == reports[1], "the same file is judged the same way twice"
    assert reports[0].startswith((f"ok      {path}", f"INVALID {path}: "))
    assert code == (0 if reports[0].startswith("ok") else 1)
    event("starts" if code == 0 else "refused")
