"""Observability: OpenTelemetry spans of every public operation (the log line at connect:
``tests/backends/test_connect_log.py``).

Spans are collected with the OpenTelemetry SDK's in-memory exporter on the global tracer
provider (google-adk's tests may have installed an SDK provider first: the exporter is added to
it then). Without the SDK (tox -e no-extras) the module is skipped.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import adk_sessions
from adk_sessions import Event, EventActions, SessionService
from adk_sessions.errors import InvalidArgumentError, SessionNotFoundError

pytestmark = pytest.mark.anyio

SYSTEM = {"sqlite": "sqlite", "postgres": "postgresql"}


@pytest.fixture(scope="session")
def _exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The exporter, emptied before and after the test."""
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def _ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("adk_sessions.")]


def _public_operations() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(SessionService, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "close"
    )


def test_every_public_operation_is_traced() -> None:
    """Each public async method of the service is wrapped in a span of its own name."""
    operations = _public_operations()
    assert {"append_event", "delete_sessions", "get_session", "migrate"} <= set(operations)
    for name in operations:
        assert hasattr(getattr(SessionService, name), "__wrapped__"), name


async def _every_operation(service: SessionService) -> list[str]:
    """Call every public operation once; return their names in call order."""
    s = await service.create_session(app_name="app", user_id="alice", session_id="s1")
    await service.append_event(
        s, Event(author="a", actions=EventActions(state_delta={"user:k": 1}))
    )
    await service.get_session(app_name="app", user_id="alice", session_id="s1")
    await service.list_sessions(app_name="app")
    await service.get_user_state(app_name="app", user_id="alice")
    await service.get_app_state(app_name="app")
    await service.update_user_state(app_name="app", user_id="alice", delta={"k": 2})
    await service.update_app_state(app_name="app", delta={"k": 3})
    await service.count_sessions(app_name="app", user_id="alice")
    await service.list_apps()
    await service.delete_sessions(app_name="app", user_id="alice", updated_before=0.0)
    await service.delete_session(app_name="app", user_id="alice", session_id="s1")
    await service.schema_version()
    await service.migrate()
    await service.ping()
    await service.status()
    return [
        "create_session",
        "append_event",
        "get_session",
        "list_sessions",
        "get_user_state",
        "get_app_state",
        "update_user_state",
        "update_app_state",
        "count_sessions",
        "list_apps",
        "delete_sessions",
        "delete_session",
        "schema_version",
        "migrate",
        "ping",
        "status",
    ]


async def test_spans_name_the_operation_database_and_app_but_no_ids(
    db_url: str, spans: InMemorySpanExporter
) -> None:
    """Every operation is a CLIENT span adk_sessions.<op> with db.system.name and the app name;
    user and session ids are left out by default."""
    async with adk_sessions.connect(db_url) as service:
        spans.clear()
        called = await _every_operation(service)
        system = SYSTEM[service.dialect]
    assert sorted(called) == _public_operations()
    got = _ours(spans)
    # status() reads the schema version through schema_version(): a child span.
    top = [s for s in got if s.parent is None]
    assert [s.name for s in top] == [f"adk_sessions.{op}" for op in called]
    (child,) = [s for s in got if s.parent is not None]
    assert child.name == "adk_sessions.schema_version"
    assert child.parent is not None and child.parent.span_id == top[-1].context.span_id
    without_app = {"list_apps", "schema_version", "migrate", "ping", "status"}
    for span in got:
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert attributes.pop("db.system.name") == system
        if span.name.removeprefix("adk_sessions.") not in without_app:
            assert attributes.pop("adk_sessions.app_name") == "app", span.name
        assert attributes == {}, span.name
        assert span.status.status_code is StatusCode.UNSET


