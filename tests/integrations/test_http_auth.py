"""Per-user JWTs and the operator token, against a real uvicorn server on both backends."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from adk_sessions import SessionService
from adk_sessions._serve import add_serve_parser, check_bind, serve_command
from adk_sessions.asgi import MIN_JWT_SECRET_BYTES, create_app

from .._http import JSON, error, path, running, server_process

pytestmark = pytest.mark.anyio

SECRET = "s" * MIN_JWT_SECRET_BYTES
OTHER_SECRET = "o" * MIN_JWT_SECRET_BYTES
OPERATOR = "operator-token"


def mint(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT for user u1, valid for five minutes, with ``claims`` laid over (None drops one)."""
    payload: dict[str, Any] = {"sub": "u1", "exp": int(time.time()) + 300}
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def _pem(key: Any) -> str:
    data: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256_with(secret: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses PEM keys as HMAC secrets, rightly)."""
    claims = {"sub": "u1", "exp": int(time.time()) + 60}
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)[:-1]
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def _user_ids(service: SessionService, app: str = "app") -> list[tuple[str, str]]:
    listed = await service.list_sessions(app_name=app)
    return [(session.user_id, session.id) for session in listed.sessions]


async def test_jwt_reaches_its_own_path(service: SessionService) -> None:
    """A JWT with sub=u1 creates, lists, reads, patches and deletes u1's sessions."""
    async with running(service, jwt_secret=SECRET) as (client, _):
        auth = bearer(mint())
        created = await client.post(path(session="s"), json={"state": {"a": 1}}, headers=auth)
        assert created.status_code == 200, created.text
        assert created.json()["userId"] == "u1"
        listed = await client.get(path(), headers=auth)
        assert [s["id"] for s in listed.json()] == ["s"]
        patched = await client.patch(path(session="s"), json={"stateDelta": {"b": 2}}, headers=auth)
        assert patched.json()["state"] == {"a": 1, "b": 2}
        assert (await client.get(path(session="s"), headers=auth)).status_code == 200
        assert (await client.delete(path(session="s"), headers=auth)).status_code == 204
    assert await _user_ids(service) == []


async def test_jwt_cannot_reach_another_user(service: SessionService) -> None:
    """Another user's path is 403 for every method, listing across users too; nothing written."""
    await service.create_session(app_name="app", user_id="u2", session_id="theirs")
    async with running(service, jwt_secret=SECRET) as (client, _):
        auth = bearer(mint())
        for method, session in (
            ("GET", None),
            ("POST", None),
            ("POST", "mine-now"),
            ("GET", "theirs"),
            ("PATCH", "theirs"),
            ("DELETE", "theirs"),
        ):
            response = await client.request(
                method, path(user="u2", session=session), json={"stateDelta": {}}, headers=auth
            )
            assert "own user" in error(response, 403, "forbidden")
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert await _user_ids(service) == [("u2", "theirs")]
    stored = await service.get_session(app_name="app", user_id="u2", session_id="theirs")
    assert stored is not None and stored.revision == 0


@pytest.mark.parametrize(
    ("claim", "allowed", "refused"),
    [("a1", ["a1"], ["a2", "a11"]), (["a1", "a2"], ["a1", "a2"], ["a3"]), ([], [], ["a1"])],
)
async def test_app_claim_limits_the_apps(
    service: SessionService, claim: object, allowed: list[str], refused: list[str]
) -> None:
    """The optional app claim (a string or a list) limits the apps a JWT reaches; others 403."""
    async with running(service, jwt_secret=SECRET) as (client, _):
        auth = bearer(mint(app=claim))
        for app in allowed:
            response = await client.post(path(app=app, session="s"), headers=auth)
            assert response.status_code == 200, response.text
        for app in refused:
            response = await client.post(path(app=app, session="s"), headers=auth)
            assert repr(app) in error(response, 403, "forbidden")
            assert await _user_ids(service, app) == []


def _bad_tokens() -> list[tuple[str, Callable[[], str], str]]:
    """Each case's token is minted when its test runs (the suite may outlast a fixed expiry)."""

    def now() -> int:
        return int(time.time())

    return [
        ("expired", lambda: mint(exp=now() - 10), "expired"),
        ("wrong key", lambda: mint(OTHER_SECRET), "Signature verification failed"),
        ("alg none", lambda: mint(None, "none"), "'none' is not accepted"),
        (
            "alg none, hand-made",
            lambda: _unsigned({"alg": "none", "typ": "JWT"}, {"sub": "u1", "exp": now() + 60}),
            "not accepted",
        ),
        (
            "alg missing",
            lambda: _unsigned({"typ": "JWT"}, {"sub": "u1", "exp": now() + 60}),
            "None",
        ),
        ("no exp", lambda: mint(exp=None), '"exp"'),
        ("no sub", lambda: mint(sub=None), '"sub"'),
        ("empty sub", lambda: mint(sub=""), "sub"),
        ("control character in sub", lambda: mint(sub="u\n1"), "control character"),
        ("app claim of numbers", lambda: mint(app=[1, 2]), "app claim"),
        ("app claim object", lambda: mint(app={"a": 1}), "app claim"),
        ("not yet valid", lambda: mint(nbf=now() + 600), "not yet valid"),
        ("unexpected audience", lambda: mint(aud="someone"), "audience"),
        ("malformed", lambda: "not.a.jwt", "not valid"),
        ("garbage", lambda: "%%%", "not valid"),
        ("truncated signature", lambda: mint()[:-5], "not valid"),
    ]


