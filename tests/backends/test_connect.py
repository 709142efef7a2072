"""connect(): URL forms, options, and failures (typed, with the driver's cause, no password)."""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions.errors import InvalidArgumentError, StorageError

from .._pg import pg_connection

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-pa55"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


async def test_unreachable_postgres_is_storage_error_without_password() -> None:
    """An unreachable server raises StorageError caused by the driver, without the password."""
    url = f"postgresql://user:{SECRET}@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(StorageError) as info:
        await adk_sessions.connect(url, connect_timeout=5)
    assert info.value.__cause__ is not None
    assert SECRET not in str(info.value)


async def test_missing_postgres_database_is_storage_error(pg_dsn: str) -> None:
    """A database that does not exist raises StorageError with the driver's exception as cause."""
    parts = urllib.parse.urlsplit(pg_dsn)
    url = urllib.parse.urlunsplit(parts._replace(path="/no_such_database_here"))
    with pytest.raises(StorageError) as info:
        await adk_sessions.connect(url)
    assert info.value.__cause__ is not None


async def test_sqlite_path_in_missing_directory_is_invalid(tmp_path: Path) -> None:
    """An SQLite path whose directory does not exist is an InvalidArgumentError naming it, and
    nothing is created anywhere (never a new file somewhere else)."""
    with pytest.raises(InvalidArgumentError, match="missing"):
        await adk_sessions.connect(f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert os.listdir(tmp_path) == []


async def test_unopenable_sqlite_file_is_storage_error(tmp_path: Path) -> None:
    """An SQLite path that cannot be opened (a directory) raises StorageError with sqlite3's
    cause."""
    (tmp_path / "adir.db").mkdir()
    with pytest.raises(StorageError) as info:
        await adk_sessions.connect(f"sqlite:///{tmp_path}/adir.db")
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "url",
    [f"mysql://root:{SECRET}@localhost/db", "sqlite:/relative.db", "sqlite:///", "nonsense"],
)
async def test_bad_urls_are_invalid_arguments(url: str) -> None:
    """Unsupported or malformed URLs raise InvalidArgumentError without the password."""
    with pytest.raises(InvalidArgumentError) as info:
        await adk_sessions.connect(url)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("url_kind", "options"),
    [("sqlite", {"pool": 3}), ("sqlite", {"synchronous": "SOMETIMES"}), ("postgres", {"x": 1})],
)
async def test_unknown_or_bad_options_rejected(
    url_kind: str, options: dict[str, Any], tmp_path: Path
) -> None:
    """Unknown or malformed options raise InvalidArgumentError before connecting."""
    url = f"sqlite:///{tmp_path}/o.db" if url_kind == "sqlite" else "postgresql://u@127.0.0.1:1/d"
    with pytest.raises(InvalidArgumentError):
        await adk_sessions.connect(url, **options)


async def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///relative (to the working directory), sqlite:////absolute and :memory: work."""
    monkeypatch.chdir(tmp_path)
    async with adk_sessions.connect("sqlite:///rel.db") as service:
        await service.create_session(app_name="a", user_id="u", session_id="r")
    assert (tmp_path / "rel.db").exists()
    absolute = tmp_path / "abs.db"
    async with adk_sessions.connect(f"sqlite:///{absolute}") as service:  # four slashes
        await service.create_session(app_name="a", user_id="u", session_id="x")
    async with adk_sessions.connect(f"sqlite+aiosqlite:///{absolute}") as service:
        assert await service.get_session(app_name="a", user_id="u", session_id="x") is not None
    service = await adk_sessions.connect("sqlite:///:memory:")
    try:
        s = await service.create_session(app_name="a", user_id="u")
        assert await service.get_session(app_name="a", user_id="u", session_id=s.id) == s
    finally:
        await service.close()
        await service.close()  # idempotent


async def test_postgres_url_aliases(pg_dsn: str) -> None:
    """postgres:// and postgresql+asyncpg:// reach the same server as postgresql://."""
    rest = pg_dsn.split("://", 1)[1]
    for scheme in ("postgres", "postgresql+asyncpg"):
        async with adk_sessions.connect(f"{scheme}://{rest}", migrate=False) as service:
            assert service.dialect == "postgres"


