"""google-adk's api_server app uses AdkSessionService through ADK's service registry."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.adk.cli import fast_api, service_registry
from google.adk.cli.fast_api import get_fast_api_app
from google.adk.cli.utils.service_factory import create_session_service_from_options

from adk_sessions.adk import SCHEMES, AdkSessionService, register

from ._scripted import APP

pytestmark = pytest.mark.anyio

_AGENT = """\
from tests.integrations.adk._scripted import make_agent

root_agent = make_agent()
"""

_SERVICES_YAML = "services:\n" + "".join(
    f"  - scheme: {scheme}\n    type: session\n    class: adk_sessions.adk.AdkSessionService\n"
    for scheme in SCHEMES
)

_SERVICES_PY = """\
from adk_sessions.adk import register

register()
"""


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A new google-adk service registry (and no cached services.py) for one test."""
    monkeypatch.setattr(service_registry, "_service_registry_instance", None)
    monkeypatch.delitem(sys.modules, "services", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("services", None)


def _agents_dir(root: Path, recipe: str) -> Path:
    agents = root / "agents"
    package = agents / APP
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import agent\n")
    (package / "agent.py").write_text(_AGENT)
    if recipe == "services.yaml":
        (agents / "services.yaml").write_text(_SERVICES_YAML)
    else:
        (agents / "services.py").write_text(_SERVICES_PY)
    return agents


@pytest.mark.usefixtures("fresh_registry")
@pytest.mark.filterwarnings(r"ignore:\[EXPERIMENTAL\]:UserWarning")  # google-adk's own notices
@pytest.mark.parametrize("recipe", ["services.yaml", "services.py"])
async def test_api_server_sessions_and_run(
    tmp_path: Path, db_url: str, recipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create, get, list, delete and /run over HTTP all land in the adk_sessions database."""
    built: list[Any] = []

    def record(**kwargs: Any) -> Any:
        built.append(create_session_service_from_options(**kwargs))
        return built[-1]

    # google-adk never closes its session service; keep a handle to close ours.
    monkeypatch.setattr(fast_api, "create_session_service_from_options", record)
    app = get_fast_api_app(
        agents_dir=str(_agents_dir(tmp_path, recipe)),
        session_service_uri=db_url,
        use_local_storage=False,
        web=False,
    )
    (server_service,) = built
    assert isinstance(server_service, AdkSessionService)
    try:
        await _exercise(app, db_url)
    finally:
        await server_service.close()


async def _exercise(app: Any, db_url: str) -> None:
    base = f"/apps/{APP}/users/ann/sessions"
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
        AdkSessionService(db_url) as direct,
    ):
        created = await client.post(base, json={"session_id": "s1", "state": {"k": 1}})
        assert created.status_code == 200, created.text
        assert created.json()["id"] == "s1"
        stored = await direct.get_session(app_name=APP, user_id="ann", session_id="s1")
        assert stored is not None and stored.state == {"k": 1}

        await client.post(base, json={"session_id": "s2"})
        listed = await client.get(base)
        assert listed.status_code == 200
        assert sorted(s["id"] for s in listed.json()) == ["s1", "s2"]

        run: dict[str, Any] = {
            "app_name": APP,
            "user_id": "ann",
            "session_id": "s1",
            "new_message": {"role": "user", "parts": [{"text": "bump 4"}]},
        }
        ran = await client.post("/run", json=run)
        assert ran.status_code == 200, ran.text
        assert ran.json()[-1]["content"]["parts"][0]["text"] == "the count is 4"

        got = await client.get(f"{base}/s1")
        assert got.status_code == 200
        body = got.json()
        assert body["state"] == {
            "k": 1,
            "count": 4,
            "history": [4],
            "app:total": 4,
            "user:calls": 1,
        }
        assert len(body["events"]) == 4
        stored = await direct.get_session(app_name=APP, user_id="ann", session_id="s1")
        assert stored is not None and len(stored.events) == 4

        deleted = await client.delete(f"{base}/s2")
        assert deleted.status_code == 200
        assert await direct.get_session(app_name=APP, user_id="ann", session_id="s2") is None
        assert (await client.get(f"{base}/s2")).status_code == 404


def test_register_claims_database_schemes() -> None:
    """register() makes a registry build AdkSessionService for SQLite and PostgreSQL URLs."""
    registry = service_registry.ServiceRegistry()
    register(registry)
    for url in (
        "sqlite:///x.db",
        "sqlite+aiosqlite:///x.db",
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+asyncpg://u@h/db",
    ):
        made = registry.create_session_service(url, agents_dir="agents")
        assert isinstance(made, AdkSessionService), url
    assert registry.create_session_service("mysql://u@h/db") is None