async def test_trace_ids_adds_user_and_session_ids(
    db_url: str, spans: InMemorySpanExporter
) -> None:
    """With trace_ids=True spans also carry adk_sessions.user_id and adk_sessions.session_id."""
    async with adk_sessions.connect(db_url, trace_ids=True) as service:
        spans.clear()
        s = await service.create_session(app_name="app", user_id="alice", session_id="s1")
        await service.append_event(s, Event(author="a"))
        await service.list_sessions(app_name="app")
    by_name = {span.name: dict(span.attributes or {}) for span in _ours(spans)}
    for name in ("adk_sessions.create_session", "adk_sessions.append_event"):
        assert by_name[name]["adk_sessions.user_id"] == "alice"
        assert by_name[name]["adk_sessions.session_id"] == "s1"
    assert "adk_sessions.user_id" not in by_name["adk_sessions.list_sessions"]


async def test_failures_are_recorded_without_ids_by_default(
    db_url: str, spans: InMemorySpanExporter
) -> None:
    """A failing operation's span has status ERROR, error.type and an exception event; without
    trace_ids neither the message nor the stack names the user or session."""
    async with adk_sessions.connect(db_url) as service:
        s = await service.create_session(app_name="app", user_id="alice-42", session_id="s-99")
        await service.delete_session(app_name="app", user_id="alice-42", session_id="s-99")
        spans.clear()
        with pytest.raises(SessionNotFoundError):
            await service.append_event(s, Event(author="a"))
    (span,) = _ours(spans)
    assert span.name == "adk_sessions.append_event"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "SessionNotFoundError"
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "adk_sessions.errors.SessionNotFoundError"
    (event,) = span.events
    assert event.name == "exception"
    recorded = dict(event.attributes or {})
    assert str(recorded["exception.type"]).endswith("SessionNotFoundError")
    assert recorded["exception.message"] == "SessionNotFoundError"
    assert "append_event" in str(recorded["exception.stacktrace"])
    assert "alice-42" not in repr(recorded) and "s-99" not in repr(recorded)
    assert "alice-42" not in repr(attributes)


async def test_failures_carry_the_message_with_trace_ids(
    db_url: str, spans: InMemorySpanExporter
) -> None:
    """With trace_ids=True the exception's message is recorded as it is."""
    async with adk_sessions.connect(db_url, trace_ids=True) as service:
        spans.clear()
        with pytest.raises(InvalidArgumentError):
            await service.get_session(app_name="app", user_id="", session_id="s")
    (span,) = _ours(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert "user_id must be a non-empty string" in (span.status.description or "")
    (event,) = span.events
    assert "user_id must be a non-empty string" in str(
        (event.attributes or {})["exception.message"]
    )


async def test_spans_are_children_of_the_callers_span(
    service: SessionService, spans: InMemorySpanExporter
) -> None:
    """An operation's span is a child of the span current in the caller (an agent's turn)."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("agent turn") as turn:
        await service.create_session(app_name="app", user_id="u")
    (span,) = _ours(spans)
    assert span.parent is not None and span.parent.span_id == turn.get_span_context().span_id


async def test_trace_ids_must_be_a_bool(db_url: str) -> None:
    """connect(trace_ids=...) takes True or False only."""
    with pytest.raises(InvalidArgumentError, match="trace_ids"):
        await adk_sessions.connect(db_url, trace_ids="yes")


def test_without_opentelemetry_nothing_is_wrapped(tmp_path: Path) -> None:
    """Without opentelemetry-api the methods are the plain functions (no wrapper, no cost) and
    the service works."""
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class NoOpenTelemetry(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("opentelemetry is not installed")
        sys.meta_path.insert(0, NoOpenTelemetry())
        import anyio, adk_sessions
        from adk_sessions import Event, SessionService
        assert not hasattr(SessionService.append_event, "__wrapped__")
        async def main():
            async with adk_sessions.connect({f"sqlite:///{tmp_path / 'x.db'}"!r}) as s:
                x = await s.create_session(app_name="a", user_id="u")
                await s.append_event(x, Event(author="a"))
                assert await s.delete_sessions(app_name="a", updated_before=1e12) == 1
        anyio.run(main)
        assert "opentelemetry" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
