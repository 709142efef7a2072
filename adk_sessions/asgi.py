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
``GET``     ``/openapi.json``                      this API as an OpenAPI 3.1 document
``GET``     ``/healthz``                           200 while the process serves
``GET``     ``/readyz``                            200 when the database answers, else 503
``OPTIONS`` any of the above                       204 with ``Allow``; touches nothing
==========  =====================================  ==============================================

``HEAD`` is accepted wherever ``GET`` is. Every route, parameter, body and answer is declared
once, in the operation table of this module: the dispatcher parses requests from it and the
OpenAPI document is generated from it and from the models of :mod:`adk_sessions.rest`, so the
document cannot drift from the code. ``/openapi.json``, ``/healthz`` and ``/readyz`` need no
token; the probes never touch sessions.

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

Authentication (401 with ``WWW-Authenticate: Bearer`` when missing or invalid):

- ``token``: the operator's bearer token, compared in constant time; it reaches everything.
- ``jwt_secret`` (HS256) and/or ``jwt_public_key`` (RS256, ES256/384/512 or EdDSA, by the key's
  type): per-user JSON Web Tokens, checked with PyJWT. ``sub`` (required) is the user id, ``exp``
  (required) is enforced, ``app`` (optional, a string or a list) limits the apps, ``aud`` and
  ``iss`` are checked when ``jwt_audience``/``jwt_issuer`` are set. Only the algorithms of the
  configured keys are accepted (never ``none``, never HS256 with a public key). A JWT holder
  reaches ``/apps/{app}/users/{sub}/...`` only: another user's path or an app outside ``app``
  answers 403.
- neither: no authentication (``adk-sessions serve`` allows that on loopback addresses only).

Browser safety: a request with a body (and any ``POST``/``PATCH`` naming a content type) must be
``Content-Type: application/json`` (else 415), so no HTML form or "simple" cross-origin request
can write. A request carrying an ``Origin`` header that is neither the server's own host nor one
of ``cors_origins`` answers 403; CORS headers and preflight answers are given for
``cors_origins`` only (off by default). A request that arrives on a loopback address must name a
loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, any port) or one of ``allowed_hosts`` in
its ``Host`` header, else 421: a DNS-rebinding page cannot reach a local server.

Requests are checked before the database sees them: ids as the core checks them
(:func:`adk_sessions._validate.check_name`: at most :data:`MAX_ID_BYTES` UTF-8 bytes, no control
characters or lone surrogates), no NUL characters or lone surrogates in any body string or query
parameter, no ``NaN``/``Infinity``, JSON nested at most 200 levels, no unknown body fields (a typo
would otherwise be dropped silently).

