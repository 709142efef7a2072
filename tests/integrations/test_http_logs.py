"""Logs: one access line per request (no ids), and serve's start line (no password)."""

from __future__ import annotations

import logging
import signal
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from adk_sessions import SessionService

from .._http import path, running, server_process

pytestmark = pytest.mark.anyio

SECRET_ID = "secret-session-id"
ITEM = "/apps/{app_name}/users/{user_id}/sessions/{session_id}"
COLLECTION = "/apps/{app_name}/users/{user_id}/sessions"


async def test_one_access_line_per_request(
    service: SessionService, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request logs method, path template (never the ids), status and duration, once."""
    requests = [
        ("POST", path(user=SECRET_ID, session=SECRET_ID), {}, f"POST {ITEM} 200"),
        ("GET", path(user=SECRET_ID, session=SECRET_ID), {}, f"GET {ITEM} 200"),
        ("GET", path(user=SECRET_ID), {}, f"GET {COLLECTION} 200"),
        ("DELETE", path(user=SECRET_ID, session="nope"), {}, f"DELETE {ITEM} 404"),
        ("GET", f"/nowhere/{SECRET_ID}", {}, "GET - 404"),
        ("GET", "/healthz", {}, "GET /healthz 200"),
        ("GET", "/healthz", {"Host": "evil.example.com"}, "GET /healthz 421"),
        ("OPTIONS", path(), {}, f"OPTIONS {COLLECTION} 204"),
    ]
    with caplog.at_level(logging.INFO, logger="adk_sessions.access"):
        # A line is written once its answer is sent: the server's shutdown waits for all.
        async with running(service) as (client, _):
            for method, url, headers, _ in requests:
                await client.request(method, url, headers=headers)
    lines = _access(caplog)
    assert len(lines) == len(requests)
    for record, (_, _, _, expected) in zip(lines, requests, strict=True):
        message = record.getMessage()
        assert message.startswith(expected + " "), message
        assert message.endswith("ms")
        assert SECRET_ID not in message
        assert record.levelno == logging.INFO
        assert record.__dict__["status"] == int(expected.rsplit(" ", 1)[1])
        assert record.__dict__["duration_ms"] >= 0
        assert record.__dict__["path_template"] == expected.split(" ")[1]


def _access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "adk_sessions.access"]


def _wait_for(lines: list[str], text: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in list(lines):
            if text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged:\n{''.join(lines)}")


def test_serve_logs_database_address_and_auth(db_url: str, tmp_path: Path) -> None:
    """serve logs the database URL without its password, the address and the auth mode."""
    password = "hunter2-not-logged"  # PostgreSQL trusts the test client anyway
    url = db_url
    if url.startswith("postgresql"):
        parts = urllib.parse.urlsplit(url)
        url = urllib.parse.urlunsplit(
            parts._replace(netloc=parts.netloc.replace("@", f":{password}@", 1))
        )
    secret = "j" * 32
    argv = [url, "--port", "0", "--token", "op", "--cors-origin", "https://app.example.com"]
    env = {"ADK_SESSIONS_JWT_SECRET": secret, "ADK_SESSIONS_JWT_AUDIENCE": "sessions"}
    with server_process(argv, tmp_path, env) as (process, base, lines):
        started = _wait_for(lines, "serving ")
        with httpx.Client(base_url=base) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get(path(session=SECRET_ID)).status_code == 401
        access = _wait_for(lines, "GET /healthz 200")
        _wait_for(lines, f"GET {ITEM} 401")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, "".join(lines)
    log = "".join(lines)
    assert password not in log
    assert secret not in log
    assert SECRET_ID not in log
    if url != db_url:
        assert ":***@" in started
    assert db_url.split("@")[-1] in started
    assert f"on {base};" in started
    assert "auth: operator token + per-user JWT (HS256; audience 'sessions')" in started
    assert "CORS: https://app.example.com" in started
    assert access.startswith("INFO:")
    assert "session store closed" in log
