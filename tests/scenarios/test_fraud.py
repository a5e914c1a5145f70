from __future__ import annotations

import functools
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.core.errors import ConfigError
from shipyard.scenarios.fraud import (
    BAD_ROW_KINDS,
    BLOCK_SIZE,
    CHANNELS,
    CORRUPTED_SCHEMA,
    COUNTRIES,
    CURRENCIES,
    EVENT_FIELDS,
    EVENT_SCHEMA,
    LABEL_SCHEMA,
    MERCHANT_CATEGORIES,
    FraudScenario,
    GeneratedEvents,
    write_jsonl,
    write_labels,
    write_parquet,
)

# Copied from docs/fraud-events.md so a change to either side fails loudly.
DOC_CURRENCIES = "USD EUR GBP CAD AUD JPY CHF SEK".split()
DOC_MCCS = (
    "5411 5812 5541 5999 5732 5944 7995 4829 5311 5912 "
    "4111 4121 5814 5691 7011 4511 5967 6011 5942 5735"
).split()
DOC_COUNTRIES = (
    "US GB DE FR ES IT NL BE SE NO DK FI PL PT IE AT CH CA MX BR AR JP KR CN IN AU NZ ZA NG AE"
).split()
DOC_FIELDS = [
    ("event_id", pa.string()),
    ("event_time", pa.string()),
    ("card_id", pa.string()),
    ("amount", pa.float64()),
    ("currency", pa.string()),
    ("merchant_id", pa.string()),
    ("merchant_category", pa.string()),
    ("country", pa.string()),
    ("channel", pa.string()),
    ("card_age_days", pa.int64()),
    ("txn_count_1h", pa.int64()),
    ("txn_count_24h", pa.int64()),
    ("avg_amount_30d", pa.float64()),
    ("distance_from_home_km", pa.float64()),
    ("is_foreign", pa.bool_()),
    ("device_trust_score", pa.float64()),
    ("hour_of_day", pa.int64()),
    ("is_weekend", pa.bool_()),
    ("merchant_risk_score", pa.float64()),
    ("prev_chargebacks", pa.int64()),
    ("account_balance", pa.float64()),
]
REQUIRED = [
    "event_id",
    "event_time",
    "card_id",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "country",
    "channel",
]
ISO_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


def _violations(events: pa.Table) -> dict[str, np.ndarray[Any, Any]]:
    """Per documented rule, which rows break it; bad-row kinds are keys of their own."""
    df = pl.from_arrow(events)
    assert isinstance(df, pl.DataFrame)
    time_text = pl.col("event_time")
    parsed = time_text.str.strptime(pl.Datetime("ms"), "%Y-%m-%dT%H:%M:%S%.3fZ", strict=False)
    ok_time = time_text.str.contains(ISO_MS) & parsed.is_not_null()
    optional = [name for name in EVENT_FIELDS if name not in REQUIRED]
    rules = {
        "null_required": pl.any_horizontal([pl.col(c).is_null() for c in REQUIRED]),
        "negative_amount": pl.col("amount") < 0,
        "unknown_category": ~pl.col("merchant_category").is_in(DOC_MCCS)
        | ~pl.col("channel").is_in(["pos", "ecom", "atm"])
        | ~pl.col("country").is_in(DOC_COUNTRIES),
        "malformed_timestamp": ~ok_time,
        "event_id": ~pl.col("event_id").str.contains(r"^evt-[0-9a-f]{16}$"),
        "card_id": ~pl.col("card_id").str.contains(r"^card-\d{7}$"),
        "merchant_id": ~pl.col("merchant_id").str.contains(r"^m-\d{5}$"),
        "currency": ~pl.col("currency").is_in(DOC_CURRENCIES),
        "optional_null": pl.any_horizontal(
            [pl.col(c).is_null() for c in optional if c != "device_trust_score"]
        ),
        "non_negative": pl.any_horizontal(
            [
                pl.col(c) < 0
                for c in [
                    "card_age_days",
                    "txn_count_1h",
                    "txn_count_24h",
                    "avg_amount_30d",
                    "distance_from_home_km",
                    "prev_chargebacks",
                ]
            ]
        ),
        "unit_scores": ~pl.col("device_trust_score").is_between(0, 1)
        | ~pl.col("merchant_risk_score").is_between(0, 1),
        "atm_trust": (pl.col("channel") == "atm") & pl.col("device_trust_score").is_not_null()
        | pl.col("channel").is_in(["pos", "ecom"]) & pl.col("device_trust_score").is_null(),
        "hour": ok_time & (pl.col("hour_of_day") != parsed.dt.hour().cast(pl.Int64)),
        "weekend": ok_time & (pl.col("is_weekend") != (parsed.dt.weekday() >= 6)),
        "counts": pl.col("txn_count_1h") > pl.col("txn_count_24h"),
    }
    checked = df.select(**{name: rule.fill_null(False) for name, rule in rules.items()})
    return {name: checked[name].to_numpy() for name in rules}