Status codes: 400 for a malformed parameter, path segment, page token or body (with a JSON error
body), 401 for a missing or invalid token, 403 for a path the token does not reach or a foreign
``Origin``, 404 for a missing session or unknown route, 405 for a method a route does not have,
409 for an existing id on create or a stale conditional write, 413 for a body over
``max_body_size``, 415 for a body that is not JSON, 421 for a foreign ``Host``, 503 with
``Retry-After`` when the database is unavailable for now
(:class:`~adk_sessions.errors.StorageUnavailableError`), 500 for any other database failure (the
details go to the log, never to the client). Error bodies are ``{"error": "<code>", "detail":
"<message>"}`` (``detail`` as FastAPI and so google-adk's server send it). A client's mistake
never answers 5xx.

Every request is logged once on the ``adk_sessions.access`` logger at INFO: method, path template
(never the ids), status and duration.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import time
import types
import typing
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import anyio
import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from . import __version__, rest
from ._models import Event, EventActions
from ._models import Session as CoreSession
from ._service import SessionService
from ._validate import MAX_ID_BYTES, check_name, check_text
from .errors import (
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
    StorageUnavailableError,
)
from .rest import (
    CreateSessionRequest,
    ListSessionsResponse,
    Session,
    SessionID,
    UpdateSessionRequest,
)

__all__ = (
    "DEFAULT_MAX_BODY_SIZE",
    "MAX_ID_BYTES",
    "MIN_JWT_SECRET_BYTES",
    "RETRY_AFTER_SECONDS",
    "REVISION_HEADER",
    "create_app",
)

DEFAULT_MAX_BODY_SIZE: Final = 8 * 1024 * 1024
"""The default limit of a request body, in bytes (8 MiB: events may carry inline data)."""

REVISION_HEADER: Final = "X-Session-Revision"
"""Response header with a session's revision; on ``PATCH``, the revision the write requires."""

RETRY_AFTER_SECONDS: Final = 1
"""The ``Retry-After`` of a 503 answer (the database is unavailable for now)."""

MIN_JWT_SECRET_BYTES: Final = 32
"""The shortest HS256 secret accepted, in UTF-8 bytes (RFC 7518: at least the hash size)."""

_MAX_QUERY_INT: Final = 2**31 - 1
_MAX_REVISION: Final = 2**63 - 1
_MAX_JSON_DEPTH: Final = 200
_INT = re.compile(r"[0-9]{1,19}")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COLLECTION: Final = "/apps/{app_name}/users/{user_id}/sessions"
_ITEM: Final = _COLLECTION + "/{session_id}"
_SCHEMAS: Final = "#/components/schemas/"
_METHOD_ORDER: Final = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")
_CHALLENGE: Final = 'Bearer realm="adk-sessions"'

_log = logging.getLogger(__name__)
_access_log = logging.getLogger("adk_sessions.access")


# --- answers ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _ErrorBody:
    """The body of every error answer.

    Attributes:
        error: A stable code (``invalid_argument``, ``unauthorized``, ``not_found``, ...).
        detail: What went wrong, for humans.
    """

    error: str
    detail: str


@attrs.frozen(kw_only=True)
class _Status:
    """The body of a health answer.

    Attributes:
        status: ``ok`` (``/healthz``) or ``ready`` (``/readyz``).
    """

    status: str


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


def _unavailable(detail: str) -> _HTTPError:
    return _HTTPError(503, "unavailable", detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(
        body.encode("utf-8"), status_code=status, media_type="application/json", headers=headers
    )


def _error_response(error: _HTTPError) -> Response:
    body = attrs.asdict(_ErrorBody(error=error.code, detail=error.detail))
    return _json_response(body, error.status, error.headers)


def _session_response(session: CoreSession) -> Response:
    data = Session.from_session(session).to_json()
    # After a PATCH the caller's session holds the delta's temp: keys, which are never stored.
    data["state"] = {k: v for k, v in data["state"].items() if not k.startswith("temp:")}
    return _json_response(data, headers={REVISION_HEADER: str(session.revision)})


# --- request bodies -----------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise _bad_request(f"request body is not valid JSON: {name} is not allowed")


def _check_values(data: object) -> None:
    """Reject what no backend stores: NUL characters, lone surrogates, huge numbers, deep nests."""
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            check_text("request body", value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _bad_request("request body: a number is too large")
        elif isinstance(value, dict | list):
            if depth >= _MAX_JSON_DEPTH:
                raise _bad_request(f"request body is nested deeper than {_MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    check_text("request body", key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _parse_json(body: bytes) -> object:
    if not body:  # no body at all; whitespace alone is not JSON
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


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def _check_content_type(request: Request, takes_body: bool) -> None:
    """415 unless a request with a body (or a body-taking one naming a type) sends JSON."""
    headers = request.headers
    content_type = headers.get("content-type")
    if not _has_body(headers) and (content_type is None or not takes_body):
        return
    media_type, *params = (content_type or "").split(";")
    charsets = [
        value.strip().strip('"').lower()
        for name, _, value in (param.partition("=") for param in params)
        if name.strip().lower() == "charset"
    ]
    if media_type.strip().lower() != "application/json" or any(
        charset not in ("utf-8", "utf8") for charset in charsets
    ):
        raise _HTTPError(
            415,
            "unsupported_media_type",
            f"request bodies must be 'Content-Type: application/json', not {content_type!r}",
        )


# --- parameters ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Param:
    """A query or header parameter: parsed by the dispatcher, documented in the OpenAPI document.

    Attributes:
        name: The parameter's name.
        where: ``query`` or ``header``.
        kind: ``int``, ``float`` or ``str``.
        description: For the document.
        minimum: The smallest integer accepted.
        maximum: The largest integer accepted.
    """

    name: str
    where: Literal["query", "header"]
    kind: type
    description: str
    minimum: int | None = None
    maximum: int | None = None

    def read(self, request: Request) -> object:
        """The parameter's value in ``request``, or ``None`` when absent.

        Raises:
            _HTTPError: 400 naming the parameter when it is malformed or repeated.
        """
        if self.where == "header":
            values = request.headers.getlist(self.name)
        else:
            values = request.query_params.getlist(self.name)
        if not values:
            return None
        if len(values) > 1:
            raise _bad_request(f"{self.where} parameter {self.name} is given more than once")
        raw = values[0].strip() if self.where == "header" else values[0]
        if _CONTROL.search(raw):
            raise _bad_request(f"{self.where} parameter {self.name} contains a control character")
        try:
            check_text(f"{self.where} parameter {self.name}", raw)
        except InvalidArgumentError as exc:
            raise _bad_request(str(exc)) from exc
        if self.kind is int:
            low = 0 if self.minimum is None else self.minimum
            high = _MAX_QUERY_INT if self.maximum is None else self.maximum
            if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
                raise _bad_request(
                    f"{self.where} parameter {self.name} must be an integer from {low} to "
                    f"{high}, not {raw!r}"
                )
            return int(raw)
        if self.kind is float:
            value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
            if not math.isfinite(value):
                raise _bad_request(
                    f"{self.where} parameter {self.name} must be a finite number, not {raw!r}"
                )
            return value
        return raw

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any]
        if self.kind is int:
            schema = {
                "type": "integer",
                "minimum": 0 if self.minimum is None else self.minimum,
                "maximum": _MAX_QUERY_INT if self.maximum is None else self.maximum,
            }
        elif self.kind is float:
            schema = {"type": "number"}
        else:
            schema = {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
        return {
            "name": self.name,
            "in": self.where,
            "required": False,
            "description": self.description,
            "schema": schema,
        }


_NUM_RECENT_EVENTS = _Param(
    name="numRecentEvents",
    where="query",
    kind=int,
    minimum=0,
    description="Return only the last N events (0: none); all when absent.",
)
_AFTER = _Param(
    name="after",
    where="query",
    kind=float,
    description="Return only events with a timestamp >= this many epoch seconds.",
)
_PAGE_SIZE = _Param(
    name="pageSize",
    where="query",
    kind=int,
    minimum=1,
    description=(
        "Answer one page of at most this many sessions as {sessions, nextPageToken} "
        "instead of a plain array of all of them."
    ),
)
_PAGE_TOKEN = _Param(
    name="pageToken",
    where="query",
    kind=str,
    description="The nextPageToken of the previous page of the same list (needs pageSize).",
)
_REVISION = _Param(
    name=REVISION_HEADER,
    where="header",
    kind=int,
    minimum=0,
    maximum=_MAX_REVISION,
    description=(
        "Make the PATCH conditional: 409 unless the stored revision still equals this one. "
        "Without it the delta is applied to the latest revision."
    ),
)


# --- routes -------------------------------------------------------------------------------------


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
            segments.append(urllib.parse.unquote_to_bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return segments


_SINGLE_ROUTES: Final = ("healthz", "readyz", "openapi.json")


def _match(scope: Scope) -> tuple[str, dict[str, str]]:
    """Match the path to a route: its template and raw parameters, or 404/400."""
    segments = _path_segments(scope)
    if segments is None:
        raise _bad_request("a path segment is not percent-encoded UTF-8")
    if len(segments) == 1 and segments[0] in _SINGLE_ROUTES:
        return "/" + segments[0], {}
    if len(segments) == 6 and segments[5] == "":
        segments.pop()  # ".../sessions/" is the collection
    if not (
        len(segments) in (5, 6)
        and segments[0] == "apps"
        and segments[2] == "users"
        and segments[4] == "sessions"
    ):
        raise _HTTPError(404, "not_found", "no such route; see /openapi.json")
    params = dict(zip(("app_name", "user_id", "session_id"), segments[1::2], strict=False))
    return (_ITEM if len(segments) == 6 else _COLLECTION), params


def _template(scope: Scope) -> str:
    """The route template of a request, for the access log (``-`` when none matches)."""
    try:
        return _match(scope)[0]
    except _HTTPError:
        return "-"


@attrs.frozen(kw_only=True)
class _Principal:
    """Who a request acts for: the operator (every user and app) or one user of some apps."""

    user_id: str | None = None
    apps: frozenset[str] | None = None


_OPERATOR: Final = _Principal()


@attrs.frozen(kw_only=True)
class _Call:
    """One request, parsed and authorised as its operation declares."""

    request: Request
    ids: SessionID | None
    args: dict[str, Any]
    body: Any


_Handler = Callable[["_Endpoints", _Call], Awaitable[Response]]


@attrs.frozen(kw_only=True)
class _Operation:
    """One route and method: what the dispatcher parses and what the OpenAPI document says.

    Attributes:
        method: The HTTP method.
        path: The route template.
        operation_id: The OpenAPI ``operationId``.
        summary: One line for the document.
        handler: The method of :class:`_Endpoints` answering it.
        params: Query and header parameters, parsed into ``_Call.args`` by name.
        body: The request model (``from_json``), or ``None`` for no body.
        body_required: Whether the document requires a body (the model refuses an empty one).
        status: The success status.
        response: The success body as a type (a model, ``list[...]``, a union), or ``None``.
        response_headers: Headers every success answer carries.
        errors: The error statuses the operation may answer (besides auth and common ones).
        public: Needs no token.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    handler: _Handler
    params: tuple[_Param, ...] = ()
    body: Any = None
    body_required: bool = False
    status: int = 200
    response: object = None
    response_headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False

    @property
    def sessions(self) -> bool:
        """Whether the operation works on the session routes (and needs ids and auth)."""
        return self.path.startswith("/apps/")


# --- authentication -----------------------------------------------------------------------------


def _jwt_algorithms(key: object) -> tuple[str, ...]:
    """The JWS algorithms a public key verifies, from its type."""
    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name in by_curve:
            return (by_curve[key.curve.name],)
        raise ValueError(f"jwt_public_key: unsupported elliptic curve {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    raise ValueError(f"jwt_public_key: unsupported key type {type(key).__name__}")


class _Authenticator:
    """The operator token and the JWT keys; turns an ``Authorization`` header into a principal."""

    def __init__(
        self,
        *,
        token: str | None,
        jwt_secret: str | None,
        jwt_public_key: str | None,
        jwt_audience: str | None,
        jwt_issuer: str | None,
    ) -> None:
        if token is not None and not token:
            raise ValueError("token must not be empty; pass None to serve without authentication")
        self._token = None if token is None else token.encode("utf-8")
        self._keys: dict[str, Any] = {}
        if jwt_secret is not None:
            if len(jwt_secret.encode("utf-8")) < MIN_JWT_SECRET_BYTES:
                raise ValueError(
                    f"jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes long (HS256)"
                )
            self._keys["HS256"] = jwt_secret.encode("utf-8")
        if jwt_public_key is not None:
            try:
                public_key = serialization.load_pem_public_key(jwt_public_key.encode("utf-8"))
            except ValueError as exc:
                raise ValueError(f"jwt_public_key is not a PEM public key: {exc}") from exc
            self._keys.update(dict.fromkeys(_jwt_algorithms(public_key), public_key))
        if (jwt_audience is not None or jwt_issuer is not None) and not self._keys:
            raise ValueError("jwt_audience and jwt_issuer need jwt_secret or jwt_public_key")
        self._audience = jwt_audience
        self._issuer = jwt_issuer
        required = ["exp", "sub"]
        required += ["aud"] if jwt_audience is not None else []
        required += ["iss"] if jwt_issuer is not None else []
        self._jwt = jwt.PyJWT(options={"require": required})

    @property
    def enabled(self) -> bool:
        """Whether requests need a token at all."""
        return self._token is not None or bool(self._keys)

    @property
    def uses_jwt(self) -> bool:
        """Whether JWTs are accepted."""
        return bool(self._keys)

    def describe(self) -> str:
        """The authentication mode in words, for the start-up log."""
        modes = []
        if self._token is not None:
            modes.append("operator token")
        if self._keys:
            checks = [f"audience {self._audience!r}"] if self._audience else []
            checks += [f"issuer {self._issuer!r}"] if self._issuer else []
            extra = f"; {', '.join(checks)}" if checks else ""
            modes.append(f"per-user JWT ({', '.join(self._keys)}{extra})")
        return " + ".join(modes) if modes else "none"

    def authenticate(self, request: Request) -> _Principal:
        """The principal of a request.

        Raises:
            _HTTPError: 401 with ``WWW-Authenticate: Bearer`` for a missing or invalid token.
        """
        if not self.enabled:
            return _OPERATOR
        header = request.headers.get("authorization")
        if header is None:
            raise _HTTPError(
                401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": _CHALLENGE}
            )
        scheme, _, given = header.partition(" ")
        presented = given.strip()
        if scheme.lower() != "bearer" or not presented:
            raise _invalid_token(
                "the bearer token is not valid: send 'Authorization: Bearer <token>'"
            )
        if self._token is not None and hmac.compare_digest(
            presented.encode("latin-1"), self._token
        ):
            return _OPERATOR
        if not self._keys:
            raise _invalid_token("the bearer token is not valid")
        return self._decode(presented)

    def _decode(self, token: str) -> _Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
            if key is None or not isinstance(algorithm, str):
                raise _invalid_token(
                    f"the bearer token is not valid: algorithm {algorithm!r} is not accepted "
                    f"(accepted: {', '.join(self._keys)})"
                )
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.ExpiredSignatureError as exc:
            raise _invalid_token("the bearer token has expired") from exc
        except jwt.PyJWTError as exc:
            raise _invalid_token(f"the bearer token is not valid: {exc}") from exc
        subject = claims.get("sub")
        try:
            check_name("the token's sub claim", subject)
        except InvalidArgumentError as exc:
            raise _invalid_token(f"the bearer token is not valid: {exc}") from exc
        apps = claims.get("app")
        if apps is None:
            return _Principal(user_id=subject)
        if isinstance(apps, str):
            apps = [apps]
        if not isinstance(apps, list) or not all(isinstance(app, str) for app in apps):
            raise _invalid_token(
                "the bearer token is not valid: its app claim must be a string or a list of them"
            )
        return _Principal(user_id=subject, apps=frozenset(apps))


def _invalid_token(detail: str) -> _HTTPError:
    return _HTTPError(
        401, "unauthorized", detail, {"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'}
    )


def _authorize(principal: _Principal, ids: SessionID) -> None:
    """403 unless the principal reaches the app and user of the path."""
    if principal.user_id is not None and ids.user_id != principal.user_id:
        raise _HTTPError(
            403,
            "forbidden",
            "this token reaches only its own user's sessions (/apps/{app}/users/{sub}/...)",
            {"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope"'},
        )
    if principal.apps is not None and ids.app_name not in principal.apps:
        raise _HTTPError(
            403,
            "forbidden",
            f"this token does not reach app {ids.app_name!r}",
            {"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope"'},
        )


# --- the endpoints ------------------------------------------------------------------------------


class _Endpoints:
    """The request handlers, sharing one service, authenticator and body limit."""

    def __init__(
        self,
        service: SessionService,
        *,
        auth: _Authenticator,
        operations: Sequence[_Operation],
        max_body_size: int,
        patch_retries: int,
        ready_timeout: float,
        openapi: bytes,
    ) -> None:
        self._service = service
        self._auth = auth
        self._max_body_size = max_body_size
        self._patch_retries = patch_retries
        self._ready_timeout = ready_timeout
        self._openapi = openapi
        self._routes: dict[str, dict[str, _Operation]] = {}
        for op in operations:
            self._routes.setdefault(op.path, {})[op.method] = op

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes a WebSocket: refuse the handshake
            await WebSocketClose()(scope, receive, send)
            return
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
        except StorageUnavailableError:
            _log.warning(
                "database unavailable on %s %s",
                request.method,
                _template(request.scope),
                exc_info=True,
            )
            return _error_response(_unavailable("the session store is unavailable; retry later"))
        except Exception:
            # Any other StorageError (and any bug): the details go to the log, never out.
            _log.exception("failure on %s %s", request.method, _template(request.scope))
            return _error_response(_HTTPError(500, "internal", "internal server error"))

    def _allowed(self, path: str) -> list[str]:
        methods = set(self._routes[path]) | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        return [method for method in _METHOD_ORDER if method in methods]

    async def _dispatch(self, request: Request) -> Response:
        path, raw_ids = _match(request.scope)
        allowed = self._allowed(path)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
        op = self._routes[path].get("GET" if request.method == "HEAD" else request.method)
        if op is None:
            raise _HTTPError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; allowed: {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        principal = _OPERATOR if op.public else self._auth.authenticate(request)
        ids = None
        if op.sessions:
            ids = _session_ids(raw_ids)
            _authorize(principal, ids)
        _check_content_type(request, op.body is not None)
        args = {param.name: param.read(request) for param in op.params}
        body = None
        if op.body is not None:
            body = op.body.from_json(await self._read_json(request))
        return await op.handler(self, _Call(request=request, ids=ids, args=args, body=body))

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

    async def create(self, call: _Call) -> Response:
        """``POST`` a session, with the id of the path, of the body, or a generated one."""
        assert call.ids is not None
        body: CreateSessionRequest = call.body
        session_id = call.ids.session_id
        if body.session_id:
            if session_id is not None and body.session_id != session_id:
                raise _bad_request(
                    f"sessionId {body.session_id!r} in the body differs from {session_id!r} "
                    "in the path"
                )
            session_id = check_name("sessionId", body.session_id)
        for i, event in enumerate(body.events or ()):
            check_name(f"events[{i}].id", event.id)
        session = await self._service.create_session(
            app_name=call.ids.app_name,
            user_id=call.ids.user_id,
            state=body.state,
            session_id=session_id,
            events=body.events,
        )
        return _session_response(session)

    async def list(self, call: _Call) -> Response:
        """``GET`` the sessions of a user: an array, or a page when ``pageSize`` is given."""
        assert call.ids is not None
        page_size, page_token = call.args["pageSize"], call.args["pageToken"]
        if page_token is not None and page_size is None:
            raise _bad_request("pageToken needs pageSize")
        result = await self._service.list_sessions(
            app_name=call.ids.app_name,
            user_id=call.ids.user_id,
            page_size=page_size,
            page_token=page_token or None,
        )
        sessions = [Session.from_session(session) for session in result.sessions]
        if page_size is None:
            return _json_response([session.to_json() for session in sessions])
        page = ListSessionsResponse(sessions=sessions, next_page_token=result.next_page_token)
        return _json_response(page.to_json())

    async def get(self, call: _Call) -> Response:
        """``GET`` one session."""
        ids, session_id = _item(call)
        session = await self._service.get_session(
            app_name=ids.app_name,
            user_id=ids.user_id,
            session_id=session_id,
            num_recent_events=call.args["numRecentEvents"],
            after=call.args["after"],
        )
        if session is None:
            raise _not_found(ids, session_id)
        return _session_response(session)

    async def patch(self, call: _Call) -> Response:
        """``PATCH`` a state delta into a session, as a ``user`` event."""
        ids, session_id = _item(call)
        expected: int | None = call.args[REVISION_HEADER]
        body: UpdateSessionRequest = call.body
        for attempt in range(self._patch_retries + 1):
            session = await self._service.get_session(
                app_name=ids.app_name,
                user_id=ids.user_id,
                session_id=session_id,
                num_recent_events=call.args["numRecentEvents"],
            )
            if session is None:
                raise _not_found(ids, session_id)
            if expected is not None and session.revision != expected:
                raise _stale(session_id, expected, session.revision)
            event = Event(
                author="user",
                invocation_id=f"p-{uuid.uuid4()}",
                actions=EventActions(state_delta=body.state_delta),
            )
            try:
                await self._service.append_event(session, event)
            except StaleSessionError:
                if expected is not None or attempt == self._patch_retries:
                    raise
                continue
            return _session_response(session)
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, call: _Call) -> Response:
        """``DELETE`` a session (404 when it does not exist)."""
        ids, session_id = _item(call)
        found = await self._service.get_session(
            app_name=ids.app_name, user_id=ids.user_id, session_id=session_id, num_recent_events=0
        )
        if found is None:
            raise _not_found(ids, session_id)
        await self._service.delete_session(
            app_name=ids.app_name, user_id=ids.user_id, session_id=session_id
        )
        return Response(status_code=204)

    async def healthz(self, call: _Call) -> Response:
        """``GET /healthz``: the process serves."""
        return _json_response(attrs.asdict(_Status(status="ok")))

    async def readyz(self, call: _Call) -> Response:
        """``GET /readyz``: a trivial query on the database succeeds in time."""
        try:
            with anyio.fail_after(self._ready_timeout):
                await self._service.ping()
        except TimeoutError as exc:
            raise _unavailable(
                f"the database did not answer within {self._ready_timeout} s"
            ) from exc
        except Exception as exc:
            _log.warning("readiness probe failed", exc_info=True)
            raise _unavailable("the database is not ready") from exc
        return _json_response(attrs.asdict(_Status(status="ready")))

    async def openapi(self, call: _Call) -> Response:
        """``GET /openapi.json``: the OpenAPI document of this application."""
        return Response(self._openapi, media_type="application/json")


def _session_ids(raw: Mapping[str, str]) -> SessionID:
    """Validate the path's ids as the core does (400 naming a missing or malformed one)."""
    for name, value in raw.items():
        check_name(name, value)
    return SessionID.from_http_parameters(raw)


def _item(call: _Call) -> tuple[SessionID, str]:
    assert call.ids is not None and call.ids.session_id is not None
    return call.ids, call.ids.session_id


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


_READ_ERRORS = (400, 404)
_WRITE_ERRORS = (400, 409, 413, 415)

_OPERATIONS: Final = (
    _Operation(
        method="POST",
        path=_COLLECTION,
        operation_id="createSession",
        summary="Create a session (id from the body's sessionId, or generated)",
        handler=_Endpoints.create,
        body=CreateSessionRequest,
        response=Session,
        response_headers=(REVISION_HEADER,),
        errors=_WRITE_ERRORS,
    ),
    _Operation(
        method="GET",
        path=_COLLECTION,
        operation_id="listSessions",
        summary="List a user's sessions (state merged, no events), oldest update first",
        handler=_Endpoints.list,
        params=(_PAGE_SIZE, _PAGE_TOKEN),
        response=list[Session] | ListSessionsResponse,
        errors=(400,),
    ),
    _Operation(
        method="POST",
        path=_ITEM,
        operation_id="createSessionWithId",
        summary="Create a session with the id of the path",
        handler=_Endpoints.create,
        body=CreateSessionRequest,
        response=Session,
        response_headers=(REVISION_HEADER,),
        errors=_WRITE_ERRORS,
    ),
    _Operation(
        method="GET",
        path=_ITEM,
        operation_id="getSession",
        summary="Read a session with its events",
        handler=_Endpoints.get,
        params=(_NUM_RECENT_EVENTS, _AFTER),
        response=Session,
        response_headers=(REVISION_HEADER,),
        errors=_READ_ERRORS,
    ),
    _Operation(
        method="PATCH",
        path=_ITEM,
        operation_id="updateSession",
        summary="Append a state delta as a user event; answers the updated session",
        handler=_Endpoints.patch,
        params=(_NUM_RECENT_EVENTS, _REVISION),
        body=UpdateSessionRequest,
        body_required=True,
        response=Session,
        response_headers=(REVISION_HEADER,),
        errors=(*_WRITE_ERRORS, 404),
    ),
    _Operation(
        method="DELETE",
        path=_ITEM,
        operation_id="deleteSession",
        summary="Delete a session and its events (app and user state are kept)",
        handler=_Endpoints.delete,
        status=204,
        errors=_READ_ERRORS,
    ),
    _Operation(
        method="GET",
        path="/healthz",
        operation_id="healthz",
        summary="Liveness: 200 while the process serves",
        handler=_Endpoints.healthz,
        response=_Status,
        public=True,
    ),
    _Operation(
        method="GET",
        path="/readyz",
        operation_id="readyz",
        summary="Readiness: 200 when a trivial query on the database succeeds, else 503",
        handler=_Endpoints.readyz,
        response=_Status,
        public=True,
    ),
    _Operation(
        method="GET",
        path="/openapi.json",
        operation_id="openapi",
        summary="This OpenAPI 3.1 document",
        handler=_Endpoints.openapi,
        response=dict[str, Any],
        public=True,
    ),
)
"""Every operation of the application: the dispatcher's table and the OpenAPI document's source."""


# --- the OpenAPI document -----------------------------------------------------------------------

_STATUS_TEXT: Final = {
    400: "A malformed parameter, path segment, page token or body",
    401: "A missing or invalid bearer token",
    403: "The token does not reach this path, or the Origin is not allowed",
    404: "The session does not exist",
    409: "The session exists (create) or is at another revision (conditional PATCH)",
    413: "The body is larger than the limit",
    415: "The body is not Content-Type: application/json",
    421: "The Host header names no host this server answers for",
    500: "The database failed (details in the server's log)",
    503: "The database is unavailable for now; retry after Retry-After seconds",
}


def _plain_schema(cls: type) -> dict[str, Any]:
    """The schema of a flat attrs model of strings (the error and status bodies)."""
    names = [field.name for field in attrs.fields(cls)]
    assert all(typing.get_type_hints(cls)[name] is str for name in names), cls
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": names,
        "additionalProperties": False,
        "description": (cls.__doc__ or "").strip().split("\n")[0],
    }


def _hint_schema(hint: object) -> dict[str, Any]:
    """The schema of a response type: a model reference, a list of them, or a union."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"oneOf": [_hint_schema(arg) for arg in args]}
    if origin is list:
        return {"type": "array", "items": _hint_schema(args[0])}
    if origin is dict:
        return {"type": "object"}
    assert isinstance(hint, type), hint
    return {"$ref": _SCHEMAS + hint.__name__.lstrip("_")}


def _header_schema(name: str) -> dict[str, Any]:
    if name == REVISION_HEADER:
        return {
            "description": "The session's revision (0 when created, +1 per stored event)",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    if name == "Retry-After":
        return {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    assert name == "WWW-Authenticate", name
    return {"required": True, "schema": {"type": "string", "pattern": "^Bearer"}}


def _error_statuses(op: _Operation, auth: _Authenticator) -> list[int]:
    statuses = set(op.errors) | {403, 421, 500}
    if op.sessions:
        statuses |= {400, 503}
        if auth.enabled:
            statuses.add(401)
    if op.path == "/readyz":
        statuses.add(503)
    return sorted(statuses)


def _operation_document(op: _Operation, auth: _Authenticator) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "Percent-encoded UTF-8; %2F is a '/' inside the id",
            "schema": rest.id_schema(required=True),
        }
        for name in re.findall(r"\{(\w+)\}", op.path)
    ]
    parameters += [param.openapi() for param in op.params]
    ok: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _hint_schema(op.response)}}
    if op.response_headers:
        ok["headers"] = {name: _header_schema(name) for name in op.response_headers}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in _error_statuses(op, auth):
        answer: dict[str, Any] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorBody"}}},
        }
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": _header_schema("WWW-Authenticate")}
        if status == 503:
            answer["headers"] = {"Retry-After": _header_schema("Retry-After")}
        responses[str(status)] = answer
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": (op.handler.__doc__ or "").strip(),
        "parameters": parameters,
        "responses": responses,
    }
    if op.body is not None:
        schema: dict[str, Any] = {"$ref": _SCHEMAS + op.body.__name__}
        if not op.body_required:  # an empty body or null: the defaults
            schema = {"anyOf": [schema, {"type": "null"}]}
        document["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schema}},
        }
    if op.public:
        document["security"] = []
    return document


def _openapi_document(operations: Iterable[_Operation], auth: _Authenticator) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the operations, with the schemas of every model they use.

    Args:
        operations: The operation table (:data:`_OPERATIONS`).
        auth: The authentication of the application (its security scheme and 401 answers).

    Returns:
        The document as a JSON-ready dict.
    """
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_document(op, auth)
    schemas = rest.json_schemas(_SCHEMAS)
    schemas["ErrorBody"] = _plain_schema(_ErrorBody)
    schemas["Status"] = _plain_schema(_Status)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "adk-sessions",
            "version": __version__,
            "description": (
                "Durable agent sessions (google-adk's REST session model). Errors are "
                '{"error", "detail"}; request bodies must be application/json.'
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth.enabled:
        scheme: dict[str, Any] = {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The operator's token, or a per-user JWT (sub = user id, exp required, "
                "optional app) that reaches /apps/{app}/users/{sub}/... only"
            ),
        }
        if auth.uses_jwt:
            scheme["bearerFormat"] = "JWT"
        document["components"]["securitySchemes"] = {"bearer": scheme}
        document["security"] = [{"bearer": []}]
    return document


# --- middleware: Host and Origin checks, access log --------------------------------------------

_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def _host_name(host: str) -> str | None:
    """The name part of a ``Host`` header (brackets stripped, lower case), or ``None``."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
            return None
        return name
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".")


def _netloc(origin: str) -> str:
    """The ``host[:port]`` of an ``Origin`` header, lower case (``""`` when unparseable)."""
    try:
        return urllib.parse.urlsplit(origin).netloc.lower()
    except ValueError:
        return ""


def _is_loopback_name(name: str) -> bool:
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Guard:
    """Outermost layer: Host and Origin checks, then one access-log line per request."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Sequence[str], cors_origins: Sequence[str]
    ) -> None:
        self._app = app
        self._allowed_hosts = frozenset(host.lower().rstrip(".") for host in allowed_hosts)
        self._cors_origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            problem = self._check(scope)
            if problem is not None:
                await _error_response(problem)(scope, receive, send_and_record)
            else:
                await self._app(scope, receive, send_and_record)
        finally:
            template = _template(scope)
            duration = (time.perf_counter() - started) * 1000
            _access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                template,
                status,
                duration,
                extra={
                    "http_method": scope["method"],
                    "path_template": template,
                    "status": status,
                    "duration_ms": duration,
                },
            )

    def _check(self, scope: Scope) -> _HTTPError | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        server: tuple[str, int | None] | None = scope.get("server")
        on_loopback = server is not None and _is_loopback_name(str(server[0]))
        if on_loopback or self._allowed_hosts:
            name = None if host is None else _host_name(host)
            if name is None or not (
                name in self._allowed_hosts or (on_loopback and _is_loopback_name(name))
            ):
                return _HTTPError(
                    421,
                    "misdirected_request",
                    f"this server does not answer for host {host!r}; use localhost, 127.0.0.1 "
                    "or [::1] (or start it with --allowed-host)",
                )
        origin = headers.get("origin")
        if (
            origin is not None
            and origin not in self._cors_origins
            and (host is None or _netloc(origin) != host.lower())
        ):
            return _HTTPError(
                403,
                "forbidden",
                f"cross-origin requests from {origin!r} are not allowed "
                "(start the server with --cors-origin to allow an origin)",
            )
        return None


# --- the application ----------------------------------------------------------------------------


def _check_origin(origin: str) -> str:
    parts = urllib.parse.urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        raise ValueError(
            f"cors_origins: {origin!r} is not an origin like 'https://app.example.com' "
            "(scheme://host[:port], no path, no '*')"
        )
    return origin


@attrs.frozen(kw_only=True)
class _Options:
    """The checked options of :func:`create_app` (``adk-sessions serve`` checks them up front)."""

    auth: _Authenticator
    cors_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        token: str | None = None,
        jwt_secret: str | None = None,
        jwt_public_key: str | None = None,
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        cors_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        patch_retries: int = 3,
        ready_timeout: float = 5.0,
    ) -> _Options:
        """Check the options as :func:`create_app` documents (``ValueError`` when wrong)."""
        auth = _Authenticator(
            token=token,
            jwt_secret=jwt_secret,
            jwt_public_key=jwt_public_key,
            jwt_audience=jwt_audience,
            jwt_issuer=jwt_issuer,
        )
        if max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0, not {max_body_size}")
        if patch_retries < 0:
            raise ValueError(f"patch_retries must be >= 0, not {patch_retries}")
        if not ready_timeout > 0:
            raise ValueError(f"ready_timeout must be > 0, not {ready_timeout}")
        return cls(
            auth=auth,
            cors_origins=tuple(_check_origin(origin) for origin in cors_origins),
            allowed_hosts=tuple(allowed_hosts),
        )


def create_app(
    service: SessionService,
    *,
    token: str | None = None,
    jwt_secret: str | None = None,
    jwt_public_key: str | None = None,
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
    cors_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] = (),
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    patch_retries: int = 3,
    ready_timeout: float = 5.0,
) -> Starlette:
    """Build the ASGI application serving ``service`` (see the module's documentation).

    The caller owns ``service``: the application never opens or closes it (``adk-sessions serve``
    closes it after the server has shut down). Add other middleware with
    ``app.add_middleware(...)``; it runs inside the Host/Origin checks and the access log.

    Args:
        service: An open core service, e.g. from ``adk_sessions.connect(url)``.
        token: The operator's bearer token: ``Authorization: Bearer <token>`` reaches every
            session (compared in constant time).
        jwt_secret: Accept HS256 JSON Web Tokens signed with this secret (at least
            :data:`MIN_JWT_SECRET_BYTES` bytes).
        jwt_public_key: Accept JWTs signed by the private half of this PEM public key (RSA:
            RS256/384/512 and PS256/384/512; EC P-256/384/521: ES256/384/512; Ed25519/Ed448:
            EdDSA).
        jwt_audience: Require this ``aud`` claim.
        jwt_issuer: Require this ``iss`` claim.
        cors_origins: Origins (``https://app.example.com``) allowed to call from a browser:
            CORS headers and preflight answers for them only. Empty: CORS off.
        allowed_hosts: Host names accepted in the ``Host`` header besides the loopback names
            (e.g. the name a reverse proxy forwards). When given, every request must name one of
            them or, on a loopback address, a loopback host; else 421.
        max_body_size: The largest request body accepted, in bytes; larger ones get 413.
        patch_retries: How many times a blind ``PATCH`` (no ``X-Session-Revision``) re-reads
            the session and retries when a concurrent writer got in first, before it answers 409.
        ready_timeout: Seconds ``/readyz`` waits for the database before it answers 503.

    Returns:
        A Starlette application.

    Raises:
        ValueError: ``token`` is empty, ``jwt_secret`` is too short, ``jwt_public_key`` is not
            a supported PEM public key, ``jwt_audience``/``jwt_issuer`` come without a key, a CORS
            origin is malformed, or ``max_body_size``, ``patch_retries`` or ``ready_timeout`` is
            negative.
    """
    options = _Options.build(
        token=token,
        jwt_secret=jwt_secret,
        jwt_public_key=jwt_public_key,
        jwt_audience=jwt_audience,
        jwt_issuer=jwt_issuer,
        cors_origins=cors_origins,
        allowed_hosts=allowed_hosts,
        max_body_size=max_body_size,
        patch_retries=patch_retries,
        ready_timeout=ready_timeout,
    )
    auth, origins = options.auth, options.cors_origins
    document = json.dumps(_openapi_document(_OPERATIONS, auth), ensure_ascii=False).encode()
    endpoints = _Endpoints(
        service,
        auth=auth,
        operations=_OPERATIONS,
        max_body_size=max_body_size,
        patch_retries=patch_retries,
        ready_timeout=ready_timeout,
        openapi=document,
    )
    middleware = [Middleware(_Guard, allowed_hosts=options.allowed_hosts, cors_origins=origins)]
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", REVISION_HEADER],
                expose_headers=[REVISION_HEADER, "Retry-After"],
                max_age=600,
            )
        )
    app = Starlette(middleware=middleware)
    # No Starlette routes: every request reaches the endpoints, which match paths themselves
    # (Starlette's path patterns stop at a percent-encoded newline and answer a text 404).
    app.router.default = endpoints
    return app
