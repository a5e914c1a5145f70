"""Turn block rows into the event, label and corruption Arrow tables, applying bad rows."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.scenarios._fraud_block import Block, BoolArray, IntArray
from shipyard.scenarios._fraud_domains import (
    BAD_ROW_KINDS,
    CHANNEL_ATM,
    CHANNELS,
    CORRUPTED_SCHEMA,
    COUNTRIES,
    CURRENCIES,
    EVENT_SCHEMA,
    LABEL_SCHEMA,
    MALFORMED_TIMESTAMP,
    MERCHANT_CATEGORIES,
    NULL_REQUIRED_COLUMNS,
    UNKNOWN_CATEGORY_COLUMNS,
    UNKNOWN_CATEGORY_VALUES,
)
from shipyard.scenarios._fraud_pools import Pools
from shipyard.scenarios._fraud_text import event_ids, impossible_times, iso_times

_NULL_REQUIRED, _NEGATIVE_AMOUNT, _UNKNOWN_CATEGORY, _MALFORMED_TIMESTAMP = range(4)
_KIND_NAMES = tuple(BAD_ROW_KINDS)
_CURRENCY_NAMES = tuple(CURRENCIES)
# Each categorical domain carries one extra, out-of-domain value for `unknown_category` rows.
_CATEGORY_NAMES = (*MERCHANT_CATEGORIES, UNKNOWN_CATEGORY_VALUES[0])
_CHANNEL_NAMES = (*CHANNELS, UNKNOWN_CATEGORY_VALUES[1])
_COUNTRY_NAMES = (*COUNTRIES, UNKNOWN_CATEGORY_VALUES[2])
_CORRUPTED_COLUMNS = ("amount", "card_id", "merchant_category", "country", "channel", "event_time")


@functools.cache
def _names(values: tuple[str, ...]) -> pa.Array:
    """The Arrow array of a fixed list of names, built on first use: ``pa.array`` of a list
    imports pandas when it is installed (half a second), which every CLI command would pay."""
    return pa.array(values)


def _corrupted_column_codes(kind: IntArray, choice: IntArray) -> IntArray:
    """Index into _CORRUPTED_COLUMNS of the column each bad row breaks."""
    by_kind = np.zeros((len(BAD_ROW_KINDS), 12), dtype=np.int64)
    for value in range(12):
        by_kind[_NULL_REQUIRED, value] = _CORRUPTED_COLUMNS.index(
            NULL_REQUIRED_COLUMNS[value % len(NULL_REQUIRED_COLUMNS)]
        )
        by_kind[_UNKNOWN_CATEGORY, value] = _CORRUPTED_COLUMNS.index(
            UNKNOWN_CATEGORY_COLUMNS[value % len(UNKNOWN_CATEGORY_COLUMNS)]
        )
    by_kind[_NEGATIVE_AMOUNT] = _CORRUPTED_COLUMNS.index("amount")
    by_kind[_MALFORMED_TIMESTAMP] = _CORRUPTED_COLUMNS.index("event_time")
    return by_kind[kind, choice]


class _Damage:
    """Per-row masks saying which column each bad row breaks and how."""

    def __init__(self, block: Block) -> None:
        self.kind = block.kind
        self.column = np.full(len(block.kind), -1, dtype=np.int64)
        bad = block.kind >= 0
        self.column[bad] = _corrupted_column_codes(block.kind[bad], block.bad_choice[bad])

    def hits(self, kind: int, column: str) -> BoolArray:
        """Rows whose corruption is `kind` applied to `column`."""
        rows: BoolArray = (self.kind == kind) & (self.column == _CORRUPTED_COLUMNS.index(column))
        return rows


def _take(names: pa.Array, codes: IntArray, null: BoolArray | None = None) -> pa.Array:
    indices = pa.array(codes, mask=null if null is not None and null.any() else None)
    return names.take(indices)


def _event_times(block: Block, damage: _Damage) -> pa.Array:
    times = iso_times(block.epoch_ms)
    malformed = damage.kind == _MALFORMED_TIMESTAMP
    if not malformed.any():
        return times
    impossible = impossible_times(block.epoch_ms[malformed])
    spelled_out = pa.array(block.bad_choice[malformed] % 2 == 1)
    replacements = pc.if_else(spelled_out, MALFORMED_TIMESTAMP, impossible)
    return pc.replace_with_mask(times, pa.array(malformed), replacements)


def _column(values: npt.NDArray[np.generic], null: BoolArray | None = None) -> pa.Array:
    return pa.array(values, mask=null if null is not None and null.any() else None)


def block_tables(
    block: Block, pools: Pools, salt: int, first_row: int
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(events, labels, corrupted) for `block`; corrupted rows count from `first_row`."""
    damage = _Damage(block)
    ids = event_ids(block.indices, salt)
    n = block.numeric
    amount = np.where(damage.kind == _NEGATIVE_AMOUNT, -n["amount"], n["amount"])
    category = np.where(
        damage.hits(_UNKNOWN_CATEGORY, "merchant_category"),
        len(MERCHANT_CATEGORIES),
        block.category,
    )
    channel = np.where(damage.hits(_UNKNOWN_CATEGORY, "channel"), len(CHANNELS), block.channel)
    country = np.where(damage.hits(_UNKNOWN_CATEGORY, "country"), len(COUNTRIES), block.country)
    columns = [
        ids,
        _event_times(block, damage),
        _take(pools.cards.ids, block.card, damage.hits(_NULL_REQUIRED, "card_id")),
        _column(amount, damage.hits(_NULL_REQUIRED, "amount")),
        _take(_names(_CURRENCY_NAMES), block.currency),
        _take(pools.merchants.ids, block.merchant),
        _take(_names(_CATEGORY_NAMES), category, damage.hits(_NULL_REQUIRED, "merchant_category")),
        _take(_names(_COUNTRY_NAMES), country, damage.hits(_NULL_REQUIRED, "country")),
        _take(_names(_CHANNEL_NAMES), channel),
        *(_column(n[name]) for name in EVENT_SCHEMA.names[9:15]),
        _column(n["device_trust_score"], block.channel == CHANNEL_ATM),
        *(_column(n[name]) for name in EVENT_SCHEMA.names[16:]),
    ]
    events = pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
    labels = pa.Table.from_arrays(
        [ids, pa.array(block.is_fraud), iso_times(block.label_ms)], schema=LABEL_SCHEMA
    )
    bad_rows = np.flatnonzero(damage.kind >= 0)
    corrupted = pa.Table.from_arrays(
        [
            pa.array(bad_rows + first_row, type=pa.int64()),
            ids.take(pa.array(bad_rows)),
            _names(_KIND_NAMES).take(pa.array(damage.kind[bad_rows])),
            _names(_CORRUPTED_COLUMNS).take(pa.array(damage.column[bad_rows])),
        ],
        schema=CORRUPTED_SCHEMA,
    )
    return events, labels, corrupted
