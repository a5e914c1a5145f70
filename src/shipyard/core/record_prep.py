"""Feature preparation of a few events given as JSON objects, without a polars frame.

Building a frame costs about a millisecond whatever its size, many times what scoring a
request's few events costs, so serving prepares JSON event objects here: same matrix, same
unseen counts as :meth:`FeaturePrep.transform` on the frame the codecs would build from them
(tests/serve/test_records_prep.py proves it bit for bit). Anything unusual (a value of another
type, an integer beyond int64, a field no event sends) is declined, and the frame path refuses
it with its message.

The usual body, an array of event objects with every field of its declared type, is decoded
by msgspec straight into typed structs (:meth:`RecordPrep.prepare_json`): unknown fields are
skipped unread and the types are checked while parsing, which takes a third off what decoding
and preparing 64 events cost. Any body it declines takes the generic path above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain, cycle, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any

import msgspec
import numpy as np

Columns = Mapping[str, np.ndarray]
Prepared = tuple[np.ndarray, dict[str, int]]  # float32 matrix, unseen values per column


def _ln(values: np.ndarray) -> np.ndarray:
    # math.log, not np.log: polars' log is libm's, and numpy's SIMD log differs in the last bit.
    try:
        return np.array(list(map(math.log, values.tolist())), dtype=np.float64)
    except ValueError:  # log of 0 or less, which polars answers with -inf or NaN
        logs = [math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan) for v in values]
        return np.array(logs, dtype=np.float64)


# The twins of features.DERIVED_FEATURES over float64 columns (null as NaN); a derived feature
# without a twin sends every request down the frame path.
DERIVED_ARRAYS: dict[str, Callable[[Columns], np.ndarray]] = {
    "log_amount": lambda c: _ln(np.maximum(c["amount"], 0.0) + 1.0),
    "amount_to_avg_ratio": lambda c: c["amount"] / (c["avg_amount_30d"] + 1.0),
    "txn_velocity_ratio": lambda c: (c["txn_count_1h"] + 1.0) / (c["txn_count_24h"] + 1.0),
}
_INT64 = (-(2**63), 2**63 - 1)
_NONE = type(None)
_PLAIN = {"float": frozenset({float, int}), "bool": frozenset({bool}), "string": frozenset({str})}
_NULLABLE = {kind: types | {_NONE} for kind, types in _PLAIN.items()}
_ABSENT = object()


class RecordPrep:
    """A fitted prep's plan for event objects: which fields to read, of which kind, and the
    code of each category."""

    def __init__(
        self,
        inputs: Mapping[str, str],
        feature_names: Sequence[str],
        categories: Mapping[str, Sequence[str]],
        derived: Sequence[str],
    ) -> None:
        self.names = list(inputs)
        self.kinds = dict(inputs)
        self.feature_names = list(feature_names)
        self.derived = {name: DERIVED_ARRAYS[name] for name in derived}
        self.codes = {
            column: {value: float(code) for code, value in enumerate(values)}
            for column, values in categories.items()
        }
        by_kind = {kind: [n for n in self.names if self.kinds[n] == kind] for kind in _PLAIN}
        self.by_kind = by_kind
        self.getters = {kind: _getter(itemgetter, names) for kind, names in by_kind.items()}
        # Where each kind's block of columns lands in the matrix: one copy per kind, a slice
        # when the block is a run of the matrix's columns in the same order (the usual case).
        position = {name: index for index, name in enumerate(self.feature_names)}
        self.places: dict[str, slice | tuple[np.ndarray, np.ndarray]] = {}
        for kind, names in by_kind.items():
            targets = [position[n] for n in names if n in position]
            run = range(targets[0], targets[0] + len(names)) if targets else None
            if run is not None and targets == list(run):
                self.places[kind] = slice(run.start, run.stop)
            else:
                self.places[kind] = (
                    np.array([i for i, n in enumerate(names) if n in position], dtype=np.intp),
                    np.array(targets, dtype=np.intp),
                )
        self.derived_places = [(position[name], twin) for name, twin in self.derived.items()]
        self.float_index = {name: i for i, name in enumerate(by_kind["float"])}
        # One code table per string field, in the order of a row's string values.
        self.tables = tuple(self.codes[name] for name in by_kind["string"])
        self._json = _TypedEvents(by_kind)

    def prepare_json(self, body: bytes) -> Prepared | None:
        """The events of a JSON body that is an array of event objects, each with every field
        of its kind (or null); None for any other body.

        A single object is left to :meth:`prepare`: it may be an MLflow envelope
        (``{"instances": [...]}``), which only the codecs know.
        """
        events = self._json.decode(body)
        if not events:
            return None
        count = len(events)
        numeric = self._json.numeric
        # Floats then booleans, in one block: the typed decoder let nothing else through.
        values = np.array(list(chain.from_iterable(map(numeric, events))), dtype=np.float64)
        values = values.reshape(count, self._json.width)
        # An integer beyond int64 came through as a float (the generic path declines it), a
        # literal beyond float64 as inf: both are left to the generic path. Nulls are NaN.
        if np.fmax.reduce(np.abs(values), axis=None, initial=0.0) >= 2.0**63:
            return None
        split = len(self.by_kind["float"])
        blocks = {"float": values[:, :split], "bool": values[:, split:]}
        unseen: dict[str, int] = {}
        names = self.by_kind["string"]
        if names:
            flat = list(chain.from_iterable(map(self._json.strings, events)))
            blocks["string"], unseen = self._string_block(names, flat, None in flat, count)
        present = {kind: block for kind, block in blocks.items() if self.by_kind[kind]}
        return self._matrix(present, count), unseen

    @staticmethod
    def supports(derived: Sequence[str]) -> bool:
        return all(name in DERIVED_ARRAYS for name in derived)

    def prepare(self, records: Sequence[Mapping[str, Any]]) -> Prepared | None:
        if not records:
            return None
        try:
            return self._dense(records)
        except (KeyError, OverflowError, _Sparse):
            return self._general(records)

    def _dense(self, records: Sequence[Mapping[str, Any]]) -> Prepared | None:
        """Every event sends every field: a few C-level passes over each kind's values."""
        blocks: dict[str, np.ndarray] = {}
        unseen: dict[str, int] = {}
        count = len(records)
        for kind, names in self.by_kind.items():
            if not names:
                continue
            flat = list(chain.from_iterable(map(self.getters[kind], records)))
            found = set(map(type, flat))
            if not found <= _NULLABLE[kind]:
                raise _Sparse  # other types: the general path declines them
            if kind == "string":
                blocks[kind], unseen = self._string_block(names, flat, _NONE in found, count)
                continue
            if _NONE in found:
                nulls = flat.count(None)
                block = np.array(flat, dtype=np.float64)  # None becomes NaN
            else:
                nulls = 0
                block = np.fromiter(flat, dtype=np.float64, count=len(flat))
            block = block.reshape(count, len(names))
            # Beyond int64 (the general path declines it) or not finite: let it decide.
            if int in found and np.fmax.reduce(np.abs(block), axis=None) >= 2.0**63:
                raise _Sparse
            if kind == "float" and np.count_nonzero(~np.isfinite(block)) != nulls:
                raise _Sparse
            blocks[kind] = block
        return self._matrix(blocks, count), unseen

    def _string_block(
        self, names: list[str], flat: list[Any], has_null: bool, count: int
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Codes of row-major string values (NaN: null or unseen), and unseen values per
        field."""
        found = map(dict.get, cycle(self.tables), flat, repeat(math.nan))
        codes = np.fromiter(found, dtype=np.float64, count=len(flat)).reshape(count, len(names))
        missing = np.count_nonzero(np.isnan(codes), axis=0)
        if has_null:
            nulls = np.fromiter(map(is_, flat, repeat(None)), dtype=bool, count=len(flat))
            missing = missing - np.count_nonzero(nulls.reshape(count, len(names)), axis=0)
        return codes, dict(zip(names, missing.tolist(), strict=True))

    def _general(self, records: Sequence[Mapping[str, Any]]) -> Prepared | None:
        """Nulls, fields some events leave out; None for anything the frame path refuses."""
        columns: dict[str, np.ndarray] = {}
        unseen: dict[str, int] = {}
        for name in self.names:
            kind = self.kinds[name]
            values = [r.get(name, _ABSENT) for r in records]
            found = set(map(type, values))
            if object in found:
                if found == {object}:
                    return None  # no event sends it: the frame path names the missing field
                values = [None if v is _ABSENT else v for v in values]
                found = (found - {object}) | {_NONE}
            if not found <= _NULLABLE[kind]:
                return None
            if kind == "string":
                columns[name], unseen[name] = self._codes(name, values)
                continue
            if int in found:
                whole = [v for v in values if type(v) is int]
                if min(whole) < _INT64[0] or max(whole) > _INT64[1]:
                    return None
            nulls = values.count(None) if _NONE in found else 0
            if nulls:
                values = [math.nan if v is None else v for v in values]
            column = np.array(values, dtype=np.float64)
            if kind == "float" and np.count_nonzero(~np.isfinite(column)) != nulls:
                return None
            columns[name] = column
        blocks = {
            kind: np.column_stack([columns[n] for n in names])
            for kind, names in self.by_kind.items()
            if names
        }
        return self._matrix(blocks, len(records)), unseen

    def _codes(self, name: str, values: list[Any] | tuple[Any, ...]) -> tuple[np.ndarray, int]:
        found = map(self.codes[name].get, values, repeat(math.nan))
        codes = np.fromiter(found, dtype=np.float64, count=len(values))
        return codes, int(np.count_nonzero(np.isnan(codes))) - values.count(None)

    def _matrix(self, blocks: dict[str, np.ndarray], rows: int) -> np.ndarray:
        """The float32 matrix from each kind's (rows, fields) block of float64 columns."""
        matrix = np.empty((rows, len(self.feature_names)), dtype=np.float32)
        # Overflow to inf (a value beyond float32) and x/0 are expected, as in transform().
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            for kind, block in blocks.items():
                place = self.places[kind]
                if isinstance(place, slice):
                    matrix[:, place] = block
                else:
                    matrix[:, place[1]] = block[:, place[0]]
            if self.derived_places:
                floats = blocks["float"]
                columns = _Columns(floats, self.float_index)
                for position, twin in self.derived_places:
                    matrix[:, position] = twin(columns)
        matrix[~np.isfinite(matrix)] = np.nan
        return matrix


class _Columns(Mapping[str, np.ndarray]):
    """The float block's columns by name, taken only when a derived feature asks."""

    __slots__ = ("_block", "_index")

    def __init__(self, block: np.ndarray, index: dict[str, int]) -> None:
        self._block = block
        self._index = index

    def __getitem__(self, name: str) -> np.ndarray:
        return self._block[:, self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class _TypedEvents:
    """msgspec's decoder of an array of event objects, to structs with one field per input
    (float fields take integers too, as the frame path does); and the getters of a struct's
    numeric and string values, in the block order of :class:`RecordPrep`."""

    def __init__(self, by_kind: Mapping[str, Sequence[str]]) -> None:
        kinds: dict[str, Any] = {"float": float | None, "bool": bool | None, "string": str | None}
        order = [(name, kind) for kind in ("float", "bool", "string") for name in by_kind[kind]]
        # Attributes f0, f1, ...: an input's name need not be a Python identifier.
        fields = [(f"f{i}", kinds[kind]) for i, (_, kind) in enumerate(order)]
        rename = {f"f{i}": name for i, (name, _) in enumerate(order)}
        event = msgspec.defstruct("Event", fields, rename=rename, gc=False)
        self._decoder = msgspec.json.Decoder(list[event])  # type: ignore[valid-type]
        attributes = [field for field, _ in fields]
        self.width = len(by_kind["float"]) + len(by_kind["bool"])
        self.numeric = _getter(attrgetter, attributes[: self.width])
        self.strings = _getter(attrgetter, attributes[self.width :])

    def decode(self, body: bytes) -> list[Any] | None:
        try:
            events: list[Any] = self._decoder.decode(body)
        except (msgspec.DecodeError, RecursionError):  # a type, a missing field, too deep
            return None
        # msgspec skips unknown fields without checking their UTF-8, which orjson (and so the
        # generic path) refuses: the same bytes must not be scored by one path, refused by
        # the other. Checked only once msgspec took the body: a body it declines (one object,
        # say) is not read a second time for nothing.
        if not body.isascii():
            try:
                body.decode()
            except UnicodeDecodeError:
                return None
        return events


class _Sparse(Exception):
    """The events need the general path."""


def _getter(
    make: Callable[..., Callable[[Any], Any]], names: list[str]
) -> Callable[[Any], tuple[Any, ...]]:
    """``make(*names)`` (itemgetter, attrgetter), always giving a tuple: of one name they give
    the value itself."""
    if len(names) > 1:
        return make(*names)
    if not names:
        return lambda item: ()
    one = make(names[0])
    return lambda item: (one(item),)
