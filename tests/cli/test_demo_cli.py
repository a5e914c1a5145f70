"""As a user: `shipyard demo`, then `shipyard server`, then curl-style and boto3 calls."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import httpx
import orjson
import pytest

from tests.server_process import SHIPYARD, free_port, start_server

EVENT = {
    "event_id": "evt-00000000000000aa", "event_time": "2026-11-29T10:00:00.000Z",
    "card_id": "card-0000042", "amount": 912.5, "currency": "EUR", "merchant_id": "m-00077",
    "merchant_category": "7995", "country": "NG", "channel": "ecom", "card_age_days": 3,
    "txn_count_1h": 9, "txn_count_24h": 14, "avg_amount_30d": 40.0,
    "distance_from_home_km": 4200.0, "is_foreign": True, "device_trust_score": 0.05,
    "hour_of_day": 3, "is_weekend": False, "merchant_risk_score": 0.9, "prev_chargebacks": 2,
    "account_balance": 15.0,
}  # fmt: skip


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

    port = free_port()
    server = start_server(env, port, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
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
