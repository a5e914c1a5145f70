from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli.baseline import baseline_command

FRAME = pl.DataFrame(
    {
        "amount": [1.5, 2.0, 3.25, 4.0] * 10,
        "items": [1, 2, 3, None] * 10,
        "channel": ["pos", "ecom", "pos", "atm"] * 10,
    }
)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("baseline")(baseline_command)

    @app.command()
    def other() -> None:
        """A second command, so `baseline` is addressed by name as in the real CLI."""

    return app


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), ["baseline", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_baseline_of_a_parquet_file(tmp_path: Path) -> None:
    data = tmp_path / "sample.parquet"
    FRAME.write_parquet(data)
    out = tmp_path / "baseline"

    code, stdout, stderr = _run(data, "--out", out)

    assert (code, stderr) == (0, "")
    constraints = json.loads((out / "constraints.json").read_text())
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["dataset"] == {"item_count": 40}
    assert [f["name"] for f in constraints["features"]] == ["amount", "items", "channel"]
    assert "Baseline of 40 rows and 3 columns: 1 Integral, 1 Fractional, 1 String" in stdout
    assert "required, >= 0" in stdout
    assert "3 allowed values" in stdout
    assert "5 constraints suggested." in stdout
    assert f"Wrote {out / 'statistics.json'}, {out / 'constraints.json'}" in stdout


def test_baseline_of_a_folder_of_parquet_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "day=1").mkdir(parents=True)
    FRAME.write_parquet(folder / "day=1" / "part-0.parquet")
    FRAME.write_parquet(folder / "part-1.parquet")
    (folder / "README.txt").write_text("not data")

    code, _, stderr = _run(folder, "-o", tmp_path / "out")

    assert (code, stderr) == (0, "")
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert statistics["dataset"] == {"item_count": 80}


def test_baseline_of_json_lines(tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl"
    FRAME.write_ndjson(data)

    code, stdout, stderr = _run(data, "--out", tmp_path / "out")

    assert (code, stderr) == (0, "")
    assert "Baseline of 40 rows and 3 columns" in stdout


def test_parquet_is_recognised_by_content_not_suffix(tmp_path: Path) -> None:
    data = tmp_path / "export.bin"
    FRAME.write_parquet(data)

    code, _, stderr = _run(data, "--out", tmp_path / "out")

    assert (code, stderr) == (0, "")


def _write_empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.parquet"
    FRAME.head(0).write_parquet(path)
    return path


def _write_garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.jsonl"
    path.write_text('{"a": 1}\n{not json\n')
    return path


def _make_folder(tmp_path: Path) -> Path:
    path = tmp_path / "folder"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda tmp: tmp / "missing.parquet", "no data at {data}; give a Parquet file"),
        (_make_folder, "{data}: folder holds no .parquet files"),
        (_write_garbage, "{data}: cannot read it as Parquet or JSON lines:"),
        (_write_empty, "cannot infer a baseline from 0 rows"),
    ],
)
def test_bad_data_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, make_data: Callable[[Path], Path], message: str
) -> None:
    data = make_data(tmp_path)

    code, stdout, stderr = _run(data, "--out", tmp_path / "out")

    assert (code, stdout) == (2, "")
    assert stderr.startswith("shipyard: " + message.format(data=data))
    assert stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "sample.parquet"
    FRAME.write_parquet(data)
    blocker = tmp_path / "taken"
    blocker.write_text("")

    code, stdout, stderr = _run(data, "--out", blocker)

    assert (code, stdout) == (2, "")
    assert stderr.startswith(f"shipyard: cannot write the baseline to {blocker}")
    assert stderr.count("\n") == 1


def test_out_is_required(tmp_path: Path) -> None:
    code, _, stderr = _run(tmp_path / "x.parquet")

    assert code == 2
    assert "--out" in stderr


def test_sensitive_columns_from_the_option_and_from_a_contract(tmp_path: Path) -> None:
    data = tmp_path / "sample.parquet"
    cards = ["card-0000001", "card-0000002"] * 20
    FRAME.with_columns(card_id=pl.Series(cards)).write_parquet(data)
    contract = tmp_path / "contract.yaml"
    contract.write_text(
        "name: c\nversion: 1\ncolumns:\n"
        "  - {name: card_id, type: string, sensitive: true}\n"
        "  - {name: absent, type: float, sensitive: true}\n",
        encoding="utf-8",
    )

    plain = _run(data, "--out", tmp_path / "plain")
    by_option = _run(data, "--out", tmp_path / "option", "--sensitive", "card_id")
    by_contract = _run(data, "--out", tmp_path / "contract", "--contract", contract)

    assert [code for code, _, _ in (plain, by_option, by_contract)] == [0, 0, 0]
    assert "card-0000001" in (tmp_path / "plain" / "statistics.json").read_text()
    for out in ("option", "contract"):
        for name in ("statistics.json", "constraints.json"):
            assert "card-0000" not in (tmp_path / out / name).read_text()


def test_a_sensitive_column_not_in_the_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "sample.parquet"
    FRAME.write_parquet(data)

    code, stdout, stderr = _run(data, "--out", tmp_path / "out", "--sensitive", "chanel")

    assert (code, stdout) == (2, "")
    assert stderr.startswith("shipyard: sensitive column(s) 'chanel' not in the data;")
    assert not (tmp_path / "out").exists()
