"""The HTTP endpoints, served by a real uvicorn on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import adk_sessions
from adk_sessions import SessionService
from adk_sessions._serve import add_serve_parser, check_bind, serve_command
from adk_sessions.asgi import MAX_ID_BYTES, REVISION_HEADER, create_app

from .._http import JSON, error, path, running, server_process

pytestmark = pytest.mark.anyio

ServeFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@contextlib.asynccontextmanager
async def _running(service: SessionService, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running(service, **options) as (client, _):
        yield client


@pytest.fixture
def serve(service: SessionService) -> ServeFactory:
    """Start the app on a random port with the given create_app options; yields a client."""

    def factory(**options: Any) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return _running(service, **options)

    return factory


@pytest.fixture
async def client(serve: ServeFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with default options."""
    async with serve() as http:
        yield http


def _event(event_id: str, timestamp: object, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "author": "user", "timestamp": timestamp, **fields}


async def _create(
    client: httpx.AsyncClient, session: str, body: object = None, **ids: str
) -> dict[str, Any]:
    response = await client.post(path(session=session, **ids), json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# --- create ------------------------------------------------------------------------------------


async def test_create_with_state_and_events(client: httpx.AsyncClient) -> None:
    """POST .../sessions stores state and events and answers 200 with the ADK session JSON."""
    body = {
        "state": {"k": 1, "user:lang": "fr", "temp:scratch": 1},
        "events": [
            _event("e1", 10.25, actions={"stateDelta": {"k": 2}}, turnComplete=True),
            _event("e2", 11.5, content={"role": "user", "parts": [{"text": "hi"}]}),
        ],
    }
    response = await client.post(path(), json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"id", "appName", "userId", "lastUpdateTime", "events", "state"}
    assert (data["appName"], data["userId"]) == ("app", "u1")
    assert len(data["id"]) == 36  # generated uuid4
    assert data["state"] == {"k": 2, "user:lang": "fr"}
    assert [e["id"] for e in data["events"]] == ["e1", "e2"]
    assert data["events"][0]["turnComplete"] is True
    assert data["events"][0]["actions"]["stateDelta"] == {"k": 2}
    assert isinstance(data["lastUpdateTime"], float)
    assert response.headers[REVISION_HEADER] == "2"

    stored = await client.get(path(session=data["id"]))
    assert stored.status_code == 200
    assert stored.json() == data
    assert stored.headers[REVISION_HEADER] == "2"


async def test_create_with_id_in_path_then_conflict(client: httpx.AsyncClient) -> None:
    """POST .../sessions/{id} creates that id; a second create of it answers 409."""
    data = await _create(client, "chosen", {"state": {"a": 1}})
    assert data["id"] == "chosen"
    assert data["events"] == []
    again = await client.post(path(session="chosen"), json={"state": {"a": 2}})
    assert "chosen" in error(again, 409, "already_exists")
    assert (await client.get(path(session="chosen"))).json()["state"] == {"a": 1}


async def test_create_takes_session_id_from_the_body(client: httpx.AsyncClient) -> None:
    """The collection POST honours ADK's sessionId field; a path/body mismatch is a 400."""
    response = await client.post(path(), json={"sessionId": "from-body"})
    assert response.status_code == 200
    assert response.json()["id"] == "from-body"
    same = await client.post(path(session="s2"), json={"sessionId": "s2"})
    assert same.status_code == 200
    mismatch = await client.post(path(session="s3"), json={"sessionId": "other"})
    assert "differs" in error(mismatch, 400, "invalid_argument")
    assert (await client.get(path(session="s3"))).status_code == 404


@pytest.mark.parametrize("content", [b"", b"null", b"{}"])
async def test_create_with_empty_body(client: httpx.AsyncClient, content: bytes) -> None:
    """An empty body, null or {} creates an empty session."""
    response = await client.post(path(session="s"), content=content, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == {}
    assert response.json()["events"] == []


async def test_create_with_whitespace_body_is_not_json(client: httpx.AsyncClient) -> None:
    """A body of whitespace alone is not JSON (the OpenAPI document says an object): 400, and
    no session is created."""
    response = await client.post(path(session="s"), content=b"  \n", headers=JSON)
    assert response.status_code == 400, response.text
    assert (await client.get(path(session="s"))).status_code == 404


@pytest.mark.parametrize(
    "events",
    [
        [_event("ok", 1.0), {"id": "bad", "timestamp": 2.0}],  # no author
        [_event("ok", 1.0), _event("bad", "yesterday")],  # wrong type
        [_event("same", 1.0), _event("same", 2.0)],  # duplicate id
        [_event("ok", 1.0), _event("bad", 2.0, actions={"stateDelta": {"k": "a\u0000b"}})],
    ],
)
async def test_create_with_a_bad_event_stores_nothing(
    client: httpx.AsyncClient, events: list[dict[str, Any]]
) -> None:
    """One bad event fails the whole create with 400 and leaves no session behind."""
    response = await client.post(path(session="s"), json={"state": {"a": 1}, "events": events})
    error(response, 400, "invalid_argument")
    assert (await client.get(path(session="s"))).status_code == 404
    assert (await client.get(path())).json() == []


async def test_create_skips_partial_events(client: httpx.AsyncClient) -> None:
    """Streaming chunks (partial) are not stored, as append_event does not store them."""
    events = [_event("e1", 1.0), _event("chunk", 2.0, partial=True), _event("e2", 3.0)]
    data = await _create(client, "s", {"events": events})
    assert [e["id"] for e in data["events"]] == ["e1", "e2"]


# --- malformed requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "not valid JSON"),
        (b'{"state": {"a": 1},}', "not valid JSON"),
        (b'{"state": {"a": NaN}}', "NaN"),
        (b'{"state": {"a": 1e999}}', "too large"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"events": [{"author": "a", "content": ' + b"[" * 900 + b"]" * 900 + b"}]}", "deeper"),
        (b'{"state": {"a": "\\ud800"}}', "surrogate"),
        (b'{"state": {"a\\u0000": 1}}', "NUL"),
        (b'"just a string"', "must be a JSON object"),
        (b"[]", "must be a JSON object"),
    ],
)
async def test_malformed_json_is_a_400(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    """Bodies that are not acceptable JSON answer 400 with a JSON error naming the problem."""
    response = await client.post(
        path(session="s"), content=content, headers={"content-type": "application/json"}
    )
    assert message in error(response, 400, "invalid_argument")
    assert (await client.get(path(session="s"))).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": []}, "state"),
        ({"state": "x"}, "state"),
        ({"events": {}}, "events"),
        ({"events": [1]}, "events[0]"),
        ({"events": [{"author": 1}]}, "events[0].author"),
        ({"events": [{"author": "a", "actions": {"artifactDelta": {"f": "v1"}}}]}, "artifactDelta"),
        ({"sessionId": 12}, "sessionId"),
        ({"stat": {}}, "'stat'"),
    ],
)
async def test_wrong_types_are_a_400(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """A field of the wrong JSON type answers 400 naming the field."""
    response = await client.post(path(), json=body)
    assert field in error(response, 400, "invalid_argument")


async def test_oversized_bodies_are_a_413(serve: ServeFactory) -> None:
    """Bodies over max_body_size answer 413, with or without Content-Length; at the limit is ok."""
    async with serve(max_body_size=1024) as client:
        padding = "x" * 2000
        response = await client.post(path(session="big"), json={"state": {"p": padding}})
        assert "1024" in error(response, 413, "payload_too_large")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"state": {"p": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}}'

        streamed = await client.post(path(session="big"), content=chunks(), headers=JSON)
        error(streamed, 413, "payload_too_large")
        assert (await client.get(path(session="big"))).status_code == 404

        exact = json.dumps({"state": {"p": ""}}).encode()
        exact = exact.replace(b'""', b'"' + b"z" * (1024 - len(exact)) + b'"')
        assert len(exact) == 1024
        ok = await client.post(path(session="fits"), content=exact, headers=JSON)
        assert ok.status_code == 200, ok.text


# --- get ---------------------------------------------------------------------------------------


async def test_get_filters_events(client: httpx.AsyncClient) -> None:
    """numRecentEvents and after pick events as get_session does; both: the last N of after."""
    events = [_event(f"e{i}", float(i)) for i in range(1, 6)]
    await _create(client, "s", {"events": events})

    async def ids(**params: Any) -> list[str]:
        response = await client.get(path(session="s"), params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["events"]]

    assert await ids() == ["e1", "e2", "e3", "e4", "e5"]
    assert await ids(numRecentEvents=2) == ["e4", "e5"]
    assert await ids(numRecentEvents=0) == []
    assert await ids(after=3) == ["e3", "e4", "e5"]
    assert await ids(after="2.5") == ["e3", "e4", "e5"]
    assert await ids(after=3, numRecentEvents=1) == ["e5"]


@pytest.mark.parametrize(
    "query",
    [
        "numRecentEvents=-1",
        "numRecentEvents=abc",
        "numRecentEvents=1.5",
        "numRecentEvents=",
        "numRecentEvents=99999999999999999999999",
        "numRecentEvents=1&numRecentEvents=2",
        "after=nan",
        "after=inf",
        "after=1e999",
        "after=yesterday",
        "after=",
    ],
)
async def test_get_rejects_bad_query_parameters(client: httpx.AsyncClient, query: str) -> None:
    """Malformed numRecentEvents/after answer 400 naming the parameter."""
    await _create(client, "s")
    response = await client.get(f"{path(session='s')}?{query}")
    assert query.split("=")[0] in error(response, 400, "invalid_argument")


async def test_get_missing_session_is_a_404(client: httpx.AsyncClient) -> None:
    """A session that does not exist, or belongs to another user or app, answers 404."""
    await _create(client, "s")
    assert "'missing'" in error(await client.get(path(session="missing")), 404, "not_found")
    error(await client.get(path(user="u2", session="s")), 404, "not_found")
    error(await client.get(path(app="other", session="s")), 404, "not_found")


async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    """HEAD on a session answers its GET status and headers, no body."""
    await _create(client, "s")
    response = await client.head(path(session="s"))
    assert response.status_code == 200
    assert response.headers[REVISION_HEADER] == "0"
    assert response.content == b""
    assert (await client.head(path(session="nope"))).status_code == 404


# --- list --------------------------------------------------------------------------------------


async def test_list_is_always_an_array(client: httpx.AsyncClient) -> None:
    """Without pageSize the list is a JSON array ([] when empty), sessions without events."""
    empty = await client.get(path())
    assert empty.status_code == 200
    assert empty.json() == []
    for name in ("a", "b", "c"):
        await _create(client, name, {"state": {"n": name}, "events": [_event("e", 1.0)]})
    await _create(client, "other-user", user="u2")
    data = (await client.get(path())).json()
    assert [s["id"] for s in data] == ["a", "b", "c"]
    assert all(s["events"] == [] for s in data)
    assert [s["state"]["n"] for s in data] == ["a", "b", "c"]


async def test_list_pages(client: httpx.AsyncClient) -> None:
    """With pageSize the answer is {"sessions", "nextPageToken"}; the token walks every page."""
    empty = await client.get(path(), params={"pageSize": 2})
    assert empty.json() == {"sessions": [], "nextPageToken": None}
    for name in ("a", "b", "c"):
        await _create(client, name)
    first = (await client.get(path(), params={"pageSize": 2})).json()
    assert [s["id"] for s in first["sessions"]] == ["a", "b"]
    assert isinstance(first["nextPageToken"], str)
    second = (
        await client.get(path(), params={"pageSize": 2, "pageToken": first["nextPageToken"]})
    ).json()
    assert [s["id"] for s in second["sessions"]] == ["c"]
    assert second["nextPageToken"] is None


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("pageSize=0", "pageSize"),
        ("pageSize=-3", "pageSize"),
        ("pageSize=ten", "pageSize"),
        ("pageSize=2&pageToken=not-a-token", "token"),
        ("pageToken=abc", "pageToken"),
    ],
)
async def test_list_rejects_bad_paging(client: httpx.AsyncClient, query: str, name: str) -> None:
    """Bad pageSize, forged tokens and a token without pageSize answer 400."""
    await _create(client, "a")
    response = await client.get(f"{path()}?{query}")
    assert name in error(response, 400, "invalid_argument")


