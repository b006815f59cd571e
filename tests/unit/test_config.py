import os
from pathlib import Path

import pytest

from computeinfra.config import Settings
from computeinfra.errors import ConfigError


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("COMPUTEINFRA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.uses_local_broker
    assert settings.results_root == tmp_path.resolve() / "results"
    assert settings.input_roots == (tmp_path.resolve(), tmp_path.resolve() / "results")
    assert settings.partitions == 12


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPUTEINFRA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("COMPUTEINFRA_INPUT_ROOTS", f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    monkeypatch.setenv("COMPUTEINFRA_TASKS", "pkg.one, pkg.two")
    settings = Settings.from_env(partitions=3)
    assert not settings.uses_local_broker
    assert settings.input_roots == (tmp_path / "a", tmp_path / "b")
    assert settings.task_modules == ("pkg.one", "pkg.two")
    assert settings.partitions == 3


def test_bad_numbers_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPUTEINFRA_PARTITIONS", "many")
    with pytest.raises(ConfigError, match="COMPUTEINFRA_PARTITIONS='many' is not a whole number"):
        Settings.from_env()
    monkeypatch.setenv("COMPUTEINFRA_PARTITIONS", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        Settings.from_env()


def test_kafka_client_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from computeinfra.kafka.clients import common_config, parse_properties, security_config

    config = tmp_path / "client.properties"
    config.write_text(
        "# SASL over TLS\nsecurity.protocol=SASL_SSL\nsasl.mechanism = PLAIN\n"
        "! another comment\nsasl.username=alice\nsasl.password=s3cr=t\n"
    )
    monkeypatch.setenv("COMPUTEINFRA_KAFKA_CONFIG", str(config))
    security_config.cache_clear()
    try:
        merged = common_config("127.0.0.1:9092", "x")
        assert merged["security.protocol"] == "SASL_SSL"
        assert merged["sasl.mechanism"] == "PLAIN"
        assert merged["sasl.password"] == "s3cr=t"
    finally:
        security_config.cache_clear()
    with pytest.raises(ConfigError, match="line 1 .* not key=value"):
        parse_properties("just words")


def test_repeated_kafka_log_lines_are_let_through_once() -> None:
    import logging

    from computeinfra.kafka import clients

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect()
    clients._log.addHandler(handler)
    try:
        for after in range(50):
            clients._log.error("FAIL [thrd:x]: Connect to 127.0.0.1:1 failed (after %dms)", after)
        clients._log.error("another problem")
    finally:
        clients._log.removeHandler(handler)
    assert len(seen) == 2
