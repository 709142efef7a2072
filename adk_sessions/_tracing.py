"""Optional OpenTelemetry spans around the service's public operations.

When ``opentelemetry-api`` is importable, :func:`traced` wraps a method in a span named
``adk_sessions.<operation>`` (kind ``CLIENT``) with the attributes ``db.system.name``
(``postgresql`` or ``sqlite``) and ``adk_sessions.app_name``, plus ``adk_sessions.user_id`` and
``adk_sessions.session_id`` when the service was opened with ``trace_ids=True`` (they may be
personal data). A failure is recorded on the span (``record_exception``, status ``ERROR``,
``error.type``); without ``trace_ids`` the recorded message and stack carry the exception's type
and frames only, since the library's messages name the ids involved. Cancellation is not an
error and is not recorded.

Spans go to whatever tracer provider the application installed (a no-op one by default). When
``opentelemetry-api`` is not installed, :func:`traced` returns the method unchanged: no wrapper,
no cost at all.
"""

from __future__ import annotations

import functools
import importlib.metadata
import traceback
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

try:
    from opentelemetry import trace as _otel
except ImportError:  # no opentelemetry-api: nothing is wrapped
    _otel = None  # type: ignore[assignment]

__all__ = ("SYSTEM_NAMES", "Traceable", "traced")

P = ParamSpec("P")
R = TypeVar("R")

SYSTEM_NAMES = {"postgres": "postgresql", "sqlite": "sqlite"}
"""``db.system.name`` (OpenTelemetry's semantic conventions) of each dialect."""


class Traceable(Protocol):
    """What a traced object offers: the attributes common to its spans, and the ids switch."""

    @property
    def _span_attributes(self) -> Mapping[str, str]: ...

    @property
    def _trace_ids(self) -> bool: ...


S = TypeVar("S", bound=Traceable)


def _version() -> str:
    try:
        return importlib.metadata.version("adk-sessions")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0"


def _ids(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The app, user and session ids of a call: keywords, or a ``Session`` passed first."""
    found = {key: kwargs.get(key) for key in ("app_name", "user_id", "session_id")}
    first = args[0] if args else kwargs.get("session")
    if first is not None:  # append_event(session, event)
        found["app_name"] = found["app_name"] or getattr(first, "app_name", None)
        found["user_id"] = found["user_id"] or getattr(first, "user_id", None)
        found["session_id"] = found["session_id"] or getattr(first, "id", None)
    return found


def traced(
    operation: str,
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]],
    Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
]:
    """Wrap a public async method in a span ``adk_sessions.<operation>`` (when OpenTelemetry is
    installed; otherwise return the method itself).

    Args:
        operation: The operation's name, e.g. ``"append_event"``.

    Returns:
        The decorator.
    """
    name = f"adk_sessions.{operation}"

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        if _otel is None:
            return method
        otel = _otel
        # A proxy until the application installs a provider; it follows the provider from then on.
        tracer = otel.get_tracer("adk_sessions", _version())

        @functools.wraps(method)
        async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with tracer.start_as_current_span(
                name,
                kind=otel.SpanKind.CLIENT,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                recording = span.is_recording()
                if recording:
                    _start(span, self, args, kwargs)
                try:
                    return await method(self, *args, **kwargs)
                except Exception as exc:
                    if recording:
                        _fail(span, exc, with_ids=self._trace_ids)
                    raise

        return wrapper

    return decorate


def _start(span: Any, owner: Traceable, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    attributes = dict(owner._span_attributes)
    ids = _ids(args, kwargs)
    if isinstance(ids["app_name"], str):
        attributes["adk_sessions.app_name"] = ids["app_name"]
    if owner._trace_ids:
        for key in ("user_id", "session_id"):
            if isinstance(ids[key], str):
                attributes[f"adk_sessions.{key}"] = ids[key]
    span.set_attributes(attributes)


def _fail(span: Any, exc: Exception, *, with_ids: bool) -> None:
    kind = type(exc).__name__
    if with_ids:
        span.record_exception(exc)
        description = f"{kind}: {exc}"
    else:
        # Messages name the ids involved: keep the type and the frames, not the text.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        span.record_exception(
            exc,
            attributes={
                "exception.message": kind,
                "exception.stacktrace": f"Traceback (most recent call last):\n{frames}{kind}",
            },
        )
        description = kind
    span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
    assert _otel is not None
    span.set_status(_otel.Status(_otel.StatusCode.ERROR, description))