# --- delete ------------------------------------------------------------------------------------


async def test_delete(client: httpx.AsyncClient) -> None:
    """DELETE answers 204 and removes the session; deleting it again answers 404."""
    await _create(client, "s", {"events": [_event("e", 1.0)]})
    response = await client.delete(path(session="s"))
    assert response.status_code == 204
    assert response.content == b""
    error(await client.get(path(session="s")), 404, "not_found")
    error(await client.delete(path(session="s")), 404, "not_found")
    assert (await _create(client, "s"))["events"] == []  # the id is free again


# --- patch -------------------------------------------------------------------------------------


async def test_patch_applies_a_state_delta_as_an_event(client: httpx.AsyncClient) -> None:
    """PATCH {"stateDelta"} appends a user event with the delta and answers the updated session."""
    await _create(client, "s", {"state": {"a": 1, "b": 1}})
    response = await client.patch(
        path(session="s"), json={"stateDelta": {"a": 2, "user:x": True, "temp:t": 1}}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["state"] == {"a": 2, "b": 1, "user:x": True}
    assert response.headers[REVISION_HEADER] == "1"
    (event,) = data["events"]
    assert event["author"] == "user"
    assert event["invocationId"].startswith("p-")
    assert event["actions"]["stateDelta"] == {"a": 2, "user:x": True}
    stored = (await client.get(path(session="s"))).json()
    assert stored == data


async def test_patch_limits_returned_events(client: httpx.AsyncClient) -> None:
    """numRecentEvents on PATCH limits the events in the answer, not what is stored."""
    await _create(client, "s", {"events": [_event("e1", 1.0), _event("e2", 2.0)]})
    response = await client.patch(
        path(session="s"), params={"numRecentEvents": 0}, json={"stateDelta": {"k": 1}}
    )
    assert response.status_code == 200
    assert [e["author"] for e in response.json()["events"]] == ["user"]
    assert len((await client.get(path(session="s"))).json()["events"]) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "stateDelta"),
        (b"{}", "stateDelta is required"),
        (b"[]", "JSON object"),
        (b'{"stateDelta": [1]}', "stateDelta is required"),
        (b'{"stateDelta": {}, "extra": 1}', "'extra'"),
        (b'{"stateDelta": {}, "state_delta": {}}', "both"),
        (b'{"stateDelta": {"a": 1}', "not valid JSON"),
    ],
)
async def test_patch_rejects_bad_bodies(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    """A PATCH body other than {"stateDelta": {...}} answers 400 and changes nothing."""
    await _create(client, "s")
    response = await client.patch(path(session="s"), content=content, headers=JSON)
    assert message in error(response, 400, "invalid_argument")
    assert (await client.get(path(session="s"))).headers[REVISION_HEADER] == "0"


async def test_patch_missing_session_is_a_404(client: httpx.AsyncClient) -> None:
    """PATCH of a session that does not exist answers 404 and creates nothing."""
    response = await client.patch(path(session="nope"), json={"stateDelta": {"a": 1}})
    error(response, 404, "not_found")
    assert (await client.get(path())).json() == []


async def test_conditional_patch(client: httpx.AsyncClient) -> None:
    """A PATCH carrying a stale X-Session-Revision answers 409 and writes nothing."""
    await _create(client, "s")
    url = path(session="s")
    first = await client.patch(url, json={"stateDelta": {"a": 1}}, headers={REVISION_HEADER: "0"})
    assert first.status_code == 200
    stale = await client.patch(url, json={"stateDelta": {"a": 2}}, headers={REVISION_HEADER: "0"})
    assert "reload" in error(stale, 409, "stale_session")
    assert stale.headers[REVISION_HEADER] == "1"
    bad = await client.patch(url, json={"stateDelta": {}}, headers={REVISION_HEADER: "one"})
    error(bad, 400, "invalid_argument")
    assert (await client.get(url)).json()["state"] == {"a": 1}


async def test_concurrent_conditional_patches(client: httpx.AsyncClient) -> None:
    """Of many writers holding the same revision exactly one wins; the others get 409."""
    await _create(client, "s")
    statuses: list[int] = []

    async def write(i: int) -> None:
        response = await client.patch(
            path(session="s"), json={"stateDelta": {"w": i}}, headers={REVISION_HEADER: "0"}
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(write, i)
    assert sorted(statuses) == [200] + [409] * 9
    stored = await client.get(path(session="s"))
    assert stored.headers[REVISION_HEADER] == "1"
    assert len(stored.json()["events"]) == 1


async def test_concurrent_blind_patches_do_not_corrupt(client: httpx.AsyncClient) -> None:
    """Concurrent blind PATCHes each land whole or answer 409; the stored state adds up."""
    await _create(client, "s")
    results: dict[int, int] = {}

    async def write(i: int) -> None:
        response = await client.patch(path(session="s"), json={"stateDelta": {f"k{i}": i}})
        results[i] = response.status_code
        if response.status_code == 200:
            assert response.json()["state"][f"k{i}"] == i

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(write, i)
    assert set(results.values()) <= {200, 409}
    won = {i for i, status in results.items() if status == 200}
    assert won
    stored = await client.get(path(session="s"))
    assert stored.json()["state"] == {f"k{i}": i for i in won}
    assert stored.headers[REVISION_HEADER] == str(len(won))
    assert len(stored.json()["events"]) == len(won)


# --- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "user", "session"),
    [
        ("app", "u1", "a/b"),
        ("app", "u1", "with space & ?#"),
        ("appé", "usér ✓", "séssion 🎉"),
        ("app", "u1", "%2F literally"),
        ("a/pp", "u/1", "..%2F.."),
    ],
)
async def test_unicode_and_url_encoded_ids(
    client: httpx.AsyncClient, app: str, user: str, session: str
) -> None:
    """Ids are single percent-decoded UTF-8 segments: %2F is a '/' inside an id."""
    data = await _create(client, session, {"state": {"x": 1}}, app=app, user=user)
    assert (data["appName"], data["userId"], data["id"]) == (app, user, session)
    got = await client.get(path(app, user, session))
    assert got.status_code == 200
    assert got.json()["id"] == session
    assert [s["id"] for s in (await client.get(path(app, user))).json()] == [session]
    assert (await client.delete(path(app, user, session))).status_code == 204


async def test_body_session_id_with_a_slash_is_addressable(client: httpx.AsyncClient) -> None:
    """A sessionId containing '/' created via the body is read back through %2F."""
    await client.post(path(), json={"sessionId": "x/y"})
    response = await client.get("/apps/app/users/u1/sessions/x%2Fy")
    assert response.status_code == 200
    assert response.json()["id"] == "x/y"
    error(await client.get("/apps/app/users/u1/sessions/x/y"), 404, "not_found")


async def test_long_ids_are_a_400(client: httpx.AsyncClient) -> None:
    """Ids over MAX_ID_BYTES (path, body sessionId, event ids) answer 400; at the limit is ok."""
    longest = secrets.token_hex(MAX_ID_BYTES // 2)
    too_long = longest + "é"
    assert (await _create(client, longest, app=longest, user=longest))["id"] == longest
    for url in (path(session=too_long), path(app=too_long), path(user=too_long)):
        assert f"at most {MAX_ID_BYTES}" in error(await client.post(url), 400, "invalid_argument")
    body_id = await client.post(path(), json={"sessionId": too_long})
    assert "sessionId" in error(body_id, 400, "invalid_argument")
    event_id = await client.post(path(), json={"events": [_event(too_long, 1.0)]})
    assert "events[0].id" in error(event_id, 400, "invalid_argument")
    assert (await client.get(path())).json() == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/apps//users/u1/sessions", "app_name"),
        ("/apps/app/users//sessions", "user_id"),
        ("/apps/app/users/u1/sessions/%FF", "UTF-8"),
        ("/apps/app/users/u1/sessions/a%00b", "control character"),
    ],
)
async def test_bad_path_segments_are_a_400(
    client: httpx.AsyncClient, path: str, message: str
) -> None:
    """Empty app or user ids and undecodable segments answer 400 naming the problem."""
    assert message in error(await client.get(path), 400, "invalid_argument")
    assert message in error(await client.post(path), 400, "invalid_argument")


