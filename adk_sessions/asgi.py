"""ADK-compatible session endpoints as an ASGI application (extra ``[http]``, on Starlette).

Routes (``{app}``, ``{user}`` and ``{id}`` are single path segments, percent-decoded as UTF-8,
so an id may contain ``/`` when it is sent as ``%2F``; a trailing ``/`` after ``sessions`` names
the collection):

==========  =====================================  ==============================================
Method      Path                                   Does
==========  =====================================  ==============================================
``POST``    ``/apps/{app}/users/{user}/sessions``  create; body ``{"state", "events",
                                                   "sessionId"}``, every field optional
``POST``    ``.../sessions/{id}``                  create with that id; body ``{"state",
                                                   "events"}``
``GET``     ``.../sessions``                       list: a JSON array, or with ``pageSize``
                                                   ``{"sessions": [...], "nextPageToken": ...}``
``GET``     ``.../sessions/{id}``                  read; ``numRecentEvents``, ``after`` query
``PATCH``   ``.../sessions/{id}``                  ``{"stateDelta": {...}}`` appended as an event
``DELETE``  ``.../sessions/{id}``                  delete (204)
``OPTIONS`` any of the above                       204 with ``Allow``; touches nothing
==========  =====================================  ==============================================

Create stores the session and all its events in one transaction: a bad event leaves no session.
Streaming chunks (``"partial": true``) are dropped, as ``append_event`` drops them. A create and a
read answer 200 with the session in :mod:`adk_sessions.rest` form; a list returns sessions without
events (state merged). Every single-session answer carries the session's revision in the
``X-Session-Revision`` header. A ``PATCH`` that sends ``X-Session-Revision`` is a conditional
write: it fails with 409 unless the stored revision still equals it. A ``PATCH`` without it is a
blind delta, applied to the latest revision (re-read and retried a few times when another writer
gets in first; 409 if it still loses). ``PATCH`` answers the whole updated session (as google-adk's
server does); ``numRecentEvents`` limits the events it returns. ``temp:`` keys of a delta are
never stored, so they are not in the answer either. ``DELETE`` of a missing session answers 404.

Requests are checked before the database sees them: ids of at most :data:`MAX_ID_BYTES` UTF-8
bytes, no NUL characters or lone surrogates anywhere, no ``NaN``/``Infinity``, JSON nested at most
200 levels, no unknown body fields (a typo would otherwise be dropped silently).

Status codes: 400 for a malformed parameter, path segment or body (with a JSON error body), 401
for a missing or wrong bearer token, 404 for a missing session or unknown route, 405 for a method a
route does not have, 409 for an existing id on create or a stale conditional write, 413 for a body
over ``max_body_size``, 503 when the database fails. Error bodies are
``{"error": "<code>", "detail": "<message>"}`` (``detail`` as FastAPI and so google-adk's server
send it). A client's mistake never answers 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import uuid
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from ._models import Event, EventActions
from ._models import Session as CoreSession
from ._service import SessionService
from ._validate import MAX_ID_BYTES
from .errors import (
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
)
from .rest import CreateSessionRequest, Session, SessionID

__all__ = ("DEFAULT_MAX_BODY_SIZE", "MAX_ID_BYTES", "REVISION_HEADER", "create_app")

DEFAULT_MAX_BODY_SIZE: Final = 8 * 1024 * 1024
"""The default limit of a request body, in bytes (8 MiB: events may carry inline data)."""

REVISION_HEADER: Final = "X-Session-Revision"
"""Response header with a session's revision; on ``PATCH``, the revision the write requires."""

_MAX_QUERY_INT: Final = 2**31 - 1
_MAX_JSON_DEPTH: Final = 200
_INT = re.compile(r"[0-9]{1,18}")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COLLECTION_METHODS: Final = ("GET", "HEAD", "POST", "OPTIONS")
_ITEM_METHODS: Final = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")

_log = logging.getLogger(__name__)


