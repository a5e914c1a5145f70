"""Worker processes: one socket, a supervisor owning the workspace, changes reaching every
worker, metrics totalled across workers, and a model swap under load that no client notices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import orjson
import pytest

from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import EndpointConfig, VariantSpec
from shipyard.serve.endpoint_config import DataCaptureConfig
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _body(trained: TrainResult, rows: int = 1, offset: int = 0) -> bytes:
    events = trained.holdout_events.slice(offset, rows).drop("is_fraud")
    return orjson.dumps(events.to_dicts())


def _metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and (line[len(name)] in " {")
    )


def test_two_worker_processes_serve_and_metrics_total_across_them(
    deployed: Workspace, trained: TrainResult
) -> None:
    with BackgroundServer(deployed, workers=2) as server:
        assert server.supervisor is not None
        pids = server.supervisor.pool.pids
        assert len(pids) == 2 and server.supervisor.receiver.ready >= set(pids)
        url = f"{server.url}/endpoints/fraud/invocations"
        with httpx.Client() as client:
            for i in range(40):
                # A new connection each time, so the kernel spreads them over both workers.
                answer = httpx.post(
                    url, content=_body(trained, 3, i), headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text
                scores = [p["fraud_probability"] for p in answer.json()["predictions"]]
                np.testing.assert_allclose(scores, trained.holdout_scores[i : i + 3], atol=1e-6)
            # Management routes are forwarded to the supervisor, which owns the workspace.
            described = client.get(f"{server.url}/api/v1/endpoints/fraud")
            assert described.status_code == 200
            assert described.json()["EndpointStatus"] == "InService"
            deadline = time.monotonic() + 5
            while True:  # workers send their samples every 50 ms
                exposed = client.get(f"{server.url}/metrics").text
                if _metric(exposed, "shipyard_invocations_total") >= 40:
                    break
                assert time.monotonic() < deadline, exposed
                time.sleep(0.05)
        assert _metric(exposed, "shipyard_invocations_total") == 40
        assert _metric(exposed, "shipyard_workers") == 2
        assert _metric(exposed, "shipyard_overhead_latency_seconds_count") == 40
        requests = deployed.metrics.requests(
            endpoint="fraud", variant=None, start_s=time.time() - 60, end_s=time.time() + 1
        )
        assert requests == 40  # the store the alarms read saw every worker's requests
    for pid in pids:  # the workers are gone with the server
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived the server")


# The load of the swap test, in a process of its own: the test process also runs the
# supervisor and loads the new model itself, and clients sharing its GIL would time that
# load, not the workers. Four clients post until stdin closes; "ready" after 20 answers;
# then one JSON list of [sent at (time.monotonic), seconds, status, model version or error].
_LOAD = """
import json, sys, threading, time
import httpx
url, body = sys.argv[1], sys.argv[2].encode()
answers, stop = [], threading.Event()
def post():
    with httpx.Client() as client:
        while not stop.is_set():
            sent, started = time.monotonic(), time.perf_counter()
            answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
            version = answer.headers.get("X-Shipyard-Model-Version", answer.text[:300])
            answers.append((sent, time.perf_counter() - started, answer.status_code, version))
clients = [threading.Thread(target=post) for _ in range(4)]
for client in clients:
    client.start()
deadline = time.monotonic() + 30
while len(answers) < 20 and time.monotonic() < deadline:
    time.sleep(0.05)
print("ready", flush=True)
sys.stdin.read()
stop.set()
for client in clients:
    client.join()
