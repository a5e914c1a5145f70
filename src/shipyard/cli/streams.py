"""`shipyard streams …` and `shipyard ingest …`: manage streams and send events to a server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shipyard.cli.console import console
from shipyard.core.config import auth_headers, load_settings
from shipyard.core.errors import ConfigError, InvalidRequestError, NotFoundError
from shipyard.ingest import Client, drain_to_landing, open_stream
from shipyard.ingest.drain import LANDING_GROUP

streams_app = typer.Typer(help="Create and describe streams on a running `shipyard server`.")
ingest_app = typer.Typer(help="Send events to a stream, drain it to the landing zone, status.")

URL_OPTION = typer.Option(None, "--url", help="Server URL (default: from SHIPYARD_HOST/PORT).")


def _url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    settings = load_settings()
    return f"http://{settings.host}:{settings.port}"


def _call(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        headers = auth_headers(load_settings().api_key)
        response = httpx.request(method, url, timeout=30, headers=headers, **kwargs)
    except httpx.TransportError as exc:
        raise ConfigError(f"no Shipyard server answers at {url}: {exc}") from None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise InvalidRequestError(
            f"{url} answered {response.status_code} {response.reason_phrase}, not JSON; "
            "is the name right and is it a Shipyard server?"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError(f"{url} answered with an unexpected body")
    if response.status_code >= 400:
        message = body.get("message") or body.get("Message") or response.text
        if body.get("__type") == "ResourceNotFoundException":
            raise NotFoundError(message)
        raise InvalidRequestError(message)
    return body


@streams_app.command("create")
def create_stream(
    name: str = typer.Argument(..., help="Stream name: letters, digits, '.', '_' and '-'."),
    shards: int = typer.Option(2, "--shards", min=1, max=1024, help="Shard count."),
    retention_hours: float = typer.Option(
        24.0, "--retention-hours", help="Keep landed records this many hours."
    ),
    retention_bytes: int | None = typer.Option(
        None, "--retention-bytes", min=1, help="Keep at most this many bytes of landed records."
    ),
    partition_key_field: str = typer.Option(
        "card_id", "--partition-key-field", help="Event field that keys NDJSON records."
    ),
    url: str | None = URL_OPTION,
) -> None:
    """Create a stream (like Kinesis CreateStream)."""
    body = _call(
        "POST",
        f"{_url(url)}/api/v1/streams",
        json={
            "StreamName": name,
            "ShardCount": shards,
            "RetentionPeriodHours": retention_hours,
            "RetentionBytes": retention_bytes,
            "PartitionKeyField": partition_key_field,
        },
    )
    _print_description(body["StreamDescription"])


@streams_app.command("describe")
def describe_stream(
    name: str = typer.Argument(..., help="Stream name."), url: str | None = URL_OPTION
) -> None:
    """Shards, last sequence numbers and consumer-group offsets of a stream."""
    described = _call("GET", f"{_url(url)}/api/v1/streams/{quote(name, safe='')}")
    _print_description(described["StreamDescription"])


@ingest_app.command("send")
def send(
    file: Annotated[Path | None, typer.Argument(help="JSON-lines file of events to send.")] = None,
    generate: int | None = typer.Option(
        None, "--generate", min=1, help="Send N fraud-scenario events instead of a file."
    ),
    stream: str = typer.Option("card-events", "--stream", help="Stream to send to."),
    rate: float | None = typer.Option(None, "--rate", min=1, help="At most R events/s."),
    seed: int = typer.Option(0, "--seed", help="Seed for --generate."),
    url: str | None = URL_OPTION,
) -> None:
    """Send events (a JSON-lines file or generated ones) through the HTTP ingest API."""
    if (file is None) == (generate is None):
        raise typer.BadParameter("give a FILE or --generate N, not both")
    events = _events(file, generate, seed)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    client = Client(_url(url), api_key=load_settings().api_key)
    with client, Progress(*columns, console=console) as bar:
        task = bar.add_task(f"sending to {stream}", total=len(events))
        report = client.put(stream, _paced(events, rate), progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - started
    console.print(
        f"sent {report.sent:,} events in {seconds:.1f} s ({report.sent / seconds:,.0f}/s): "
        f"{report.delivered:,} delivered, {len(report.undelivered):,} failed"
    )
    for failure in report.undelivered[:5]:
        console.print(f"  event {failure.index}: {failure.error_code}: {failure.message}")
    if report.undelivered:
        raise typer.Exit(1)


@ingest_app.command("drain")
def drain(
    stream: str = typer.Argument("card-events", help="Stream to drain."),
    batch_records: int = typer.Option(
        200_000, "--batch-records", min=1, help="Records per landing batch (bounds memory)."
    ),
) -> None:
    """Land every record not yet landed as Parquet (one-off; the server must not own it).

    Safe to kill at any moment: the next drain lands each record exactly once.
    """
    from shipyard.pipeline.landing import event_landing_schema
    from shipyard.storage import ObjectStore

    settings = load_settings()
    store = ObjectStore(settings.resolved_store_url)
    source = open_stream(settings, stream, create=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        pending = sum(
            source.end_sequence(s) - source.committed(LANDING_GROUP, s)
            for s in range(source.shard_count)
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"landing {stream}", total=pending)
            result = drain_to_landing(
                source,
                store,
                batch_records=batch_records,
                schema=event_landing_schema(),
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        source.close()
    console.print(
        f"landed {result.records:,} records in {len(result.files)} files under landing/{stream}/"
        f" ({result.undecodable:,} undecodable kept under _undecodable/)"
    )


@ingest_app.command("status")
def status(url: str | None = URL_OPTION) -> None:
    """Per stream: shards, last sequence, consumer lag (from a running server)."""
    base = _url(url)
    table = Table(title=f"streams at {base}")
    for column in ("stream", "shards", "records", "group", "lag"):
        table.add_column(column)
    for name in _call("GET", f"{base}/api/v1/streams")["StreamNames"]:
        description = _call("GET", f"{base}/api/v1/streams/{name}")["StreamDescription"]
        ends = [
            int(s["SequenceNumberRange"]["EndingSequenceNumber"]) for s in description["Shards"]
        ]
        groups = description["ConsumerGroups"] or {"(none)": [0] * len(ends)}
        for group, offsets in groups.items():
            lag = sum(end - offset for end, offset in zip(ends, offsets, strict=True))
            table.add_row(name, str(len(ends)), f"{sum(ends):,}", group, f"{lag:,}")
    console.print(table)


def _events(file: Path | None, generate: int | None, seed: int) -> list[dict[str, Any]]:
    if file is not None:
        try:
            lines = file.read_bytes().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
        events = []
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise InvalidRequestError(f"{file}:{number} is not valid JSON: {exc}") from None
        return events
    from shipyard.scenarios.fraud import FraudScenario

    table = FraudScenario(seed=seed).generate(generate or 0).events
    generated: list[dict[str, Any]] = table.to_pylist()
    return generated


def _paced(events: list[dict[str, Any]], rate: float | None) -> Any:
    started = time.perf_counter()
    for index, event in enumerate(events):
        if rate is not None:
            wait = index / rate - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        yield event


def _print_description(description: dict[str, Any]) -> None:
    table = Table(title=f"stream {description['StreamName']} ({description['StreamStatus']})")
    table.add_column("shard")
    table.add_column("first held", justify="right")
    table.add_column("next sequence", justify="right")
    table.add_column("bytes", justify="right")
    for shard in description["Shards"]:
        sequences = shard["SequenceNumberRange"]
        table.add_row(
            shard["ShardId"],
            f"{int(sequences.get('StartingSequenceNumber', 0)):,}",
            f"{int(sequences['EndingSequenceNumber']):,}",
            f"{shard['Bytes']:,}",
        )
    console.print(table)
    size = description.get("RetentionBytes")
    console.print(
        f"backend {description.get('Backend', 'embedded')}; retention "
        f"{description['RetentionPeriodHours']:g} h"
        + (f" or {size:,} bytes" if size else "")
        + "; NDJSON partition key "
        f"field {description['PartitionKeyField']!r}; consumer groups: "
        + (", ".join(f"{g} at {o}" for g, o in description["ConsumerGroups"].items()) or "none")
    )