class _HTTPError(Exception):
    """An answer other than success, raised anywhere inside a handler."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def _bad_request(detail: str) -> _HTTPError:
    return _HTTPError(400, "invalid_argument", detail)


def _json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(
        body.encode("utf-8"), status_code=status, media_type="application/json", headers=headers
    )


def _error_response(error: _HTTPError) -> Response:
    return _json_response(
        {"error": error.code, "detail": error.detail}, error.status, error.headers
    )


def _session_response(session: CoreSession) -> Response:
    data = Session.from_session(session).to_json()
    # After a PATCH the caller's session holds the delta's temp: keys, which are never stored.
    data["state"] = {k: v for k, v in data["state"].items() if not k.startswith("temp:")}
    return _json_response(data, headers={REVISION_HEADER: str(session.revision)})


def _reject_constant(name: str) -> object:
    raise _bad_request(f"request body is not valid JSON: {name} is not allowed")


def _check_values(data: object) -> None:
    """Reject what no backend stores: NUL characters, lone surrogates, huge numbers, deep nests."""
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, "request body")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _bad_request("request body: a number is too large")
        elif isinstance(value, dict | list):
            if depth >= _MAX_JSON_DEPTH:
                raise _bad_request(f"request body is nested deeper than {_MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key, "request body")
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise _bad_request(f"{where}: strings must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _bad_request(f"{where}: strings must not contain lone surrogates") from exc


def _parse_json(body: bytes) -> object:
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_request("request body is not UTF-8") from exc
    try:
        data: object = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise _bad_request("request body is nested too deeply") from exc
    except ValueError as exc:
        raise _bad_request(f"request body is not valid JSON: {exc}") from exc
    _check_values(data)
    return data


def _query_value(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _bad_request(f"query parameter {name} is given more than once")
    return values[0] if values else None


def _query_int(request: Request, name: str, *, minimum: int) -> int | None:
    raw = _query_value(request, name)
    if raw is None:
        return None
    if not _INT.fullmatch(raw) or not minimum <= int(raw) <= _MAX_QUERY_INT:
        raise _bad_request(
            f"query parameter {name} must be an integer from {minimum} to {_MAX_QUERY_INT}, "
            f"not {raw!r}"
        )
    return int(raw)


def _query_float(request: Request, name: str) -> float | None:
    raw = _query_value(request, name)
    if raw is None:
        return None
    value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
    if not math.isfinite(value):
        raise _bad_request(f"query parameter {name} must be a finite number, not {raw!r}")
    return value


def _path_segments(scope: Scope) -> list[str] | None:
    """The percent-decoded segments of the route path, or ``None`` for an undecodable one."""
    root_path: str = scope.get("root_path", "")
    skip = root_path.rstrip("/").count("/")
    raw_path = scope.get("raw_path")
    if raw_path is None:
        # The server gives no raw path: fall back to the decoded one (no %2F in ids then).
        path: str = scope["path"]
        return path.split("/")[1 + skip :]
    segments = []
    for raw in bytes(raw_path).split(b"/")[1 + skip :]:
        try:
            segments.append(unquote_to_bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return segments


def _match(scope: Scope) -> dict[str, str]:
    """Match the path to a route: its raw parameters, or 404 (400 for undecodable segments)."""
    segments = _path_segments(scope)
    if segments is None:
        raise _bad_request("a path segment is not percent-encoded UTF-8")
    if len(segments) == 6 and segments[5] == "":
        segments.pop()  # ".../sessions/" is the collection
    if not (
        len(segments) in (5, 6)
        and segments[0] == "apps"
        and segments[2] == "users"
        and segments[4] == "sessions"
    ):
        raise _HTTPError(404, "not_found", "no such route; see /apps/{app}/users/{user}/sessions")
    return dict(zip(("app_name", "user_id", "session_id"), segments[1::2], strict=False))


def _route(scope: Scope) -> SessionID:
    """Match the path and validate its ids (400 naming a missing or malformed one)."""
    params = _match(scope)
    for name, value in params.items():
        _check_id(value, name)
    return SessionID.from_http_parameters(params)


def _check_id(value: str, name: str) -> None:
    _check_text(value, name)
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise _bad_request(f"{name} is longer than {MAX_ID_BYTES} bytes")


class _Endpoints:
    """The request handlers, sharing one service, token and body limit."""

    def __init__(
        self,
        service: SessionService,
        *,
        token: str | None,
        max_body_size: int,
        patch_retries: int,
    ) -> None:
        self._service = service
        self._token = None if token is None else token.encode("utf-8")
        self._max_body_size = max_body_size
        self._patch_retries = patch_retries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._answer(request)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except _HTTPError as error:
            return _error_response(error)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        except InvalidArgumentError as exc:
            return _error_response(_bad_request(str(exc)))
        except SessionNotFoundError as exc:
            return _error_response(_HTTPError(404, "not_found", str(exc)))
        except SessionExistsError as exc:
            return _error_response(_HTTPError(409, "already_exists", str(exc)))
        except StaleSessionError as exc:
            return _error_response(_HTTPError(409, "stale_session", str(exc)))
        except StorageError:
            _log.exception("database failure on %s %s", request.method, request.url.path)
            return _error_response(
                _HTTPError(503, "unavailable", "the session store is unavailable; retry later")
            )
        except Exception:
            _log.exception("unexpected failure on %s %s", request.method, request.url.path)
            return _error_response(_HTTPError(500, "internal", "internal server error"))

    async def _dispatch(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return self._options(request)
        self._authenticate(request)
        ids = _route(request.scope)
        allowed = _ITEM_METHODS if ids.session_id is not None else _COLLECTION_METHODS
        if method not in allowed:
            raise _HTTPError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; allowed: {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        if method == "POST":
            return await self._create(request, ids)
        if ids.session_id is None:
            return await self._list(request, ids)
        session_id = ids.session_id
        if method == "PATCH":
            return await self._patch(request, ids, session_id)
        if method == "DELETE":
            return await self._delete(ids, session_id)
        return await self._get(request, ids, session_id)

    def _options(self, request: Request) -> Response:
        params = _match(request.scope)
        allowed = _ITEM_METHODS if "session_id" in params else _COLLECTION_METHODS
        return Response(status_code=204, headers={"Allow": ", ".join(allowed)})

    def _authenticate(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization")
        challenge = 'Bearer realm="adk-sessions"'
        if header is None:
            raise _HTTPError(
                401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": challenge}
            )
        scheme, _, given = header.partition(" ")
        presented = given.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, self._token):
            raise _HTTPError(
                401,
                "unauthorized",
                "the bearer token is not valid",
                {"WWW-Authenticate": f'{challenge}, error="invalid_token"'},
            )

    async def _read_json(self, request: Request) -> object:
        limit = self._max_body_size
        too_large = _HTTPError(
            413, "payload_too_large", f"request body is larger than {limit} bytes"
        )
        length = request.headers.get("content-length")
        if length is not None:
            if not _INT.fullmatch(length.strip()):
                raise _bad_request("Content-Length is not a valid number")
            if int(length) > limit:
                raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return _parse_json(bytes(body))

    async def _create(self, request: Request, ids: SessionID) -> Response:
        body = CreateSessionRequest.from_json(await self._read_json(request))
        session_id = ids.session_id
        if body.session_id:
            if session_id is not None and body.session_id != session_id:
                raise _bad_request(
                    f"sessionId {body.session_id!r} in the body differs from {session_id!r} "
                    "in the path"
                )
            session_id = body.session_id
            _check_id(session_id, "sessionId")
        for i, event in enumerate(body.events or ()):
            _check_id(event.id, f"events[{i}].id")
        session = await self._service.create_session(
            app_name=ids.app_name,
            user_id=ids.user_id,
            state=body.state,
            session_id=session_id,
            events=body.events,
        )
        return _session_response(session)

    async def _list(self, request: Request, ids: SessionID) -> Response:
        page_size = _query_int(request, "pageSize", minimum=1)
        page_token = _query_value(request, "pageToken")
        if page_token is not None and page_size is None:
            raise _bad_request("pageToken needs pageSize")
        result = await self._service.list_sessions(
            app_name=ids.app_name,
            user_id=ids.user_id,
            page_size=page_size,
            page_token=page_token or None,
        )
        sessions = [Session.from_session(session).to_json() for session in result.sessions]
        if page_size is None:
            return _json_response(sessions)
        return _json_response({"sessions": sessions, "nextPageToken": result.next_page_token})

    async def _get(self, request: Request, ids: SessionID, session_id: str) -> Response:
        num_recent_events = _query_int(request, "numRecentEvents", minimum=0)
        after = _query_float(request, "after")
        session = await self._service.get_session(
            app_name=ids.app_name,
            user_id=ids.user_id,
            session_id=session_id,
            num_recent_events=num_recent_events,
            after=after,
        )
        if session is None:
            raise _not_found(ids, session_id)
        return _session_response(session)

    async def _patch(self, request: Request, ids: SessionID, session_id: str) -> Response:
        num_recent_events = _query_int(request, "numRecentEvents", minimum=0)
        expected = _revision_header(request)
        state_delta = _state_delta(await self._read_json(request))
        for attempt in range(self._patch_retries + 1):
            session = await self._service.get_session(
                app_name=ids.app_name,
                user_id=ids.user_id,
                session_id=session_id,
                num_recent_events=num_recent_events,
            )
            if session is None:
                raise _not_found(ids, session_id)
            if expected is not None and session.revision != expected:
                raise _stale(session_id, expected, session.revision)
            event = Event(
                author="user",
                invocation_id=f"p-{uuid.uuid4()}",
                actions=EventActions(state_delta=state_delta),
            )
            try:
                await self._service.append_event(session, event)
            except StaleSessionError:
                if expected is not None or attempt == self._patch_retries:
                    raise
                continue
            return _session_response(session)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _delete(self, ids: SessionID, session_id: str) -> Response:
        found = await self._service.get_session(
            app_name=ids.app_name, user_id=ids.user_id, session_id=session_id, num_recent_events=0
        )
        if found is None:
            raise _not_found(ids, session_id)
        await self._service.delete_session(
            app_name=ids.app_name, user_id=ids.user_id, session_id=session_id
        )
        return Response(status_code=204)


def _not_found(ids: SessionID, session_id: str) -> _HTTPError:
    return _HTTPError(
        404,
        "not_found",
        f"session {session_id!r} of app {ids.app_name!r} and user {ids.user_id!r} does not exist",
    )


def _stale(session_id: str, expected: int, revision: int) -> _HTTPError:
    return _HTTPError(
        409,
        "stale_session",
        f"session {session_id!r} is at revision {revision}, not {expected}; "
        "reload the session and retry",
        {REVISION_HEADER: str(revision)},
    )


def _revision_header(request: Request) -> int | None:
    raw = request.headers.get(REVISION_HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    if not _INT.fullmatch(raw):
        raise _bad_request(f"{REVISION_HEADER} must be a non-negative integer, not {raw!r}")
    return int(raw)


def _state_delta(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad_request('request body must be a JSON object {"stateDelta": {...}}')
    unknown = sorted(set(data) - {"stateDelta", "state_delta"})
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise _bad_request(f"request body: unknown field(s) {names}; expected 'stateDelta'")
    if "stateDelta" in data and "state_delta" in data:
        raise _bad_request("request body: both 'stateDelta' and 'state_delta' given; send one")
    delta = data.get("stateDelta", data.get("state_delta"))
    if not isinstance(delta, dict):
        raise _bad_request("request body: stateDelta is required and must be a JSON object")
    return delta


def create_app(
    service: SessionService,
    *,
    token: str | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    patch_retries: int = 3,
) -> Starlette:
    """Build the ASGI application serving ``service`` under ``/apps/...``.

    The caller owns ``service``: the application never opens or closes it (``adk-sessions serve``
    closes it after the server has shut down). Add CORS or other middleware with
    ``app.add_middleware(...)``.

    Args:
        service: An open core service, e.g. from ``adk_sessions.connect(url)``.
        token: When given, every request except ``OPTIONS`` must carry
            ``Authorization: Bearer <token>`` (compared in constant time); others get 401.
        max_body_size: The largest request body accepted, in bytes; larger ones get 413.
        patch_retries: How many times a blind ``PATCH`` (no ``X-Session-Revision``) re-reads
            the session and retries when a concurrent writer got in first, before it answers 409.

    Returns:
        A Starlette application.

    Raises:
        ValueError: ``token`` is empty, or ``max_body_size`` or ``patch_retries`` is negative.
    """
    if token is not None and not token:
        raise ValueError("token must not be empty; pass None to serve without authentication")
    if max_body_size < 0:
        raise ValueError(f"max_body_size must be >= 0, not {max_body_size}")
    if patch_retries < 0:
        raise ValueError(f"patch_retries must be >= 0, not {patch_retries}")
    endpoints = _Endpoints(
        service, token=token, max_body_size=max_body_size, patch_retries=patch_retries
    )
    return Starlette(routes=[Mount("", app=endpoints)])
