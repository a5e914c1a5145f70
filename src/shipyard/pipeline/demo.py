"""The fraud story, end to end on embedded defaults: `shipyard demo`.

generate -> stream -> landing -> validate -> train -> register -> deploy -> serve ->
faulty version -> alarm -> automatic rollback. Each step calls the layer that owns it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow.compute as pc

from shipyard.core.errors import StageFailed
from shipyard.core.package import FaultInjection, PackageContents, load_package, write_package
from shipyard.core.types import ModelRef
from shipyard.ingest import drain_to_landing, open_stream, publish_events
from shipyard.pipeline.narration import Narrator, StageReport
from shipyard.pipeline.server import BackgroundServer
from shipyard.pipeline.traffic import TrafficGenerator, TrafficReport
from shipyard.pipeline.workspace import Workspace
from shipyard.registry import ModelVersion
from shipyard.scenarios.fraud import FraudScenario, GeneratedEvents
from shipyard.serve import VariantSpec
from shipyard.storage import (
    content_hash,
    finish_run,
    record_dataset,
    sha256_hex,
    start_run,
)
from shipyard.train import TrainResult, TrainSpec, train_xgboost
from shipyard.validate import packaged_contract, validate_frame

STREAM = "card-events"
GROUP = "fraud-detector"
ENDPOINT = "fraud-detector"
VARIANT = "AllTraffic"
MIN_LIFT = 5.0  # the model must reach AUC-PR of at least 5x the base rate to be approved


@dataclass
class DemoReport:
    stages: list[StageReport] = field(default_factory=list)
    good: ModelRef | None = None
    faulty: ModelRef | None = None
    fault_to_detection_s: float | None = None
    fault_to_rollback_s: float | None = None
    traffic: TrafficReport | None = None

    @property
    def total_seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)


class _Stage:
    """Times one stage and hands its report to the narrator."""

    def __init__(self, narrator: Narrator, report: DemoReport, name: str) -> None:
        self.narrator, self.report, self.name = narrator, report, name

    def __enter__(self) -> _Stage:
        self.narrator.begin(self.name)
        self.started = time.perf_counter()
        return self

    def done(self, summary: str, **details: Any) -> None:
        stage = StageReport(self.name, time.perf_counter() - self.started, summary, details)
        self.report.stages.append(stage)
        self.narrator.end(stage)

    def __exit__(self, *exc: object) -> None:
        return None


def run_demo(
    workspace: Workspace,
    narrator: Narrator,
    *,
    events: int = 1_000_000,
    seed: int = 7,
    bad_row_rate: float = 0.01,
    traffic_seconds: float = 3.0,
    fault_error_rate: float = 0.4,
    concurrency: int = 4,
) -> DemoReport:
    """Run every stage; raises :class:`StageFailed` naming the first stage that failed."""
    report = DemoReport()
    say = narrator.say
    run_id = start_run(workspace.meta, "demo", {"events": events, "seed": seed})
    try:
        generated = _generate(workspace, narrator, report, events, seed, bad_row_rate)
        landing_keys, landing_id = _ingest_and_land(workspace, narrator, report, generated, run_id)
        curated, curated_id = _validate(
            workspace, narrator, report, landing_keys, landing_id, generated, run_id
        )
        result, labels_id = _train(workspace, narrator, report, curated, generated, seed, run_id)
        good = _register(workspace, narrator, report, result, [curated_id, labels_id], run_id)
        report.good = good.ref
        _deploy(workspace, narrator, report, good.ref)
        bodies = [line for line in _raw_event_lines(generated, result)]
        with BackgroundServer(workspace) as server:
            say(f"server listening on {server.url}")
            _serve(
                workspace,
                narrator,
                report,
                server,
                result,
                generated,
                bodies,
                traffic_seconds,
                concurrency,
            )
            _fault_drill(
                workspace,
                narrator,
                report,
                server,
                good,
                result,
                bodies,
                fault_error_rate,
                concurrency,
                run_id,
            )
    except StageFailed as exc:
        finish_run(workspace.meta, run_id, failure=str(exc))
        raise
    finish_run(
        workspace.meta, run_id, outputs={"good": str(report.good), "faulty": str(report.faulty)}
    )
    return report


def _generate(
    ws: Workspace, narrator: Narrator, report: DemoReport, events: int, seed: int, bad: float
) -> GeneratedEvents:
    with _Stage(narrator, report, "generate") as stage:
        scenario = FraudScenario(seed=seed, bad_row_rate=bad)
        generated = scenario.generate(events)
        fraud = int(pc.sum(generated.labels["is_fraud"]).as_py() or 0)
        stage.done(
            f"{events:,} card events, {generated.corrupted.num_rows:,} corrupted on purpose, "
            f"{fraud:,} fraud labels held back as delayed ground truth",
            events=events,
            corrupted=generated.corrupted.num_rows,
            fraud=fraud,
        )
    return generated


def _ingest_and_land(
    ws: Workspace, narrator: Narrator, report: DemoReport, generated: GeneratedEvents, run_id: str
) -> tuple[list[str], str]:
    with _Stage(narrator, report, "ingest") as stage:
        stream = open_stream(ws.settings, STREAM, shards=2)
        try:
            with narrator.progress("appending to the stream", generated.events.num_rows) as tick:
                published = publish_events(stream, generated.events, progress=tick)
            stage.done(
                f"{published.records:,} events appended durably to stream '{STREAM}' "
                f"({published.bytes / 1e6:.0f} MB, {stream.shard_count} shards, fsync per batch)",
                records=published.records,
            )
        except BaseException:
            stream.close()
            raise
    with _Stage(narrator, report, "land") as stage:
        try:
            drained = drain_to_landing(stream, ws.store)
        finally:
            stream.close()
        keys = list(drained.files)
        if drained.records != published.records:
            raise StageFailed(
                f"land: drained {drained.records:,} records but {published.records:,} were "
                "acknowledged"
            )
        parts = [(key, sha256_hex(ws.store.get_bytes(key))) for key in keys]
        partitions = sorted({key.rsplit("/", 1)[0] for key in keys})
        landing = record_dataset(
            ws.meta,
            name=f"{STREAM}/landing",
            zone="landing",
            uri=ws.store.url(f"landing/{STREAM}"),
            content_hash=content_hash(parts),
            rows=drained.records,
            run_id=run_id,
            details={"files": keys},
        )
        stage.done(
            f"{drained.records:,} records in {len(keys)} Parquet files over "
            f"{len(partitions)} dt/hour partitions under landing/{STREAM}/",
            files=len(keys),
        )
    return keys, landing.id


def _validate(
    ws: Workspace,
    narrator: Narrator,
    report: DemoReport,
    landing_keys: list[str],
    landing_id: str,
    generated: GeneratedEvents,
    run_id: str,
) -> tuple[pl.DataFrame, str]:
    with _Stage(narrator, report, "validate") as stage:
        contract = packaged_contract("fraud")
        frame = ws.store.scan_parquet(landing_keys).collect()
        outcome = validate_frame(contract, frame)
        if outcome.rows_valid + outcome.rows_quarantined != outcome.rows_in:
            raise StageFailed("validate: valid + quarantined != input")
        if not outcome.passed:
            raise StageFailed(
                "validate: the batch failed its contract: " + "; ".join(outcome.reasons_failed)
            )
        curated_key = f"curated/{STREAM}/{run_id}.parquet"
        quarantine_key = f"quarantine/{STREAM}/{run_id}.parquet"
        curated_sha = ws.store.put_parquet(curated_key, outcome.valid)
        quarantine_sha = ws.store.put_parquet(quarantine_key, outcome.quarantine)
        details = {"contract": f"{contract.name}@{contract.version}", "checks": outcome.summary()}
        curated = record_dataset(
            ws.meta,
            name=f"{STREAM}/curated",
            zone="curated",
            uri=ws.store.url(curated_key),
            content_hash=content_hash([(curated_key, curated_sha)]),
            rows=outcome.rows_valid,
            parents=[landing_id],
            run_id=run_id,
            details=details,
        )
        record_dataset(
            ws.meta,
            name=f"{STREAM}/quarantine",
            zone="quarantine",
            uri=ws.store.url(quarantine_key),
            content_hash=content_hash([(quarantine_key, quarantine_sha)]),
            rows=outcome.rows_quarantined,
            parents=[landing_id],
            run_id=run_id,
            details=details,
        )
        top = sorted(((n, c) for c, n in outcome.check_counts.items() if n), reverse=True)[:4]
        reasons = ", ".join(f"{code} {count:,}" for count, code in top)
        narrator.say(
            f"contract {contract.name}@{contract.version}: {len(outcome.check_counts)} checks; "
            f"top reasons: {reasons or 'none'}"
        )
        stage.done(
            f"{outcome.rows_valid:,} valid -> curated/, {outcome.rows_quarantined:,} quarantined "
            f"with reason codes (generator corrupted {generated.corrupted.num_rows:,}); "
            f"valid + quarantined = input",
            valid=outcome.rows_valid,
            quarantined=outcome.rows_quarantined,
        )
    return outcome.valid, curated.id


def _train(
    ws: Workspace,
    narrator: Narrator,
    report: DemoReport,
    curated: pl.DataFrame,
    generated: GeneratedEvents,
    seed: int,
    run_id: str,
) -> tuple[TrainResult, str]:
    with _Stage(narrator, report, "train") as stage:
        labels = pl.from_arrow(generated.labels)
        assert isinstance(labels, pl.DataFrame)
        labels_key = f"labels/{STREAM}/{run_id}.parquet"
        labels_sha = ws.store.put_parquet(labels_key, labels)
        labels_ds = record_dataset(
            ws.meta,
            name=f"{STREAM}/labels",
            zone="labels",
            uri=ws.store.url(labels_key),
            content_hash=content_hash([(labels_key, labels_sha)]),
            rows=len(labels),
            run_id=run_id,
        )
        joined = curated.join(labels.select("event_id", "is_fraud"), on="event_id", how="inner")
        spec = TrainSpec(seed=seed)
        with narrator.progress("boosting rounds", spec.num_rounds) as tick:
            last = [0]

            def advance(done: int, total: int) -> None:
                tick(done - last[0])
                last[0] = done

            result = train_xgboost(joined, spec, progress=advance)
        m = result.metrics
        lift = m["auc_pr"] / m["base_rate"]
        narrator.say(
            f"time-based holdout (latest {spec.holdout_fraction:.0%} of events, "
            f"{result.holdout_rows:,} rows): AUC-PR {m['auc_pr']:.3f} "
            f"({lift:.0f}x the base rate {m['base_rate']:.2%}), AUC-ROC {m['auc_roc']:.3f}, "
            f"recall at 1% FPR {m['recall_at_1pct_fpr']:.1%}"
        )
        if lift < MIN_LIFT:
            raise StageFailed(
                f"train: AUC-PR is {lift:.1f}x the base rate; the gate needs {MIN_LIFT:g}x"
            )
        stage.done(
            f"XGBoost on {result.train_rows:,} rows; AUC-PR {m['auc_pr']:.3f} ({lift:.0f}x base), "
            f"recall@1%FPR {m['recall_at_1pct_fpr']:.1%}",
            **m,
        )
    return result, labels_ds.id


def _register(
    ws: Workspace,
    narrator: Narrator,
    report: DemoReport,
    result: TrainResult,
    parents: list[str],
    run_id: str,
    *,
    fault: FaultInjection | None = None,
    stage_name: str = "register",
) -> ModelVersion:
    with _Stage(narrator, report, stage_name) as stage:
        version = register_package(ws, result.contents, parents, run_id, fault=fault)
        reason = (
            f"drill: deliberately faulty ({fault.error_rate:.0%} of requests fail)"
            if fault
            else f"AUC-PR {result.metrics['auc_pr']:.3f} passed the {MIN_LIFT:g}x-base-rate gate"
        )
        version = ws.registry.approve(GROUP, version.version, actor="demo", reason=reason)
        if fault is None:
            ws.registry.set_alias(GROUP, "production", version.version, actor="demo", reason=reason)
        stage.done(
            f"{version.ref} registered ({version.framework} {version.framework_version}, "
            f"sha256 {version.sha256[:12]}…), {version.approval_status}"
            + (", alias production" if fault is None else ""),
            version=version.version,
        )
    return version


def register_package(
    ws: Workspace,
    contents: PackageContents,
    parents: list[str],
    run_id: str,
    *,
    fault: FaultInjection | None = None,
) -> ModelVersion:
    """Store a package (optionally with injected faults) and register it in the group."""
    if fault is not None:
        contents = PackageContents(
            model_bytes=contents.model_bytes,
            prep=contents.prep,
            framework_version=contents.framework_version,
            metrics=contents.metrics,
            params=contents.params,
            fault_injection=fault,
        )
    prefix = f"models/{GROUP}/{run_id}-{time.time_ns()}"
    stored = write_package(ws.store, prefix, contents)
    return ws.registry.register(
        GROUP,
        artifact_uri=stored.manifest_uri,
        sha256=stored.manifest_sha256,
        framework=contents.framework,
        framework_version=contents.framework_version,
        signature=stored.manifest["signature"],
        metrics=contents.metrics,
        params=contents.params,
        lineage={"datasets": parents, "run": run_id},
        actor="demo",
    )


def _deploy(ws: Workspace, narrator: Narrator, report: DemoReport, ref: ModelRef) -> None:
    with _Stage(narrator, report, "deploy") as stage:
        variants = [VariantSpec(VARIANT, ref, 1.0)]
        names = [d.name for d in ws.endpoints.list_endpoints()]
        if ENDPOINT in names:
            if ENDPOINT not in ws.endpoints.serving:
                ws.endpoints.load_in_service()
            ws.endpoints.update_endpoint(ENDPOINT, variants, actor="demo", reason=f"deploy {ref}")
        else:
            ws.endpoints.create_endpoint(ENDPOINT, variants, actor="demo", reason=f"deploy {ref}")
        description = ws.endpoints.describe(ENDPOINT)
        stage.done(f"endpoint '{ENDPOINT}' {description.status}, variant {VARIANT} -> {ref}")


def _raw_event_lines(generated: GeneratedEvents, result: TrainResult) -> list[bytes]:
    """Holdout events exactly as the stream carried them (raw JSON, no label)."""
    holdout_ids = result.holdout_events["event_id"].head(5000)
    events = pl.from_arrow(generated.events)
    assert isinstance(events, pl.DataFrame)
    sample = events.join(holdout_ids.to_frame(), on="event_id", how="semi")
    return [orjson.dumps(row) for row in sample.iter_rows(named=True)]


def _serve(
    ws: Workspace,
    narrator: Narrator,
    report: DemoReport,
    server: BackgroundServer,
    result: TrainResult,
    generated: GeneratedEvents,
    bodies: list[bytes],
    traffic_seconds: float,
    concurrency: int,
) -> None:
    import httpx

    with _Stage(narrator, report, "serve") as stage:
        ping = httpx.get(f"{server.url}/ping", timeout=5)
        if ping.status_code != 200:
            raise StageFailed(f"serve: GET /ping answered {ping.status_code}")
        mismatch = check_skew(server.url, result)
        narrator.say(
            f"training/serving skew check: 500 holdout events scored over HTTP (JSON and CSV) "
            f"match the trainer's scores (max difference {mismatch:.1e})"
        )
        traffic = TrafficGenerator(server.url, ENDPOINT, bodies, concurrency=concurrency).start()
        time.sleep(traffic_seconds)
        seen = traffic.stop()
        rate = seen.sent / traffic_seconds
        stage.done(
            f"{seen.sent:,} requests in {traffic_seconds:.0f}s ({rate:,.0f}/s), "
            f"{seen.ok:,} OK, p50 {seen.latency_ms(0.5):.1f} ms, "
            f"p99 {seen.latency_ms(0.99):.1f} ms",
            requests=seen.sent,
        )
        if seen.ok != seen.sent:
            raise StageFailed(f"serve: {seen.sent - seen.ok} of {seen.sent} requests failed")


def check_skew(url: str, result: TrainResult, rows: int = 500) -> float:
    """Score holdout events over HTTP and compare with the trainer's own holdout scores."""
    import httpx

    holdout = result.holdout_events.head(rows)
    expected = result.holdout_scores[:rows]
    raw = holdout.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).drop(
        [c for c in holdout.columns if c.startswith("_") or c == "is_fraud"]
    )
    json_body = orjson.dumps(raw.to_dicts())
    invoke = f"{url}/endpoints/{ENDPOINT}/invocations"
    answer = httpx.post(
        invoke, content=json_body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if answer.status_code != 200:
        raise StageFailed(f"serve: JSON scoring answered {answer.status_code}: {answer.text}")
    json_scores = np.array([p["fraud_probability"] for p in answer.json()["predictions"]])
    signature = list(result.contents.prep.input_types)
    csv_body = raw.select(signature).write_csv(include_header=False).encode()
    answer = httpx.post(
        invoke,
        content=csv_body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        timeout=30,
    )
    if answer.status_code != 200:
        raise StageFailed(f"serve: CSV scoring answered {answer.status_code}: {answer.text}")
    csv_scores = np.array([float(x) for x in answer.text.split()])
    worst = float(max(np.abs(json_scores - expected).max(), np.abs(csv_scores - expected).max()))
    if worst > 1e-5:
        raise StageFailed(f"serve: endpoint scores differ from training by up to {worst:.2e}")
    return worst


def _fault_drill(
    ws: Workspace,
    narrator: Narrator,
    report: DemoReport,
    server: BackgroundServer,
    good: ModelVersion,
    result: TrainResult,
    bodies: list[bytes],
    error_rate: float,
    concurrency: int,
    run_id: str,
) -> None:
    fault = FaultInjection(error_rate=error_rate, seed=1)
    faulty = _register(
        ws,
        narrator,
        report,
        result,
        list(good.lineage.get("datasets", [])),
        run_id,
        fault=fault,
        stage_name="register faulty",
    )
    report.faulty = faulty.ref
    with _Stage(narrator, report, "fault drill") as stage:
        alarm = f"{ENDPOINT}-model-error-rate"
        narrator.say(
            f"alarm {alarm}: Average of Invocation5XXErrors > 5% in 2 of 3 periods of 1 s "
            f"-> roll back to the previous Approved version"
        )
        already = len(ws.rollback_log)
        traffic = TrafficGenerator(server.url, ENDPOINT, bodies, concurrency=concurrency).start()
        time.sleep(1.0)
        fault_at = time.time()
        ws.endpoints.update_endpoint(
            ENDPOINT,
            [VariantSpec(VARIANT, faulty.ref, 1.0)],
            actor="demo",
            reason=f"deploy {faulty.ref} (drill: deliberately faulty)",
        )
        narrator.say(f"deployed {faulty.ref}; it fails {error_rate:.0%} of requests")
        deadline = time.time() + 30
        while len(ws.rollback_log) == already and time.time() < deadline:
            time.sleep(0.05)
        rolled_back_at = time.time()
        time.sleep(1.5)
        seen = traffic.stop()
        if len(ws.rollback_log) == already:
            raise StageFailed("fault drill: no rollback within 30 s of the fault")
        outcome = ws.rollback_log[-1]
        alarm_at = next(
            t.at_s
            for t in ws.alarms.history
            if t.alarm == alarm and t.to_state == "ALARM" and t.at_s >= fault_at
        )
        serving = ws.endpoints.serving_versions(ENDPOINT)
        if serving.get(VARIANT) != good.ref:
            raise StageFailed(f"fault drill: endpoint serves {serving}, expected {good.ref}")
        after = seen.between(rolled_back_at, float("inf"))
        if after.sent == 0 or any(
            o.model_version != str(good.ref) for o in after.outcomes if o.status == 200
        ):
            raise StageFailed(
                f"fault drill: requests after the rollback were not served by {good.ref}"
            )
        if seen.lost:
            raise StageFailed(f"fault drill: {seen.lost} requests got no answer")
        report.fault_to_detection_s = alarm_at - fault_at
        report.fault_to_rollback_s = rolled_back_at - fault_at
        report.traffic = seen
        window = seen.between(fault_at, rolled_back_at)
        narrator.say(
            f"ALARM after {report.fault_to_detection_s:.1f} s; rolled back {outcome.from_ref} -> "
            f"{outcome.to_ref} after {report.fault_to_rollback_s:.1f} s (switch itself "
            f"{outcome.seconds * 1000:.0f} ms)"
        )
        narrator.say(
            f"{seen.sent:,} requests during the drill: {seen.ok:,} OK, {seen.model_errors:,} "
            f"ModelError answers from {faulty.ref} (all inside the {window.sent:,}-request fault "
            f"window), {seen.lost} lost; every request after the rollback served by {good.ref}"
        )
        stage.done(
            f"{faulty.ref} caught in {report.fault_to_detection_s:.1f} s, rolled back to "
            f"{good.ref} in {report.fault_to_rollback_s:.1f} s, 0 requests lost",
            detection_s=report.fault_to_detection_s,
            rollback_s=report.fault_to_rollback_s,
        )


def verify_package(ws: Workspace, ref: ModelRef) -> Callable[[pl.DataFrame], np.ndarray]:
    """Load a registered version's package (sha256-checked) and return its scorer."""
    info = ws.registry.get_version(ref)
    model = load_package(ws.store, info.artifact_uri, info.sha256)
    return lambda frame: model.score(frame)[0]