@pytest.mark.parametrize(
    ("case", "make", "detail"), _bad_tokens(), ids=[case for case, _, _ in _bad_tokens()]
)
async def test_bad_tokens_are_a_401(
    service: SessionService, case: str, make: Callable[[], str], detail: str
) -> None:
    """Missing, malformed, expired or badly signed tokens (alg none too) answer 401, Bearer."""
    token = make()
    async with running(service, jwt_secret=SECRET) as (client, _):
        response = await client.post(path(session="s"), headers=bearer(token))
        assert detail in error(response, 401, "unauthorized"), case
        assert response.headers["www-authenticate"].startswith("Bearer ")
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        missing = await client.get(path())
        assert "required" in error(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"].startswith("Bearer ")
    assert await _user_ids(service) == []


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_public_key_tokens(service: SessionService, kind: str) -> None:
    """--jwt-public-key: tokens signed by its private key pass; another key or HS256 do not."""
    if kind == "RS256":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key, other = (
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )
    pem = _pem(key)
    async with running(service, jwt_public_key=pem) as (client, _):
        ok = await client.post(path(session="s"), headers=bearer(mint(key, kind)))
        assert ok.status_code == 200, ok.text
        wrong_key = await client.get(path(), headers=bearer(mint(other, kind)))
        error(wrong_key, 401, "unauthorized")
        # Key confusion: HS256 "signed" with the public key's PEM text is refused.
        confused = await client.get(path(), headers=bearer(_hs256_with(pem.encode())))
        assert "'HS256' is not accepted" in error(confused, 401, "unauthorized")
    async with running(service, jwt_public_key=pem, jwt_secret=SECRET) as (client, _):
        both = await client.get(path(), headers=bearer(mint(SECRET)))
        assert both.status_code == 200
        confused = await client.get(path(), headers=bearer(_hs256_with(pem.encode())))
        error(confused, 401, "unauthorized")


async def test_audience_and_issuer_are_required_when_set(service: SessionService) -> None:
    """With jwt_audience/jwt_issuer a token must carry exactly those aud and iss claims."""
    options = {"jwt_secret": SECRET, "jwt_audience": "sessions", "jwt_issuer": "https://idp"}
    async with running(service, **options) as (client, _):
        good = mint(aud="sessions", iss="https://idp")
        assert (await client.get(path(), headers=bearer(good))).status_code == 200
        listed = mint(aud=["other", "sessions"], iss="https://idp")
        assert (await client.get(path(), headers=bearer(listed))).status_code == 200
        for token, detail in (
            (mint(iss="https://idp"), '"aud"'),
            (mint(aud="sessions"), '"iss"'),
            (mint(aud="other", iss="https://idp"), "audience"),
            (mint(aud="sessions", iss="https://evil"), "issuer"),
        ):
            response = await client.get(path(), headers=bearer(token))
            assert detail in error(response, 401, "unauthorized").lower()


async def test_operator_token_reaches_everything(service: SessionService) -> None:
    """The operator token reaches every user and app while JWTs stay limited to their own."""
    async with running(service, token=OPERATOR, jwt_secret=SECRET) as (client, _):
        operator = bearer(OPERATOR)
        for user in ("u1", "u2"):
            response = await client.post(path(user=user, session="s"), headers=operator)
            assert response.status_code == 200
        listed = await client.get(path(user="u2"), headers=operator)
        assert [session["id"] for session in listed.json()] == ["s"]
        own = bearer(mint())
        assert (await client.get(path(user="u1"), headers=own)).status_code == 200
        error(await client.get(path(user="u2"), headers=own), 403, "forbidden")
        # The operator token is no JWT, and a JWT is no operator token.
        error(await client.get(path(), headers=bearer(OPERATOR + "x")), 401, "unauthorized")
    async with running(service, token=OPERATOR) as (client, _):
        error(await client.get(path(), headers=bearer(mint())), 401, "unauthorized")


async def test_probes_and_document_need_no_token(service: SessionService) -> None:
    """/healthz, /readyz and /openapi.json answer without a token; the sessions do not."""
    async with running(service, token=OPERATOR, jwt_secret=SECRET) as (client, _):
        for route in ("/healthz", "/readyz", "/openapi.json"):
            assert (await client.get(route)).status_code == 200, route
        error(await client.get(path()), 401, "unauthorized")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token": ""}, "token"),
        ({"jwt_secret": "short"}, f"at least {MIN_JWT_SECRET_BYTES} bytes"),
        ({"jwt_public_key": "not a key"}, "PEM"),
        ({"jwt_audience": "a"}, "need jwt_secret or jwt_public_key"),
        ({"jwt_issuer": "i"}, "need jwt_secret or jwt_public_key"),
        ({"cors_origins": ["*"]}, "origin"),
        ({"cors_origins": ["https://app.example.com/path"]}, "origin"),
        ({"cors_origins": ["app.example.com"]}, "origin"),
        ({"ready_timeout": 0}, "ready_timeout"),
    ],
)
def test_create_app_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    """Bad auth, CORS or probe options are refused up front with a ValueError naming them."""
    service: Any = object()
    with pytest.raises(ValueError, match=message):
        create_app(service, **options)