async def test_trailing_slash_names_the_collection(client: httpx.AsyncClient) -> None:
    """.../sessions/ is the collection route."""
    await _create(client, "s")
    response = await client.get(path() + "/")
    assert [s["id"] for s in response.json()] == ["s"]


@pytest.mark.parametrize(
    "path", ["/", "/apps", "/apps/a/users/u", "/apps/a/users/u/session", "/x/a/users/u/sessions"]
)
async def test_unknown_routes_are_a_404(client: httpx.AsyncClient, path: str) -> None:
    """Paths that are no route answer a JSON 404."""
    error(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "session", "allow"),
    [
        ("PUT", "s", "GET, HEAD, POST, PATCH, DELETE, OPTIONS"),
        ("DELETE", None, "GET, HEAD, POST, OPTIONS"),
        ("PATCH", None, "GET, HEAD, POST, OPTIONS"),
    ],
)
async def test_wrong_methods_are_a_405(
    client: httpx.AsyncClient, method: str, session: str | None, allow: str
) -> None:
    """A method a route lacks answers 405 with an Allow header."""
    response = await client.request(method, path(session=session), json={"stateDelta": {}})
    error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


async def test_options_never_mutates(serve: ServeFactory) -> None:
    """OPTIONS answers 204 with Allow, needs no token and never creates, changes or deletes."""
    async with serve(token="tok") as client:
        auth = {"Authorization": "Bearer tok"}
        await client.post(path(session="kept"), json={"state": {"a": 1}}, headers=auth)
        for session in (None, "new", "kept"):
            response = await client.request(
                "OPTIONS", path(session=session), content=b'{"stateDelta": {"a": 2}}'
            )
            assert response.status_code == 204
            assert "GET" in response.headers["allow"]
        listed = (await client.get(path(), headers=auth)).json()
        assert [(s["id"], s["state"]) for s in listed] == [("kept", {"a": 1})]
        error(await client.options("/nowhere"), 404, "not_found")


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "required"),
        ("Bearer wrong", "not valid"),
        ("Bearer s3cret-but-longer", "not valid"),
        ("Basic s3cret", "not valid"),
        ("Bearer", "not valid"),
        ("s3cret", "not valid"),
    ],
)
async def test_token_is_required_and_checked(
    serve: ServeFactory, header: str | None, detail: str
) -> None:
    """With a token every request needs 'Authorization: Bearer <token>'; others get 401."""
    async with serve(token="s3cret") as client:
        headers = {} if header is None else {"Authorization": header}
        for method, session in (("GET", None), ("POST", "s"), ("DELETE", "s"), ("GET", "s")):
            response = await client.request(method, path(session=session), headers=headers)
            assert detail in error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
        ok = await client.post(path(session="s"), headers={"Authorization": "bearer s3cret"})
        assert ok.status_code == 200
        assert [
            s["id"]
            for s in (await client.get(path(), headers={"Authorization": "Bearer s3cret"})).json()
        ] == ["s"]