def _jsonl(scenario: FraudScenario, n_events: int) -> bytes:
    stream = io.BytesIO()
    write_jsonl(scenario, n_events, stream)
    return stream.getvalue()


def test_domains_match_the_doc() -> None:
    assert list(CURRENCIES) == DOC_CURRENCIES
    assert list(MERCHANT_CATEGORIES) == DOC_MCCS
    assert list(COUNTRIES) == DOC_COUNTRIES
    assert CHANNELS == ("pos", "ecom", "atm")
    assert BAD_ROW_KINDS == (
        "null_required",
        "negative_amount",
        "unknown_category",
        "malformed_timestamp",
    )
    assert list(EVENT_FIELDS) == [name for name, _ in DOC_FIELDS]
    assert EVENT_SCHEMA == pa.schema(DOC_FIELDS)


def test_clean_rows_follow_every_documented_rule() -> None:
    batch = FraudScenario(seed=1).generate(20_000)
    assert batch.events.schema == EVENT_SCHEMA
    assert batch.labels.schema == LABEL_SCHEMA
    assert batch.corrupted.schema == CORRUPTED_SCHEMA
    assert batch.corrupted.num_rows == 0
    broken = {name: int(mask.sum()) for name, mask in _violations(batch.events).items()}
    assert broken == dict.fromkeys(broken, 0)
    df = pl.from_arrow(batch.events)
    assert isinstance(df, pl.DataFrame)
    assert df["event_id"].n_unique() == df.height
    assert set(df["channel"]) == set(CHANNELS)  # every channel actually occurs
    assert df["merchant_category"].n_unique() == len(MERCHANT_CATEGORIES)
    assert df["card_id"].n_unique() < df.height  # cards come back: a pool, not one per row


def test_is_foreign_follows_one_home_country_per_card() -> None:
    df = _frame(FraudScenario(seed=8).generate(50_000).events)
    homes = (
        df.filter(~pl.col("is_foreign")).group_by("card_id").agg(home=pl.col("country").unique())
    )
    assert homes["home"].list.len().max() == 1
    abroad = df.filter(pl.col("is_foreign")).join(
        homes.with_columns(pl.col("home").list.first()), on="card_id"
    )
    assert abroad.height > 0
    assert (abroad["country"] != abroad["home"]).all()
    assert abroad["distance_from_home_km"].median() > 500  # type: ignore[operator]


def test_event_ids_unique_across_blocks_and_labels_follow_events() -> None:
    batch = FraudScenario(seed=2, label_delay_days=3.0).generate(1_000, offset=BLOCK_SIZE - 500)
    ids = batch.events["event_id"]
    assert len(set(ids.to_pylist())) == 1_000
    assert batch.labels["event_id"].equals(ids)
    assert set(batch.labels["is_fraud"].to_pylist()) <= {0, 1}
    fmt = "%Y-%m-%dT%H:%M:%S.%f%z"
    for event, label in zip(
        batch.events["event_time"].to_pylist(), batch.labels["label_time"].to_pylist(), strict=True
    ):
        delay = datetime.strptime(label, fmt) - datetime.strptime(event, fmt)
        assert timedelta(days=3) <= delay < timedelta(days=3, hours=12)


