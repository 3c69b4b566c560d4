"""A full disk, on a real tmpfs filled to the last byte (issue 12's fault matrix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aoi.cli import main

pytestmark = pytest.mark.fault


def test_starting_on_a_full_disk_is_one_line_naming_the_folder_and_its_free_space(
    full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = full_disk / "journal"
    station = tmp_path / "station.toml"
    station.write_text(
        "[storage]\n"
        f'journal_dir = "{journal.as_posix()}"\n'
        f'archive_dir = "{(full_disk / "archive").as_posix()}"\n'
        f'database_url = "sqlite:///{(full_disk / "aoi.db").as_posix()}"\n'
    )
    code = main(["run", "--cycles", "1", "--plc", "none", "--station", str(station)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert f"journal {journal} cannot be written" in lines[0]
    assert "free on its disk" in lines[0]
    assert "Traceback" not in err
