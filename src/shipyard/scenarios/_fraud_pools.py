"""The fixed populations a fraud scenario draws from: cards and merchants, one set per seed."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shipyard.scenarios._fraud_domains import (
    CATEGORY_PROFILE,
    COUNTRY_PROFILE,
    MERCHANT_CATEGORIES,
    RISKY_CATEGORIES,
)
from shipyard.scenarios._fraud_text import digit_codes

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

N_CARDS = 200_000
N_MERCHANTS = 20_000
NEW_CARD_MAX_AGE_DAYS = 45
_POOL_STREAM = 0  # SeedSequence tag that keeps pool draws apart from per-block draws


@dataclass(frozen=True)
class CardPool:
    """Card holders, ordered from most to least active (row 0 transacts the most)."""

    ids: pa.StringArray
    home_country: IntArray
    age_days_at_start: IntArray
    spend_usd: FloatArray  # typical purchase size, the basis of avg_amount_30d
    daily_rate: FloatArray  # expected transactions per day
    chargebacks: IntArray
    balance_usd: FloatArray
    new_cards: IntArray  # row numbers of cards younger than NEW_CARD_MAX_AGE_DAYS
    by_home: IntArray  # row numbers grouped by home country, most active first in each group
    home_start: IntArray  # where each home country's group starts in by_home
    home_count: IntArray  # cards per home country; purchases per country follow it


@dataclass(frozen=True)
class MerchantPool:
    """Merchants, each with one fixed category and risk score."""

    ids: pa.StringArray
    category: IntArray
    risk: FloatArray
    popularity: FloatArray
    is_risky_category: BoolArray


@dataclass(frozen=True)
class Pools:
    """Everything about a scenario that does not change from row to row."""

    cards: CardPool
    merchants: MerchantPool


def _distinct_numbers(rng: np.random.Generator, count: int, modulus: int) -> IntArray:
    # An affine map with a multiplier coprime to 10**k is a permutation: ids never collide.
    multiplier = 7_654_321 % modulus or 7
    shift = int(rng.integers(modulus))
    return (np.arange(count, dtype=np.int64) * multiplier + shift) % modulus


def _card_pool(rng: np.random.Generator) -> CardPool:
    shares = np.array([share for share, _ in COUNTRY_PROFILE.values()])
    home = rng.choice(len(shares), size=N_CARDS, p=shares / shares.sum())
    is_new = rng.random(N_CARDS) < 0.08
    old_age = np.exp(np.log(700.0) + 0.7 * rng.standard_normal(N_CARDS))
    new_age = rng.integers(0, NEW_CARD_MAX_AGE_DAYS + 1, N_CARDS)
    age = np.where(is_new, new_age, np.maximum(old_age, NEW_CARD_MAX_AGE_DAYS + 1)).astype(np.int64)
    by_home = np.argsort(home, kind="stable").astype(np.int64)
    home_count = np.bincount(home, minlength=len(shares)).astype(np.int64)
    home_start = np.concatenate([[0], np.cumsum(home_count)[:-1]]).astype(np.int64)
    many_chargebacks = rng.random(N_CARDS) < 0.01
    chargebacks = rng.poisson(np.where(many_chargebacks, 2.5, 0.04)).astype(np.int64)
    return CardPool(
        ids=digit_codes("card-", _distinct_numbers(rng, N_CARDS, 10_000_000), 7),
        home_country=home.astype(np.int64),
        age_days_at_start=age,
        spend_usd=np.exp(np.log(60.0) + 0.6 * rng.standard_normal(N_CARDS)),
        daily_rate=np.exp(np.log(2.0) + 0.6 * rng.standard_normal(N_CARDS)),
        chargebacks=chargebacks,
        balance_usd=2500.0 + 3500.0 * rng.standard_normal(N_CARDS),
        new_cards=np.flatnonzero(age <= NEW_CARD_MAX_AGE_DAYS).astype(np.int64),
        by_home=by_home,
        home_start=home_start,
        home_count=home_count,
    )


def _merchant_pool(rng: np.random.Generator) -> MerchantPool:
    shares = np.array([CATEGORY_PROFILE[mcc][0] for mcc in MERCHANT_CATEGORIES])
    category = rng.choice(len(shares), size=N_MERCHANTS, p=shares / shares.sum())
    risky = np.isin(category, [MERCHANT_CATEGORIES.index(mcc) for mcc in RISKY_CATEGORIES])
    risk = np.where(risky, rng.beta(3.0, 5.0, N_MERCHANTS), rng.beta(1.5, 12.0, N_MERCHANTS)).round(
        3
    )
    return MerchantPool(
        ids=digit_codes("m-", _distinct_numbers(rng, N_MERCHANTS, 100_000), 5),
        category=category.astype(np.int64),
        risk=risk,
        popularity=np.exp(rng.standard_normal(N_MERCHANTS)),
        is_risky_category=risky,
    )


@functools.lru_cache(maxsize=4)
def build_pools(seed: int) -> Pools:
    """The card and merchant populations for `seed` (cached: every block of a run shares them)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _POOL_STREAM]))
    return Pools(cards=_card_pool(rng), merchants=_merchant_pool(rng))