async def test_sqlite_url_parameters_are_options(tmp_path: Path) -> None:
    """Options given as SQLite URL parameters are honoured like keyword options."""
    url = f"sqlite:///{tmp_path}/p.db?synchronous=normal&busy_timeout=2.5&max_readers=2"
    async with adk_sessions.connect(url) as service:
        await service.create_session(app_name="a", user_id="u")
        assert len(service._dialect._readers.all) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("mod=ro", "unknown parameter"),
        ("mode=ro&mode=rw", "given twice"),
        ("max_readers=two", "max_readers"),
        ("mode=rx", "mode"),
    ],
)
async def test_bad_sqlite_url_parameters_are_invalid(
    tmp_path: Path, query: str, match: str
) -> None:
    """A misspelt, repeated or malformed SQLite URL parameter is an InvalidArgumentError naming
    it, and no file is created."""
    with pytest.raises(InvalidArgumentError, match=match):
        await adk_sessions.connect(f"sqlite:///{tmp_path}/p.db?{query}")
    assert os.listdir(tmp_path) == []


async def test_url_parameter_and_option_must_agree(tmp_path: Path) -> None:
    """The same option given in the URL and as a keyword with another value is refused."""
    with pytest.raises(InvalidArgumentError, match="max_readers"):
        await adk_sessions.connect(f"sqlite:///{tmp_path}/p.db?max_readers=2", max_readers=3)


async def test_sqlite_read_only_never_creates_or_writes(tmp_path: Path) -> None:
    """mode=ro: a missing file is not created; an existing one is read, never migrated, and
    writes raise StorageError."""
    with pytest.raises(StorageError):
        await adk_sessions.connect(f"sqlite:///{tmp_path}/none.db?mode=ro")
    assert not (tmp_path / "none.db").exists()
    async with adk_sessions.connect(f"sqlite:///{tmp_path}/x.db") as service:
        s = await service.create_session(app_name="a", user_id="u", session_id="s")
    async with adk_sessions.connect(f"sqlite:///{tmp_path}/x.db?mode=ro") as service:
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got == s
        with pytest.raises(StorageError, match="readonly"):
            await service.create_session(app_name="a", user_id="u")
        with pytest.raises(StorageError, match="readonly"):
            await service.append_event(s, adk_sessions.Event(author="x"))
        assert (await service.status())["sessions"] == 1


async def test_postgres_url_parameters(create_pg_database: Any) -> None:
    """PostgreSQL URL parameters: ours are pool options, others reach the server as settings,
    and one the server refuses (unknown, or a bad value) is an InvalidArgumentError naming it
    (never dropped)."""
    url = await create_pg_database("params")
    params = "max_size=3&min_size=3&application_name=adk-test"
    async with adk_sessions.connect(f"{url}?{params}"), pg_connection(url) as admin:
        named = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'adk-test'"
        )
    assert named == 3
    with pytest.raises(InvalidArgumentError, match="no_such_setting"):
        await adk_sessions.connect(f"{url}?no_such_setting=1")
    with pytest.raises(InvalidArgumentError, match="statement_timeout"):
        await adk_sessions.connect(f"{url}?statement_timeout=soon")


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ("?distribute=maybe", {}),
        ("?distribute=", {}),
        ("?distribute=true&distribute=false", {}),
        ("", {"distribute": "no"}),
        ("?distribute=true", {"distribute": False}),
    ],
)
async def test_bad_distribute_choice_rejected(query: str, options: dict[str, Any]) -> None:
    """A distribute value that is not a boolean, or two that disagree, raise InvalidArgumentError
    naming distribute, before any connection is made."""
    url = f"postgresql://u@127.0.0.1:{_closed_port()}/d{query}"
    with pytest.raises(InvalidArgumentError, match="distribute"):
        await adk_sessions.connect(url, **options)


@pytest.mark.parametrize("query", ["?distribute=false", "?distribute=0", "?distribute=TRUE"])
async def test_distribute_on_plain_postgres_changes_nothing(
    fresh_pg_database: Callable[[], Awaitable[str]], query: str
) -> None:
    """On PostgreSQL without Citus the distribute parameter is accepted (never handed to asyncpg
    as a server setting) and the tables stay plain."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url + query) as service:
        s = await service.create_session(app_name="a", user_id="u", state={"app:k": 1})
        assert await service.get_session(app_name="a", user_id="u", session_id=s.id) == s
        status = await service.status()
    assert status["distributed"] is False
    assert status["distribution"] == {"citus": None, "tables": {}}
