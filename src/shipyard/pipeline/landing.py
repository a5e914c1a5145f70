"""Which schema the landing drain decodes events with: the fraud data contract's."""

from __future__ import annotations

from functools import cache

import polars as pl

from shipyard.validate import landing_schema, packaged_contract

EVENT_CONTRACT = "fraud"


@cache
def event_landing_schema(contract: str = EVENT_CONTRACT) -> pl.Schema:
    """The landing schema of the packaged ``contract`` (built once; a Schema is not mutated)."""
    return landing_schema(packaged_contract(contract))
