from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.config import Settings, load_settings
from shipyard.core.errors import ConfigError


def test_defaults_live_in_the_home_folder(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    assert settings.resolved_store_url == f"file://{tmp_path / 'h' / 'objects'}"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'h' / 'shipyard.db'}"
    assert settings.stream_url == "embedded"
    assert settings.host == "127.0.0.1"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "x"))
    monkeypatch.setenv("SHIPYARD_PORT", "9001")
    monkeypatch.setenv("SHIPYARD_STORE_URL", "s3://bucket/prefix")
    settings = load_settings()
    assert settings.home_path == (tmp_path / "x").resolve()
    assert settings.port == 9001
    assert settings.resolved_store_url == "s3://bucket/prefix"


def test_a_badly_typed_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SHIPYARD_PORT='eighty'" in message
    assert "\n" not in message


def test_an_unwritable_home_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot be created"):
        Settings(home=blocker / "home").ensure_home()


def test_a_home_with_spaces_keeps_objects_inside_it(tmp_path: Path) -> None:
    from shipyard.storage import ObjectStore

    settings = Settings(home=tmp_path / "my home é")
    store = ObjectStore(settings.resolved_store_url)
    store.put_bytes("a/b.bin", b"x")
    assert (tmp_path / "my home é" / "objects" / "a" / "b.bin").read_bytes() == b"x"
