"""The fraud story, end to end on embedded defaults: `shipyard demo`.

generate -> stream -> landing -> validate -> train -> register -> deploy -> serve ->
faulty version -> alarm -> automatic rollback -> drifted traffic -> drift report. Each step
calls the layer that owns it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow.compute as pc

from shipyard.core.errors import StageFailed
from shipyard.core.package import FaultInjection
from shipyard.core.types import ModelRef
from shipyard.ingest import drain_to_landing, open_stream, publish_events
from shipyard.pipeline.demo_canary import CanaryScene, canary_scene
from shipyard.pipeline.demo_drift import DriftScene, drift_scene
from shipyard.pipeline.drill import DrillResult, fault_drill, raw_event_lines, serve_traffic
from shipyard.pipeline.landing import event_landing_schema
from shipyard.pipeline.narration import Narrator, Stage, StageReport
from shipyard.pipeline.packages import publish_package
from shipyard.pipeline.server import BackgroundServer
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
EVENTS_PER_DAY = 5_000_000
MIN_LIFT = 5.0  # the model must reach AUC-PR of at least 5x the base rate to be approved


@dataclass
class DemoReport:
    stages: list[StageReport] = field(default_factory=list)
    good: ModelRef | None = None
    faulty: ModelRef | None = None
    drill: DrillResult | None = None
    drift: DriftScene | None = None
    canary: CanaryScene | None = None

    @property
    def total_seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)


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
        bodies = raw_event_lines(generated.events, result.holdout_events["event_id"])
        with BackgroundServer(workspace) as server:
            narrator.say(f"server listening on {server.url}")
            serve_traffic(
                narrator, report.stages, server.url, ENDPOINT, result, bodies,
                seconds=traffic_seconds, concurrency=concurrency,
            )  # fmt: skip
            faulty = _register(
                workspace, narrator, report, result, [curated_id, labels_id], run_id,
                fault=FaultInjection(error_rate=fault_error_rate, seed=1),
                stage_name="register faulty",
            )  # fmt: skip
            report.faulty = faulty.ref
            report.drill = fault_drill(
                workspace, narrator, report.stages, server.url, ENDPOINT, VARIANT,
                good=good.ref, faulty=faulty.ref, bodies=bodies, concurrency=concurrency,
                fault_note=f"it fails {fault_error_rate:.0%} of requests on purpose",
            )  # fmt: skip
            report.drift = drift_scene(
                workspace, narrator, report.stages, server.url, ENDPOINT, curated=curated, seed=seed
            )
            slow = _register(
                workspace, narrator, report, result, [curated_id, labels_id], run_id,
                fault=FaultInjection(latency_ms=80.0, seed=2), stage_name="register slow",
            )  # fmt: skip
            report.canary = canary_scene(
                workspace, narrator, report.stages, server.url, ENDPOINT, VARIANT,
                good=good.ref, slow=slow.ref, bodies=bodies, concurrency=concurrency,
            )  # fmt: skip
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
    with Stage(narrator, report.stages, "generate") as stage:
        # The events are "live": they end now, at the service's 5M-a-day pace, so the drain
        # files them by event hour rather than as late arrivals.
        span = timedelta(days=events / EVENTS_PER_DAY)
        start = (datetime.now(UTC) - span).replace(microsecond=0)
        scenario = FraudScenario(
            seed=seed, bad_row_rate=bad, start=start, events_per_day=EVENTS_PER_DAY
        )
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
    with Stage(narrator, report.stages, "ingest") as stage:
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
    with Stage(narrator, report.stages, "land") as stage:
        try:
            with narrator.progress("landing as Parquet", published.records) as tick:
                drained = drain_to_landing(
                    stream, ws.store, schema=event_landing_schema(), progress=tick
                )
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
    with Stage(narrator, report.stages, "validate") as stage:
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
        narrator.say(f"curated: {curated_key}; quarantine: {quarantine_key}")
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
    with Stage(narrator, report.stages, "train") as stage:
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
    with Stage(narrator, report.stages, stage_name) as stage:
        reason = (
            f"drill: deliberately faulty ({fault.error_rate:.0%} of requests fail, "
            f"+{fault.latency_ms:g} ms per model call)"
            if fault
            else f"AUC-PR {result.metrics['auc_pr']:.3f} passed the {MIN_LIFT:g}x-base-rate gate"
        )
        contents = result.contents
        if fault is not None:
            contents = dataclasses.replace(contents, fault_injection=fault)
        version = publish_package(
            ws,
            GROUP,
            contents,
            prefix=f"models/{GROUP}/{run_id}-{time.time_ns()}",
            lineage={"datasets": parents, "run": run_id},
            actor="demo",
            approve=True,
            reason=reason,
        )
        if fault is None:
            ws.registry.set_alias(GROUP, "production", version.version, actor="demo", reason=reason)
        narrator.say(f"package: {version.artifact_uri}")
        stage.done(
            f"{version.ref} registered ({version.framework} {version.framework_version}, "
            f"sha256 {version.sha256[:12]}…), {version.approval_status}"
            + (", alias production" if fault is None else ""),
            version=version.version,
        )
    return version


def _deploy(ws: Workspace, narrator: Narrator, report: DemoReport, ref: ModelRef) -> None:
    with Stage(narrator, report.stages, "deploy") as stage:
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