def test_create_app_rejects_bad_options() -> None:
    """An empty token or a negative limit is a programming error, refused up front."""
    service: Any = object()
    with pytest.raises(ValueError, match="token"):
        create_app(service, token="")
    with pytest.raises(ValueError, match="max_body_size"):
        create_app(service, max_body_size=-1)
    with pytest.raises(ValueError, match="patch_retries"):
        create_app(service, patch_retries=-1)


# --- adk-sessions serve ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "token", "allow", "refused"),
    [
        ("127.0.0.1", None, False, False),
        ("127.0.0.2", None, False, False),
        ("::1", None, False, False),
        ("localhost", None, False, False),
        ("0.0.0.0", None, False, True),
        ("::", None, False, True),
        ("192.168.1.5", None, False, True),
        ("example.com", None, False, True),
        ("0.0.0.0", "tok", False, False),
        ("0.0.0.0", None, True, False),
    ],
)
def test_check_bind(host: str, token: str | None, allow: bool, refused: bool) -> None:
    """Only loopback addresses may be served without a token, unless explicitly allowed."""
    problem = check_bind(host, token, allow_unauthenticated=allow)
    assert (problem is not None) == refused
    if refused:
        assert problem is not None
        assert "--token" in problem


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="adk-sessions")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_serve_parser_defaults() -> None:
    """serve defaults to the SQLite default URL, 127.0.0.1:8000, no token."""
    args = _parse("serve")
    assert (args.url, args.host, args.port, args.token) == (None, "127.0.0.1", 8000, None)
    assert not args.allow_unauthenticated


