"""The gateway's settings: each problem named, secrets never echoed, files and env both read."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.config import ConfigError, GatewaySettings, build


def _build(environ: dict[str, str], **cli: object) -> GatewaySettings:
    result: GatewaySettings = build(cli, environ=environ, cls=GatewaySettings)
    return result


def test_secrets_come_from_the_variable_and_the_files(tmp_path: Path) -> None:
    plain = tmp_path / "secrets"
    plain.write_text("# rotated 2026-12\nfile-one\nfile-two, file-three\n")
    projects = tmp_path / "projects"
    projects.write_text("proj_a:pa-1\nproj_a:pa-2\nproj_b:pb\n")
    config = _build(
        {
            "VOUCHERIFY_WEBHOOK_SECRETS": "env-one,env-two",
            "VOUCHERIFY_WEBHOOK_SECRETS_FILE": str(plain),
            "VOUCHERIFY_PROJECT_SECRETS_FILE": str(projects),
            "ACTIVITY_INGEST_PROJECT_TOPICS": "proj_b:topic-b",
        },
        topic="main",
    )
    assert config.secrets() == ("env-one", "env-two", "file-one", "file-two", "file-three")
    assert config.project_secret_map() == {"proj_a": ("pa-1", "pa-2"), "proj_b": ("pb",)}
    assert (config.topic_for("proj_b"), config.topic_for("proj_a")) == ("topic-b", "main")


def test_each_problem_is_named_and_no_secret_is_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        _build(
            {"VOUCHERIFY_PROJECT_SECRETS": "proj_a:fine,s3cr3t-without-project", "ACTIVITY_INGEST_PORT": "70000"},
            framing="confluent",
            ack_timeout_seconds=12.0,
        )
    message = str(caught.value)
    for words in ("--topic", "--port", "--ack-timeout-seconds", "--framing confluent", "entry 2 is not PROJECT:VALUE"):
        assert words in message, (words, message)
    assert "s3cr3t" not in message and "fine" not in message
    with pytest.raises(ConfigError, match="no webhook secret"):
        _build({}, topic="t")


def test_the_command_exits_2_with_the_problem() -> None:
    exe = Path(sys.executable).parent / "activity-consumer"
    done = subprocess.run([str(exe), "ingest", "--topic", "t"], capture_output=True, text=True, env={}, timeout=60)
    assert done.returncode == 2
    assert "no webhook secret" in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_ends_with_one_error_line_and_exit_1() -> None:
    exe = Path(sys.executable).parent / "activity-consumer"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(exe), "ingest", "--topic", "t", "--host", "127.0.0.1", "--port", str(port), "--log-format", "json"],
            capture_output=True,
            text=True,
            env={"VOUCHERIFY_WEBHOOK_SECRETS": "x", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
            timeout=60,
        )
    assert done.returncode == 1
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"gateway_cannot_start"' in line]
    assert len(errors) == 1 and "address already in use" in errors[0]["error"]
    assert "Traceback" not in done.stdout + done.stderr
