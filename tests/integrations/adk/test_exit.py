"""google-adk never closes its session service, so an unclosed one must not block exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_unclosed_sqlite_service_does_not_block_exit(tmp_path: Path) -> None:
    """A process exits promptly after using a SQLite AdkSessionService it never closed."""
    code = textwrap.dedent(
        f"""
        import asyncio
        from adk_sessions.adk import AdkSessionService

        service = AdkSessionService("sqlite:///{tmp_path / "exit.db"}")
        asyncio.run(service.create_session(app_name="a", user_id="u"))
        """
    )
    subprocess.run([sys.executable, "-c", code], timeout=15, check=True)
