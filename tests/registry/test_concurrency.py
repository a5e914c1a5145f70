"""Concurrent promote, rollback and reject calls from several processes and threads.

On SQLite and on PostgreSQL they must leave each group with exactly one production version,
that version Approved, and an audit log with one event per change that replays to the end
state.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from shipyard.core.errors import StateError
from shipyard.registry import APPROVED, PRODUCTION, REJECTED, ModelRegistry
from shipyard.storage import MetadataStore, list_events

GROUPS = ("fraud", "churn")
VERSIONS = 6
PROCESSES = 2
THREADS = 33  # 66 calls in all: 60 promote or rollback, 6 reject
Call = tuple[str, str, int]  # (action, group, version)
Result = tuple[Call, str, int, int]  # (call, outcome, alias moves, approval changes)


def _plan() -> list[list[Call]]:
    calls: list[Call] = []
    for i in range(PROCESSES * THREADS):
        group = GROUPS[i % 2]
        if i % 11 == 5:
            calls.append(("reject", group, 2 + i % 4))  # never version 1: a successor exists
        elif i % 3 == 0:
            calls.append(("rollback", group, 0))
        else:
            calls.append(("promote", group, 1 + (i * 7) % VERSIONS))
    return [calls[p::PROCESSES] for p in range(PROCESSES)]


def _call(registry: ModelRegistry, call: Call) -> Result:
    action, group, version = call
    note = {"actor": f"worker-{threading.get_ident()}", "reason": f"{action} {version}"}
    try:
        if action == "promote":
            moved = registry.promote(group, version, PRODUCTION, **note).moved
            return call, "ok", int(moved), 0
        if action == "rollback":
            return call, "ok", int(registry.rollback(group, **note).moved), 0
        change = registry.update_approval(group, version, REJECTED, **note)
        return call, "ok", len(change.alias_moves), int(change.from_status != REJECTED)
    except StateError:  # e.g. promoting a version rejected meanwhile: refused, nothing written
        return call, "refused", 0, 0


def _worker(
    url: str, calls: list[Call], ready: Queue[int], go: Event, out: Queue[list[Result]]
) -> None:
    registry = ModelRegistry(MetadataStore(url, migrate=False))
    results: list[Result] = []
    lock = threading.Lock()

    def run(call: Call) -> None:
        go.wait()
        result = _call(registry, call)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    ready.put(len(threads))
    for thread in threads:
        thread.join()
    registry.meta.dispose()
    out.put(results)


def _seed(registry: ModelRegistry) -> None:
    for group in GROUPS:
        for _ in range(VERSIONS):
            v = registry.register(
                group, artifact_uri=f"file:///{group}", sha256="cd" * 32, framework="xgboost",
                framework_version="3.2.0", signature={}, metrics={}, params={}, lineage={},
            )  # fmt: skip
            registry.approve(group, v.version, actor="seed")
        registry.promote(group, VERSIONS, PRODUCTION, actor="seed")


def _hammer(url: str) -> list[Result]:
    context = multiprocessing.get_context("spawn")
    ready: Queue[int] = context.Queue()
    out: Queue[list[Result]] = context.Queue()
    go = context.Event()
    processes = [
        context.Process(target=_worker, args=(url, calls, ready, go, out)) for calls in _plan()
    ]
    for process in processes:
        process.start()
    started = sum(ready.get(timeout=120) for _ in processes)
    go.set()
    results = [r for _ in processes for r in out.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert started == len(results) == PROCESSES * THREADS
    return results


def _check(registry: ModelRegistry, results: list[Result]) -> None:
    assert Counter(call[0] for call, *_ in results)["reject"] == 6
    assert sum(1 for call, *_ in results if call[0] != "reject") >= 50
    assert any(moves for _, _, moves, _ in results), "nothing moved: the test proves nothing"
    for group in GROUPS:
        mine = [r for r in results if r[0][1] == group]
        production = [
            a for a in list_events(registry.meta, entity_kind="model_alias")
            if a["entity_id"] == f"{group}/{PRODUCTION}"
        ]  # fmt: skip
        # One audit event per change: the seed's first move, then every move a call reported.
        assert len(production) == 1 + sum(moves for _, _, moves, _ in mine)
        approvals = [
            e for e in list_events(registry.meta, entity_kind="model")
            if e["entity_id"].startswith(f"{group}@") and e["to_state"] == REJECTED
        ]  # fmt: skip
        assert len(approvals) == sum(changes for *_, changes in mine)
        # Replaying the moves in order gives a chain with no gaps, ending where production is.
        state = None
        for event in production:
            assert event["from_state"] == state, "an alias move was lost or recorded twice"
            state = event["to_state"]
        final = registry.alias_version(group, PRODUCTION)
        assert state == str(final)
        assert registry.get_group(group).aliases[PRODUCTION] == final
        assert registry.get(group, final).approval_status == APPROVED
        rows = [v for v in registry.list_versions(group) if PRODUCTION in v.aliases]
        assert len(rows) == 1


def test_concurrent_transitions_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = ModelRegistry(MetadataStore(url))
    _seed(registry)
    _check(registry, _hammer(url))


@pytest.mark.postgres
def test_concurrent_transitions_on_postgresql(postgres_url: str) -> None:
    registry = ModelRegistry(MetadataStore(postgres_url))
    _seed(registry)
    try:
        _check(registry, _hammer(postgres_url))
    finally:
        registry.meta.dispose()