print(json.dumps(answers))
"""


def test_a_swap_under_load_fails_no_request_and_reaches_every_worker(
    deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    with BackgroundServer(deployed, workers=2) as server:
        url = f"{server.url}/endpoints/fraud/invocations"
        load = subprocess.Popen(
            [sys.executable, "-c", _LOAD, url, _body(trained).decode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert load.stdout is not None and load.stdout.readline().strip() == "ready"
            time.sleep(0.5)  # a baseline before the swap
            swapped_at = time.monotonic()
            deployed.endpoints.route_all("fraud", v2, actor="test", reason="swap under load")
            time.sleep(1.5)
            out, _ = load.communicate("", timeout=60)
        finally:
            load.kill()
    answers = json.loads(out)
    failures = [version for _, _, status, version in answers if status != 200]
    assert not failures, failures[:3]
    assert len(answers) > 50
    # Every worker follows within ~100 ms of polling plus a model load.
    late = [sent - swapped_at for sent, _, _, v in answers if v == str(ModelRef("fraud", 1))]
    assert max(late, default=0.0) < 1.0, max(late)
    assert answers[-1][3] == str(v2)
    # No request stalled during the swap beyond what the same load saw before it (the
    # machine's own jitter, e.g. other tests, shows up in both windows alike).
    before = [took for sent, took, _, _ in answers if 0.2 < swapped_at - sent]
    during = [took for sent, took, _, _ in answers if 0 <= sent - swapped_at < 1.0]
    assert before and during
    slowest_allowed = max(0.25, 5 * float(np.percentile(before, 99)))
    assert max(during) < slowest_allowed, (max(during), slowest_allowed)


def test_worker_shadow_and_capture_counters_reach_the_supervisor(
    workspace: Workspace, trained: TrainResult
) -> None:
    ref = register(workspace, trained.contents)
    events = trained.holdout_events.head(30).drop("is_fraud").to_dicts()
    capture = DataCaptureConfig(100.0, json_content_types=("application/json",))
    workspace.endpoints.create_endpoint_config(
        EndpointConfig(
            "sides",
            (VariantSpec("Prod", ref),),
            shadow=VariantSpec("Shadow", ref),
            shadow_sampling_percentage=100.0,
            data_capture=capture,
        )
    )
    workspace.endpoints.create_endpoint("ep", config_name="sides")
    with BackgroundServer(workspace, workers=2) as server, httpx.Client() as client:
        url = f"{server.url}/endpoints/ep/invocations"
        for event in events:
            answer = httpx.post(  # a new connection each time, spread over both workers
                url, content=orjson.dumps(event), headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while True:  # workers drain capture every 100 ms and send counters every 50 ms
            exposed = client.get(f"{server.url}/metrics").text
            captured = _metric(exposed, "shipyard_capture_records_total")
            shadowed = _metric(exposed, "shipyard_shadow_requests_total")
            if captured >= 2 * len(events) and shadowed >= 2 * len(events):
                break
            assert time.monotonic() < deadline, exposed
            time.sleep(0.05)
        described = client.get(f"{server.url}/api/v1/endpoints/ep").json()
    # The supervisor answered no invocation itself: these counts came from the workers.
    n = float(len(events))
    for variant in ("Prod", "Shadow"):  # the shadow's answers are captured under its name
        line = f'{{endpoint="ep",outcome="captured",variant="{variant}"}} {n}'
        assert f"shipyard_capture_records_total{line}" in exposed
    for outcome in ("sent", "succeeded"):
        line = f'{{endpoint="ep",outcome="{outcome}",variant="Shadow"}} {n}'
        assert f"shipyard_shadow_requests_total{line}" in exposed
    assert _metric(exposed, "shipyard_shadow_latency_seconds_total") > 0
    assert described["ShadowProductionVariants"][0]["Succeeded"] == len(events)
    assert described["DataCaptureConfig"]["Variants"]["Prod"]["Captured"] == len(events)
    # Workers hash card_id with the workspace's policy, like the single-process server.
    keys = workspace.store.list_keys("capture/ep/Prod", ".jsonl")
    written = b"".join(workspace.store.get_bytes(k) for k in keys)
    assert written.count(b"eventMetadata") == len(events)
    assert not any(str(e["card_id"]).encode() in written for e in events)


def test_pool_grows_to_the_largest_instance_count_and_back(
    deployed: Workspace, trained: TrainResult
) -> None:
    ref = ModelRef("fraud", 1)
    service = deployed.endpoints
    with BackgroundServer(deployed, workers=2) as server:
        supervisor = server.supervisor
        assert supervisor is not None and supervisor.pool.size == 2
        supervisor.max_workers = 3  # as on a 3-core machine; this one may have 2
        # Two variants of 3 and 1 instances: every worker serves both, so 3 workers, not 4.
        wide = (VariantSpec("A", ref, 0.5, instance_count=3), VariantSpec("B", ref, 0.5))
        service.create_endpoint_config(EndpointConfig("wide", wide))
        service.create_endpoint("big", config_name="wide")
        assert supervisor.pool_target() == 3
        supervisor.wait_ready(3, timeout_s=30)  # the pool watch grows it within a second
        assert supervisor.pool.size == 3
        answer = httpx.post(
            f"{server.url}/endpoints/big/invocations",
            content=_body(trained),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        # Asking for more than max_workers is capped; leaving service brings the pool back.
        service.create_endpoint_config(
            EndpointConfig("huge", (VariantSpec("A", ref, instance_count=9),))
        )
        service.create_endpoint("bigger", config_name="huge")
        assert supervisor.pool_target() == 3
        service.delete_endpoint("big")
        service.delete_endpoint("bigger")
        assert supervisor.pool_target() == 2
        deadline = time.monotonic() + 10
        while supervisor.pool.size != 2:
            assert time.monotonic() < deadline, supervisor.pool.size
            time.sleep(0.05)


@pytest.mark.slow
def test_worker_multi_model_caches_reach_describe_and_the_gauge(
    workspace: Workspace, trained: TrainResult
) -> None:
    for _ in range(2):
        register(workspace, trained.contents)
    config = {
        "EndpointConfigName": "mme",
        "ProductionVariants": [{"VariantName": "AllTraffic"}],
        "MultiModelConfig": {"ModelPackageGroupName": "fraud", "MaxModels": 2},
    }
    targets = ["fraud/1", "fraud/2"] * 10
    with BackgroundServer(workspace, workers=2) as server, httpx.Client() as client:
        api = f"{server.url}/api/v1"
        assert client.post(f"{api}/endpoint-configs", json=config).status_code == 201
        made = {"EndpointName": "mme", "EndpointConfigName": "mme"}
        assert client.post(f"{api}/endpoints", json=made).status_code == 201
        deadline = time.monotonic() + 10
        for target in targets:
            while True:  # until both workers follow the new endpoint (polled every 100 ms)
                answer = httpx.post(  # a new connection each time, spread over both workers
                    f"{server.url}/endpoints/mme/invocations", content=_body(trained),
                    headers={"X-Amzn-SageMaker-Target-Model": target},
                )  # fmt: skip
                if "not in service here" not in answer.text or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert answer.status_code == 200, answer.text
        while True:  # workers send a changed cache state every 50 ms
            state = client.get(f"{api}/endpoints/mme").json()["MultiModelConfig"]
            if state["Loads"] + state["CacheHits"] == len(targets):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        exposed = client.get(f"{server.url}/metrics").text
    # The supervisor scored nothing itself: every load and hit is a worker's.
    assert sorted(state["LoadedModels"]) == ["fraud@1", "fraud@2"]
    assert 2 <= state["Loads"] <= 4 and state["LoadedBytes"] > 0
    assert 'shipyard_multimodel_loaded_models{endpoint="mme"} 2.0' in exposed
