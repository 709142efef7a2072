"""Start child processes, release them at the same moment, collect their JSON reports.

Each child prints ``ready`` once connected, waits for a line on stdin, does its work, and prints a
JSON report as its last stdout line. Shared by the multi-process migration and append tests.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from collections.abc import Sequence
from typing import Any


def run_released(commands: Sequence[Sequence[str]], timeout: float) -> list[tuple[Any, str]]:
    """Run the commands as children started together; return (report, stderr) per child.

    Args:
        commands: One argument list per child.
        timeout: Seconds for the whole run: connecting, working and reporting.

    Returns:
        Each child's decoded report and its stderr, in the order of ``commands``.
    """
    deadline = time.monotonic() + timeout
    procs = [
        subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            assert ready, "a child did not connect in time"
            line = proc.stdout.readline().strip()
            assert line == "ready", (line, proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            assert proc.returncode == 0, err
            results.append((json.loads(out.strip().splitlines()[-1]), err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
