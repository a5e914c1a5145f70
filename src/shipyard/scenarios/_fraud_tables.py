"""Sampling tables of the fraud scenario: O(1) categorical draws, tilted by drift."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shipyard.scenarios._fraud_domains import (
    ATM_CATEGORY,
    ATM_SHARE_OF_CASH,
    CATEGORY_PROFILE,
    CHANNELS,
    COUNTRIES,
    COUNTRY_PROFILE,
    CURRENCIES,
    MERCHANT_CATEGORIES,
)
from shipyard.scenarios._fraud_pools import build_pools

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DOMESTIC_SHARE = (0.93, 0.55)  # (normal, attack) chance a purchase is in the home country
_ATTACK_ECOM_BOOST = 0.6  # attacks move this share of pos purchases online
_ATTACK_RISKY_WEIGHT = 12.0
CURRENCY_OF_COUNTRY = np.array([CURRENCIES.index(c) for _, c in COUNTRY_PROFILE.values()])


def second_half_tilt(size: int, factor: float) -> FloatArray:
    """Weights that multiply the second half of a categorical domain by `factor`."""
    tilt = np.ones(size)
    tilt[size // 2 :] = factor
    return tilt


@dataclass(frozen=True)
class AliasTables:
    """Walker alias tables, one row per context, for O(1) categorical draws."""

    threshold: FloatArray  # (contexts, width): keep the drawn column below this
    alias: IntArray  # (contexts, width): the column to take otherwise

    @classmethod
    def from_weights(cls, weights: FloatArray) -> AliasTables:
        """Build the tables from non-negative weights, one distribution per row (Vose)."""
        n_rows, width = weights.shape
        threshold = np.ones((n_rows, width))
        alias = np.tile(np.arange(width, dtype=np.int64), (n_rows, 1))
        scaled = weights * (width / weights.sum(axis=1, keepdims=True))
        for row in range(n_rows):
            mass = scaled[row].tolist()
            small = [i for i, m in enumerate(mass) if m < 1.0]
            large = [i for i, m in enumerate(mass) if m >= 1.0]
            while small and large:
                low, high = small.pop(), large[-1]
                threshold[row, low], alias[row, low] = mass[low], high
                mass[high] -= 1.0 - mass[low]
                if mass[high] < 1.0:
                    small.append(large.pop())
        return cls(threshold=threshold, alias=alias)

    def draw(self, context: IntArray, uniform: FloatArray) -> IntArray:
        """One column per row from the distribution of its context row."""
        width = self.threshold.shape[1]
        scaled = uniform * width
        column = np.minimum(scaled.astype(np.int64), width - 1)
        flat = context * width + column
        keep = (scaled - column) < self.threshold.ravel()[flat]
        drawn: IntArray = np.where(keep, column, self.alias.ravel()[flat])
        return drawn


@dataclass(frozen=True)
class Tables:
    """Sampling tables, one context row per (condition, attack, drifted)."""

    home: AliasTables
    merchant: AliasTables
    channel: AliasTables
    country: AliasTables


@functools.lru_cache(maxsize=16)
def build_tables(seed: int, drift_items: tuple[tuple[str, float], ...]) -> Tables:
    """Sampling tables for normal and attack rows, before and after drift_start."""
    pools, drift = build_pools(seed), dict(drift_items)
    category_tilt = second_half_tilt(len(MERCHANT_CATEGORIES), drift.get("merchant_category", 1.0))
    channel_tilt = second_half_tilt(len(CHANNELS), drift.get("channel", 1.0))
    currency_tilt = second_half_tilt(len(CURRENCIES), drift.get("currency", 1.0))
    country_tilt = second_half_tilt(len(COUNTRIES), drift.get("country", 1.0))
    # A currency follows its country, so tilting the countries tilts the currencies exactly.
    country_tilt = country_tilt * currency_tilt[CURRENCY_OF_COUNTRY]

    m = pools.merchants
    attack_weight = np.where(m.is_risky_category, _ATTACK_RISKY_WEIGHT, 1.0) * (1 + 4 * m.risk)
    merchant = np.stack([m.popularity, m.popularity * attack_weight])
    merchant = np.concatenate([merchant, merchant * category_tilt[m.category]])

    by_category = np.zeros((2, len(MERCHANT_CATEGORIES), len(CHANNELS)))
    for code, mcc in enumerate(MERCHANT_CATEGORIES):
        ecom = CATEGORY_PROFILE[mcc][2]
        if mcc == ATM_CATEGORY:
            by_category[:, code] = [1 - ATM_SHARE_OF_CASH, 0.0, ATM_SHARE_OF_CASH]
            continue
        attack_ecom = ecom + (1 - ecom) * _ATTACK_ECOM_BOOST
        by_category[0, code] = [1 - ecom, ecom, 0.0]
        by_category[1, code] = [1 - attack_ecom, attack_ecom, 0.0]
    channel = by_category.reshape(-1, len(CHANNELS))
    channel = np.concatenate([channel, channel * channel_tilt])

    shares = np.array([share for share, _ in COUNTRY_PROFILE.values()])
    country = []
    for domestic in DOMESTIC_SHARE:
        abroad = (1 - domestic) * shares[None, :] / (1 - shares[:, None])
        np.fill_diagonal(abroad, domestic)
        country.append(abroad)
    stacked = np.concatenate(country)
    stacked = np.concatenate([stacked, stacked * country_tilt])
    home = pools.cards.home_count.astype(np.float64)
    return Tables(
        home=AliasTables.from_weights(np.stack([home, home * country_tilt])),
        merchant=AliasTables.from_weights(merchant),
        channel=AliasTables.from_weights(channel),
        country=AliasTables.from_weights(stacked),
    )
