"""`aoi recipe validate` checks what a start checks: template size and a model that runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.app.recipe_check import StartCheck
from aoi.cli import main
from aoi.errors import RecipeError
from aoi.recipe import load_recipe
from aoi.sources.synthetic.boardgen import golden_board

pytestmark = pytest.mark.fault

RecipeFactory = Callable[..., Path]


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["recipe", "validate", *args])
    return code, capsys.readouterr().out


def test_a_recipe_that_starts_is_valid(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_recipe()
    code, out = _validate(capsys, str(path))
    assert (code, out.split()[0]) == (0, "ok"), out


def test_a_template_of_another_size_than_the_frame_is_invalid(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_recipe(template=golden_board(128, 160, 11, "binary"))
    assert _validate(capsys, "--schema-only", str(path))[0] == 0, "fields and files are fine"
    code, out = _validate(capsys, str(path))
    assert code == 1
    assert out.startswith(f"INVALID {path}: template test-board.png must be 256x256 px"), out
    assert "got 160x128 px" in out


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "INVALID_ARGUMENT"),
        (b"not a model at all", "INVALID_PROTOBUF"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "INVALID_PROTOBUF"),
    ],
)
def test_a_model_that_is_no_onnx_model_is_invalid_and_named(
    make_recipe: RecipeFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    found: str,
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(content)
    path = make_recipe(model=model)
    assert _validate(capsys, "--schema-only", str(path))[0] == 0
    code, out = _validate(capsys, str(path), str(make_recipe(name="good")))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"INVALID {path}: model.path must name an ONNX model"), out
    assert f"{model} failed" in lines[0]
    assert found in lines[0]
    assert lines[-1].startswith("ok "), "the next file is still checked and reported"


def test_a_model_without_the_station_input_is_invalid(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("boards", TensorProto.FLOAT, ["n", 2, "h", "w"])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 2, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["boards"], ["probs"])], "g", [x], [y])
    model = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    loaded = load_recipe(make_recipe(model=model))
    check = StartCheck()
    for _ in range(2):  # the second answer comes from the cache, and is the same
        with pytest.raises(RecipeError) as info:
            check(loaded)
        assert str(info.value).startswith(f"{loaded.path}: model.path must name an ONNX model")
        assert "must be tensor(uint8), found tensor(float)" in str(info.value)
