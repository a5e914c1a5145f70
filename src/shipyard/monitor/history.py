"""An endpoint's history from the audit log: which versions took which share of traffic, when,
and why each change happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.types import ModelRef
from shipyard.storage import MetadataStore, list_events


@dataclass(frozen=True)
class TrafficShare:
    variant: str
    model: ModelRef
    share: float  # of all requests, 0..1


@dataclass(frozen=True)
class EndpointChange:
    """One event of the endpoint, with the traffic split in force after it."""

    at_s: float
    action: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    traffic: tuple[TrafficShare, ...]
    traffic_changed: bool
    details: dict[str, Any]


def endpoint_history(meta: MetadataStore, endpoint: str) -> list[EndpointChange]:
    """Every recorded event of ``endpoint``, oldest first, each with the split after it."""
    changes = []
    traffic: tuple[TrafficShare, ...] = ()
    for event in list_events(meta, entity_kind="endpoint", entity_id=endpoint):
        details = event["details"] or {}
        split = _traffic(details.get("variants"))
        changed = split is not None and split != traffic
        if split is not None:
            traffic = split
        changes.append(
            EndpointChange(
                at_s=float(event["at_epoch_s"]),
                action=event["action"],
                from_state=event["from_state"],
                to_state=event["to_state"],
                actor=event["actor"],
                reason=event["reason"],
                traffic=traffic,
                traffic_changed=changed,
                details=details,
            )
        )
    return changes


def versions_serving_between(
    history: list[EndpointChange], start_s: float, end_s: float
) -> set[ModelRef]:
    """Every version that took traffic at some moment of [start_s, end_s]."""
    before = [c for c in history if c.at_s <= start_s]
    found = {share.model for share in (before[-1].traffic if before else ()) if share.share > 0}
    for change in history:
        if start_s < change.at_s <= end_s:
            found |= {share.model for share in change.traffic if share.share > 0}
    return found


def _traffic(variants: Any) -> tuple[TrafficShare, ...] | None:
    """The split a ``variants`` detail describes (serve's VariantSpec dicts), if it is one."""
    if not isinstance(variants, list) or not variants:
        return None
    try:
        weights = [float(v["weight"]) for v in variants]
        total = sum(weights) or 1.0
        return tuple(
            TrafficShare(str(v["name"]), ModelRef(str(v["group"]), int(v["version"])), w / total)
            for v, w in zip(variants, weights, strict=True)
        )
    except (KeyError, TypeError, ValueError):
        return None
