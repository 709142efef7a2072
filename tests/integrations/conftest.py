"""The integrations need their extras: without one, its tests are not collected."""

from __future__ import annotations

from ..conftest import _has_google_adk, importable

# [adk]: the google-adk adapter and import-adk.
collect_ignore = [] if _has_google_adk() else ["adk"]
# [http]: starlette, uvicorn and pyjwt serve; httpx (of [test]) is the client.
collect_ignore_glob = (
    [] if importable("starlette", "uvicorn", "jwt", "httpx") else ["test_asgi.py", "test_http_*.py"]
)
