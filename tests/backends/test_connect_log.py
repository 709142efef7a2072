"""The log line at connect: the database opened (no password), its schema version, read-only
mode and a schema of its own."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import adk_sessions
from adk_sessions._queries import load_migrations

KNOWN = len(load_migrations("sqlite"))  # the schema version a new database migrates to
pytestmark = pytest.mark.anyio


async def test_connect_logs_the_database_and_schema_version(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO the adk_sessions logger names the database opened and its schema version."""
    with caplog.at_level(logging.INFO, logger="adk_sessions"):
        async with adk_sessions.connect(db_url) as service:
            dialect = service.dialect
    (record,) = [r for r in caplog.records if r.name == "adk_sessions"]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith(f"opened {db_url} ({dialect}), schema version {KNOWN}")


async def test_the_log_line_holds_no_password(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A password, in the URL's user part or as a parameter, shows as *** in the log line."""
    parts = urllib.parse.urlsplit(pg_dsn)
    if parts.password:
        pytest.skip("the test server's DSN carries a password of its own")
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    # The test server trusts local connections, so any password is accepted.
    with_password = urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:s3cr3t-pw@{host}"))
    as_parameter = urllib.parse.urlunsplit(
        parts._replace(query="&".join(filter(None, [parts.query, "password=s3cr3t-pw"])))
    )
    with caplog.at_level(logging.INFO, logger="adk_sessions"):
        for url in (with_password, as_parameter):
            async with adk_sessions.connect(url, migrate=False):
                pass
    lines = [r.getMessage() for r in caplog.records if r.name == "adk_sessions"]
    assert len(lines) == 2 and all("***" in line for line in lines)
    assert "s3cr3t-pw" not in caplog.text


async def test_read_only_open_is_logged_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A SQLite database opened with mode=ro says so in the log line."""
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    async with adk_sessions.connect(url):
        pass
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adk_sessions"):
        async with adk_sessions.connect(url + "?mode=ro"):
            pass
    assert f"opened {url}?mode=ro (sqlite, read-only), schema version {KNOWN}" in caplog.text


async def test_the_log_line_names_a_schema_of_its_own(
    fresh_pg_database: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """Tables in a PostgreSQL schema of their own: the log line names it."""
    url = await fresh_pg_database()
    with caplog.at_level(logging.INFO, logger="adk_sessions"):
        async with adk_sessions.connect(url, schema="tenant a"):
            pass
    assert (
        f"opened {url} (postgres, tables in schema 'tenant a'), schema version {KNOWN} "
        f"(applied {list(range(1, KNOWN + 1))})" in caplog.text
    )
