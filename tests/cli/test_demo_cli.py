"""As a user: `shipyard demo`, then `shipyard server`, then curl-style and boto3 calls."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import orjson
import pytest

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
EVENT = {
    "event_id": "evt-00000000000000aa", "event_time": "2026-11-29T10:00:00.000Z",
    "card_id": "card-0000042", "amount": 912.5, "currency": "EUR", "merchant_id": "m-00077",
    "merchant_category": "7995", "country": "NG", "channel": "ecom", "card_age_days": 3,
    "txn_count_1h": 9, "txn_count_24h": 14, "avg_amount_30d": 40.0,
    "distance_from_home_km": 4200.0, "is_foreign": True, "device_trust_score": 0.05,
    "hour_of_day": 3, "is_weekend": False, "merchant_risk_score": 0.9, "prev_chargebacks": 2,
    "account_balance": 15.0,
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_demo_then_server_then_boto3(tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    demo = subprocess.run(
        [SHIPYARD, "demo", "--events", "50000", "--seed", "5"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for stage in ("generate", "ingest", "land", "validate", "train", "register", "deploy",
                  "serve", "fault drill", "drift"):  # fmt: skip
        assert stage in demo.stdout
    assert "rolled back" in demo.stdout and "0 requests lost" in demo.stdout

    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [SHIPYARD, "server", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not answer /ping within 60 s"
            time.sleep(0.2)
        answer = httpx.post(
            f"{url}/endpoints/fraud-detector/invocations",
            content=orjson.dumps(EVENT),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Shipyard-Model-Version"] == "fraud-detector@1"
        runtime = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id="any", aws_secret_access_key="any",
        )  # fmt: skip
        response = runtime.invoke_endpoint(
            EndpointName="fraud-detector", Body=orjson.dumps([EVENT, EVENT]),
            ContentType="application/json",
        )  # fmt: skip
        predictions = orjson.loads(response["Body"].read())["predictions"]
        assert len(predictions) == 2
        assert predictions[0] == predictions[1]
    finally:
        server.terminate()
        server.wait(timeout=30)
