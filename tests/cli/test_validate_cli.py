from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli.validate import validate_app

CONTRACT_YAML = """
name: pay
version: 1
max_bad_row_share: 0.3
columns:
  - {name: id, type: string, required: true, unique: true}
  - {name: amount, type: float, min: 0}
"""


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    app = typer.Typer()
    app.add_typer(validate_app, name="validate")
    runner = CliRunner()
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")

    def run(*args: str, contract_path: Path = contract):  # type: ignore[no-untyped-def]
        argv = ["validate", "run", "--contract", str(contract_path), *args]
        return runner.invoke(app, argv, env={"SHIPYARD_HOME": str(tmp_path / "home")})

    return run


def data(tmp_path: Path, amounts: list[float]) -> Path:
    path = tmp_path / "in.parquet"
    ids = [f"e{i}" for i in range(len(amounts))]
    pl.DataFrame({"id": ids, "amount": amounts}).write_parquet(path)
    return path


def test_a_passing_batch_exits_0_and_summarises(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report, html = tmp_path / "r.json", tmp_path / "r.html"

    result = invoke(
        str(data(tmp_path, [1, 2, 3, -1])), "--report", str(report), "--html", str(html)
    )

    assert result.exit_code == 0, result.output
    assert "PASSED pay@1" in result.stdout
    assert "4 rows in, 3 valid, 1 quarantined" in result.stdout
    assert "amount:min 1" in result.stdout
    assert "row_count" in result.stdout and "curated: file://" in result.stdout
    assert report.is_file() and html.is_file()


def test_a_failing_batch_exits_1(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke(str(data(tmp_path, [-1, -2, 3])))

    assert result.exit_code == 1
    assert "FAILED pay@1" in result.stdout
    assert "exceeds max_bad_row_share 0.3" in result.stdout


def test_truncated_parquet_exits_2_with_one_line(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = data(tmp_path, [1.0])
    path.write_bytes(path.read_bytes()[:-30])

    result = invoke(str(path))

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"shipyard: {path}: not readable as Parquet")


def test_a_bad_contract_exits_2_with_one_line(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\ncolumns:\n  - {name: a, type: int, pattern: '['}\n")

    result = invoke(str(data(tmp_path, [1.0])), contract_path=bad)

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"shipyard: {bad}: columns[0].pattern: pattern applies to string columns, not int"
    )


def test_usage_errors_exit_2(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert invoke(str(data(tmp_path, [1.0])), "--engine", "duck").exit_code == 2
    assert invoke(str(tmp_path / "missing.parquet")).exit_code == 2
