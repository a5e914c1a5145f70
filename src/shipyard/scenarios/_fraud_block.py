"""One fixed-size block of fraud events as numpy arrays, drawn from its own random stream.

A block depends only on (seed, block number) and the scenario settings, never on which
rows the caller asked for, so any chunking of a run yields exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.scenarios._fraud_domains import (
    CATEGORY_PROFILE,
    CHANNEL_ATM,
    CHANNEL_ECOM,
    COUNTRIES,
    CURRENCIES,
    INTEGER_COLUMNS,
    MERCHANT_CATEGORIES,
    MINOR_UNITS,
    RISKY_CATEGORIES,
    UNIT_INTERVAL_COLUMNS,
    USD_RATE,
)
from shipyard.scenarios._fraud_pools import Pools
from shipyard.scenarios._fraud_tables import CURRENCY_OF_COUNTRY, Tables
from shipyard.scenarios._fraud_text import MS_PER_DAY

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Column = npt.NDArray[Any]

BLOCK_SIZE = 65_536
_BLOCK_STREAM = 1  # SeedSequence tag that keeps block draws apart from pool draws
ATTACK_SHARE = 0.012  # rows drawn from the fraudster's behaviour, before labelling
FRAUD_INTERCEPT = -9.6  # calibrated so about 0.5 % of rows are labelled fraud
LABEL_JITTER_MS = 12 * 3_600_000
_RATE = np.array([USD_RATE[c] for c in CURRENCIES])
_MINOR_SCALE = np.array([10.0 ** MINOR_UNITS[c] for c in CURRENCIES])
_MEDIAN_USD = np.array([CATEGORY_PROFILE[m][1] for m in MERCHANT_CATEGORIES])
_RISKY_CODES = np.array([m in RISKY_CATEGORIES for m in MERCHANT_CATEGORIES])


@dataclass(frozen=True)
class BlockSettings:
    """What a block needs from the scenario, in epoch milliseconds and plain numbers."""

    seed: int
    start_ms: int
    events_per_day: int
    label_delay_ms: int
    bad_row_rate: float
    drift_start_ms: int | None
    numeric_drift: tuple[tuple[str, float], ...]
    has_drift: bool
    tables: Tables


@dataclass(frozen=True)
class Block:
    """Rows of events as codes and numbers; `kind` is -1 for clean rows."""

    indices: IntArray
    epoch_ms: IntArray
    card: IntArray
    merchant: IntArray
    category: IntArray
    channel: IntArray
    country: IntArray
    currency: IntArray
    numeric: dict[str, Column]
    is_fraud: npt.NDArray[np.int8]
    label_ms: IntArray
    kind: IntArray
    bad_choice: IntArray  # picks the column or form of a corruption

    def rows(self, start: int, stop: int) -> Block:
        """Rows [start, stop) of this block, as views."""
        cut = slice(start, stop)
        numeric = {name: values[cut] for name, values in self.numeric.items()}
        arrays = {
            name: getattr(self, name)[cut]
            for name in self.__dataclass_fields__
            if name != "numeric"
        }
        return replace(self, numeric=numeric, **arrays)


def _round_money(values: FloatArray, currency: IntArray) -> FloatArray:
    scale = _MINOR_SCALE[currency]
    rounded: FloatArray = np.maximum(np.round(values * scale), 1.0) / scale
    return rounded


def _drift_numeric(
    numeric: dict[str, Column], currency: IntArray, drifted: BoolArray, settings: BlockSettings
) -> None:
    for name, factor in settings.numeric_drift:
        values = numeric[name]
        shifted = values * factor
        if name in INTEGER_COLUMNS:
            shifted = np.round(shifted)
        elif name in {"amount", "avg_amount_30d"}:
            shifted = _round_money(shifted, currency)
        elif name in UNIT_INTERVAL_COLUMNS:
            shifted = np.minimum(np.round(shifted, 3), 1.0)
        else:
            shifted = np.round(shifted, 2)
        numeric[name] = np.where(drifted, shifted, values).astype(values.dtype)


def generate_block(settings: BlockSettings, pools: Pools, block_index: int) -> Block:
    """All BLOCK_SIZE rows of block number `block_index`."""
    streams = np.random.SeedSequence([settings.seed, _BLOCK_STREAM, block_index]).spawn(3)
    # Poisson and binomial draws use a varying amount of randomness per row, so they get
    # streams of their own: drifted rows must not reshuffle the draws of earlier rows.
    rng, rng_day, rng_hour = (np.random.default_rng(stream) for stream in streams)
    size = BLOCK_SIZE
    uniform = rng.random((14, size))
    normal = rng.standard_normal((6, size))
    indices = block_index * size + np.arange(size, dtype=np.int64)
    epoch_ms = settings.start_ms + indices * MS_PER_DAY // settings.events_per_day
    if settings.drift_start_ms is None:
        drifted = np.full(size, settings.has_drift)
    else:
        drifted = settings.has_drift & (epoch_ms >= settings.drift_start_ms)
    attack = uniform[0] < ATTACK_SHARE
    tables = settings.tables

    cards = pools.cards
    # Pick the cardholder's country first, so country drift can shift who is paying.
    usual_home = tables.home.draw(drifted.astype(np.int64), uniform[1])
    rank = (cards.home_count[usual_home] * uniform[13] ** 3).astype(np.int64)  # Zipf-like
    usual_card = cards.by_home[cards.home_start[usual_home] + rank]
    new_card = cards.new_cards[(len(cards.new_cards) * uniform[3]).astype(np.int64)]
    any_card = (len(cards.home_country) * uniform[3]).astype(np.int64)
    stolen_card = np.where(uniform[2] < 0.3, new_card, any_card)
    card = np.where(attack, stolen_card, usual_card)

    context = attack.astype(np.int64) + 2 * drifted  # which table: (attack, drifted)
    merchant = tables.merchant.draw(context, uniform[4])
    category = pools.merchants.category[merchant]
    channel = tables.channel.draw(category + len(MERCHANT_CATEGORIES) * context, uniform[5])
    home = cards.home_country[card]
    country = tables.country.draw(home + len(COUNTRIES) * context, uniform[6])
    currency = CURRENCY_OF_COUNTRY[country]
    is_foreign = country != home

    spend = cards.spend_usd[card]
    log_amount = np.log(_MEDIAN_USD[category]) + 0.5 * np.log(spend / 60.0) + 0.8 * normal[0]
    log_amount += attack * (1.2 + 0.5 * normal[1])
    amount = _round_money(np.exp(log_amount) * _RATE[currency], currency)
    avg_amount = _round_money(spend * np.exp(0.15 * normal[2]) * _RATE[currency], currency)

    count_24h = rng_day.poisson(cards.daily_rate[card] + 6.0 * attack)
    count_1h = rng_hour.binomial(count_24h, np.where(attack, 0.5, 0.1))
    log_distance = np.where(
        is_foreign, np.log(2500.0) + 0.8 * normal[3], np.log(6.0) + 1.2 * normal[3]
    )
    distance = np.round(np.exp(log_distance + 2.5 * (attack & ~is_foreign)), 1)

    # Kumaraswamy(a, b) by inverse CDF: one uniform per row, shape set per row.
    shape_a = np.where(attack, 1.2, np.where(channel == CHANNEL_ECOM, 3.0, 6.0))
    shape_b = np.where(attack, 3.0, 1.0)
    trust = np.round((1 - (1 - uniform[7]) ** (1 / shape_b)) ** (1 / shape_a), 3)

    ms_of_day = epoch_ms % MS_PER_DAY
    days = epoch_ms // MS_PER_DAY
    numeric: dict[str, Column] = {
        "amount": amount,
        "card_age_days": cards.age_days_at_start[card]
        + (epoch_ms - settings.start_ms) // MS_PER_DAY,
        "txn_count_1h": count_1h.astype(np.int64),
        "txn_count_24h": count_24h.astype(np.int64),
        "avg_amount_30d": avg_amount,
        "distance_from_home_km": distance,
        "is_foreign": is_foreign,
        "device_trust_score": trust,
        "hour_of_day": ms_of_day // 3_600_000,
        "is_weekend": (days + 3) % 7 >= 5,  # 1970-01-01 was a Thursday
        "merchant_risk_score": pools.merchants.risk[merchant],
        "prev_chargebacks": cards.chargebacks[card],
        "account_balance": np.round(cards.balance_usd[card] + 150.0 * normal[4], 2),
    }
    is_fraud = fraud_labels(numeric, category, channel, normal[5], uniform[8])
    _drift_numeric(numeric, currency, drifted, settings)
    label_ms = epoch_ms + settings.label_delay_ms + (LABEL_JITTER_MS * uniform[9]).astype(np.int64)

    is_bad = uniform[10] < settings.bad_row_rate
    kind = np.where(is_bad, (4 * uniform[11]).astype(np.int64), -1)
    return Block(
        indices=indices,
        epoch_ms=epoch_ms,
        card=card,
        merchant=merchant,
        category=category,
        channel=channel,
        country=country,
        currency=currency,
        numeric=numeric,
        is_fraud=is_fraud,
        label_ms=label_ms,
        kind=kind,
        bad_choice=(12 * uniform[12]).astype(np.int64),  # 12 splits evenly into 2, 3 and 4
    )


def fraud_logit(numeric: Mapping[str, Column], category: IntArray, channel: IntArray) -> FloatArray:
    """The noiseless fraud score of each row: higher means likelier fraud."""
    ratio = np.clip(np.log(numeric["amount"] / numeric["avg_amount_30d"]), -3.0, 5.0)
    trust = np.where(channel == CHANNEL_ATM, 0.5, numeric["device_trust_score"])
    hour = numeric["hour_of_day"]
    return (
        FRAUD_INTERCEPT
        + 1.0 * ratio
        + 3.0 * (1.0 - trust)
        + 0.35 * np.minimum(numeric["txn_count_1h"], 12)
        + 0.35 * np.log1p(numeric["distance_from_home_km"] / 20.0)
        + 1.0 * _RISKY_CODES[category]
        + 0.6 * numeric["is_foreign"]
        + 1.0 * (numeric["card_age_days"] < 30)
        + 0.6 * np.minimum(numeric["prev_chargebacks"], 3)
        + 2.5 * numeric["merchant_risk_score"]
        + 0.3 * (hour < 6)
    )


def fraud_labels(
    numeric: Mapping[str, Column],
    category: IntArray,
    channel: IntArray,
    noise: FloatArray,
    uniform: FloatArray,
) -> npt.NDArray[np.int8]:
    """Bernoulli draws from a noisy logistic rule over the row's fields."""
    logit = fraud_logit(numeric, category, channel) + 0.5 * noise
    return (uniform < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
