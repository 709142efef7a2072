"""Client mistakes answer 4xx, always; database failures 503 (retry) or 500 (no internals)."""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import adk_sessions
from adk_sessions import Event, SessionService
from adk_sessions.asgi import MAX_ID_BYTES, RETRY_AFTER_SECONDS
from adk_sessions.errors import InvalidArgumentError

from .._http import JSON, error, execute_elsewhere, own_database, path, running
from .._pg import pg_connection

pytestmark = pytest.mark.anyio


def _token(payload: str | bytes) -> str:
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_PAGE_TOKENS = {
    "update time over 1e308": _token('[1,"app","u1",1e309,"u1","s"]'),
    "update time minus infinity": _token('[1,"app","u1",-1e999,"u1","s"]'),
    "update time NaN": _token('[1,"app","u1",NaN,"u1","s"]'),
    "integer too large for a float": _token('[1,"app","u1",' + "9" * 400 + ',"u1","s"]'),
    "update time a string": _token('[1,"app","u1","1","u1","s"]'),
    "nested 1,000 deep": _token("[" * 1000 + "]" * 1000),
    "nested 4,000 deep": _token("[" * 4000 + "]" * 4000),
    "NUL in the session id": _token('[1,"app","u1",1.0,"u1","s\\u0000"]'),
    "NUL in the user id": _token('[1,"app","u1",1.0,"u\\u0000","s"]'),
    "lone surrogate": _token('[1,"app","u1",1.0,"u1","\\ud800"]'),
    "control character in the session id": _token('[1,"app","u1",1.0,"u1","s\\n"]'),
    "version true": _token('[true,"app","u1",1.0,"u1","s"]'),
    "version 2": _token('[2,"app","u1",1.0,"u1","s"]'),
    "an object": _token('{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}'),
    "too short": _token("[1,2]"),
    "not JSON": _token(b"\xff\xfe\x00"),
    "not base64": "%%%",
    "non-ASCII": "\u00e9t\u00e9",
    "another user's": _token('[1,"app","u2",1.0,"u2","s"]'),
    "another app's": _token('[1,"other","u1",1.0,"u1","s"]'),
}


@pytest.mark.parametrize("token", BAD_PAGE_TOKENS.values(), ids=BAD_PAGE_TOKENS.keys())
async def test_malformed_page_tokens_are_a_400(service: SessionService, token: str) -> None:
    """Any malformed or foreign pageToken answers 400 naming page_token, never 5xx."""
    await service.create_session(app_name="app", user_id="u1", session_id="s")
    async with running(service) as (client, _):
        response = await client.get(path(), params={"pageSize": 1, "pageToken": token})
        assert "page_token" in error(response, 400, "invalid_argument")
    with pytest.raises(InvalidArgumentError, match="page_token") as raised:
        await service.list_sessions(app_name="app", user_id="u1", page_size=1, page_token=token)
    assert raised.value.__cause__ is not raised.value


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("numRecentEvents=%00", "numRecentEvents"),
        ("numRecentEvents=1%0A", "numRecentEvents"),
        ("after=1%00", "after"),
        ("after=%1B1", "after"),
    ],
)
async def test_control_characters_in_the_query_are_a_400(
    service: SessionService, query: str, name: str
) -> None:
    """NUL and control characters in a query parameter answer 400 naming it."""
    await service.create_session(app_name="app", user_id="u1", session_id="s")
    async with running(service) as (client, _):
        response = await client.get(f"{path(session='s')}?{query}")
        assert name in error(response, 400, "invalid_argument")


@pytest.mark.parametrize("raw", ["%00", "a%0Ab", "%7F", "%ED%A0%80", "%FF", "a%0D%0AX-Evil:%201"])
async def test_bad_characters_in_a_page_token_are_a_400(service: SessionService, raw: str) -> None:
    """A pageToken holding NUL, control characters or undecodable bytes answers 400."""
    async with running(service) as (client, _):
        response = await client.get(f"{path()}?pageSize=1&pageToken={raw}")
        error(response, 400, "invalid_argument")


@pytest.mark.parametrize(
    "body",
    [
        b'{"state": {"k": "a\\u0000b"}}',
        b'{"state": {"k\\u0000": 1}}',
        b'{"state": {"k": ["\\udc00"]}}',
        b'{"state": {"\\ud83d": 1}}',
        b'{"events": [{"author": "a", "content": {"parts": [{"text": "\\u0000"}]}}]}',
        b'{"events": [{"author": "a\\ud800"}]}',
        b'{"sessionId": "a\\nb"}',
        b'{"sessionId": "\\u007f"}',
        b'{"events": [{"id": "e\\u0001", "author": "a"}]}',
    ],
)
async def test_bad_characters_in_a_body_are_a_400(service: SessionService, body: bytes) -> None:
    """NUL or lone surrogates anywhere in a body, control characters in its ids: 400."""
    async with running(service) as (client, _):
        response = await client.post(path(), content=body, headers=JSON)
        error(response, 400, "invalid_argument")
    assert (await service.list_sessions(app_name="app")).sessions == []


