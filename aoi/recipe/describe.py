"""The recipe's fields in words: dotted name, type, default, description (``aoi recipe schema``,
the GUI form's tooltips)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from aoi.recipe.schema import ClassRule, MaskRegion, Recipe


@dataclass(frozen=True)
class FieldRow:
    """One recipe field as ``aoi recipe schema`` lists it."""

    field: str
    type: str
    default: str
    description: str


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "none")


def _table(annotation: Any) -> type[BaseModel] | None:
    """The settings table a field holds, set or optional (``SplitSettings | None``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        tables = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = tables[0] if len(tables) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _rows(model: type[BaseModel], prefix: str) -> list[FieldRow]:
    rows: list[FieldRow] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        default = info.default
        shown = "" if default is PydanticUndefined or isinstance(default, BaseModel) else default
        rows.append(
            FieldRow(dotted, _type_name(info.annotation), str(shown), info.description or "")
        )
        inner = _table(info.annotation)
        if inner is not None:
            rows += _rows(inner, dotted + ".")
        elif name == "classes":
            rows += _rows(ClassRule, "classes.CLASS.")
        elif name == "masks":
            rows += _rows(MaskRegion, "masks[].")
    return rows


@cache
def field_rows() -> tuple[FieldRow, ...]:
    """Every field of a recipe, nested settings flattened to dotted names."""
    return tuple(_rows(Recipe, ""))


def description(path: str) -> str:
    """The description of a dotted field (``classes.short.score`` reads ClassRule's ``score``)."""
    parts = path.split(".")
    if parts[0] == "classes" and len(parts) == 3:
        parts[1] = "CLASS"
    wanted = ".".join(parts)
    return next((r.description for r in field_rows() if r.field == wanted), "")