def test_event_time_spacing_follows_events_per_day() -> None:
    batch = FraudScenario(events_per_day=24 * 3600).generate(3, offset=3600)
    assert batch.events["event_time"].to_pylist() == [
        "2026-11-01T01:00:00.000Z",
        "2026-11-01T01:00:01.000Z",
        "2026-11-01T01:00:02.000Z",
    ]


def test_same_seed_same_bytes_and_other_seed_other_data() -> None:
    first = _jsonl(FraudScenario(seed=5, bad_row_rate=0.1), 3_000)
    assert first == _jsonl(FraudScenario(seed=5, bad_row_rate=0.1), 3_000)
    other = _jsonl(FraudScenario(seed=6, bad_row_rate=0.1), 3_000)
    assert other != first
    assert set(first.splitlines()).isdisjoint(other.splitlines())


_CHUNKED = FraudScenario(seed=3, bad_row_rate=0.3, drift={"amount": 2.0, "channel": 3.0})


@functools.cache
def _one_big_generation() -> GeneratedEvents:
    return _CHUNKED.generate(2 * BLOCK_SIZE + 1)


@pytest.mark.parametrize(
    ("n_events", "offset"),
    [(1, 0), (37, 5), (50, BLOCK_SIZE - 20), (1_000, 2 * BLOCK_SIZE - 999), (1, 2 * BLOCK_SIZE)],
)
def test_chunk_equals_slice_of_one_big_generation(n_events: int, offset: int) -> None:
    big = _one_big_generation()
    chunk = _CHUNKED.generate(n_events, offset)
    assert chunk.events.equals(big.events.slice(offset, n_events))
    assert chunk.labels.equals(big.labels.slice(offset, n_events))
    rows = big.corrupted["row"].to_numpy()
    expected = big.corrupted.filter(pa.array((rows >= offset) & (rows < offset + n_events)))
    assert chunk.corrupted.drop_columns("row").equals(expected.drop_columns("row"))
    assert (chunk.corrupted["row"].to_numpy() + offset == expected["row"].to_numpy()).all()


def test_iter_chunks_concatenate_to_one_generation() -> None:
    scenario = FraudScenario(seed=4, bad_row_rate=0.05)
    chunks = list(scenario.iter_chunks(BLOCK_SIZE + 10, chunk_size=20_000))
    assert [c.events.num_rows for c in chunks] == [20_000, 20_000, 20_000, 5_546]
    whole = scenario.generate(BLOCK_SIZE + 10)
    assert pa.concat_tables(c.events for c in chunks).equals(whole.events)
    assert pa.concat_tables(c.labels for c in chunks).equals(whole.labels)


def test_zero_events_give_empty_tables_with_the_schemas() -> None:
    batch = FraudScenario().generate(0)
    assert batch == GeneratedEvents(
        EVENT_SCHEMA.empty_table(), LABEL_SCHEMA.empty_table(), CORRUPTED_SCHEMA.empty_table()
    )
    assert list(FraudScenario().iter_chunks(0)) == []


