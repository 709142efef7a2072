"""The conformance suite's targets: every backend, plus PostgreSQL through PgBouncer.

Through PgBouncer (transaction pooling, ``?pgbouncer=true``) the tables also live in a schema of
their own with an awkward name (``?schema=...``), so both operating modes face every behaviour.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ...conftest import BACKENDS, _backend_url

TARGETS = (*BACKENDS, "pgbouncer")


@pytest.fixture(params=TARGETS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each conformance target."""
    return _backend_url(request, request.param, tmp_path)
