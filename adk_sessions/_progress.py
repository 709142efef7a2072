"""Progress bars of the command line (``import-adk``, ``prune``), drawn by tqdm on a stream.

tqdm is imported here only, and this module only by the commands, so the library never
imports it. On a terminal the bar redraws in place; written to a file or a pipe, tqdm redraws
at most every few seconds and ends with the final state on a line of its own.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ("bar",)

# "prune:  42%|####      | 4200/10000 sessions [00:03<00:04, 120 events]"
_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}{postfix}]"
)


def bar(*, what: str, total: int, unit: str, stream: IO[str]) -> tqdm[Any]:
    """Start a progress bar; ``update(n)`` advances it, ``close()`` (or ``with``) ends it.

    Args:
        what: The label in front (the command's name).
        total: How many units the whole job has.
        unit: The plural noun after the counts (``"sessions"``).
        stream: Where to draw (standard error).

    Returns:
        The bar.
    """
    from tqdm import tqdm

    tty = stream.isatty()
    drawn: tqdm[Any] = tqdm(
        total=total,
        desc=what,
        unit=unit,
        file=stream,
        bar_format=_FORMAT,
        ascii=not tty,
        dynamic_ncols=tty,
        mininterval=0.1 if tty else 5.0,
    )
    return drawn
