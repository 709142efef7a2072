"""Browser-safe defaults: JSON bodies only, loopback Host names, no cross-origin calls."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest

from adk_sessions import SessionService
from adk_sessions.asgi import REVISION_HEADER, create_app

from .._http import error, path, running

pytestmark = pytest.mark.anyio

APP_ORIGIN = "https://app.example.com"


async def _stored(service: SessionService) -> list[str]:
    return [session.id for session in (await service.list_sessions(app_name="app")).sessions]


@pytest.mark.parametrize(
    ("method", "headers", "content"),
    [
        ("POST", {"Content-Type": "text/plain"}, b'{"state": {"a": 1}}'),
        ("POST", {"Content-Type": "text/plain"}, b""),
        ("POST", {"Content-Type": "application/x-www-form-urlencoded"}, b"state=1"),
        ("POST", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
        ("POST", {}, b'{"state": {"a": 1}}'),
        ("POST", {"Content-Type": "application/json; charset=latin-1"}, b"{}"),
        ("POST", {"Content-Type": "application/jsonx"}, b"{}"),
        ("PATCH", {"Content-Type": "text/plain"}, b'{"stateDelta": {"a": 1}}'),
        ("PATCH", {}, b'{"stateDelta": {"a": 1}}'),
        ("DELETE", {"Content-Type": "text/plain"}, b"x"),
    ],
)
async def test_bodies_must_be_json(
    service: SessionService, method: str, headers: dict[str, str], content: bytes
) -> None:
    """A body that is not Content-Type: application/json (a form, text/plain) answers 415."""
    await service.create_session(app_name="app", user_id="u1", session_id="s")
    async with running(service) as (client, _):
        response = await client.request(method, path(session="s"), headers=headers, content=content)
        assert "application/json" in error(response, 415, "unsupported_media_type")
        other = await client.request(method, path(session="new"), headers=headers, content=content)
        error(other, 415, "unsupported_media_type")
    assert await _stored(service) == ["s"]
    stored = await service.get_session(app_name="app", user_id="u1", session_id="s")
    assert stored is not None and stored.revision == 0 and stored.state == {}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
async def test_json_bodies_are_accepted(service: SessionService, content_type: str) -> None:
    """application/json, with or without charset=utf-8 and in any case, is accepted."""
    async with running(service) as (client, _):
        response = await client.post(
            path(session="s"),
            content=b'{"state": {"a": 1}}',
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200, response.text
        # No body and no Content-Type: an empty create, as before.
        assert (await client.post(path(session="t"))).status_code == 200
    assert await _stored(service) == ["s", "t"]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:{port}",
        "localhost.evil.example.com:{port}",
        "127.0.0.1.evil.example.com",
        "0.0.0.0:{port}",
        "192.168.1.10:{port}",
        "[::1",
        "localhost:port",
    ],
)
async def test_foreign_host_names_are_a_421(service: SessionService, host: str) -> None:
    """On a loopback address a Host that names no loopback host answers 421: no DNS rebinding."""
    async with running(service) as (client, base):
        headers = {"Host": host.format(port=base.rsplit(":", 1)[1])}
        for method, route in (("POST", path(session="s")), ("GET", path()), ("GET", "/healthz")):
            response = await client.request(method, route, headers=headers)
            assert "localhost" in error(response, 421, "misdirected_request")
    assert await _stored(service) == []


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:{port}",
        "LOCALHOST:{port}",
        "127.0.0.1",
        "127.0.0.2:{port}",
        "[::1]:{port}",
        "[::1]",
    ],
)
async def test_loopback_host_names_are_accepted(service: SessionService, host: str) -> None:
    """localhost, 127.0.0.0/8 and [::1], with or without the port, are accepted."""
    async with running(service) as (client, base):
        headers = {"Host": host.format(port=base.rsplit(":", 1)[1])}
        response = await client.post(path(session="s"), headers=headers)
        assert response.status_code == 200, response.text


async def test_a_request_without_host_is_a_421(service: SessionService) -> None:
    """An HTTP/1.0 request without a Host header is refused on a loopback address."""
    async with running(service) as (_, base):
        port = int(base.rsplit(":", 1)[1])
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(b"POST /apps/app/users/u1/sessions/s HTTP/1.0\r\n\r\n")
            answer = b""
            with anyio.fail_after(10):
                while True:
                    try:
                        answer += await stream.receive()
                    except anyio.EndOfStream:
                        break
        assert answer.startswith(b"HTTP/1.1 421 "), answer
        assert b'"misdirected_request"' in answer
    assert await _stored(service) == []


async def test_allowed_hosts(service: SessionService) -> None:
    """allowed_hosts adds names (a reverse proxy's) to the loopback ones; others stay 421."""
    async with running(service, allowed_hosts=["sessions.internal"]) as (client, base):
        port = base.rsplit(":", 1)[1]
        for host in ("sessions.internal", f"sessions.internal:{port}", f"localhost:{port}"):
            response = await client.post(
                path(session=host.replace(":", "-")), headers={"Host": host}
            )
            assert response.status_code == 200, (host, response.text)
        error(
            await client.get(path(), headers={"Host": "other.internal"}), 421, "misdirected_request"
        )


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", "http://localhost:1"])
async def test_cross_origin_requests_are_a_403_without_cors(
    service: SessionService, origin: str
) -> None:
    """A foreign Origin is refused (403), even a body-less "simple" POST; preflights are too."""
    async with running(service) as (client, _):
        headers = {"Origin": origin}
        for method, session in (("POST", "s"), ("POST", None), ("GET", None), ("DELETE", "s")):
            response = await client.request(method, path(session=session), headers=headers)
            assert "--cors-origin" in error(response, 403, "forbidden")
            assert "access-control-allow-origin" not in response.headers
        preflight = await client.options(
            path(session="s"),
            headers={**headers, "Access-Control-Request-Method": "POST"},
        )
        error(preflight, 403, "forbidden")
        assert "access-control-allow-origin" not in preflight.headers
    assert await _stored(service) == []


async def test_same_origin_requests_are_allowed(service: SessionService) -> None:
    """A page served by this server itself (Origin = its own host) may call it."""
    async with running(service) as (client, base):
        response = await client.post(path(session="s"), headers={"Origin": base})
        assert response.status_code == 200, response.text


async def test_cors_for_listed_origins_only(service: SessionService) -> None:
    """With cors_origins the listed origin gets CORS headers and preflights; others get 403."""
    async with running(service, cors_origins=[APP_ORIGIN], token="tok") as (client, _):
        preflight = await client.options(
            path(session="s"),
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": f"authorization, content-type, {REVISION_HEADER}",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
        allowed = preflight.headers["access-control-allow-methods"]
        assert {"GET", "POST", "PATCH", "DELETE"} <= {m.strip() for m in allowed.split(",")}
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        created = await client.post(
            path(session="s"),
            json={"state": {"a": 1}},
            headers={"Origin": APP_ORIGIN, "Authorization": "Bearer tok"},
        )
        assert created.status_code == 200
        assert created.headers["access-control-allow-origin"] == APP_ORIGIN
        assert REVISION_HEADER.lower() in created.headers["access-control-expose-headers"].lower()
        for origin in ("https://evil.example.com", APP_ORIGIN + ":8443", "http://app.example.com"):
            refused = await client.options(
                path(session="s"),
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            error(refused, 403, "forbidden")
            assert "access-control-allow-origin" not in refused.headers
        # Preflights need no token (browsers never send one); the real request does.
        no_token = await client.get(path(), headers={"Origin": APP_ORIGIN})
        error(no_token, 401, "unauthorized")
        assert no_token.headers["access-control-allow-origin"] == APP_ORIGIN
    assert await _stored(service) == ["s"]


async def test_private_network_preflights_are_refused(service: SessionService) -> None:
    """A public page's preflight asking for private-network access gets no permission."""
    async with running(service, cors_origins=[APP_ORIGIN]) as (client, _):
        response = await client.options(
            path(),
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Private-Network": "true",
            },
        )
        assert response.status_code == 400
        assert "access-control-allow-private-network" not in response.headers


async def test_options_without_origin_answers_allow(service: SessionService) -> None:
    """OPTIONS without an Origin (not a preflight) still answers 204 with Allow, no token."""
    async with running(service, token="tok") as (client, _):
        response = await client.options(path(session="s"))
        assert response.status_code == 204
        assert response.headers["allow"] == "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
        probe = await client.options("/readyz")
        assert probe.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_websockets_are_refused(service: SessionService) -> None:
    """A WebSocket handshake reaching the application is closed; nothing else happens."""
    app = create_app(service)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: MutableMapping[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/apps/app/users/u1/sessions",
        "raw_path": b"/apps/app/users/u1/sessions",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    assert [message["type"] for message in sent] == ["websocket.close"]
