"""API keys with roles over real HTTP: curl-style headers, boto3's SigV4, tritonclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import tritonclient.http as httpclient
from pydantic import SecretStr
from starlette.datastructures import Headers

from shipyard.core.config import Settings, load_settings
from shipyard.core.errors import ConfigError, InvalidRequestError
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import ADMIN, INVOKE, ApiKeys, VariantSpec
from shipyard.serve.auth import presented_key, required_role
from shipyard.train import TrainResult
from tests.serve.conftest import register
from tests.serve.test_sagemaker_runtime import count_attempts, event_of, runtime_client

INVOKE_KEY = "invoke-key-0123456789"
ADMIN_KEY = "admin-key-0123456789ab"


@pytest.fixture
def guarded(tmp_path: Path, trained: TrainResult) -> Iterator[BackgroundServer]:
    """A server with an invoke key and an admin key, serving endpoint 'fraud'."""
    keys = SecretStr(f"{INVOKE_KEY}:invoke, {ADMIN_KEY}:admin")
    workspace = Workspace.open(Settings(home=tmp_path / "home", api_keys=keys))
    try:
        ref = register(workspace, trained.contents)
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", ref)])
        with BackgroundServer(workspace) as running:
            yield running
    finally:
        workspace.close()


def _invoke(url: str, trained: TrainResult, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/endpoints/fraud/invocations",
        content=orjson.dumps(event_of(trained)),
        headers={"Content-Type": "application/json", **headers},
    )


def test_invocations_need_an_invoke_or_admin_key(
    guarded: BackgroundServer, trained: TrainResult
) -> None:
    missing = _invoke(guarded.url, trained)
    assert missing.status_code == 401
    assert missing.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "needs an API key with role invoke" in missing.json()["Message"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = _invoke(guarded.url, trained, Authorization="Bearer not-a-key-0123456789")
    assert wrong.status_code == 401 and "not one of SHIPYARD_API_KEYS" in wrong.json()["Message"]
    assert _invoke(guarded.url, trained, Authorization=f"Bearer {INVOKE_KEY}").status_code == 200
    assert _invoke(guarded.url, trained, **{"X-Api-Key": INVOKE_KEY}).status_code == 200
    assert _invoke(guarded.url, trained, **{"X-Api-Key": ADMIN_KEY}).status_code == 200


def test_management_calls_need_the_admin_role(guarded: BackgroundServer) -> None:
    for path in ("/api/v1/endpoints", "/api/v1/models", "/metrics"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 401
        refused = httpx.get(f"{guarded.url}{path}", headers={"X-Api-Key": INVOKE_KEY})
        assert refused.status_code == 403, path
        assert refused.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert "has role invoke; GET " + path + " needs role admin" in refused.json()["message"]
        allowed = httpx.get(f"{guarded.url}{path}", headers={"X-Api-Key": ADMIN_KEY})
        assert allowed.status_code == 200, (path, allowed.text)
    write = httpx.post(
        f"{guarded.url}/api/v1/streams",
        json={"StreamName": "cards"},
        headers={"Authorization": f"Bearer {INVOKE_KEY}"},
    )
    assert write.status_code == 403
    created = httpx.post(
        f"{guarded.url}/api/v1/streams",
        json={"StreamName": "cards"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert created.status_code == 201, created.text


def test_health_probes_need_no_key(guarded: BackgroundServer) -> None:
    for path in ("/ping", "/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 200


def test_boto3_passes_the_key_as_its_access_key_id(
    guarded: BackgroundServer, trained: TrainResult
) -> None:
    body = orjson.dumps(event_of(trained))
    allowed = runtime_client(guarded.url, key_id=INVOKE_KEY).invoke_endpoint(
        EndpointName="fraud", Body=body, ContentType="application/json"
    )
    assert allowed["InvokedProductionVariant"] == "AllTraffic"
    stranger = runtime_client(guarded.url, key_id="AKIAIOSFODNN7EXAMPLE")
    attempts = count_attempts(stranger)
    with pytest.raises(stranger.exceptions.ClientError) as caught:
        stranger.invoke_endpoint(EndpointName="fraud", Body=body, ContentType="application/json")
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert len(attempts) == 1  # boto3 does not retry a refused key


def test_tritonclient_sends_the_key_as_a_header(guarded: BackgroundServer) -> None:
    client = httpclient.InferenceServerClient(url=f"{guarded.host}:{guarded.port}")
    try:
        assert client.is_server_live()  # probes are open
        assert not client.is_model_ready("fraud")  # 401 without a key
        assert client.is_model_ready("fraud", headers={"Authorization": f"Bearer {INVOKE_KEY}"})
    finally:
        client.close()
    refused = httpx.get(f"{guarded.url}/v2/models/fraud")
    assert refused.status_code == 401 and "needs an API key" in refused.json()["error"]


def test_without_keys_everything_is_open_and_binds_loopback(
    server: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in ("/api/v1/endpoints", "/metrics", "/v2/models/fraud"):
        assert httpx.get(f"{server.url}{path}").status_code == 200
    monkeypatch.delenv("SHIPYARD_HOST", raising=False)
    monkeypatch.delenv("SHIPYARD_API_KEYS", raising=False)
    settings = load_settings()
    assert settings.host == "127.0.0.1" and settings.api_keys is None
    assert server.host == "127.0.0.1"


def test_keys_are_hidden_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_API_KEYS", f"{ADMIN_KEY}:admin")
    settings = load_settings()
    assert ADMIN_KEY not in repr(settings)
    assert settings.api_keys is not None
    keys = ApiKeys.parse(settings.api_keys.get_secret_value())
    assert keys is not None and keys.role_of(ADMIN_KEY) == ADMIN


def test_keys_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n{INVOKE_KEY}:invoke\n\n{ADMIN_KEY} : admin  # ops\n")
    keys = ApiKeys.parse(f"@{path}")
    assert keys is not None
    assert keys.role_of(INVOKE_KEY) == INVOKE and keys.role_of(ADMIN_KEY) == ADMIN
    assert keys.role_of("someone-else-0123456") is None
    assert INVOKE_KEY not in repr(keys)  # only digests are held


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("short:admin", "entry 1 is not KEY:ROLE"),
        (f"{ADMIN_KEY}:root", "entry 1 is not KEY:ROLE"),
        (f"{INVOKE_KEY}:invoke,{INVOKE_KEY}:admin", "entry 2 repeats a key"),
        ("with/slash-0123456789:admin", "entry 1 is not KEY:ROLE"),
        (" , ", "lists no keys"),
        ("@/nonexistent/keys", "cannot read"),
    ],
)
def test_bad_key_settings_fail_loudly(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ApiKeys.parse(spec)


def test_an_empty_setting_configures_no_keys() -> None:
    assert ApiKeys.parse("") is None and ApiKeys.parse(None) is None


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/ping", None),
        ("GET", "/v2/health/ready", None),
        ("POST", "/ping", ADMIN),
        ("POST", "/invocations", INVOKE),
        ("POST", "/endpoints/fraud/invocations", INVOKE),
        ("POST", "/endpoints/fraud/invocations/extra", ADMIN),
        ("POST", "/v2/models/fraud/infer", INVOKE),
        ("GET", "/v2", INVOKE),
        ("POST", "/streams/cards/records", INVOKE),
        ("GET", "/api/v1/endpoints", ADMIN),
        ("POST", "/api/v1/models/fraud/versions/1/approve", ADMIN),
        ("GET", "/metrics", ADMIN),
        ("GET", "/anything/else", ADMIN),
    ],
)
def test_roles_by_route(method: str, path: str, role: str | None) -> None:
    assert required_role(method, path) == role


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"X-Api-Key": "k1"}, "k1"),
        ({"Authorization": "Bearer k2"}, "k2"),
        ({"Authorization": "bearer k3"}, "k3"),
        (
            {
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKID123/20260101/us-east-1/"
                "sagemaker/aws4_request, SignedHeaders=host, Signature=abc"
            },
            "AKID123",
        ),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({}, None),
    ],
)
def test_where_a_key_is_read_from(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(Headers(headers)) == key


def test_the_cli_and_the_ingest_client_present_shipyard_api_key(
    guarded: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app
    from shipyard.ingest import Client

    runner = CliRunner()
    monkeypatch.delenv("SHIPYARD_API_KEY", raising=False)
    refused = runner.invoke(app, ["streams", "create", "cards", "--url", guarded.url])
    assert refused.exit_code == 1 and "needs an API key" in str(refused.exception)
    monkeypatch.setenv("SHIPYARD_API_KEY", ADMIN_KEY)
    created = runner.invoke(app, ["streams", "create", "cards", "--url", guarded.url])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["models", "list", "--url", guarded.url])
    assert listed.exit_code == 0, listed.output
    with Client(guarded.url, api_key=SecretStr(INVOKE_KEY)) as client:
        report = client.put("cards", [{"event_id": "e1", "card_id": "c1"}])
    assert report.delivered == 1
    with Client(guarded.url) as client, pytest.raises(InvalidRequestError, match="API key"):
        client.put("cards", [{"event_id": "e2", "card_id": "c1"}])