def test_bad_rows_have_exactly_their_one_reported_problem() -> None:
    batch = FraudScenario(seed=7, bad_row_rate=0.2).generate(20_000)
    bad = batch.corrupted
    assert 3_600 <= bad.num_rows <= 4_400
    kinds = bad["kind"].to_numpy(zero_copy_only=False)
    for kind in BAD_ROW_KINDS:
        assert 0.2 < np.mean(kinds == kind) < 0.3, kind
    rows = bad["row"].to_numpy()
    assert bad["event_id"].equals(batch.events["event_id"].take(pa.array(rows)))
    broken = _violations(batch.events)
    for name, mask in broken.items():
        expected = np.zeros(batch.events.num_rows, dtype=bool)
        if name in BAD_ROW_KINDS:
            expected[rows[kinds == name]] = True
        assert (mask == expected).all(), name
    events = batch.events.to_pylist()
    nulled = [
        (r, c)
        for r, k, c in zip(rows, kinds, bad["column"].to_pylist(), strict=True)
        if k == "null_required"
    ]
    assert all(events[row][column] is None for row, column in nulled)
    assert {column for _, column in nulled} == {"amount", "card_id", "merchant_category", "country"}


def test_fraud_rate_is_about_half_a_percent_and_learnable() -> None:
    batch = FraudScenario(seed=11).generate(200_000)
    is_fraud = batch.labels["is_fraud"].to_numpy()
    assert 0.004 <= is_fraud.mean() <= 0.006
    df = pl.from_arrow(batch.events)
    assert isinstance(df, pl.DataFrame)
    # A crude score over four public fields already concentrates the fraud.
    score = (
        np.log(df["amount"].to_numpy() / df["avg_amount_30d"].to_numpy())
        + 3 * (1 - df["device_trust_score"].fill_null(0.5).to_numpy())
        + 0.35 * np.minimum(df["txn_count_1h"].to_numpy(), 12)
        + df["is_foreign"].to_numpy()
    )
    top_percent = np.argsort(-score)[: len(score) // 100]
    assert is_fraud[top_percent].sum() / is_fraud.sum() > 0.2


def _drift_pair(drift: dict[str, float]) -> tuple[GeneratedEvents, GeneratedEvents]:
    """The same 40,000 rows without and with `drift`, which starts at row 10,000."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    settings: dict[str, Any] = {"seed": 9, "events_per_day": 24_000, "start": start}
    plain = FraudScenario(**settings).generate(40_000)
    drift_start = start + timedelta(hours=10)  # 1,000 events an hour
    shifted = FraudScenario(drift=drift, drift_start=drift_start, **settings).generate(40_000)
    return plain, shifted


def _frame(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def test_numeric_drift_multiplies_only_rows_after_drift_start() -> None:
    plain, shifted = _drift_pair({"amount": 2.0})
    before, after = _frame(plain.events), _frame(shifted.events)
    assert after.head(10_000).equals(before.head(10_000))
    ratio = float(after["amount"].slice(10_000).sum()) / float(before["amount"].slice(10_000).sum())
    assert ratio == pytest.approx(2.0, rel=0.01)
    assert after.drop("amount").equals(before.drop("amount"))
    assert shifted.labels.equals(plain.labels)  # the truth does not move with the inputs


def _second_half_odds(df: pl.DataFrame, column: str, domain: tuple[str, ...]) -> float:
    """Odds that a row after the drift start holds a value from the second half of `domain`."""
    share = df.slice(10_000)[column].is_in(list(domain[len(domain) // 2 :])).mean()
    assert isinstance(share, float)
    return share / (1 - share)


@pytest.mark.parametrize(
    ("column", "domain"),
    [("merchant_category", MERCHANT_CATEGORIES), ("country", COUNTRIES), ("currency", CURRENCIES)],
)
def test_categorical_drift_multiplies_the_odds_of_the_second_half(
    column: str, domain: tuple[str, ...]
) -> None:
    plain, shifted = _drift_pair({column: 3.0})
    before, after = _frame(plain.events), _frame(shifted.events)
    assert after.head(10_000).equals(before.head(10_000))
    ratio = _second_half_odds(after, column, domain) / _second_half_odds(before, column, domain)
    assert 2.4 < ratio < 3.8
    broken = {name: int(mask.sum()) for name, mask in _violations(shifted.events).items()}
    assert broken == dict.fromkeys(broken, 0)


def test_channel_drift_tilts_channels_within_each_merchant_category() -> None:
    plain, shifted = _drift_pair({"channel": 3.0})

    def odds_online(events: pa.Table) -> float:
        grocery = _frame(events).slice(10_000).filter(pl.col("merchant_category") == "5411")
        share = grocery["channel"].is_in(["ecom", "atm"]).mean()
        assert isinstance(share, float)
        return share / (1 - share)

    assert 2.0 < odds_online(shifted.events) / odds_online(plain.events) < 4.5
    assert _violations(shifted.events)["atm_trust"].sum() == 0


def test_drift_without_start_applies_to_every_row() -> None:
    plain = FraudScenario(seed=2).generate(2_000).events
    shifted = FraudScenario(seed=2, drift={"txn_count_24h": 3.0}).generate(2_000).events
    assert shifted["txn_count_24h"].to_pylist() == [
        round(3 * v) for v in plain["txn_count_24h"].to_pylist()
    ]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"bad_row_rate": 1.5}, "1.5"),
        ({"bad_row_rate": -0.1}, "-0.1"),
        ({"drift": {"nosuchcol": 2.0}}, "nosuchcol"),
        ({"drift": {"hour_of_day": 2.0}}, "hour_of_day"),
        ({"drift": {"amount": 0.0}}, "amount"),
        ({"drift": {"amount": float("nan")}}, "nan"),
        ({"seed": -1}, "-1"),
        ({"events_per_day": 0}, "0"),
        ({"label_delay_days": -2}, "-2"),
        ({"start": datetime(2026, 11, 1)}, "2026-11-01T00:00:00"),
        ({"drift_start": datetime(2026, 11, 1)}, "naive"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        FraudScenario(**settings)


def test_bad_generate_arguments_fail_before_any_work() -> None:
    scenario = FraudScenario()
    with pytest.raises(ConfigError, match="-5"):
        scenario.generate(-5)
    with pytest.raises(ConfigError, match="offset"):
        scenario.generate(5, offset=-1)
    with pytest.raises(ConfigError, match="chunk_size"):
        scenario.iter_chunks(10, chunk_size=0)


def test_drift_mapping_is_copied_and_read_only() -> None:
    drift = {"amount": 2.0}
    scenario = FraudScenario(drift=drift)
    drift["amount"] = 5.0
    assert scenario.drift == {"amount": 2.0}
    with pytest.raises(TypeError):
        scenario.drift["amount"] = 3.0  # type: ignore[index]


def test_jsonl_round_trips_to_the_arrow_values() -> None:
    scenario = FraudScenario(seed=12, bad_row_rate=0.3)
    batch = scenario.generate(3_000)
    lines = _jsonl(scenario, 3_000).splitlines()
    assert [json.loads(line) for line in lines] == batch.events.to_pylist()
    assert b'"is_foreign":false' in lines[0] or b'"is_foreign":true' in lines[0]
    assert any(b'"device_trust_score":null' in line for line in lines)


def test_parquet_and_label_writers(tmp_path: Path) -> None:
    scenario = FraudScenario(seed=13, bad_row_rate=0.1)
    batch = scenario.generate(5_000)
    seen: list[int] = []
    events_path, labels_path = tmp_path / "events.parquet", tmp_path / "labels.jsonl"
    write_parquet(
        scenario, 5_000, events_path, labels=labels_path, chunk_size=2_000, on_chunk=seen.append
    )
    assert seen == [2_000, 2_000, 1_000]
    assert pq.read_table(events_path).equals(batch.events)
    lines = labels_path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == batch.labels.to_pylist()
    write_labels(scenario, 5_000, tmp_path / "labels.parquet")
    assert pq.read_table(tmp_path / "labels.parquet").equals(batch.labels)
    write_labels(scenario, 0, tmp_path / "none.parquet")
    assert pq.read_table(tmp_path / "none.parquet").schema == LABEL_SCHEMA
