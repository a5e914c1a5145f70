"""Domains and behavioural parameters of the fraud scenario (see docs/fraud-events.md)."""

from __future__ import annotations

import pyarrow as pa

CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK")
MERCHANT_CATEGORIES: tuple[str, ...] = (
    "5411", "5812", "5541", "5999", "5732", "5944", "7995", "4829", "5311", "5912",
    "4111", "4121", "5814", "5691", "7011", "4511", "5967", "6011", "5942", "5735",
)  # fmt: skip
COUNTRIES: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO",
    "DK", "FI", "PL", "PT", "IE", "AT", "CH", "CA", "MX", "BR",
    "AR", "JP", "KR", "CN", "IN", "AU", "NZ", "ZA", "NG", "AE",
)  # fmt: skip
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")
CHANNEL_ECOM = 1
CHANNEL_ATM = 2

BAD_ROW_KINDS: tuple[str, ...] = (
    "null_required",
    "negative_amount",
    "unknown_category",
    "malformed_timestamp",
)
# Which column each sub-kind of a bad row touches, in the order the generator draws them.
NULL_REQUIRED_COLUMNS: tuple[str, ...] = ("amount", "card_id", "merchant_category", "country")
UNKNOWN_CATEGORY_COLUMNS: tuple[str, ...] = ("merchant_category", "channel", "country")
UNKNOWN_CATEGORY_VALUES: tuple[str, ...] = ("0000", "fax", "XX")
MALFORMED_TIMESTAMP = "not-a-time"

EVENT_SCHEMA = pa.schema(
    [
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
)
EVENT_FIELDS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
LABEL_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("is_fraud", pa.int8()), ("label_time", pa.string())]
)
CORRUPTED_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("column", pa.string()),
    ]
)

# Numeric drift multiplies these; hour_of_day and the booleans follow event_time and country.
NUMERIC_DRIFT_COLUMNS: tuple[str, ...] = (
    "amount",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "avg_amount_30d",
    "distance_from_home_km",
    "device_trust_score",
    "merchant_risk_score",
    "prev_chargebacks",
    "account_balance",
)
CATEGORICAL_DRIFT_COLUMNS: tuple[str, ...] = ("currency", "merchant_category", "country", "channel")
INTEGER_COLUMNS: frozenset[str] = frozenset(
    {"card_age_days", "txn_count_1h", "txn_count_24h", "prev_chargebacks"}
)
UNIT_INTERVAL_COLUMNS: frozenset[str] = frozenset({"device_trust_score", "merchant_risk_score"})

RISKY_CATEGORIES: frozenset[str] = frozenset({"7995", "4829", "5944", "5967"})

# Per MCC: share of merchants, median purchase in USD, share of card-not-present sales.
CATEGORY_PROFILE: dict[str, tuple[float, float, float]] = {
    "5411": (0.16, 45.0, 0.05),
    "5812": (0.12, 35.0, 0.02),
    "5541": (0.08, 40.0, 0.0),
    "5999": (0.06, 30.0, 0.40),
    "5732": (0.03, 250.0, 0.50),
    "5944": (0.01, 400.0, 0.30),
    "7995": (0.01, 100.0, 0.90),
    "4829": (0.01, 300.0, 0.80),
    "5311": (0.06, 70.0, 0.30),
    "5912": (0.06, 25.0, 0.10),
    "4111": (0.05, 5.0, 0.20),
    "4121": (0.03, 20.0, 0.30),
    "5814": (0.12, 12.0, 0.10),
    "5691": (0.04, 80.0, 0.45),
    "7011": (0.02, 200.0, 0.60),
    "4511": (0.015, 450.0, 0.85),
    "5967": (0.01, 50.0, 0.95),
    "6011": (0.06, 120.0, 0.0),
    "5942": (0.02, 25.0, 0.60),
    "5735": (0.02, 15.0, 0.90),
}
# Cash withdrawals happen at ATMs; everything else splits between pos and ecom.
ATM_CATEGORY = "6011"
ATM_SHARE_OF_CASH = 0.97

# Per country: share of card holders living there and the currency purchases settle in.
# Countries whose own currency is outside the documented domain settle in EUR or USD.
COUNTRY_PROFILE: dict[str, tuple[float, str]] = {
    "US": (0.30, "USD"), "GB": (0.08, "GBP"), "DE": (0.07, "EUR"), "FR": (0.06, "EUR"),
    "ES": (0.04, "EUR"), "IT": (0.04, "EUR"), "NL": (0.025, "EUR"), "BE": (0.015, "EUR"),
    "SE": (0.015, "SEK"), "NO": (0.01, "EUR"), "DK": (0.01, "EUR"), "FI": (0.008, "EUR"),
    "PL": (0.015, "EUR"), "PT": (0.01, "EUR"), "IE": (0.01, "EUR"), "AT": (0.01, "EUR"),
    "CH": (0.012, "CHF"), "CA": (0.05, "CAD"), "MX": (0.03, "USD"), "BR": (0.03, "USD"),
    "AR": (0.01, "USD"), "JP": (0.04, "JPY"), "KR": (0.015, "USD"), "CN": (0.03, "USD"),
    "IN": (0.03, "USD"), "AU": (0.03, "AUD"), "NZ": (0.008, "AUD"), "ZA": (0.01, "USD"),
    "NG": (0.008, "USD"), "AE": (0.012, "USD"),
}  # fmt: skip
# Units of each currency per US dollar; JPY has no minor unit.
USD_RATE: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CAD": 1.36,
    "AUD": 1.52, "JPY": 150.0, "CHF": 0.88, "SEK": 10.5,
}  # fmt: skip
MINOR_UNITS: dict[str, int] = {currency: 0 if currency == "JPY" else 2 for currency in CURRENCIES}
