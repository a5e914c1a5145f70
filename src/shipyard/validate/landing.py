"""The landing schema of a contract: how the drain decodes a stream's JSON events.

The contract is the one description of an event; the drain (ingest) must not keep its own
copy, and may not import validate, so the pipeline builds the schema here and passes it in.
Landing keeps values as they arrived: a timestamp stays the string the producer sent (the
drain partitions by it, validation parses it), numbers and booleans keep their JSON types.
"""

from __future__ import annotations

import polars as pl

from shipyard.validate.contract import ColumnType, Contract

_LANDING_TYPES: dict[ColumnType, pl.DataType] = {
    "string": pl.String(),
    "timestamp": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
}


def landing_schema(contract: Contract) -> pl.Schema:
    """Column name -> Polars type for raw events of ``contract``, in the contract's order."""
    return pl.Schema({column.name: _LANDING_TYPES[column.type] for column in contract.columns})