def test_serve_refuses_an_open_address_without_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """serve on 0.0.0.0 without a token exits 2 before opening any database."""
    monkeypatch.delenv("ADK_SESSIONS_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert serve_command(_parse("serve", "--host", "0.0.0.0")) == 2
    assert "--token" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


async def _session_exists(url: str, session_id: str) -> bool:
    async with adk_sessions.connect(url) as service:
        found = await service.get_session(app_name="app", user_id="u1", session_id=session_id)
    return found is not None and found.state == {"durable": True}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_default_url_and_clean_shutdown(tmp_path: Path, signum: signal.Signals) -> None:
    """serve without a URL uses ./adk_sessions.db and exits 0 on SIGINT/SIGTERM, data kept."""
    with server_process(["--port", "0", "--token", "t"], tmp_path) as (process, base, lines):
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer t"}) as http:
            response = http.post(path(session="kept"), json={"state": {"durable": True}})
            assert response.status_code == 200
            assert http.get(path(session="kept"), headers={"Authorization": ""}).status_code == 401
        process.send_signal(signum)
        assert process.wait(30) == 0, "".join(lines)
    assert (tmp_path / "adk_sessions.db").exists()
    assert anyio.run(_session_exists, f"sqlite:///{tmp_path / 'adk_sessions.db'}", "kept")


def test_serve_a_database_url(db_url: str, tmp_path: Path) -> None:
    """serve URL serves that database on either backend and stops cleanly on SIGTERM."""
    with server_process([db_url, "--port", "0"], tmp_path) as (process, base, lines):
        with httpx.Client(base_url=base) as http:
            response = http.post(path(session="s"), json={"state": {"durable": True}})
            assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, "".join(lines)
    assert anyio.run(_session_exists, db_url, "s")
    assert not (tmp_path / "adk_sessions.db").exists()