def test_create_app_rejects_unsupported_keys() -> None:
    """A PEM public key of a type no JWT algorithm uses (DSA) is refused up front."""
    key = dsa.generate_private_key(key_size=2048)
    service: Any = object()
    with pytest.raises(ValueError, match="unsupported key type"):
        create_app(service, jwt_public_key=_pem(key))


def test_jwt_keys_count_as_authentication_for_the_bind_check() -> None:
    """A non-loopback address is allowed with a JWT secret or key, refused with nothing."""
    assert check_bind("0.0.0.0", SECRET) is None
    problem = check_bind("0.0.0.0", None)
    assert problem is not None and "--jwt-secret" in problem


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="adk-sessions")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--jwt-secret", "short"], {}, "at least"),
        ([], {"ADK_SESSIONS_JWT_SECRET": "short"}, "at least"),
        (["--jwt-public-key", "missing.pem"], {}, "cannot read"),
        ([], {"ADK_SESSIONS_JWT_PUBLIC_KEY": "missing.pem"}, "cannot read"),
        ([], {"ADK_SESSIONS_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nxx"}, "PEM"),
        (["--jwt-audience", "a"], {}, "need jwt_secret"),
        (["--cors-origin", "*"], {}, "origin"),
        (["--host", "0.0.0.0", "--jwt-audience", "a"], {}, "without a token"),
    ],
)
def test_serve_checks_options_before_opening_the_database(
    argv: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """serve exits 2 naming a bad JWT/CORS option (flag or variable) before any database."""
    for name in ("TOKEN", "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_AUDIENCE", "JWT_ISSUER"):
        monkeypatch.delenv(f"ADK_SESSIONS_{name}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert serve_command(_parse("serve", *argv)) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


async def test_header_forms(service: SessionService) -> None:
    """The scheme is case-insensitive; Basic, a bare token or an empty one are 401."""
    async with running(service, jwt_secret=SECRET) as (client, _):
        token = mint()
        ok = await client.post(path(session="s"), headers={"Authorization": f"bearer {token}"})
        assert ok.status_code == 200
        for header in (f"Basic {token}", token, "Bearer", f"Token {token}"):
            response = await client.get(path(), headers={"Authorization": header})
            error(response, 401, "unauthorized")
        body = await client.post(
            path(session="t"), content=b'{"state": {}}', headers={**JSON, **bearer(token)}
        )
        assert body.status_code == 200


async def test_www_authenticate_on_every_401(service: SessionService) -> None:
    """Every 401 carries WWW-Authenticate: Bearer, for a plain token server too."""
    async with running(service, token=OPERATOR) as (client, _):
        for headers in ({}, bearer("nope"), {"Authorization": "Basic x"}):
            response = await client.delete(path(session="s"), headers=headers)
            error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith('Bearer realm="adk-sessions"')


@pytest.mark.parametrize("source", ["flag", "variable with a path", "variable with the key"])
def test_serve_takes_the_public_key_from_a_file_or_the_environment(
    tmp_path: Path, source: str
) -> None:
    """serve --jwt-public-key FILE, or $ADK_SESSIONS_JWT_PUBLIC_KEY (a path or PEM text), works."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "idp.pem"
    pem_file.write_text(_pem(key))
    argv, env = ["--port", "0"], {}
    if source == "flag":
        argv += ["--jwt-public-key", str(pem_file)]
    elif source == "variable with a path":
        env["ADK_SESSIONS_JWT_PUBLIC_KEY"] = str(pem_file)
    else:
        env["ADK_SESSIONS_JWT_PUBLIC_KEY"] = _pem(key)
    with server_process(argv, tmp_path, env) as (process, base, lines):
        with httpx.Client(base_url=base, headers=bearer(mint(key, "ES256"))) as http:
            assert http.post(path(session="s")).status_code == 200
            assert http.get(path(user="u2")).status_code == 403
            assert http.get(path(), headers=bearer(mint())).status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, "".join(lines)
    assert any("auth: per-user JWT (ES256)" in line for line in lines), "".join(lines)
