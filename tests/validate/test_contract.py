from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.core.errors import ContractError, NotFoundError
from shipyard.validate import ColumnSpec, Contract, load_contract, packaged_contract

GOOD_YAML = """
name: payments
version: 3
max_bad_row_share: 0.1
min_rows: 2
columns:
  - {name: id, type: string, required: true}
  - {name: amount, type: float, required: true, min: 0, max: 1000}
  - {name: currency, type: string, allowed: [USD, EUR]}
  - {name: at, type: timestamp, timestamp_format: "%Y-%m-%dT%H:%M:%S%.3fZ"}
  - {name: card, type: string, sensitive: true}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_contract_reads_every_field(tmp_path: Path) -> None:
    contract = load_contract(write(tmp_path, GOOD_YAML))

    assert contract.name == "payments"
    assert contract.version == "3"
    assert contract.max_bad_row_share == 0.1
    assert contract.min_rows == 2
    assert contract.column_names == ("id", "amount", "currency", "at", "card")
    assert contract.column("amount") == ColumnSpec(
        name="amount", type="float", required=True, min=0, max=1000
    )
    assert contract.column("currency").allowed == ("USD", "EUR")
    assert contract.column("at").timestamp_format == "%Y-%m-%dT%H:%M:%S%.3fZ"
    assert contract.column("card").sensitive
    assert not contract.column("currency").required


def test_defaults_are_permissive() -> None:
    contract = Contract.from_dict(
        {"name": "c", "version": "1", "columns": [{"name": "a", "type": "int"}]}
    )

    assert contract.max_bad_row_share == 1.0
    assert contract.min_rows == 0
    column = contract.columns[0]
    assert (column.required, column.min, column.max, column.allowed) == (False, None, None, None)
    assert (column.timestamp_format, column.sensitive) == (None, False)


def test_to_dict_round_trips(tmp_path: Path) -> None:
    contract = load_contract(write(tmp_path, GOOD_YAML))

    data = contract.to_dict()

    assert data["columns"][2]["allowed"] == ["USD", "EUR"]
    assert Contract.from_dict(data) == contract


def test_contracts_are_frozen_and_hashable() -> None:
    column = ColumnSpec(name="a", type="int")

    with pytest.raises(ValidationError, match="frozen"):
        column.name = "b"
    assert hash(column) == hash(ColumnSpec(name="a", type="int"))


def test_unknown_column_lookup_names_known_columns() -> None:
    contract = Contract(name="c", version="1", columns=(ColumnSpec(name="a", type="int"),))

    with pytest.raises(NotFoundError, match="no column 'b'; known: a"):
        contract.column("b")


@pytest.mark.parametrize(
    ("column_yaml", "expected"),
    [
        ("{name: amount, type: float, min: abc}", r"columns\[1\]\.min: .*valid number.*'abc'"),
        ("{name: amount, type: integer}", r"columns\[1\]\.type: .*'int'.*got 'integer'"),
        (
            "{name: amount, type: int, min: 5, max: 1}",
            r"columns\[1\]\.max: max \(1\) is below min \(5\)",
        ),
        (
            "{name: amount, type: string, min: 0}",
            r"columns\[1\]\.min: min applies to int and float",
        ),
        (
            "{name: amount, type: int, allowed: [a]}",
            r"columns\[1\]\.allowed: allowed applies to string",
        ),
        (
            "{name: amount, type: string, allowed: []}",
            r"columns\[1\]\.allowed: .*at least one value",
        ),
        (
            "{name: amount, type: int, timestamp_format: '%Y'}",
            r"columns\[1\]\.timestamp_format: .*timestamp columns",
        ),
        (
            "{name: amount, type: timestamp, timestamp_format: 'YYYY'}",
            r"columns\[1\]\.timestamp_format: .*no strftime",
        ),
        ("{name: amount, type: int, colour: red}", r"columns\[1\]\.colour: unknown key"),
        ("{type: int}", r"columns\[1\]\.name: Field required"),
        ("{name: '', type: int}", r"columns\[1\]\.name: column name must not be empty"),
        ("{name: amount, type: float, min: .nan}", r"columns\[1\]\.min: min must be a number"),
        ("{name: _meta, type: int}", r"columns\[1\]\.name: .*reserved for metadata"),
        ("{name: amount, type: int, required: perhaps}", r"columns\[1\]\.required: .*boolean"),
        (
            "{name: amount, type: string, allowed: [a, null]}",
            r"columns\[1\]\.allowed\[1\]: .*string",
        ),
        (
            "{name: id, type: int}",
            r"columns: column name 'id' is declared twice \(columns\[0\] and columns\[1\]\)",
        ),
    ],
)
def test_bad_column_names_file_and_field(tmp_path: Path, column_yaml: str, expected: str) -> None:
    path = write(
        tmp_path,
        f"name: c\nversion: '1'\ncolumns:\n  - {{name: id, type: string}}\n  - {column_yaml}\n",
    )

    with pytest.raises(ContractError, match=expected) as caught:
        load_contract(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("top_yaml", "expected"),
    [
        ("max_bad_row_share: 1.5", r"max_bad_row_share: .*between 0 and 1, got 1.5"),
        ("min_rows: -1", r"min_rows: min_rows must be >= 0, got -1"),
        ("min_rows: many", r"min_rows: .*integer.*'many'"),
        ("owner: me", r"owner: unknown key"),
        ("name: ''", r"name: name must not be empty"),
    ],
)
def test_bad_top_level_field_is_named(tmp_path: Path, top_yaml: str, expected: str) -> None:
    path = write(
        tmp_path, f"name: c\nversion: '1'\ncolumns: [{{name: a, type: int}}]\n{top_yaml}\n"
    )

    with pytest.raises(ContractError, match=f"^{path}: {expected}"):
        load_contract(path)


def test_missing_top_level_fields_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "name: c\n")

    with pytest.raises(ContractError, match=r"2 problems: version: Field required; columns: Field"):
        load_contract(path)


def test_empty_column_list_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "name: c\nversion: '1'\ncolumns: []\n")

    with pytest.raises(ContractError, match="columns: a contract needs at least one column"):
        load_contract(path)


def test_columns_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "name: c\nversion: '1'\ncolumns: nope\n")

    with pytest.raises(ContractError, match="columns: Input should be a list, got 'nope'"):
        load_contract(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: c\ncolumns: [\n  {name: a\n")

    with pytest.raises(ContractError, match=rf"^{path}: not valid YAML at line \d+"):
        load_contract(path)


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")

    with pytest.raises(ContractError, match=rf"^{path}: a contract must be a mapping, got list"):
        load_contract(path)


def test_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ContractError, match=rf"^{path}: cannot read contract"):
        load_contract(path)


def test_direct_construction_raises_contract_error() -> None:
    with pytest.raises(ContractError, match=r"^ColumnSpec: max: max \(1\) is below min \(3\)$"):
        ColumnSpec(name="a", type="int", min=3, max=1)


def test_from_dict_names_its_source() -> None:
    with pytest.raises(ContractError, match=r"^api: columns\[0\]\.type"):
        Contract.from_dict(
            {"name": "c", "version": "1", "columns": [{"name": "a", "type": "text"}]}, source="api"
        )


def test_packaged_fraud_contract_matches_the_event_doc() -> None:
    contract = packaged_contract("fraud")

    assert contract.max_bad_row_share == 0.2
    assert len(contract.columns) == 21
    required = {c.name for c in contract.columns if c.required}
    assert required == {
        "event_id", "event_time", "card_id", "amount", "currency",
        "merchant_id", "merchant_category", "country", "channel",
    }  # fmt: skip
    assert [c.name for c in contract.columns if c.sensitive] == ["card_id"]
    assert contract.column("event_time").type == "timestamp"
    assert contract.column("event_time").timestamp_format == "%Y-%m-%dT%H:%M:%S%.3fZ"
    assert contract.column("amount").min == 0
    assert contract.column("channel").allowed == ("pos", "ecom", "atm")
    assert "NO" in (contract.column("country").allowed or ())
    assert len(contract.column("country").allowed or ()) == 30
    assert len(contract.column("merchant_category").allowed or ()) == 20
    assert "5411" in (contract.column("merchant_category").allowed or ())
    assert len(contract.column("currency").allowed or ()) == 8
    device = contract.column("device_trust_score")
    assert (device.min, device.max, device.required) == (0, 1, False)
    assert (contract.column("hour_of_day").min, contract.column("hour_of_day").max) == (0, 23)
    assert contract.column("account_balance").min is None


def test_unknown_packaged_contract_lists_known_ones() -> None:
    with pytest.raises(NotFoundError, match="no packaged contract 'churn'; known: fraud"):
        packaged_contract("churn")


def test_numbers_in_yaml_become_text_where_the_contract_wants_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: c\nversion: 2\ncolumns: [{name: mcc, type: string, allowed: [5411, '0742']}]\n",
    )

    contract = load_contract(path)

    assert contract.version == "2"
    assert contract.column("mcc").allowed == ("5411", "0742")


def test_packaged_contract_names_cannot_be_paths() -> None:
    with pytest.raises(NotFoundError, match="no packaged contract '../fraud'"):
        packaged_contract("../fraud")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 129])
def test_contract_names_must_be_safe_folder_names(name: str) -> None:
    with pytest.raises(ContractError, match="name"):
        Contract.from_dict(
            {"name": name, "version": "1", "columns": [{"name": "a", "type": "int"}]}
        )