async def test_control_characters_in_values_are_kept(service: SessionService) -> None:
    """Control characters are fine inside state values and event text (only ids refuse them)."""
    async with running(service) as (client, _):
        state = {"text": "line one\nline two\ttab \x1b[0m", "\u2028": "\x7f"}
        response = await client.post(path(session="s"), json={"state": state})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state


IDS = [
    "a",
    "a/b",
    "%2F",
    " ",
    "\u2028",
    "\x80",
    "x" * MAX_ID_BYTES,
    "\u00e9" * (MAX_ID_BYTES // 2),
    "\U0001f389" * (MAX_ID_BYTES // 4),
    "x" * (MAX_ID_BYTES + 1),
    "\u00e9" * (MAX_ID_BYTES // 2 + 1),
    "\U0001f389" * (MAX_ID_BYTES // 4 + 1),
    "a\nb",
    "\t",
    "\x00",
    "a\x7f",
    "\x1f",
    "\r\n",
]


async def _core_verdict(call: Callable[[], Awaitable[Any]]) -> str | None:
    try:
        await call()
    except InvalidArgumentError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("value", IDS, ids=[repr(value)[:24] for value in IDS])
async def test_ids_are_judged_as_the_python_api_judges_them(
    service: SessionService, value: str
) -> None:
    """An id in the path is accepted or refused exactly as create_session does, same message."""
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "session_id",
            {"app_name": "core", "user_id": "u", "session_id": value},
            path("http", "u", value),
        ),
        ("user_id", {"app_name": "core", "user_id": value}, path("http", value, "s")),
        ("app_name", {"app_name": value, "user_id": "core"}, path(value, "http", "s")),
    ]
    async with running(service) as (client, _):
        for field, core_args, http_path in cases:
            verdict = await _core_verdict(lambda: service.create_session(**core_args))  # noqa: B023
            response = await client.post(http_path)
            if verdict is None:
                assert response.status_code == 200, (field, response.text)
            else:
                assert field in verdict
                assert error(response, 400, "invalid_argument") == verdict


# --- database failures --------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own, to break."""
    return own_database(request, tmp_path)


async def test_other_storage_errors_are_a_500_without_internals(
    own_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A database failure that no retry cures answers 500 with a JSON body and no details."""
    async with adk_sessions.connect(own_url) as service:
        await service.create_session(
            app_name="app", user_id="u1", session_id="s", events=[Event(author="a")]
        )
        await execute_elsewhere(own_url, "DROP TABLE adk_events")
        async with running(service) as (client, _):
            with caplog.at_level(logging.ERROR, logger="adk_sessions.asgi"):
                response = await client.get(path(session="s"))
            assert error(response, 500, "internal") == "internal server error"
            assert "adk_events" not in response.text
            created = await client.post(
                path(session="t"), json={"events": [{"author": "a", "timestamp": 1.0}]}
            )
            error(created, 500, "internal")
    logged = [r.exc_info[1] for r in caplog.records if r.name == "adk_sessions.asgi" and r.exc_info]
    assert logged, "the failure's details go to the log"
    assert "adk_events" in str(logged[0])


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection to tmp_path/locked.db, rolled back and closed at the end."""
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


async def test_unavailable_storage_is_a_503_with_retry_after(
    tmp_path: Path, lock_holder: sqlite3.Connection
) -> None:
    """StorageUnavailableError (SQLite busy past busy_timeout) answers 503 with Retry-After."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    async with adk_sessions.connect(url, busy_timeout=0.05) as service:
        lock_holder.execute("BEGIN IMMEDIATE")
        async with running(service) as (client, _):
            response = await client.post(path(session="s"), json={"state": {"a": 1}})
            assert "retry" in error(response, 503, "unavailable")
            assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
            lock_holder.execute("ROLLBACK")
            retried = await client.post(path(session="s"), json={"state": {"a": 1}})
            assert retried.status_code == 200, retried.text


async def test_unavailable_postgres_is_a_503_with_retry_after(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """A PostgreSQL statement timing out behind a lock answers 503 with Retry-After."""
    url = await fresh_pg_database()
    async with (
        adk_sessions.connect(url, command_timeout=0.5) as service,
        pg_connection(url) as holder,
    ):
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE adk_sessions IN ACCESS EXCLUSIVE MODE")
        async with running(service) as (client, _):
            response = await client.post(path(session="s"))
            error(response, 503, "unavailable")
            assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
            await holder.execute("ROLLBACK")
            with anyio.fail_after(30):
                retried = await client.post(path(session="s"))
            assert retried.status_code in (200, 409), retried.text
